//! Lineage: where OpenLineage run events go (`lineage:` in sluice.yaml — an NDJSON file or a
//! Marquez-compatible HTTP endpoint), and `sluice lineage TABLE`, the upstream and downstream
//! graph of a dataset across every pipeline of the project.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};
use sluice_core::{Dataset, LineageSettings, LineageTarget};
use sluice_engine::lineage::LineageSink;
use sluice_io::reqwest;

use crate::workspace::Workspace;
use crate::{Global, exit, usage};

/// The sink `lineage:` names, if any.
pub fn sink(settings: Option<&LineageSettings>) -> anyhow::Result<Option<Arc<dyn LineageSink>>> {
    let Some(settings) = settings else {
        return Ok(None);
    };
    Ok(Some(match &settings.target {
        LineageTarget::File(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating the lineage folder {}", dir.display()))?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening the lineage file {}", path.display()))?;
            Arc::new(FileSink {
                namespace: settings.namespace.clone(),
                file: Mutex::new(file),
            })
        }
        LineageTarget::Http(url) => Arc::new(HttpSink::start(settings.namespace.clone(), url)),
    }))
}

/// Waits (a bounded time) for the executor's lineage events still on their way.
pub fn flush(exec: &sluice_engine::Executor) {
    if let Some(sink) = &exec.lineage {
        sink.flush(Duration::from_secs(15));
    }
}

/// One event per line, appended as it happens.
struct FileSink {
    namespace: String,
    file: Mutex<std::fs::File>,
}

impl LineageSink for FileSink {
    fn namespace(&self) -> &str {
        &self.namespace
    }

    fn emit(&self, event: Value) {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = writeln!(file, "{event}") {
            tracing::warn!("cannot write a lineage event: {e}");
        }
    }
}

enum Message {
    Event(Value),
    Flush(mpsc::SyncSender<()>),
}

/// POSTs events, in order, from a thread of its own (never holding up a task); an endpoint that
/// is down is retried with backoff, then the event is logged and dropped.
struct HttpSink {
    namespace: String,
    queue: Mutex<mpsc::Sender<Message>>,
}

const BACKOFF: &[Duration] = &[
    Duration::from_millis(200),
    Duration::from_secs(1),
    Duration::from_secs(3),
];

impl HttpSink {
    fn start(namespace: String, url: &str) -> HttpSink {
        // Marquez takes events at /api/v1/lineage; a URL naming its own path is used as is.
        let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
        let has_path = after_scheme
            .split_once('/')
            .is_some_and(|(_, path)| !path.trim_matches('/').is_empty());
        let endpoint = if has_path {
            url.to_string()
        } else {
            format!("{}/api/v1/lineage", url.trim_end_matches('/'))
        };
        let (tx, rx) = mpsc::channel::<Message>();
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            let http = reqwest::Client::new();
            while let Ok(message) = rx.recv() {
                match message {
                    Message::Event(event) => rt.block_on(post(&http, &endpoint, &event)),
                    Message::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        HttpSink {
            namespace,
            queue: Mutex::new(tx),
        }
    }
}

async fn post(http: &reqwest::Client, endpoint: &str, event: &Value) {
    let mut last = String::new();
    for wait in std::iter::once(Duration::ZERO).chain(BACKOFF.iter().copied()) {
        tokio::time::sleep(wait).await;
        match http
            .post(endpoint)
            .json(event)
            .timeout(Duration::from_secs(10))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => last = format!("HTTP {}", r.status()),
            Err(e) => last = e.to_string(),
        }
    }
    tracing::warn!("cannot send a lineage event to {endpoint}: {last}; the event is dropped");
}

impl LineageSink for HttpSink {
    fn namespace(&self) -> &str {
        &self.namespace
    }

    fn emit(&self, event: Value) {
        let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let _ = queue.send(Message::Event(event));
    }

    fn flush(&self, within: Duration) {
        let (tx, rx) = mpsc::sync_channel(1);
        let sent = {
            let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.send(Message::Flush(tx)).is_ok()
        };
        if sent {
            let _ = rx.recv_timeout(within);
        }
    }
}

#[derive(Args)]
pub struct LineageArgs {
    /// The table or file: its name or the end of it (`staging.orders`, `warehouse.staging.orders`,
    /// `raw/orders.csv`).
    dataset: String,
    /// Machine-readable output: the dataset and the edges upstream and downstream.
    #[arg(long)]
    json: bool,
}

/// A task as a node of the graph: (pipeline, task).
pub type Job = (String, String);

/// Every task's reads and writes, templates unrendered: the shape of the graph across runs.
pub struct Graph {
    pub reads: BTreeMap<Job, Vec<Dataset>>,
    pub writes: BTreeMap<Job, Vec<Dataset>>,
}

impl Graph {
    pub fn of(project: &sluice_core::Project) -> Graph {
        let mut g = Graph {
            reads: BTreeMap::new(),
            writes: BTreeMap::new(),
        };
        for p in &project.pipelines {
            for t in &p.tasks {
                let l = t.action.lineage(None);
                let job = (p.id.clone(), t.id.clone());
                g.reads.insert(job.clone(), l.inputs);
                g.writes.insert(job, l.outputs);
            }
        }
        g
    }

    pub fn datasets(&self) -> BTreeSet<&Dataset> {
        self.reads
            .values()
            .chain(self.writes.values())
            .flatten()
            .collect()
    }

    pub fn writers(&self, d: &Dataset) -> Vec<&Job> {
        self.writes
            .iter()
            .filter(|(_, ds)| ds.contains(d))
            .map(|(j, _)| j)
            .collect()
    }

    pub fn readers(&self, d: &Dataset) -> Vec<&Job> {
        self.reads
            .iter()
            .filter(|(_, ds)| ds.contains(d))
            .map(|(j, _)| j)
            .collect()
    }
}

pub fn run(global: &Global, args: LineageArgs) -> anyhow::Result<u8> {
    let ws = Workspace::load(global)?;
    let graph = Graph::of(&ws.project);
    let wanted = args.dataset.trim_matches('/');
    let found: Vec<&Dataset> = graph
        .datasets()
        .into_iter()
        .filter(|d| {
            d.name == wanted
                || d.name.ends_with(&format!(".{wanted}"))
                || d.name.ends_with(&format!("/{wanted}"))
        })
        .collect();
    let dataset = match found.as_slice() {
        [one] => (*one).clone(),
        [] => {
            let known: Vec<String> = graph.datasets().iter().map(|d| d.name.clone()).collect();
            let hint = sluice_core::diag::did_you_mean(wanted, known.iter().map(String::as_str))
                .unwrap_or_else(|| {
                    format!("datasets the pipelines read or write: {}", known.join(", "))
                });
            return usage(format!(
                "no task reads or writes `{wanted}`\n  hint: {hint}"
            ));
        }
        many => {
            let names: Vec<String> = many.iter().map(ToString::to_string).collect();
            return usage(format!(
                "`{wanted}` names several datasets: {}\n  hint: give more of the name",
                names.join("; ")
            ));
        }
    };
    let mut up = Vec::new();
    walk(&graph, &dataset, true, 0, &mut BTreeSet::new(), &mut up);
    let mut down = Vec::new();
    walk(&graph, &dataset, false, 0, &mut BTreeSet::new(), &mut down);
    if args.json {
        let edges = |lines: &[Line]| -> Vec<Value> {
            lines
                .iter()
                .map(|l| json!({ "depth": l.depth, "kind": l.kind, "name": l.name, "namespace": l.namespace }))
                .collect()
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "dataset": dataset,
                "upstream": edges(&up),
                "downstream": edges(&down),
            }))?
        );
        return Ok(exit::OK);
    }
    println!("{}  [{}]", dataset.name, dataset.namespace);
    for (title, lines) in [("upstream", &up), ("downstream", &down)] {
        println!("{title}:");
        if lines.is_empty() {
            println!("  (nothing)");
        }
        for l in lines {
            let indent = "  ".repeat(l.depth + 1);
            let arrow = if title == "upstream" { "←" } else { "→" };
            match l.kind {
                "task" => println!("{indent}{arrow} task {}", l.name),
                _ => println!("{indent}{arrow} {}  [{}]", l.name, l.namespace),
            }
        }
    }
    Ok(exit::OK)
}

struct Line {
    depth: usize,
    kind: &'static str,
    name: String,
    namespace: String,
}

/// Depth-first, tasks and datasets alternating; a node seen before is not expanded again.
fn walk(
    g: &Graph,
    d: &Dataset,
    upstream: bool,
    depth: usize,
    seen: &mut BTreeSet<Dataset>,
    out: &mut Vec<Line>,
) {
    if !seen.insert(d.clone()) {
        return;
    }
    let jobs = if upstream { g.writers(d) } else { g.readers(d) };
    for job in jobs {
        out.push(Line {
            depth,
            kind: "task",
            name: format!("{}.{}", job.0, job.1),
            namespace: String::new(),
        });
        let next = if upstream {
            &g.reads[job]
        } else {
            &g.writes[job]
        };
        for n in next {
            out.push(Line {
                depth: depth + 1,
                kind: "dataset",
                name: n.name.clone(),
                namespace: n.namespace.clone(),
            });
            walk(g, n, upstream, depth + 2, seen, out);
        }
    }
}
