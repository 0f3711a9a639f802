//! The metrics every run and try records, by name. Names are the article's dotted StatsD names
//! (Prometheus shows them with underscores: `pipeline_task_duration`). Labels stay bounded —
//! pipeline, task, outcome, error_type, stage — never a run id or a date.
//!
//! Recording is free until a binary installs a recorder (`sluice serve`, `sluice run
//! --metrics-addr`).

use std::time::Duration;

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};

/// Seconds a try took, by pipeline, task and outcome (success, failed, timed_out).
pub const TASK_DURATION: &str = "pipeline.task.duration";
/// Tries that did not succeed, by pipeline, task and error_type (failed, timed_out).
pub const TASK_FAILURES: &str = "pipeline.task.failures";
/// Tries that will be retried, by pipeline and task.
pub const TASK_RETRIES: &str = "pipeline.task.retries";
/// Rows a try reported, by pipeline, task and stage (the task's kind: extract, validate, load…).
pub const ROWS_PROCESSED: &str = "pipeline.rows.processed";
/// Seconds from a run's start to its end, by pipeline and state.
pub const RUN_DURATION: &str = "pipeline.run.duration";
/// Deadlines (`sla:`) missed, by pipeline and task (`run` for the pipeline's own SLA).
pub const SLA_MISSES: &str = "pipeline.sla.misses";
/// Seconds from an upstream try's end to its downstream try's start, by pipeline.
pub const HANDOFF: &str = "pipeline.task.handoff";
/// Tries waiting for a worker (the scheduler hands tries to `sluice worker`s).
pub const QUEUE_DEPTH: &str = "pipeline.scheduler.queue_depth";

/// Help texts and units, for exporters that show them.
pub fn describe() {
    describe_histogram!(TASK_DURATION, Unit::Seconds, "Duration of task tries");
    describe_counter!(TASK_FAILURES, "Task tries that failed or timed out");
    describe_counter!(TASK_RETRIES, "Task tries followed by a retry");
    describe_counter!(ROWS_PROCESSED, "Rows processed by task tries, per stage");
    describe_counter!(SLA_MISSES, "Deadlines (sla) missed while the work ran");
    describe_histogram!(RUN_DURATION, Unit::Seconds, "Duration of pipeline runs");
    describe_histogram!(
        HANDOFF,
        Unit::Seconds,
        "Latency from an upstream task's end to its downstream task's start"
    );
    describe_gauge!(QUEUE_DEPTH, "Tries waiting for a worker");
}

pub fn queue_depth(tries: u64) {
    gauge!(QUEUE_DEPTH).set(tries as f64);
}

pub(crate) fn try_finished(
    pipeline: &str,
    task: &str,
    kind: &'static str,
    outcome: sluice_store::TryOutcome,
    took: Duration,
    rows: Option<u64>,
    retried: bool,
) {
    let (p, t) = (pipeline.to_string(), task.to_string());
    histogram!(TASK_DURATION, "pipeline" => p.clone(), "task" => t.clone(), "outcome" => outcome.as_str())
        .record(took.as_secs_f64());
    if outcome != sluice_store::TryOutcome::Success {
        counter!(TASK_FAILURES, "pipeline" => p.clone(), "task" => t.clone(), "error_type" => outcome.as_str())
            .increment(1);
    }
    if retried {
        counter!(TASK_RETRIES, "pipeline" => p.clone(), "task" => t.clone()).increment(1);
    }
    if let Some(rows) = rows {
        counter!(ROWS_PROCESSED, "pipeline" => p, "task" => t, "stage" => kind).increment(rows);
    }
}

pub(crate) fn handed_off(pipeline: &str, after: Duration) {
    histogram!(HANDOFF, "pipeline" => pipeline.to_string()).record(after.as_secs_f64());
}

pub(crate) fn run_finished(pipeline: &str, state: &str, took: Duration) {
    histogram!(RUN_DURATION, "pipeline" => pipeline.to_string(), "state" => state.to_string())
        .record(took.as_secs_f64());
}

pub(crate) fn sla_missed(pipeline: &str, task: &str) {
    counter!(SLA_MISSES, "pipeline" => pipeline.to_string(), "task" => task.to_string())
        .increment(1);
}
