//! SLA deadlines, watched while the work runs. On the real clock: deadlines are wall-clock
//! times. The late task waits for its own alert before it ends, so the run succeeds only if the
//! miss was reported while the task ran.

use std::time::Duration;

use sluice_core::RunState;
use sluice_engine::Pools;
use sluice_engine::alerts::AlertEvent;
use sluice_store::RunType;
use tokio_util::sync::CancellationToken;

use crate::on_both;
use crate::support::{
    Journal, NoProgress, Project, Step, alert_everything, fake, pipeline, run_as, task,
};

/// A task's SLA counts from the run's start; a task that finishes in time is not reported, a
/// late one is — once, naming it and its state.
async fn a_late_task_is_reported_while_it_runs(project: Project) {
    let journal = Journal::new();
    let mut quick = task("quick", fake(&journal, &[Step::Succeed]));
    quick.sla = Some(Duration::from_secs(1));
    quick.alert = alert_everything();
    let mut late = task(
        "late",
        fake(&journal, &[Step::UntilAlerted(project.alerts.clone())]),
    );
    late.sla = Some(Duration::from_secs(1));
    late.alert = alert_everything();
    let p = pipeline("task_sla", vec![(quick, &[]), (late, &["quick"])]);
    let outcome = project.run(&p).await;

    assert_eq!(
        outcome.run.state,
        RunState::Success,
        "the alert came in time"
    );
    let alerts = project.alerts.all();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].event, AlertEvent::SlaMiss);
    assert_eq!(alerts[0].task, "late");
    assert_eq!(alerts[0].channels, ["ops"]);
    let message = alerts[0].error.as_deref().unwrap();
    assert!(
        message.starts_with("task late missed its SLA of 1s after the run's start (deadline "),
        "{message}"
    );
    assert!(message.ends_with("; late: late (running)"), "{message}");
}
on_both!(a_late_task_is_reported_while_it_runs, real_time);

/// A pipeline's SLA counts from its interval's end, for scheduled runs only: a scheduled run of
/// an old interval is late from its start; a manual run of it is never reported.
async fn a_scheduled_run_past_its_deadline_is_reported_at_once(project: Project) {
    let journal = Journal::new();
    let mut work = task(
        "work",
        fake(&journal, &[Step::UntilAlerted(project.alerts.clone())]),
    );
    work.alert = alert_everything();
    let mut p = pipeline("run_sla", vec![(work, &[])]);
    p.sla = Some(Duration::from_secs(3600));
    let exec = project.executor(8, std::sync::Arc::new(Pools::default()));
    let cancel = CancellationToken::new();
    let outcome = run_as(&exec, &p, 1, RunType::Scheduled, &NoProgress, cancel).await;

    assert_eq!(
        outcome.run.state,
        RunState::Success,
        "the alert came in time"
    );
    let alerts = project.alerts.all();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].event, AlertEvent::SlaMiss);
    assert_eq!(alerts[0].task, "work");
    let message = alerts[0].error.as_deref().unwrap();
    assert!(
        message.starts_with(
            "the run missed its SLA of 1h00m after the interval's end (deadline 2024-01-02T01:00:00"
        ),
        "{message}"
    );

    let mut quick = task("work", fake(&journal, &[Step::Succeed]));
    quick.alert = alert_everything();
    let mut p = pipeline("run_sla", vec![(quick, &[])]);
    p.sla = Some(Duration::from_secs(3600));
    let cancel = CancellationToken::new();
    let manual = run_as(&exec, &p, 2, RunType::Manual, &NoProgress, cancel).await;
    assert_eq!(manual.run.state, RunState::Success);
    assert_eq!(project.alerts.all().len(), 1, "no alert for a manual run");
}
on_both!(
    a_scheduled_run_past_its_deadline_is_reported_at_once,
    real_time
);
