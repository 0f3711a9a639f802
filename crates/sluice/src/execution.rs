//! What `run`, `backfill` and `dlq replay` share: they execute runs in this process with the
//! project's executor, and wait for its alerts and lineage events before they exit.

use std::sync::Arc;
use std::time::Duration;

use sluice_core::RunState;
use sluice_engine::{Executor, RunOutcome};
use sluice_store::Store;

use crate::exit;
use crate::workspace::Workspace;

/// How long a command waits for alerts still being delivered before it exits.
const ALERT_FLUSH: Duration = Duration::from_secs(15);

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// The executor of runs in this process: tries run here, alerts and lineage go where the
/// project's settings say.
pub fn executor(ws: &Workspace, store: Arc<Store>) -> anyhow::Result<Executor> {
    Ok(Executor {
        store,
        paths: ws.project.paths.clone(),
        parallelism: ws.project.settings.parallelism,
        redactor: ws.project.redactor.clone(),
        pools: Arc::new(sluice_engine::Pools::new(&ws.project.settings.pools)),
        notifier: crate::alerts::notifier(&ws.project.settings),
        dispatch: sluice_engine::Dispatch::Local,
        lineage: crate::lineage::sink(ws.project.settings.lineage.as_ref())?,
    })
}

/// Waits (a bounded time) for the alerts and lineage events of the runs `exec` executed.
pub async fn settle(exec: &Executor) {
    crate::alerts::flush(ALERT_FLUSH).await;
    crate::lineage::flush(exec);
}

/// The exit code of a run: 0 when it succeeded and was not interrupted.
pub fn exit_code(outcome: &RunOutcome) -> u8 {
    if outcome.run.state == RunState::Success && !outcome.interrupted {
        exit::OK
    } else {
        exit::FAILED
    }
}
