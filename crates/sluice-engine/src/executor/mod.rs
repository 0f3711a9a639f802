//! The executor: runs one pipeline run's tasks as soon as their upstream tasks allow, in this
//! process or on `sluice worker`s (`Dispatch`).
//!
//! Event-driven: every try and every retry timer is a future in one `JoinSet`; the run's loop
//! (`run.rs`, a small state machine) wakes when one of them finishes, records the outcome, and
//! evaluates the finished task's downstream tasks at once. Locally nothing polls; a try handed
//! to a worker is awaited through the database's notifications, with a slow poll only as the
//! fallback. `tries.rs` runs one try (timeout, stop, panic) or waits for a worker's answer;
//! `lock.rs` keeps other processes off a run; `report.rs` tells alerts, SLA misses and lineage.
//!
//! **Invariant:** the store is written before the executor acts on a transition (a try is
//! recorded as started before its work begins, and as ended before its dependents are
//! evaluated), so a killed process leaves a record the next invocation resumes from.

mod lock;
mod report;
mod run;
mod tries;

use std::path::PathBuf;
use std::sync::Arc;

use sluice_core::Redactor;
use sluice_core::secrets::MASK;
use sluice_core::template::TemplateContext;
use sluice_core::{DataInterval, Pipeline, ProjectPaths, TaskState};
use sluice_store::{RunRecord, RunType, Store, StoreError};
use tokio_util::sync::CancellationToken;

pub(crate) use tries::{TryInput, TryResult, run_try};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the run of `{pipeline}` for {logical_date} is being executed by another sluice process\n  hint: wait for it to finish, or stop it; the lock is {lock}"
    )]
    Busy {
        pipeline: String,
        logical_date: String,
        lock: String,
    },
    #[error("cannot use {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// What the executor reports while it works (progress bars, logs).
pub trait Progress: Send + Sync {
    fn run_started(&self, _run: &RunRecord, _tasks: usize, _already_done: usize) {}
    fn task_started(&self, _run: &RunRecord, _task: &str, _try_number: u32) {}
    fn task_finished(
        &self,
        _run: &RunRecord,
        _task: &str,
        _state: TaskState,
        _error: Option<&str>,
    ) {
    }
}

pub struct Executor {
    pub store: Arc<Store>,
    pub paths: Arc<ProjectPaths>,
    /// Tasks of one run that may run at the same time (also bounded by the pipeline's
    /// `max_active_tasks`).
    pub parallelism: usize,
    /// Masks connection secrets in errors and log lines.
    pub redactor: Arc<Redactor>,
    /// Slots of named pools, shared with the other runs of this process.
    pub pools: Arc<crate::Pools>,
    /// Where failures, retries and recoveries are told (per the task's `alert:`).
    pub notifier: Option<Arc<dyn crate::alerts::Notifier>>,
    /// Where tries run: here, or on `sluice worker`s.
    pub dispatch: Dispatch,
    /// Where OpenLineage run events go, if anywhere.
    pub lineage: Option<Arc<dyn crate::lineage::LineageSink>>,
}

/// Where an executor runs its tries.
#[derive(Clone)]
pub enum Dispatch {
    /// In this process.
    Local,
    /// Handed to `sluice worker` processes through the metadata database's task queue;
    /// `answered` wakes the executor when a worker answers (LISTEN/NOTIFY), else it polls.
    Workers {
        answered: Option<Arc<sluice_store::Notifications>>,
    },
}

pub struct RunRequest<'a> {
    pub pipeline: &'a Pipeline,
    pub interval: DataInterval,
    pub run_type: RunType,
    /// Clear failed and upstream_failed tasks first, so they run again.
    pub rerun_failed: bool,
}

/// How a `run` call ended.
#[derive(Debug)]
pub struct RunOutcome {
    pub run: RunRecord,
    /// The run had already finished: nothing was executed.
    pub already_finished: bool,
    /// Ctrl-C (or the caller) stopped the run; it resumes on the next invocation.
    pub interrupted: bool,
}

impl Executor {
    /// Executes (or resumes) the run of `req.pipeline` for `req.interval`.
    pub async fn run(
        &self,
        req: RunRequest<'_>,
        progress: &dyn Progress,
        cancel: CancellationToken,
    ) -> Result<RunOutcome, EngineError> {
        let pipeline = req.pipeline;
        let task_specs: Vec<(&str, u32)> = pipeline
            .tasks
            .iter()
            .map(|t| (t.id.as_str(), t.retry.retries + 1))
            .collect();
        let (record, _) =
            self.store
                .ensure_run(&pipeline.id, &req.interval, req.run_type, &task_specs)?;
        let _lock = self.lock_run(&record)?;
        let tasks = run::resume(self, &req, &record)?;
        if tasks.all_finished() {
            return run::already_finished(self, pipeline, record, &tasks.states);
        }
        let mut run = run::RunLoop::begin(self, &req, record, tasks, progress, cancel)?;
        run.drive().await?;
        run.finish()
    }

    /// The template variables of a try of `task` in `run`.
    fn try_context(
        &self,
        pipeline: &Pipeline,
        run: &RunRecord,
        task: &str,
        try_number: u32,
    ) -> TemplateContext {
        let interval = DataInterval {
            start: run.data_interval_start,
            end: run.data_interval_end,
        };
        let prev = pipeline.timetable.prev(&interval);
        let next = pipeline.timetable.next(&interval);
        TemplateContext::new(
            &pipeline.id,
            task,
            &run.run_id,
            try_number,
            &interval,
            prev.as_ref(),
            next.as_ref(),
            pipeline.params.clone(),
            pipeline.item.clone(),
        )
        .with_project(&self.paths)
    }

    /// A task's configuration as `try_number` of it in `run` renders it, secrets masked: what
    /// the dead-letter store keeps and the UI shows.
    pub fn rendered_config(
        &self,
        pipeline: &Pipeline,
        run: &RunRecord,
        task: &sluice_core::Task,
        try_number: u32,
    ) -> serde_json::Value {
        let ctx = self.try_context(pipeline, run, &task.id, try_number);
        rendered(&task.config, &ctx, &self.redactor)
    }

    /// Everything one try needs to run, wherever it runs (here, or on a worker).
    pub(crate) fn prepare_try(
        &self,
        pipeline: &Pipeline,
        run: &RunRecord,
        i: usize,
        try_number: u32,
        log_path: PathBuf,
    ) -> Result<TryInput, EngineError> {
        let task = &pipeline.tasks[i];
        Ok(TryInput {
            action: task.action.clone(),
            timeout: task.timeout,
            project: self.paths.clone(),
            template: self.try_context(pipeline, run, &task.id, try_number),
            log_path,
            redactor: self.redactor.clone(),
            watermark: self.store.watermark(&pipeline.id, &task.id)?,
            ledger: Arc::new(tries::StoreLedger {
                store: self.store.clone(),
                run: run.id,
                task: task.id.clone(),
                try_number,
                redactor: self.redactor.clone(),
            }),
        })
    }

    pub(crate) fn log_path(&self, run: &RunRecord, task: &str, try_number: u32) -> PathBuf {
        self.paths
            .logs()
            .join(&run.pipeline)
            .join(run.logical_date.format("%Y-%m-%dT%H%M%SZ").to_string())
            .join(task)
            .join(format!("{try_number}.log"))
    }
}

/// A task's configuration with its templates rendered for the try (left as written where they
/// do not render) and secrets masked.
fn rendered(
    config: &serde_json::Value,
    ctx: &TemplateContext,
    redactor: &Redactor,
) -> serde_json::Value {
    use serde_json::Value;
    match config {
        Value::String(s) => Value::String(
            redactor.redact(&sluice_core::template::render(s, ctx).unwrap_or_else(|_| s.clone())),
        ),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| rendered(v, ctx, redactor)).collect())
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    // Credentials travel in headers and query parameters under any name: their
                    // values are never displayed, only their names.
                    ("headers" | "params", Value::Object(entries)) => (
                        k.clone(),
                        Value::Object(
                            entries
                                .keys()
                                .map(|name| (name.clone(), Value::String(MASK.into())))
                                .collect(),
                        ),
                    ),
                    _ => (k.clone(), rendered(v, ctx, redactor)),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}
