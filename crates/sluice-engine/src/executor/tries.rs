//! One try: run here under its timeout, with its log and its ledger — or handed to a worker,
//! whose answer is awaited.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use sluice_core::Redactor;
use sluice_core::template::TemplateContext;
use sluice_core::{
    DeadLetter, Ledger, ProjectPaths, SchemaChange, TaskError, TaskLog, TaskOutput, TaskRun,
};
use sluice_store::{QueuedResult, Store, TryOutcome};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Dispatch, Executor};

/// How long a task that was told to stop (timeout, Ctrl-C) may take to wind down before its
/// work is abandoned (its processes are then killed and its query interrupted).
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How often a run waiting on workers looks for answers when no notification woke it. (Dead
/// workers' leases are expired by the workers and by the scheduler's tick, once per process,
/// not by every waiting try.)
const ANSWER_POLL: Duration = Duration::from_millis(250);

/// How a try ended, as the one who ran it saw it.
pub(crate) enum TryResult {
    /// It ended by itself: with its output, or with its error (a panic included).
    Done(Result<TaskOutput, TaskError>),
    TimedOut(Duration),
    Interrupted,
    /// This scheduler stopped waiting for a worker's try, which runs on: the next scheduler
    /// to resume the run waits for its answer.
    Detached,
}

/// What one try needs to run.
pub(crate) struct TryInput {
    pub(super) action: Arc<dyn sluice_core::TaskAction>,
    pub(super) timeout: Option<Duration>,
    pub(super) project: Arc<ProjectPaths>,
    pub(super) template: TemplateContext,
    pub(crate) log_path: PathBuf,
    pub(super) redactor: Arc<Redactor>,
    pub(super) watermark: Option<String>,
    pub(super) ledger: Arc<dyn Ledger>,
}

/// How a try ended, for the run that started it.
pub(super) struct TryDone {
    pub task: usize,
    pub try_number: u32,
    pub started: Instant,
    pub result: TryResult,
    /// The try's log, for the executor's own closing lines.
    pub log: Option<TaskLog>,
    /// For a try run by a worker: how long it waited from ready to claimed.
    pub handoff: Option<Duration>,
}

/// Runs one try with its log; the log is returned for the executor's closing lines.
pub(crate) async fn run_try(
    input: TryInput,
    stop: CancellationToken,
) -> (TryResult, Option<TaskLog>) {
    match TaskLog::create(input.log_path.clone(), input.redactor) {
        Ok(log) => {
            let try_run = TaskRun {
                project: input.project,
                template: input.template,
                log,
                cancel: stop,
                watermark: input.watermark,
                ledger: input.ledger,
            };
            let result = execute(input.action.as_ref(), &try_run, input.timeout).await;
            (result, Some(try_run.log))
        }
        Err(e) => (
            TryResult::Done(Err(TaskError::failed(format!(
                "cannot create the log file {}: {e}",
                input.log_path.display()
            )))),
            None,
        ),
    }
}

/// Runs one try, enforcing the timeout: when it expires the task is told to stop, given a grace
/// period, then abandoned (dropping the future kills its processes and interrupts its query).
///
/// A panic in the task (while its future is made or polled) ends this try alone, as a failure
/// carrying the panic's message; the run, and a worker's other tries, go on.
async fn execute(
    action: &dyn sluice_core::TaskAction,
    run: &TaskRun,
    timeout: Option<Duration>,
) -> TryResult {
    let mut work = std::pin::pin!(AssertUnwindSafe(async { action.run(run).await }).catch_unwind());
    let limit = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = &mut work => match r {
            _ if run.cancel.is_cancelled() => TryResult::Interrupted,
            Ok(r) => TryResult::Done(r),
            Err(panic) => TryResult::Done(Err(panicked(panic.as_ref()))),
        },
        _ = limit => {
            run.cancel.cancel();
            let _ = tokio::time::timeout(STOP_GRACE, &mut work).await;
            TryResult::TimedOut(timeout.unwrap_or_default())
        }
        _ = run.cancel.cancelled() => {
            let _ = tokio::time::timeout(STOP_GRACE, &mut work).await;
            TryResult::Interrupted
        }
    }
}

/// The error of a try whose task panicked.
///
/// Retryable, per the task's retry policy: Airflow retries a task whatever exception it
/// raised, and a panic is often set off by what the task met (a value a driver did not expect,
/// a resource that vanished) rather than by its configuration, so another try can succeed; a
/// panic that repeats costs only the retries the user allowed. The message says it is our bug.
fn panicked(payload: &(dyn std::any::Any + Send)) -> TaskError {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic without a message)".into());
    TaskError::failed(format!(
        "the task panicked: {message}\n  hint: this is a bug in Sluice, please report it"
    ))
}

/// A worker's answer as the executor's result of the try.
fn answer_result(answer: QueuedResult, timeout: Option<Duration>) -> TryResult {
    match answer.outcome {
        TryOutcome::Success => TryResult::Done(Ok(TaskOutput {
            rows: answer.rows,
            rejected: answer.rejected,
            watermark: answer.watermark,
        })),
        TryOutcome::TimedOut => TryResult::TimedOut(timeout.unwrap_or_default()),
        TryOutcome::Failed | TryOutcome::Lost | TryOutcome::Running | TryOutcome::Interrupted => {
            TryResult::Done(Err(TaskError {
                message: answer
                    .error
                    .unwrap_or_else(|| "the worker reported a failure without a message".into()),
                retryable: answer.retryable,
            }))
        }
    }
}

/// The try's ledger: bad records and schema changes go to the metadata store at once, so they
/// survive the try failing.
pub(super) struct StoreLedger {
    pub(super) store: Arc<Store>,
    pub(super) run: i64,
    pub(super) task: String,
    pub(super) try_number: u32,
    /// A reason may quote a driver's message, and a source a URL.
    pub(super) redactor: Arc<Redactor>,
}

impl Ledger for StoreLedger {
    fn dead_letters(&self, records: &[DeadLetter]) -> Result<(), String> {
        let records: Vec<DeadLetter> = records
            .iter()
            .map(|r| DeadLetter {
                source: self.redactor.redact(&r.source),
                reason: self.redactor.redact(&r.reason),
                ..r.clone()
            })
            .collect();
        self.store
            .add_dead_letters(self.run, &self.task, self.try_number, &records)
            .map_err(|e| e.to_string())
    }

    fn schema_changes(&self, changes: &[SchemaChange]) -> Result<(), String> {
        self.store
            .add_schema_changes(self.run, &self.task, self.try_number, changes)
            .map_err(|e| e.to_string())
    }
}

/// Which queued try a run waits for, and how it got there.
pub(super) struct Queued {
    pub run: i64,
    /// The task's index in its pipeline, and its id.
    pub index: usize,
    pub task: String,
    pub try_number: u32,
    pub timeout: Option<Duration>,
    /// The pool slot the try holds until it is answered.
    pub slot: crate::pools::Slot,
    /// How long the task was ready before it was queued.
    pub waited: Option<Duration>,
}

/// Waits for a worker's answer to a queued try (a try whose lease expired is answered `lost`).
/// A cancelled wait detaches: the try runs on, and whoever resumes the run waits for it again.
pub(super) fn await_answer(
    exec: &Executor,
    queued: Queued,
    cancel: CancellationToken,
) -> impl std::future::Future<Output = TryDone> + Send + 'static {
    let store = exec.store.clone();
    let answered = match &exec.dispatch {
        Dispatch::Workers { answered } => answered.clone(),
        Dispatch::Local => None,
    };
    let Queued {
        run,
        index: i,
        task,
        try_number,
        timeout,
        slot,
        waited,
    } = queued;
    async move {
        let _slot = slot;
        let started = Instant::now();
        let key = sluice_store::answer_key(run, &task, try_number);
        // Subscribed before looking, so that an answer landing in between still wakes us.
        let mut answers = answered.as_ref().map(|n| n.subscribe());
        let (result, handoff) = loop {
            match store.queued_result(run, &task, try_number) {
                Ok(Some(answer)) => {
                    let queued = answer
                        .claimed_at
                        .map(|c| (c - answer.enqueued_at).to_std().unwrap_or_default());
                    let handoff = waited.zip(queued).map(|(a, b)| a + b);
                    break (answer_result(answer, timeout), handoff);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(task = %task, "cannot read the answer of a queued try: {e}")
                }
            }
            tokio::select! {
                _ = answer_for(answers.as_mut(), &key) => {}
                _ = tokio::time::sleep(ANSWER_POLL) => {}
                _ = cancel.cancelled() => break (TryResult::Detached, None),
            }
        };
        TryDone {
            task: i,
            try_number,
            started,
            result,
            log: None,
            handoff,
        }
    }
}

/// Returns when a notification says the try of `key` may have been answered (its own key, or
/// an empty one: "everyone look"); never without notifications.
async fn answer_for(answers: Option<&mut tokio::sync::broadcast::Receiver<String>>, key: &str) {
    use tokio::sync::broadcast::error::RecvError;
    let Some(answers) = answers else {
        return std::future::pending().await;
    };
    loop {
        match answers.recv().await {
            Ok(k) if k == key || k.is_empty() => return,
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => return,
            Err(RecvError::Closed) => return std::future::pending().await,
        }
    }
}

/// A duration as a person reads it in a log line: `12.3s`, or `250ms` under a second.
pub(super) fn secs(d: Duration) -> String {
    if d.as_secs() >= 1 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}
