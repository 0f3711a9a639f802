//! The streams and lineage pages: what runs continuously, and what is made from what.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Html;
use serde::Deserialize;
use sluice_core::Dataset;
use sluice_core::stream::{Stream, Target};

use super::{Result, S, Time, graph, page};

// ---------------------------------------------------------------------------------------------
// Streams

/// One series of the Prometheus exposition: its name, labels and value.
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The exposition text as samples (comments and malformed lines skipped).
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value: f64 = value.parse().ok()?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter_map(|pair| {
                    let (k, v) = pair.split_once("=\"")?;
                    Some((k.trim().to_string(), v.trim_end_matches('"').to_string()))
                })
                .collect();
            Some(Sample {
                name: name.to_string(),
                labels,
                value,
            })
        })
        .collect()
}

struct PartitionRow {
    topic: String,
    partition: String,
    lag: String,
    watermark: String,
}

struct StreamRow {
    id: String,
    file: String,
    source: String,
    sink: String,
    delivery: String,
    records_in: u64,
    records_out: u64,
    dead_lettered: u64,
    late: u64,
    rate_in: String,
    rate_out: String,
    watermark: String,
    partitions: Vec<PartitionRow>,
}

#[derive(Template)]
#[template(path = "ui/streams.html")]
struct StreamsPage {
    streams: Vec<StreamRow>,
}

/// When a stream's counters were read, and records in and out then.
type Reading = (Instant, f64, f64);

/// The previous reading of each stream's counters, for rates between two page loads.
static LAST: Mutex<Option<HashMap<String, Reading>>> = Mutex::new(None);

fn target(t: &Target) -> String {
    match t {
        Target::Table {
            connection, table, ..
        } => format!("{connection}: {table}"),
        Target::Lake { path } => path.clone(),
        Target::Kafka { topic } => format!("Kafka topic {topic}"),
    }
}

fn watermark_time(seconds: f64) -> String {
    chrono::DateTime::from_timestamp_millis((seconds * 1000.0) as i64)
        .map(|t| Time(t).to_string())
        .unwrap_or_default()
}

fn stream_row(stream: &Stream, samples: &[Sample]) -> StreamRow {
    let of = |s: &&Sample| s.labels.get("stream") == Some(&stream.id);
    let total = |name: &str| -> f64 {
        samples
            .iter()
            .filter(of)
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .sum()
    };
    let (records_in, records_out) = (
        total("stream_records_in_total"),
        total("stream_records_out_total"),
    );
    let now = Instant::now();
    let (rate_in, rate_out) = {
        let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
        let last = last.get_or_insert_with(HashMap::new);
        let rates = match last.get(&stream.id) {
            Some((at, i, o)) if now.duration_since(*at).as_secs_f64() >= 0.5 => {
                let dt = now.duration_since(*at).as_secs_f64();
                (
                    format!("{:.0}/s", (records_in - i).max(0.0) / dt),
                    format!("{:.0}/s", (records_out - o).max(0.0) / dt),
                )
            }
            _ => (String::new(), String::new()),
        };
        last.insert(stream.id.clone(), (now, records_in, records_out));
        rates
    };
    let mut partitions: BTreeMap<(String, String), PartitionRow> = BTreeMap::new();
    for s in samples.iter().filter(of) {
        let (Some(topic), Some(partition)) = (s.labels.get("topic"), s.labels.get("partition"))
        else {
            continue;
        };
        let row = partitions
            .entry((topic.clone(), partition.clone()))
            .or_insert_with(|| PartitionRow {
                topic: topic.clone(),
                partition: partition.clone(),
                lag: String::new(),
                watermark: String::new(),
            });
        match s.name.as_str() {
            "stream_partition_lag" => row.lag = format!("{}", s.value as i64),
            "stream_partition_watermark_seconds" => row.watermark = watermark_time(s.value),
            _ => {}
        }
    }
    let watermark = samples
        .iter()
        .filter(of)
        .find(|s| s.name == "stream_watermark_seconds")
        .map(|s| watermark_time(s.value))
        .unwrap_or_default();
    StreamRow {
        id: stream.id.clone(),
        file: stream.file.clone(),
        source: format!(
            "{} ({}, group {})",
            stream.source.topics.join(", "),
            stream.source.brokers,
            stream.source.group
        ),
        sink: target(&stream.sink.target),
        delivery: format!("{:?}", stream.delivery)
            .replace("AtLeastOnce", "at least once")
            .replace("ExactlyOnce", "exactly once"),
        records_in: records_in as u64,
        records_out: records_out as u64,
        dead_lettered: total("stream_records_dead_lettered_total") as u64,
        late: total("stream_records_late_total") as u64,
        rate_in,
        rate_out,
        watermark,
        partitions: partitions.into_values().collect(),
    }
}

pub async fn streams(
    State(service): S,
    metrics: Arc<metrics_exporter_prometheus::PrometheusHandle>,
) -> Result<Html<String>> {
    let project = service.loaded.read().expect("lock").project.clone();
    let samples = samples(&metrics.render());
    page(StreamsPage {
        streams: project
            .streams
            .iter()
            .map(|s| stream_row(s, &samples))
            .collect(),
    })
}

// ---------------------------------------------------------------------------------------------
// Lineage

#[derive(Template)]
#[template(path = "ui/lineage.html")]
struct LineagePage {
    graph: String,
    dataset: String,
    pipeline: String,
    datasets: Vec<String>,
    found: bool,
}

#[derive(Deserialize)]
pub struct Wanted {
    dataset: Option<String>,
    pipeline: Option<String>,
}

enum Node {
    Task(crate::lineage::Job),
    Data(Dataset),
}

pub async fn lineage(State(service): S, Query(wanted): Query<Wanted>) -> Result<Html<String>> {
    let project = service.loaded.read().expect("lock").project.clone();
    let g = crate::lineage::Graph::of(&project);
    // Nodes: every task and dataset; edges dataset → reading task, writing task → dataset.
    let mut nodes: Vec<Node> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let key_of_task = |j: &crate::lineage::Job| format!("task {}.{}", j.0, j.1);
    let key_of_data = |d: &Dataset| format!("data {} {}", d.namespace, d.name);
    let mut add = |key: String, node: Node, nodes: &mut Vec<Node>| -> usize {
        *index.entry(key).or_insert_with(|| {
            nodes.push(node);
            nodes.len() - 1
        })
    };
    let mut edges: Vec<(usize, usize)> = Vec::new();
    // Tasks that touch no dataset (a shell command, say) have no lineage to draw.
    for (job, reads) in g.reads.iter().filter(|(_, r)| !r.is_empty()) {
        let t = add(key_of_task(job), Node::Task(job.clone()), &mut nodes);
        for d in reads {
            let n = add(key_of_data(d), Node::Data(d.clone()), &mut nodes);
            edges.push((n, t));
        }
    }
    for (job, writes) in g.writes.iter().filter(|(_, w)| !w.is_empty()) {
        let t = add(key_of_task(job), Node::Task(job.clone()), &mut nodes);
        for d in writes {
            let n = add(key_of_data(d), Node::Data(d.clone()), &mut nodes);
            edges.push((t, n));
        }
    }
    let datasets: Vec<String> = g.datasets().iter().map(|d| d.name.clone()).collect();
    // With a dataset or a pipeline asked for: only what is upstream or downstream of it.
    let starts: Vec<usize> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| match (n, &wanted.dataset, &wanted.pipeline) {
            (Node::Data(d), Some(w), _) => d.name == *w || d.name.ends_with(&format!(".{w}")),
            (Node::Task(j), None, Some(p)) => j.0 == *p,
            _ => false,
        })
        .map(|(i, _)| i)
        .collect();
    let asked = wanted.dataset.is_some() || wanted.pipeline.is_some();
    let keep: BTreeSet<usize> = if asked {
        let mut keep: BTreeSet<usize> = starts.iter().copied().collect();
        for forward in [true, false] {
            let mut queue: VecDeque<usize> = starts.iter().copied().collect();
            let mut seen: BTreeSet<usize> = queue.iter().copied().collect();
            while let Some(n) = queue.pop_front() {
                for &(a, b) in &edges {
                    let next = match forward {
                        true if a == n => b,
                        false if b == n => a,
                        _ => continue,
                    };
                    if seen.insert(next) {
                        keep.insert(next);
                        queue.push_back(next);
                    }
                }
            }
        }
        keep
    } else {
        (0..nodes.len()).collect()
    };
    let renumber: HashMap<usize, usize> = keep.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let drawn: Vec<graph::Node> = keep
        .iter()
        .map(|&n| match &nodes[n] {
            Node::Task(j) => graph::Node {
                label: format!("{}.{}", j.0, j.1),
                class: "task".into(),
                href: Some(format!("/pipelines/{}", j.0)),
                title: format!("task {} of pipeline {}", j.1, j.0),
            },
            Node::Data(d) => graph::Node {
                // A file's folder and name (a day's file alone, `{{ ds }}.csv`, says nothing).
                label: match d.name.rsplitn(3, '/').collect::<Vec<_>>()[..] {
                    [file, folder, ..] => format!("{folder}/{file}"),
                    _ => d.name.clone(),
                },
                class: "dataset".into(),
                href: Some(format!(
                    "/lineage?dataset={}",
                    percent_encoding::utf8_percent_encode(
                        &d.name,
                        percent_encoding::NON_ALPHANUMERIC
                    )
                )),
                title: format!("{} [{}]", d.name, d.namespace),
            },
        })
        .collect();
    let drawn_edges: Vec<(usize, usize)> = edges
        .iter()
        .filter_map(|(a, b)| Some((*renumber.get(a)?, *renumber.get(b)?)))
        .collect();
    page(LineagePage {
        graph: graph::svg(&drawn, &drawn_edges, "lineage"),
        found: !asked || !starts.is_empty(),
        dataset: wanted.dataset.unwrap_or_default(),
        pipeline: wanted.pipeline.unwrap_or_default(),
        datasets,
    })
}

// ---------------------------------------------------------------------------------------------
// Dead letters

struct FailedRow {
    id: i64,
    pipeline: String,
    task: String,
    logical_date: String,
    error: String,
    config: String,
    tries: usize,
    created: String,
    replayed: String,
}

struct BadRecordRow {
    pipeline: String,
    run_id: String,
    task: String,
    source: String,
    place: String,
    reason: String,
    record: String,
    created: String,
}

#[derive(Template)]
#[template(path = "ui/dead_letters.html")]
struct DeadLettersPage {
    /// Show the replay buttons.
    can_change: bool,
    failed: Vec<FailedRow>,
    records: Vec<BadRecordRow>,
}

pub async fn dead_letters(
    State(service): S,
    super::CanChange(can_change): super::CanChange,
) -> Result<Html<String>> {
    let failed = service
        .store
        .failed_tasks(None, 100)?
        .into_iter()
        .map(|t| FailedRow {
            id: t.id,
            logical_date: t.logical_date.format("%Y-%m-%d %H:%M").to_string(),
            error: t.error,
            // Rendered for that run with the secrets already masked by the executor.
            config: serde_json::to_string_pretty(&t.config).unwrap_or_default(),
            tries: t.tries.len(),
            created: Time(t.created_at).to_string(),
            replayed: t
                .replayed_at
                .map(|at| Time(at).to_string())
                .unwrap_or_default(),
            pipeline: t.pipeline,
            task: t.task,
        })
        .collect();
    let records = service
        .store
        .dead_letters(None, None, 200)?
        .into_iter()
        .map(|d| BadRecordRow {
            place: match (d.line, d.row) {
                (Some(l), Some(r)) => format!("line {l}, row {r}"),
                (Some(l), None) => format!("line {l}"),
                (None, Some(r)) => format!("row {r}"),
                (None, None) => String::new(),
            },
            created: Time(d.created_at).to_string(),
            pipeline: d.pipeline,
            run_id: d.run_id,
            task: d.task,
            source: d.source,
            reason: d.reason,
            record: d.record,
        })
        .collect();
    page(DeadLettersPage {
        can_change,
        failed,
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_reads_back_as_samples() {
        let text = "# HELP x\nstream_records_in_total{stream=\"orders\"} 150\n\
                    stream_partition_lag{stream=\"orders\",topic=\"o\",partition=\"2\"} 7\nup 1\n";
        let s = samples(text);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].labels["stream"], "orders");
        assert_eq!(s[1].labels["partition"], "2");
        assert_eq!(s[1].value, 7.0);
        assert!(s[2].labels.is_empty());
    }
}

struct AuditRow {
    at: String,
    principal: String,
    address: String,
    action: String,
    status: u16,
    parameters: String,
}

#[derive(Template)]
#[template(path = "ui/audit.html")]
struct AuditPage {
    entries: Vec<AuditRow>,
    /// The `before` of the next page, when there is one.
    older: Option<i64>,
}

#[derive(Deserialize)]
pub struct AuditQuery {
    before: Option<i64>,
}

/// How many audit entries a page shows.
const AUDIT_PAGE: u32 = 100;

/// The audit log (admins only: the access layer sees to that), a page at a time.
pub async fn audit(State(service): S, Query(q): Query<AuditQuery>) -> Result<Html<String>> {
    let entries = service.store.audit(AUDIT_PAGE, q.before)?;
    let older = (entries.len() == AUDIT_PAGE as usize)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    page(AuditPage {
        entries: entries
            .into_iter()
            .map(|e| AuditRow {
                at: Time(e.at).to_string(),
                principal: e.principal,
                address: e.address,
                action: e.action,
                status: e.status,
                parameters: e.parameters.to_string(),
            })
            .collect(),
        older,
    })
}
