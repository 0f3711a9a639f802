//! `sluice stream NAME`: runs a stream file until stopped.

mod duck;

use std::sync::Arc;

use clap::Args;
use sluice_core::Project;
use sluice_kafka::SinkSetup;

use crate::secrets::report;
use crate::workspace::Workspace;
use crate::{Global, exit, usage};

#[derive(Args)]
pub struct StreamArgs {
    /// The stream (its `stream:` name).
    stream: String,
    /// Stop when no record has come for this long (for catching up and for tests); without it,
    /// run until SIGTERM or Ctrl-C.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    stop_when_idle: Option<std::time::Duration>,
    /// Serve Prometheus metrics at http://ADDR/metrics while the stream runs.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
}

pub fn run(global: &Global, args: StreamArgs) -> anyhow::Result<u8> {
    let ws = Workspace::load(global)?;
    let Some(stream) = ws.project.streams.iter().find(|s| s.id == args.stream) else {
        let known: Vec<&str> = ws.project.streams.iter().map(|s| s.id.as_str()).collect();
        let hint = sluice_core::diag::did_you_mean(&args.stream, known.iter().copied())
            .unwrap_or_else(|| {
                if known.is_empty() {
                    "this project has no valid stream files (`sluice check` shows their problems)"
                        .to_string()
                } else {
                    format!("streams in this project: {}", known.join(", "))
                }
            });
        return usage(format!("unknown stream `{}`\n  hint: {hint}", args.stream));
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let statsd = ws.project.settings.statsd.as_ref();
    let totals = runtime.block_on(async {
        crate::metrics::start(statsd, args.metrics_addr).await?;
        let stop = crate::signal::stop_signal();
        anyhow::Ok(
            sluice_kafka::run(stream, &sink_setup(&ws.project), stop, args.stop_when_idle).await,
        )
    })?;
    crate::metrics::flush(statsd);
    let totals = match totals {
        Ok(t) => t,
        Err(sluice_kafka::StreamError::Unsupported(what)) => return usage(what),
        Err(e) => return Err(e.into()),
    };
    let rate = totals
        .sustained_rate()
        .map(|r| format!(" ({r:.0} records/s from the first commit to the last)"))
        .unwrap_or_default();
    eprintln!(
        "{}: {} consumed, {} loaded, {} dead-lettered ({} late), {} already written, in {} batches{rate}",
        stream.id,
        totals.consumed,
        totals.loaded,
        totals.dead_lettered,
        totals.late,
        totals.skipped,
        totals.batches
    );
    Ok(exit::OK)
}

/// How the project's streams open their sinks: its connections, its lake, and DuckDB through
/// the process's shared warehouses.
pub fn sink_setup(project: &Project) -> SinkSetup {
    let paths = &project.settings.paths;
    let lake = sluice_tasks::open_lake(&paths.lake, &paths.root, &project.connections);
    SinkSetup {
        connections: project.connections.clone(),
        lake: lake.as_ref().clone(),
        duckdb: Some(Arc::new(duck::DuckTables {
            warehouses: sluice_warehouse::Warehouses::shared(),
            default: paths.warehouse.clone(),
            root: paths.root.clone(),
            connections: project.connections.clone(),
        })),
    }
}

/// Keeps the project's streams running while `sluice serve` runs: each in a task of its own,
/// restarted with backoff (1 s, doubling, at most a minute) when it fails. When the project is
/// reloaded, new streams start, changed ones restart, removed ones stop; a stream whose file
/// is now broken keeps running as it was (like a broken pipeline file keeps its last good
/// version).
pub struct Supervisor {
    running: std::collections::HashMap<String, Running>,
    tracker: tokio_util::task::TaskTracker,
    stop: tokio_util::sync::CancellationToken,
}

struct Running {
    /// The definition it runs, to tell whether a reload changed it.
    definition: String,
    /// Its stream file, as diagnostics name it.
    file: String,
    stop: tokio_util::sync::CancellationToken,
}

impl Supervisor {
    pub fn new(stop: tokio_util::sync::CancellationToken) -> Supervisor {
        Supervisor {
            running: Default::default(),
            tracker: tokio_util::task::TaskTracker::new(),
            stop,
        }
    }

    /// Brings the running streams in line with `project`.
    pub fn update(&mut self, project: &Project) {
        let setup = sink_setup(project);
        let broken: std::collections::HashSet<&str> =
            project.errors().map(|d| d.file.as_str()).collect();
        let wanted: std::collections::HashMap<&str, &sluice_core::stream::Stream> =
            project.streams.iter().map(|s| (s.id.as_str(), s)).collect();
        self.running.retain(|id, running| {
            let keep = match wanted.get(id.as_str()) {
                Some(s) => format!("{s:?}") == running.definition,
                // Gone, unless its file only broke: then it keeps its last good version.
                None => broken.contains(running.file.as_str()),
            };
            if !keep {
                eprintln!("stream {id}: stopping (its file changed or is gone)");
                running.stop.cancel();
            }
            keep
        });
        for (id, stream) in wanted {
            if !self.running.contains_key(id) {
                let stop = self.stop.child_token();
                self.running.insert(
                    id.to_string(),
                    Running {
                        definition: format!("{stream:?}"),
                        file: stream.file.clone(),
                        stop: stop.clone(),
                    },
                );
                self.tracker
                    .spawn(keep_running(stream.clone(), setup.clone(), stop));
            }
        }
    }

    /// Waits for every stream to stop (after the supervisor's stop token is cancelled).
    pub async fn wait(self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// Runs `stream` until `stop`, restarting it with backoff when it fails.
async fn keep_running(
    stream: sluice_core::stream::Stream,
    setup: SinkSetup,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut backoff = std::time::Duration::from_secs(1);
    loop {
        let started = std::time::Instant::now();
        let outcome = sluice_kafka::run(&stream, &setup, stop.clone(), None).await;
        if stop.is_cancelled() {
            break;
        }
        match outcome {
            Ok(_) => backoff = std::time::Duration::from_secs(1),
            Err(sluice_kafka::StreamError::Unsupported(why)) => {
                report!("stream {}: {why}", stream.id);
                break;
            }
            Err(e) => {
                // A stream that ran a good while before failing starts over gently.
                if started.elapsed() > std::time::Duration::from_secs(300) {
                    backoff = std::time::Duration::from_secs(1);
                }
                report!(
                    "stream {}: {e}; restarting in {}s",
                    stream.id,
                    backoff.as_secs()
                );
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.cancelled() => break,
        }
        backoff = (backoff * 2).min(std::time::Duration::from_secs(60));
    }
}
