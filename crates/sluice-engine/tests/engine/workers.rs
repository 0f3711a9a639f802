//! Tries handed to a `sluice worker` (PostgreSQL only: the task queue lives there).

use std::sync::Arc;
use std::time::Duration;

use sluice_core::RunState;
use sluice_engine::{Dispatch, Pools, Worker};
use sluice_store::TryOutcome::Success;
use tokio_util::sync::CancellationToken;

use crate::support::{Journal, NoProgress, Project, Step, fake, pipeline, run_on, task};

/// A task that panics on a worker fails that try alone: the worker answers it failed, with the
/// panic's message, runs the retry and the other tasks, and stops cleanly when asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_on_a_worker_fails_that_try_alone() {
    let project = Project::postgres("worker_panic");
    let journal = Journal::new();
    let steps = [Step::Panic("kaboom on a worker"), Step::Succeed];
    let mut boom = task("boom", fake(&journal, &steps));
    boom.retry.retries = 1;
    boom.retry.delay = Duration::ZERO;
    let steady = task("steady", fake(&journal, &[Step::Succeed]));
    let p = Arc::new(pipeline("on_workers", vec![(boom, &[]), (steady, &[])]));

    let served = p.clone();
    let worker = Arc::new(Worker {
        exec: project.executor(2, Arc::new(Pools::default())),
        name: "test-worker".into(),
        queues: vec!["default".into()],
        concurrency: 2,
        // Long enough that a try the worker never answered would not be retried in time.
        lease: Duration::from_secs(60),
        pipelines: Box::new(move |id| (id == served.id).then(|| served.clone())),
    });
    let stop = CancellationToken::new();
    let working = tokio::spawn(worker.run(stop.clone(), CancellationToken::new()));

    let mut exec = project.executor(8, Arc::new(Pools::default()));
    exec.dispatch = Dispatch::Workers { answered: None };
    let cancel = CancellationToken::new();
    let run = run_on(&exec, &p, 1, &NoProgress, cancel);
    let outcome = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the run ended while the lease still held");
    stop.cancel();
    working.await.unwrap().unwrap();

    assert_eq!(outcome.run.state, RunState::Success);
    project.assert_panicked_then_succeeded(&outcome.run, "boom", "kaboom on a worker");
    assert_eq!(project.outcomes(&outcome.run, "steady"), [Success]);
}
