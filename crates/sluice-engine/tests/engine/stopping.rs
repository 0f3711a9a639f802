//! Tries that do not end by themselves: timeouts, Ctrl-C, a process that died mid-try, and a
//! task that panics.

use std::sync::Arc;
use std::time::Duration;

use sluice_core::{RunState, TaskState};
use sluice_engine::Pools;
use sluice_store::RunType;
use sluice_store::TryOutcome::{Interrupted, Success, TimedOut};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::on_both;
use crate::support::{
    Journal, NoProgress, Project, Step, What, fake, interval, pipeline, run_on, task,
};

const HOUR: Duration = Duration::from_secs(3600);

/// A task that ignores the stop is abandoned after the grace period (10 s): its future is
/// dropped, the try recorded as timed out after 15 s.
async fn a_task_ignoring_its_timeout_is_abandoned_after_the_grace(project: Project) {
    let journal = Journal::new();
    let mut t = task("stuck", fake(&journal, &[Step::Stubborn(HOUR)]));
    t.timeout = Some(Duration::from_secs(5));
    let p = pipeline("stuck", vec![(t, &[])]);
    let before = Instant::now();
    let outcome = project.run(&p).await;

    let took = before.elapsed();
    assert!(
        took >= Duration::from_secs(15) && took < Duration::from_millis(15_100),
        "{took:?}"
    );
    assert_eq!(outcome.run.state, RunState::Failed);
    assert_eq!(project.outcomes(&outcome.run, "stuck"), [TimedOut]);
    assert_eq!(
        project.error(&outcome.run, "stuck", 1),
        "timed out after 15.0s (timeout: 5.0s)"
    );
    let entries = journal.entries();
    let whats: Vec<What> = entries.iter().map(|e| e.what).collect();
    assert_eq!(whats, [What::Started, What::Dropped]);
}
on_both!(
    a_task_ignoring_its_timeout_is_abandoned_after_the_grace,
    paused
);

/// A task that stops when told ends at its timeout; a timed-out try is retried.
async fn a_timed_out_try_is_retried(project: Project) {
    let journal = Journal::new();
    let steps = [Step::Work(HOUR), Step::Succeed];
    let mut t = task("slow", fake(&journal, &steps));
    t.timeout = Some(Duration::from_secs(5));
    t.retry.retries = 1;
    t.retry.delay = Duration::from_secs(1);
    let p = pipeline("slow", vec![(t, &[])]);
    let outcome = project.run(&p).await;

    assert_eq!(outcome.run.state, RunState::Success);
    assert_eq!(project.outcomes(&outcome.run, "slow"), [TimedOut, Success]);
    assert_eq!(
        project.error(&outcome.run, "slow", 1),
        "timed out after 5.0s (timeout: 5.0s)"
    );
    let ran = journal.at("slow", 1, What::Ended) - journal.at("slow", 1, What::Started);
    assert_eq!(ran, Duration::from_secs(5));
}
on_both!(a_timed_out_try_is_retried, paused);

/// Ctrl-C: running tries stop and are closed as interrupted, nothing more starts, the run goes
/// back to queued — and the interrupted try does not use up the task's tries.
async fn ctrl_c_puts_the_run_back_in_the_queue(project: Project) {
    let journal = Journal::new();
    let long = task("long", fake(&journal, &[Step::Work(HOUR), Step::Succeed]));
    let next = task("next", fake(&journal, &[Step::Succeed]));
    let p = pipeline("stopped", vec![(long, &[]), (next, &["long"])]);
    let exec = project.executor(8, Arc::new(Pools::default()));

    let cancel = CancellationToken::new();
    let ctrl_c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        ctrl_c.cancel();
    });
    let first = run_on(&exec, &p, 1, &NoProgress, cancel).await;
    assert!(first.interrupted);
    assert_eq!(first.run.state, RunState::Queued);
    assert_eq!(project.outcomes(&first.run, "long"), [Interrupted]);
    assert_eq!(
        project.error(&first.run, "long", 1),
        "interrupted: sluice was stopped (Ctrl-C) while this try ran"
    );
    let tis = project.store.task_instances(first.run.id).unwrap();
    let long = tis.iter().find(|t| t.task == "long").unwrap();
    assert_eq!(
        (long.state, long.tries, long.max_tries),
        (TaskState::None, 1, 2)
    );
    assert_eq!(project.states(&first.run)["next"], TaskState::None);

    let second = run_on(&exec, &p, 1, &NoProgress, CancellationToken::new()).await;
    assert!(!second.interrupted);
    assert_eq!(second.run.state, RunState::Success);
    assert_eq!(
        project.outcomes(&second.run, "long"),
        [Interrupted, Success]
    );
    assert_eq!(project.outcomes(&second.run, "next"), [Success]);
}
on_both!(ctrl_c_puts_the_run_back_in_the_queue, paused);

/// A try left `running` by a process that died is closed as interrupted when the run resumes,
/// and tried again without using up a retry.
async fn a_try_of_a_dead_process_is_closed_and_run_again(project: Project) {
    let journal = Journal::new();
    let a = task("a", fake(&journal, &[Step::Succeed]));
    let b = task("b", fake(&journal, &[Step::Succeed]));
    let p = pipeline("resumed", vec![(a, &[]), (b, &["a"])]);
    let store = &project.store;
    let (run, _) = store
        .ensure_run(
            "resumed",
            &interval(1),
            RunType::Manual,
            &[("a", 1), ("b", 1)],
        )
        .unwrap();
    store
        .start_try(run.id, "a", 1, "gone.log", 4_000_000)
        .unwrap();

    let outcome = project.run(&p).await;
    assert_eq!(outcome.run.id, run.id);
    assert_eq!(outcome.run.state, RunState::Success);
    assert_eq!(project.outcomes(&run, "a"), [Interrupted, Success]);
    assert_eq!(
        project.error(&run, "a", 1),
        "interrupted: the sluice process running this try stopped before it finished"
    );
    assert_eq!(project.outcomes(&run, "b"), [Success]);
    let tis = store.task_instances(run.id).unwrap();
    assert_eq!((tis[0].tries, tis[0].max_tries), (2, 2));
    assert_eq!(journal.starts(), ["a", "b"]);
}
on_both!(a_try_of_a_dead_process_is_closed_and_run_again, paused);

/// A panic in a task ends its try as a failure with the panic's message (in the try's error
/// and log); it is retried per the task's policy, and the rest of the run goes on.
async fn a_panicking_try_fails_alone(project: Project) {
    let journal = Journal::new();
    let steps = [Step::Panic("kaboom: index 3 out of range"), Step::Succeed];
    let mut boom = task("boom", fake(&journal, &steps));
    boom.retry.retries = 1;
    boom.retry.delay = Duration::from_secs(1);
    let steady = task(
        "steady",
        fake(&journal, &[Step::Work(Duration::from_secs(10))]),
    );
    let after = task("after", fake(&journal, &[Step::Succeed]));
    let p = pipeline(
        "panics",
        vec![(boom, &[]), (steady, &[]), (after, &["boom"])],
    );
    let outcome = project.run(&p).await;

    assert_eq!(outcome.run.state, RunState::Success);
    project.assert_panicked_then_succeeded(&outcome.run, "boom", "kaboom: index 3 out of range");
    assert_eq!(project.outcomes(&outcome.run, "steady"), [Success]);
    assert_eq!(project.outcomes(&outcome.run, "after"), [Success]);
    let entries = journal.entries();
    let boom_1 = entries
        .iter()
        .filter(|e| e.task == "boom" && e.try_number == 1);
    let whats: Vec<What> = boom_1.map(|e| e.what).collect();
    assert_eq!(whats, [What::Started, What::Dropped]);

    // Out of retries: the task fails, its downstream task cannot run, the others finish.
    let mut boom = task("boom", fake(&journal, &[Step::Panic("kaboom again")]));
    boom.retry.retries = 0;
    let steady = task("steady", fake(&journal, &[Step::Succeed]));
    let after = task("after", fake(&journal, &[Step::Succeed]));
    let p = pipeline(
        "panics_for_good",
        vec![(boom, &[]), (steady, &[]), (after, &["boom"])],
    );
    let outcome = project.run(&p).await;
    assert_eq!(outcome.run.state, RunState::Failed);
    let states = project.states(&outcome.run);
    assert_eq!(states["boom"], TaskState::Failed);
    assert_eq!(states["after"], TaskState::UpstreamFailed);
    assert_eq!(states["steady"], TaskState::Success);
    let failed = project
        .store
        .failed_tasks(Some("panics_for_good"), 10)
        .unwrap();
    assert!(
        failed[0]
            .error
            .starts_with("the task panicked: kaboom again")
    );
}
on_both!(a_panicking_try_fails_alone, paused);
