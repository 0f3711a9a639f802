//! `sluice worker`: runs the tries that `sluice serve --workers` schedulers hand out through
//! the PostgreSQL metadata database.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use sluice_core::{Pipeline, Project};
use sluice_engine::{Executor, Worker};

use crate::{Global, exit};

#[derive(Args)]
pub struct WorkerArgs {
    /// The queues to take tries from (a task's `queue:`), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = sluice_core::pipeline::DEFAULT_QUEUE)]
    queues: Vec<String>,
    /// Tries this worker runs at the same time.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// How long a claimed try stays this worker's without a heartbeat (renewed every third of
    /// it). A worker silent for longer loses the try to a retry elsewhere.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    lease: Duration,
    /// This worker's name in the queue (default: HOST:PID).
    #[arg(long)]
    name: Option<String>,
}

/// The project's pipelines, reloaded when its files change.
struct Pipelines {
    root: PathBuf,
    state: Mutex<(Arc<Project>, crate::workspace::Fingerprint)>,
}

impl Pipelines {
    fn get(&self, id: &str) -> Option<Arc<Pipeline>> {
        let mut state = self.state.lock().expect("lock");
        let now = crate::workspace::fingerprint(&self.root);
        if now != state.1 {
            match crate::workspace::load_project(&self.root) {
                Ok(project) => *state = (Arc::new(project), now),
                Err(diags) => {
                    for d in diags {
                        tracing::warn!("{d}");
                    }
                }
            }
        }
        state.0.pipeline(id).cloned().map(Arc::new)
    }
}

pub fn run(global: &Global, args: WorkerArgs) -> anyhow::Result<u8> {
    let ws = crate::workspace::Workspace::load(global)?;
    if args.concurrency == 0 {
        return crate::usage("--concurrency must be at least 1");
    }
    let store = ws.store()?;
    if store.dialect() != sluice_store::db::Dialect::Postgres {
        return crate::usage(
            "`sluice worker` takes tries from a metadata database on PostgreSQL\n  hint: set `metadata: postgres://…` in sluice.yaml (or SLUICE_METADATA), the same as the scheduler's",
        );
    }
    let project = ws.project;
    let name = args.name.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        format!("{host}:{}", std::process::id())
    });
    let exec = Executor {
        store,
        paths: project.paths.clone(),
        parallelism: args.concurrency,
        redactor: project.redactor.clone(),
        pools: Arc::new(sluice_engine::Pools::new(&project.settings.pools)),
        notifier: None,
        dispatch: sluice_engine::Dispatch::Local,
        // The scheduler that handed out the try tells its lineage.
        lineage: None,
    };
    let root = project.paths.root.clone();
    let pipelines = Arc::new(Pipelines {
        state: Mutex::new((Arc::new(project), crate::workspace::fingerprint(&root))),
        root,
    });
    let worker = Arc::new(Worker {
        exec,
        name: name.clone(),
        queues: args.queues,
        concurrency: args.concurrency,
        lease: args.lease,
        pipelines: Box::new(move |id| pipelines.get(id)),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (stop, abandon) = crate::signal::worker_signals();
        eprintln!(
            "sluice worker {name}: queues {}, {} at a time",
            worker.queues.join(","),
            worker.concurrency
        );
        worker.run(stop, abandon).await?;
        eprintln!("sluice worker {name}: stopped");
        Ok(exit::OK)
    })
}
