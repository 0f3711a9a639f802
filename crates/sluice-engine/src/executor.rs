//! The executor: runs one pipeline run's tasks as soon as their upstream tasks allow, in this
//! process or on `sluice worker`s (`Dispatch`).
//!
//! Event-driven: every try and every retry timer is a future in one `JoinSet`; the loop wakes
//! when one of them finishes, records the outcome, and evaluates the finished task's downstream
//! tasks at once. Locally nothing polls; a try handed to a worker is awaited through the
//! database's notifications, with a slow poll only as the fallback.
//!
//! **Invariant:** the store is written before the executor acts on a transition (a try is
//! recorded as started before its work begins, and as ended before its dependents are
//! evaluated), so a killed process leaves a record the next invocation resumes from.

use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sluice_core::connections::Redactor;
use sluice_core::template::TemplateContext;
use sluice_core::{
    DataInterval, DeadLetter, Ledger, Pipeline, ProjectPaths, RunState, SchemaChange, TaskError,
    TaskLog, TaskOutput, TaskRun, TaskState,
};
use sluice_store::{RunRecord, RunType, Store, StoreError, TryEnd, TryOutcome};

use crate::lineage::EventType;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long a task that was told to stop (timeout, Ctrl-C) may take to wind down before its
/// work is abandoned (its processes are then killed and its query interrupted).
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How often a run whose ready tasks wait for pool slots held by other runs looks again.
const POOL_POLL: Duration = Duration::from_millis(20);

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

/// How often a run waiting on workers looks for answers when no notification woke it. (Dead
/// workers' leases are expired by the workers and by the scheduler's tick, once per process,
/// not by every waiting try.)
const ANSWER_POLL: Duration = Duration::from_millis(250);

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

enum Event {
    TryDone {
        task: usize,
        try_number: u32,
        started: Instant,
        result: TryResult,
        /// The try's log, for the executor's own closing lines.
        log: Option<TaskLog>,
        /// For a try run by a worker: how long it waited from ready to claimed.
        handoff: Option<Duration>,
    },
    RetryDue {
        task: usize,
    },
}

pub(crate) enum TryResult {
    Done(Result<TaskOutput, TaskError>),
    TimedOut(Duration),
    Interrupted,
    /// This scheduler stopped waiting for a worker's try, which runs on: the next scheduler
    /// to resume the run waits for its answer.
    Detached,
}

/// One run's tasks as the executor tracks them.
struct Tracker {
    states: Vec<TaskState>,
    tries: Vec<u32>,
    max_tries: Vec<u32>,
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
        let (run, _) =
            self.store
                .ensure_run(&pipeline.id, &req.interval, req.run_type, &task_specs)?;
        let _lock = self.lock_run(&run)?;

        // Resume: tries left `running` by a process that died are closed as interrupted.
        let mut st = Tracker {
            states: vec![TaskState::None; pipeline.tasks.len()],
            tries: vec![0; pipeline.tasks.len()],
            max_tries: task_specs.iter().map(|(_, m)| *m).collect(),
        };
        let mut retry_at = Vec::new();
        let mut reattach = Vec::new();
        for ti in self.store.task_instances(run.id)? {
            let Some(i) = pipeline.task_index(&ti.task) else {
                continue; // a task removed from the pipeline since the run was created
            };
            st.tries[i] = ti.tries;
            st.max_tries[i] = ti.max_tries;
            st.states[i] = match ti.state {
                TaskState::Running | TaskState::Queued
                    if matches!(self.dispatch, Dispatch::Workers { .. })
                        && self.store.is_enqueued(run.id, &ti.task, ti.tries)? =>
                {
                    // Handed to a worker, which may still run it: wait for its answer.
                    reattach.push((i, ti.tries));
                    TaskState::Running
                }
                TaskState::Running | TaskState::Queued => {
                    self.store.interrupt_try(
                        run.id,
                        &ti.task,
                        ti.tries,
                        "interrupted: the sluice process running this try stopped before it finished",
                    )?;
                    st.max_tries[i] += 1;
                    TaskState::None
                }
                TaskState::Scheduled => TaskState::None,
                TaskState::Failed | TaskState::UpstreamFailed if req.rerun_failed => {
                    let retries = pipeline.tasks[i].retry.retries;
                    self.store.clear(run.id, &[(ti.task.as_str(), retries)])?;
                    st.max_tries[i] = ti.tries + retries + 1;
                    TaskState::None
                }
                TaskState::UpForRetry => {
                    retry_at.push((i, ti.next_retry_at));
                    TaskState::UpForRetry
                }
                other => other,
            };
        }

        if st.states.iter().all(|s| s.is_finished()) {
            let state = outcome(pipeline, &st.states);
            if run.state != state {
                self.store.set_run_state(run.id, state)?;
            }
            return Ok(RunOutcome {
                run: self.store.run(run.id)?,
                already_finished: true,
                interrupted: false,
            });
        }

        self.store.set_run_state(run.id, RunState::Running)?;
        let run = self.store.run(run.id)?;
        let done = st.states.iter().filter(|s| s.is_finished()).count();
        tracing::info!(pipeline = %pipeline.id, run_id = %run.run_id, tasks = pipeline.tasks.len(), already_done = done, "run started");
        progress.run_started(&run, pipeline.tasks.len(), done);

        let limit = self
            .parallelism
            .min(pipeline.max_active_tasks as usize)
            .max(1);
        let mut pending: JoinSet<Event> = JoinSet::new();
        let mut ready: VecDeque<usize> = VecDeque::new();
        let mut running = 0usize;

        for (i, try_number) in reattach {
            running += 1;
            pending.spawn(self.await_answer(pipeline, i, &run, try_number, None, None, &cancel));
        }
        for (i, at) in retry_at {
            let wait = at
                .map(|t| (t - Utc::now()).to_std().unwrap_or_default())
                .unwrap_or_default();
            pending.spawn(async move {
                tokio::time::sleep(wait).await;
                Event::RetryDue { task: i }
            });
        }
        for i in 0..pipeline.tasks.len() {
            self.evaluate(pipeline, &run, i, &mut st, &mut ready, progress)?;
        }

        let run_started = Instant::now();
        let mut deadlines = crate::sla::Deadlines::new(
            pipeline,
            &req.interval,
            run.started_at.unwrap_or_else(Utc::now),
            req.run_type == RunType::Scheduled,
        );
        // When a task became ready because its upstream tasks finished (for the hand-off metric).
        let mut readied_at: Vec<Option<Instant>> = vec![None; pipeline.tasks.len()];
        let mut interrupted = false;
        loop {
            // Ready tasks waiting only for a pool slot held elsewhere.
            let mut blocked = false;
            while running < limit && !interrupted {
                // The ready task of highest priority whose pool has a free slot (first come
                // first among equals).
                let mut order: Vec<usize> = (0..ready.len()).collect();
                order.sort_by_key(|&k| std::cmp::Reverse(pipeline.tasks[ready[k]].priority));
                let chosen = order.into_iter().find_map(|k| {
                    self.pools
                        .try_take(pipeline.tasks[ready[k]].pool.as_deref())
                        .map(|slot| (k, slot))
                });
                let Some((k, slot)) = chosen else {
                    blocked = !ready.is_empty();
                    break;
                };
                let i = ready.remove(k).expect("chosen from the ready tasks");
                if let (Dispatch::Local, Some(at)) = (&self.dispatch, readied_at[i].take()) {
                    crate::metrics::handed_off(&pipeline.id, at.elapsed());
                }
                running += 1;
                st.tries[i] += 1;
                let try_number = st.tries[i];
                let task = &pipeline.tasks[i];
                let log_path = self.log_path(&run, &task.id, try_number);
                let log_name = log_path.to_string_lossy();
                match self.dispatch {
                    Dispatch::Local => {
                        self.store.start_try(
                            run.id,
                            &task.id,
                            try_number,
                            &log_name,
                            std::process::id(),
                        )?;
                    }
                    Dispatch::Workers { .. } => self.store.start_queued_try(
                        run.id,
                        &task.id,
                        try_number,
                        &log_name,
                        &task.queue,
                        task.priority,
                    )?,
                }
                st.states[i] = TaskState::Running;
                tracing::debug!(pipeline = %pipeline.id, task = %task.id, try_number, log = %log_path.display(), "try started");
                progress.task_started(&run, &task.id, try_number);
                self.emit_lineage(pipeline, &run, i, try_number, EventType::Start, None);
                if let Dispatch::Workers { .. } = self.dispatch {
                    let waited = readied_at[i].take().map(|at| at.elapsed());
                    pending.spawn(
                        self.await_answer(pipeline, i, &run, try_number, slot, waited, &cancel),
                    );
                    continue;
                }
                let input = self.prepare_try(pipeline, &run, i, try_number, log_path)?;
                let stop = cancel.child_token();
                pending.spawn(async move {
                    // The pool slot is given back when the try ends, however it ends.
                    let _slot = slot;
                    let started = Instant::now();
                    let (result, log) = run_try(input, stop).await;
                    Event::TryDone {
                        task: i,
                        try_number,
                        started,
                        result,
                        log,
                        handoff: None,
                    }
                });
            }
            if pending.is_empty() {
                if blocked && !interrupted {
                    if cancel.is_cancelled() {
                        interrupted = true;
                        ready.clear();
                    } else {
                        tokio::time::sleep(POOL_POLL).await;
                    }
                    continue;
                }
                break;
            }
            let sla_wait = deadlines.next_wait(&st.states);
            let event = tokio::select! {
                _ = tokio::time::sleep(POOL_POLL), if blocked => continue,
                _ = tokio::time::sleep(sla_wait.unwrap_or(Duration::from_secs(3600))), if sla_wait.is_some() => {
                    for miss in deadlines.missed(&st.states) {
                        self.sla_missed(pipeline, &run, &miss, &st.states);
                    }
                    continue;
                }
                joined = pending.join_next() => match joined {
                    Some(Ok(event)) => event,
                    Some(Err(e)) => panic!("a task future panicked: {e}; this is a bug in Sluice, please report it"),
                    None => break,
                },
                _ = cancel.cancelled(), if !interrupted => {
                    // Running tries see the same token and stop; retry timers are dropped, and
                    // the tasks waiting on them resume from the store next time.
                    interrupted = true;
                    ready.clear();
                    continue;
                }
            };
            match event {
                Event::RetryDue { task } => {
                    if interrupted || st.states[task] != TaskState::UpForRetry {
                        continue;
                    }
                    st.states[task] = TaskState::Scheduled;
                    ready.push_back(task);
                }
                Event::TryDone {
                    task: i,
                    try_number,
                    started,
                    result,
                    log,
                    handoff,
                } => {
                    running -= 1;
                    let task = &pipeline.tasks[i];
                    if let TryResult::Detached = result {
                        interrupted = true;
                        ready.clear();
                        continue;
                    }
                    if let Some(waited) = handoff {
                        crate::metrics::handed_off(&pipeline.id, waited);
                    }
                    let mut watermark = None;
                    let rejected = match &result {
                        TryResult::Done(Ok(out)) => out.rejected,
                        _ => None,
                    };
                    let (outcome, error, rows, retryable) = match &result {
                        TryResult::Done(Ok(out)) => {
                            watermark = out.watermark.clone();
                            (TryOutcome::Success, None, out.rows, false)
                        }
                        TryResult::Done(Err(e)) => (
                            TryOutcome::Failed,
                            Some(self.redactor.redact(&e.message)),
                            None,
                            e.retryable,
                        ),
                        TryResult::TimedOut(after) => (
                            TryOutcome::TimedOut,
                            Some(format!(
                                "timed out after {} (timeout: {})",
                                secs(started.elapsed()),
                                secs(*after)
                            )),
                            None,
                            true,
                        ),
                        TryResult::Detached => unreachable!("handled above"),
                        TryResult::Interrupted => {
                            self.store.interrupt_try(
                                run.id,
                                &task.id,
                                try_number,
                                "interrupted: sluice was stopped (Ctrl-C) while this try ran",
                            )?;
                            st.max_tries[i] += 1;
                            st.states[i] = TaskState::None;
                            // The try may report before the loop sees the cancellation itself.
                            interrupted = true;
                            ready.clear();
                            progress.task_finished(
                                &run,
                                &task.id,
                                TaskState::None,
                                Some("interrupted"),
                            );
                            self.emit_lineage(
                                pipeline,
                                &run,
                                i,
                                try_number,
                                EventType::Abort,
                                Some("interrupted"),
                            );
                            continue;
                        }
                    };
                    let next_state = if outcome == TryOutcome::Success {
                        TaskState::Success
                    } else if retryable && try_number < st.max_tries[i] && !interrupted {
                        TaskState::UpForRetry
                    } else {
                        TaskState::Failed
                    };
                    let delay = (next_state == TaskState::UpForRetry).then(|| {
                        task.retry.delay_after(
                            try_number,
                            &format!("{}.{}.{}", pipeline.id, task.id, run.run_id),
                        )
                    });
                    self.store.finish_try(
                        run.id,
                        &task.id,
                        try_number,
                        &TryEnd {
                            outcome,
                            error: error.as_deref(),
                            rows,
                            rejected,
                            watermark: watermark.as_deref(),
                            next_state,
                            next_retry_at: delay.map(|d| {
                                Utc::now() + chrono::Duration::from_std(d).unwrap_or_default()
                            }),
                        },
                    )?;
                    if let (Some(e), Some(log)) = (&error, &log) {
                        log.line(format!("try {try_number} {outcome}: {e}"));
                        if let Some(d) = delay {
                            log.line(format!("retrying in {}", secs(d)));
                        }
                    }
                    let mut failed_id = None;
                    if next_state == TaskState::Failed {
                        // Retries exhausted (or pointless): the task's context goes to the
                        // dead-letter store, where `sluice dlq replay` picks it up.
                        let config = self.rendered_config(pipeline, &run, task, try_number);
                        failed_id = Some(self.store.add_failed_task(
                            run.id,
                            &task.id,
                            error.as_deref().unwrap_or(outcome.as_str()),
                            &config,
                        )?);
                    }
                    self.alert(
                        pipeline,
                        task,
                        &run,
                        try_number,
                        next_state,
                        error.as_deref(),
                        log.as_ref(),
                        failed_id,
                    );
                    if let (TaskState::Success, Some(rows), Some(share)) =
                        (next_state, rows, pipeline.row_drop)
                        && let Some(drop) =
                            self.row_drop(pipeline, &task.id, run.id, rows, share)?
                    {
                        if let Some(log) = &log {
                            log.line(format!("warning: {drop}"));
                        }
                        self.alert(
                            pipeline,
                            task,
                            &run,
                            try_number,
                            next_state,
                            Some(&drop),
                            log.as_ref(),
                            None,
                        );
                    }
                    st.states[i] = next_state;
                    crate::metrics::try_finished(
                        &pipeline.id,
                        &task.id,
                        task.kind,
                        outcome,
                        started.elapsed(),
                        rows,
                        next_state == TaskState::UpForRetry,
                    );
                    match &error {
                        Some(e) => {
                            tracing::info!(pipeline = %pipeline.id, task = %task.id, try_number, state = %next_state, error = %e, "try {outcome}")
                        }
                        None => {
                            tracing::debug!(pipeline = %pipeline.id, task = %task.id, try_number, rows, "try succeeded")
                        }
                    }
                    progress.task_finished(&run, &task.id, next_state, error.as_deref());
                    let event = if outcome == TryOutcome::Success {
                        EventType::Complete
                    } else {
                        EventType::Fail
                    };
                    self.emit_lineage(pipeline, &run, i, try_number, event, error.as_deref());
                    if let Some(d) = delay {
                        pending.spawn(async move {
                            tokio::time::sleep(d).await;
                            Event::RetryDue { task: i }
                        });
                    }
                    if next_state.is_finished() {
                        for d in task.downstream.clone() {
                            self.evaluate(pipeline, &run, d, &mut st, &mut ready, progress)?;
                        }
                        let now = Instant::now();
                        for &r in &ready {
                            readied_at[r].get_or_insert(now);
                        }
                    }
                }
            }
        }

        if interrupted {
            self.store.set_run_state(run.id, RunState::Queued)?;
        } else {
            let state = outcome(pipeline, &st.states);
            // Measured before the state is stored, so whoever sees the run ended sees it counted.
            crate::metrics::run_finished(&pipeline.id, state.as_str(), run_started.elapsed());
            self.store.set_run_state(run.id, state)?;
        }
        Ok(RunOutcome {
            run: self.store.run(run.id)?,
            already_finished: false,
            interrupted,
        })
    }

    /// Applies task `i`'s trigger rule if it is waiting; a task that is skipped or marked
    /// upstream_failed passes the evaluation on to its own downstream tasks.
    fn evaluate(
        &self,
        pipeline: &Pipeline,
        run: &RunRecord,
        i: usize,
        st: &mut Tracker,
        ready: &mut VecDeque<usize>,
        progress: &dyn Progress,
    ) -> Result<(), EngineError> {
        let mut stack = vec![i];
        while let Some(i) = stack.pop() {
            if st.states[i] != TaskState::None {
                continue;
            }
            let task = &pipeline.tasks[i];
            let upstream: Vec<TaskState> = task.upstream.iter().map(|&u| st.states[u]).collect();
            let state = match task.trigger_rule.evaluate(&upstream) {
                sluice_core::state::Decision::Wait => continue,
                sluice_core::state::Decision::Run => {
                    st.states[i] = TaskState::Scheduled;
                    ready.push_back(i);
                    continue;
                }
                sluice_core::state::Decision::Skip => TaskState::Skipped,
                sluice_core::state::Decision::UpstreamFailed => TaskState::UpstreamFailed,
            };
            self.store.set_task_state(run.id, &task.id, state)?;
            st.states[i] = state;
            progress.task_finished(run, &task.id, state, None);
            stack.extend(task.downstream.iter().rev());
        }
        Ok(())
    }

    /// Tells the lineage sink about a try, when the task reads or writes data.
    fn emit_lineage(
        &self,
        pipeline: &Pipeline,
        run: &RunRecord,
        i: usize,
        try_number: u32,
        event: EventType,
        error: Option<&str>,
    ) {
        let Some(sink) = &self.lineage else { return };
        let task = &pipeline.tasks[i];
        let ctx = self.try_context(pipeline, run, &task.id, try_number);
        let mut lineage = task.action.lineage(Some(&ctx));
        if lineage.is_empty() {
            return;
        }
        lineage.sql = lineage.sql.map(|q| self.redactor.redact(&q));
        sink.emit(crate::lineage::run_event(
            event,
            sink.namespace(),
            pipeline,
            &task.id,
            run,
            try_number,
            &lineage,
            error,
        ));
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
            ledger: Arc::new(StoreLedger {
                store: self.store.clone(),
                run: run.id,
                task: task.id.clone(),
                try_number,
            }),
        })
    }

    /// Waits for a worker's answer to a queued try (a try whose lease expired is answered
    /// `lost`). A cancelled wait detaches: the try runs on, and whoever resumes the run waits
    /// for it again.
    #[allow(clippy::too_many_arguments)]
    fn await_answer(
        &self,
        pipeline: &Pipeline,
        i: usize,
        run: &RunRecord,
        try_number: u32,
        slot: crate::pools::Slot,
        waited: Option<Duration>,
        cancel: &CancellationToken,
    ) -> impl std::future::Future<Output = Event> + Send + 'static {
        let store = self.store.clone();
        let answered = match &self.dispatch {
            Dispatch::Workers { answered } => answered.clone(),
            Dispatch::Local => None,
        };
        let task = pipeline.tasks[i].id.clone();
        let timeout = pipeline.tasks[i].timeout;
        let run = run.id;
        let cancel = cancel.clone();
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
                let this_one = async {
                    use tokio::sync::broadcast::error::RecvError;
                    let Some(answers) = answers.as_mut() else {
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
                };
                tokio::select! {
                    _ = this_one => {}
                    _ = tokio::time::sleep(ANSWER_POLL) => {}
                    _ = cancel.cancelled() => break (TryResult::Detached, None),
                }
            };
            Event::TryDone {
                task: i,
                try_number,
                started,
                result,
                log: None,
                handoff,
            }
        }
    }

    pub(crate) fn log_path(&self, run: &RunRecord, task: &str, try_number: u32) -> PathBuf {
        self.paths
            .logs()
            .join(&run.pipeline)
            .join(run.logical_date.format("%Y-%m-%dT%H%M%SZ").to_string())
            .join(task)
            .join(format!("{try_number}.log"))
    }

    /// One process at a time executes a run: an advisory lock that the kernel releases when
    /// the process dies, however it dies — and, with the metadata on PostgreSQL, a session
    /// lock there too, so that schedulers on other machines keep off as well.
    fn lock_run(&self, run: &RunRecord) -> Result<RunLock, EngineError> {
        let file = self.lock_file(run)?;
        if !self.store.try_lock_run(run.id)? {
            return Err(EngineError::Busy {
                pipeline: run.pipeline.clone(),
                logical_date: run.logical_date.to_rfc3339(),
                lock: format!("the metadata database's lock on run {}", run.id),
            });
        }
        Ok(RunLock {
            _file: file,
            store: self.store.clone(),
            run: run.id,
        })
    }

    fn lock_file(&self, run: &RunRecord) -> Result<File, EngineError> {
        let dir = self.paths.locks().join(&run.pipeline);
        std::fs::create_dir_all(&dir).map_err(|source| EngineError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let path = dir.join(format!(
            "{}.lock",
            run.logical_date.format("%Y-%m-%dT%H%M%SZ")
        ));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| EngineError::Io {
                path: path.display().to_string(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(EngineError::Busy {
                pipeline: run.pipeline.clone(),
                logical_date: run.logical_date.to_rfc3339(),
                lock: path.display().to_string(),
            }),
            Err(std::fs::TryLockError::Error(source)) => Err(EngineError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }
}

/// Held while a run executes.
struct RunLock {
    _file: File,
    store: Arc<Store>,
    run: i64,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        if let Err(e) = self.store.unlock_run(self.run) {
            tracing::warn!(run = self.run, "cannot release the run's lock: {e}");
        }
    }
}

/// What one try needs to run.
pub(crate) struct TryInput {
    action: Arc<dyn sluice_core::TaskAction>,
    timeout: Option<Duration>,
    project: Arc<ProjectPaths>,
    template: TemplateContext,
    pub(crate) log_path: PathBuf,
    redactor: Arc<Redactor>,
    watermark: Option<String>,
    ledger: Arc<dyn Ledger>,
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

/// A worker's answer as the executor's result of the try.
fn answer_result(answer: sluice_store::QueuedResult, timeout: Option<Duration>) -> TryResult {
    match answer.outcome {
        TryOutcome::Success => TryResult::Done(Ok(TaskOutput {
            rows: answer.rows,
            rejected: answer.rejected,
            watermark: answer.watermark,
        })),
        TryOutcome::TimedOut => TryResult::TimedOut(timeout.unwrap_or_default()),
        TryOutcome::Failed
        | TryOutcome::Lost
        | TryOutcome::Running
        | TryOutcome::Interrupted => TryResult::Done(Err(TaskError {
            message: answer
                .error
                .unwrap_or_else(|| "the worker reported a failure without a message".into()),
            retryable: answer.retryable,
        })),
    }
}

/// Runs one try, enforcing the timeout: when it expires the task is told to stop, given a grace
/// period, then abandoned (dropping the future kills its processes and interrupts its query).
async fn execute(
    action: &dyn sluice_core::TaskAction,
    run: &TaskRun,
    timeout: Option<Duration>,
) -> TryResult {
    let mut work = action.run(run);
    let limit = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = &mut work => {
            if run.cancel.is_cancelled() { TryResult::Interrupted } else { TryResult::Done(r) }
        }
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

/// A run fails when any of its leaf tasks failed or could not run because an upstream failed.
fn outcome(pipeline: &Pipeline, states: &[TaskState]) -> RunState {
    let failed = pipeline
        .leaves()
        .any(|i| matches!(states[i], TaskState::Failed | TaskState::UpstreamFailed));
    if failed {
        RunState::Failed
    } else {
        RunState::Success
    }
}

fn secs(d: Duration) -> String {
    if d.as_secs() >= 1 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The try's ledger: bad records and schema changes go to the metadata store at once, so they
/// survive the try failing.
struct StoreLedger {
    store: Arc<Store>,
    run: i64,
    task: String,
    try_number: u32,
}

impl Ledger for StoreLedger {
    fn dead_letters(&self, records: &[DeadLetter]) -> Result<(), String> {
        self.store
            .add_dead_letters(self.run, &self.task, self.try_number, records)
            .map_err(|e| e.to_string())
    }

    fn schema_changes(&self, changes: &[SchemaChange]) -> Result<(), String> {
        self.store
            .add_schema_changes(self.run, &self.task, self.try_number, changes)
            .map_err(|e| e.to_string())
    }
}

impl Executor {
    /// When `rows` is below `share` of the median of the task's last successful runs, says so.
    fn row_drop(
        &self,
        pipeline: &Pipeline,
        task: &str,
        run: i64,
        rows: u64,
        share: f64,
    ) -> Result<Option<String>, EngineError> {
        let mut recent = self.store.recent_rows(&pipeline.id, task, run, 7)?;
        if recent.len() < 3 {
            return Ok(None);
        }
        recent.sort_unstable();
        let median = recent[recent.len() / 2] as f64;
        Ok(((rows as f64) < share * median).then(|| {
            format!(
                "{rows} rows, against a median of {median} over the last {} runs (row_drop: {share})",
                recent.len()
            )
        }))
    }

    /// Reports a missed deadline while the work still runs: metric, log line, alert.
    fn sla_missed(
        &self,
        pipeline: &Pipeline,
        run: &RunRecord,
        miss: &crate::sla::Miss,
        states: &[TaskState],
    ) {
        let (late, message) = crate::sla::describe(pipeline, miss, states);
        let task = miss.task.map_or("run", |i| pipeline.tasks[i].id.as_str());
        crate::metrics::sla_missed(&pipeline.id, task);
        tracing::warn!(pipeline = %pipeline.id, run_id = %run.run_id, "{message}");
        let Some(notifier) = &self.notifier else {
            return;
        };
        let mut channels: Vec<String> = late
            .iter()
            .flat_map(|&i| pipeline.tasks[i].alert.sla_miss.iter().cloned())
            .collect();
        channels.sort();
        channels.dedup();
        if channels.is_empty() {
            return;
        }
        notifier.send(crate::alerts::Alert {
            event: crate::alerts::AlertEvent::SlaMiss,
            pipeline: pipeline.id.clone(),
            task: late
                .iter()
                .map(|&i| pipeline.tasks[i].id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            run_id: run.run_id.clone(),
            logical_date: sluice_core::template::iso(run.logical_date),
            try_number: 0,
            error: Some(message),
            log_tail: Vec::new(),
            rerun: format!("sluice runs {}", pipeline.id),
            channels,
        });
    }

    /// Tells the task's alert channels about a failure, a retry or a recovery.
    #[allow(clippy::too_many_arguments)]
    fn alert(
        &self,
        pipeline: &Pipeline,
        task: &sluice_core::Task,
        run: &RunRecord,
        try_number: u32,
        state: TaskState,
        error: Option<&str>,
        log: Option<&TaskLog>,
        failed_id: Option<i64>,
    ) {
        use crate::alerts::{Alert, AlertEvent};
        let Some(notifier) = &self.notifier else {
            return;
        };
        let (event, channels) = match state {
            _ if error.is_some() && state == TaskState::Success => {
                (AlertEvent::RowDrop, &task.alert.row_drop)
            }
            TaskState::Failed => (AlertEvent::Failure, &task.alert.failure),
            TaskState::UpForRetry => (AlertEvent::Retry, &task.alert.retry),
            TaskState::Success if try_number > 1 => (AlertEvent::Recovery, &task.alert.recovery),
            _ => return,
        };
        if channels.is_empty() {
            return;
        }
        let date = run.logical_date.format("%Y-%m-%d");
        let rerun = match failed_id {
            Some(id) => format!("sluice dlq replay {id}"),
            None => format!("sluice run {} --date {date}", pipeline.id),
        };
        let log_tail = log
            .and_then(|l| std::fs::read_to_string(l.path()).ok())
            .map(|text| {
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(10)..]
                    .iter()
                    .map(|l| l.to_string())
                    .collect()
            })
            .unwrap_or_default();
        notifier.send(Alert {
            event,
            pipeline: pipeline.id.clone(),
            task: task.id.clone(),
            run_id: run.run_id.clone(),
            logical_date: sluice_core::template::iso(run.logical_date),
            try_number,
            error: error.map(String::from),
            log_tail,
            rerun,
            channels: channels.clone(),
        });
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
                .map(|(k, v)| (k.clone(), rendered(v, ctx, redactor)))
                .collect(),
        ),
        other => other.clone(),
    }
}
