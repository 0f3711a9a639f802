//! Retries: when a failed try is tried again, after how long, and what is recorded meanwhile.

use std::time::Duration;

use sluice_core::state::{Backoff, RetryPolicy};
use sluice_core::{RunState, TaskState};
use sluice_engine::Pools;
use sluice_engine::alerts::AlertEvent;
use sluice_store::TryOutcome::{Failed, Success};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::on_both;
use crate::support::{
    CancelOn, Journal, NoProgress, Project, Step, What, alert_everything, fake, pipeline, run_on,
    task,
};

/// Exponential backoff: `delay * 2^(try-1)` plus a stable jitter, capped by `max_delay`; each
/// retry starts exactly that long after the failed try ended. Retries and the recovery alert.
async fn retries_wait_exponentially_longer_up_to_the_cap(project: Project) {
    let journal = Journal::new();
    let steps = [Step::Fail, Step::Fail, Step::Fail, Step::Succeed];
    let mut t = task("flaky", fake(&journal, &steps));
    t.retry = RetryPolicy {
        retries: 3,
        delay: Duration::from_secs(10),
        backoff: Backoff::Exponential,
        max_delay: Some(Duration::from_secs(25)),
    };
    t.alert = alert_everything();
    let p = pipeline("backoff", vec![(t.clone(), &[])]);
    let outcome = project.run(&p).await;

    assert_eq!(outcome.run.state, RunState::Success);
    assert_eq!(
        project.outcomes(&outcome.run, "flaky"),
        [Failed, Failed, Failed, Success]
    );
    let key = format!("backoff.flaky.{}", outcome.run.run_id);
    let delays: Vec<Duration> = (1..=3).map(|n| t.retry.delay_after(n, &key)).collect();
    assert!(
        delays[0] >= Duration::from_secs(10) && delays[0] < Duration::from_secs(20),
        "first delay: 10 s plus up to 10 s of jitter, got {delays:?}"
    );
    assert!(delays[1] >= Duration::from_secs(20), "{delays:?}");
    assert_eq!(delays[2], Duration::from_secs(25), "40 s and more, capped");
    for (n, want) in (1..=3).zip(&delays) {
        let waited =
            journal.at("flaky", n + 1, What::Started) - journal.at("flaky", n, What::Ended);
        assert!(
            waited >= *want && waited < *want + Duration::from_millis(50),
            "try {} started {waited:?} after try {n} failed, not {want:?}",
            n + 1
        );
    }
    let events: Vec<AlertEvent> = project.alerts.all().iter().map(|a| a.event).collect();
    use AlertEvent::{Recovery, Retry};
    assert_eq!(events, [Retry, Retry, Retry, Recovery]);
}
on_both!(retries_wait_exponentially_longer_up_to_the_cap, paused);

/// A run stopped while a task waits for its retry stops at once; the retry's time is in the
/// store, and the next invocation waits for what is left of it.
async fn a_retry_delay_survives_a_stop(project: Project) {
    let journal = Journal::new();
    let mut t = task("flaky", fake(&journal, &[Step::Fail, Step::Succeed]));
    t.retry.retries = 1;
    t.retry.delay = Duration::from_secs(300);
    let p = pipeline("stopped_retry", vec![(t, &[])]);
    let exec = project.executor(8, std::sync::Arc::new(Pools::default()));

    let cancel = CancellationToken::new();
    let stop_on_retry = CancelOn {
        state: TaskState::UpForRetry,
        cancel: cancel.clone(),
    };
    let before = Instant::now();
    let first = run_on(&exec, &p, 1, &stop_on_retry, cancel).await;
    assert!(first.interrupted);
    assert!(
        before.elapsed() < Duration::from_secs(1),
        "the stop did not wait for the retry delay: {:?}",
        before.elapsed()
    );
    assert_eq!(first.run.state, RunState::Queued);
    let ti = &project.store.task_instances(first.run.id).unwrap()[0];
    assert_eq!(
        (ti.state, ti.tries, ti.max_tries),
        (TaskState::UpForRetry, 1, 2)
    );
    let tries = project.store.tries(first.run.id, "flaky").unwrap();
    let recorded = ti.next_retry_at.unwrap() - tries[0].ended_at.unwrap();
    assert!(
        (recorded.num_milliseconds() - 300_000).abs() < 2_000,
        "next_retry_at is {recorded} after the failure"
    );

    let before = Instant::now();
    let second = run_on(&exec, &p, 1, &NoProgress, CancellationToken::new()).await;
    assert_eq!(second.run.state, RunState::Success);
    assert_eq!(project.outcomes(&second.run, "flaky"), [Failed, Success]);
    let waited = journal.at("flaky", 2, What::Started) - before;
    assert!(
        waited > Duration::from_secs(295) && waited <= Duration::from_secs(300),
        "the resumed run retried after {waited:?}"
    );
}
on_both!(a_retry_delay_survives_a_stop, paused);

/// A configuration error is not retried, whatever the policy; the task goes to the
/// dead-letter store with its rendered configuration, and the failure alert says how to replay.
async fn a_configuration_error_fails_at_once(project: Project) {
    let journal = Journal::new();
    let mut t = task("load", fake(&journal, &[Step::FailConfig, Step::Succeed]));
    t.retry.retries = 3;
    t.alert = alert_everything();
    let p = pipeline("config_error", vec![(t, &[])]);
    let outcome = project.run(&p).await;

    assert_eq!(outcome.run.state, RunState::Failed);
    assert_eq!(project.outcomes(&outcome.run, "load"), [Failed]);
    assert_eq!(
        project.error(&outcome.run, "load", 1),
        "no such column: amount"
    );
    let failed = project
        .store
        .failed_tasks(Some("config_error"), 10)
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].task, "load");
    assert_eq!(failed[0].error, "no such column: amount");
    assert_eq!(failed[0].config, serde_json::json!({ "fake": "load" }));
    let alerts = project.alerts.all();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].event, AlertEvent::Failure);
    assert_eq!(
        alerts[0].rerun,
        format!("sluice dlq replay {}", failed[0].id)
    );
}
on_both!(a_configuration_error_fails_at_once, paused);
