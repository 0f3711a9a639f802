//! One run as a small state machine. `resume` reads where the run stands (closing tries a dead
//! process left running); `RunLoop::begin` starts what can start; then each wake-up is one
//! step — `start_ready` (tries by priority, as slots allow), `on_try_done`, `on_retry_due`, a
//! deadline, Ctrl-C — until nothing is pending; `finish` stores the run's state.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sluice_core::state::Decision;
use sluice_core::{Pipeline, RunState, TaskLog, TaskOutput, TaskState};
use sluice_store::{RunRecord, RunType, TryEnd, TryOutcome};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::report::Report;
use super::tries::{Queued, TryDone, TryResult, await_answer, run_try, secs};
use super::{Dispatch, EngineError, Executor, Progress, RunOutcome, RunRequest};
use crate::lineage::EventType;
use crate::sla::Deadlines;

/// How often a run whose ready tasks wait for pool slots held by other runs looks again.
const POOL_POLL: Duration = Duration::from_millis(20);

/// What wakes a run: a try ended, or a task's retry delay passed.
pub(super) enum Event {
    TryDone(TryDone),
    RetryDue { task: usize },
}

/// A run's tasks as the store has them when its execution starts or resumes.
pub(super) struct Resumed {
    pub states: Vec<TaskState>,
    tries: Vec<u32>,
    max_tries: Vec<u32>,
    /// Tasks waiting for their retry delay, and when it ends.
    retry_at: Vec<(usize, Option<DateTime<Utc>>)>,
    /// Tries handed to a worker that may still run them: (task, try number).
    reattach: Vec<(usize, u32)>,
}

impl Resumed {
    pub fn all_finished(&self) -> bool {
        self.states.iter().all(|s| s.is_finished())
    }
}

/// Reads the run's task instances. Tries left `running` by a process that died are closed as
/// interrupted (and do not use up a try); with `rerun_failed`, failed tasks are cleared.
pub(super) fn resume(
    exec: &Executor,
    req: &RunRequest<'_>,
    run: &RunRecord,
) -> Result<Resumed, EngineError> {
    let pipeline = req.pipeline;
    let n = pipeline.tasks.len();
    let mut r = Resumed {
        states: vec![TaskState::None; n],
        tries: vec![0; n],
        max_tries: pipeline.tasks.iter().map(|t| t.retry.retries + 1).collect(),
        retry_at: Vec::new(),
        reattach: Vec::new(),
    };
    let workers = matches!(exec.dispatch, Dispatch::Workers { .. });
    for ti in exec.store.task_instances(run.id)? {
        let Some(i) = pipeline.task_index(&ti.task) else {
            continue; // a task removed from the pipeline since the run was created
        };
        r.tries[i] = ti.tries;
        r.max_tries[i] = ti.max_tries;
        r.states[i] = match ti.state {
            TaskState::Running | TaskState::Queued
                if workers && exec.store.is_enqueued(run.id, &ti.task, ti.tries)? =>
            {
                // Handed to a worker, which may still run it: wait for its answer.
                r.reattach.push((i, ti.tries));
                TaskState::Running
            }
            TaskState::Running | TaskState::Queued => {
                exec.store.interrupt_try(
                    run.id,
                    &ti.task,
                    ti.tries,
                    "interrupted: the sluice process running this try stopped before it finished",
                )?;
                r.max_tries[i] += 1;
                TaskState::None
            }
            TaskState::Scheduled => TaskState::None,
            TaskState::Failed | TaskState::UpstreamFailed if req.rerun_failed => {
                let retries = pipeline.tasks[i].retry.retries;
                exec.store.clear(run.id, &[(ti.task.as_str(), retries)])?;
                r.max_tries[i] = ti.tries + retries + 1;
                TaskState::None
            }
            TaskState::UpForRetry => {
                r.retry_at.push((i, ti.next_retry_at));
                TaskState::UpForRetry
            }
            other => other,
        };
    }
    Ok(r)
}

/// A run whose tasks had all finished: its state is made to agree with them, nothing runs.
pub(super) fn already_finished(
    exec: &Executor,
    pipeline: &Pipeline,
    run: RunRecord,
    states: &[TaskState],
) -> Result<RunOutcome, EngineError> {
    let state = outcome(pipeline, states);
    if run.state != state {
        exec.store.set_run_state(run.id, state)?;
    }
    Ok(RunOutcome {
        run: exec.store.run(run.id)?,
        already_finished: true,
        interrupted: false,
    })
}

/// One run being executed: its tasks' states and tries, and everything it waits for.
pub(super) struct RunLoop<'a> {
    pub(super) exec: &'a Executor,
    pub(super) pipeline: &'a Pipeline,
    pub(super) run: RunRecord,
    progress: &'a dyn Progress,
    pub(super) cancel: CancellationToken,
    /// By task index in the pipeline.
    pub(super) states: Vec<TaskState>,
    tries: Vec<u32>,
    /// The try number after which no retry is made.
    max_tries: Vec<u32>,
    /// When a task became ready because its upstream tasks finished (the hand-off metric).
    readied_at: Vec<Option<Instant>>,
    /// Running tries and retry timers.
    pending: JoinSet<Event>,
    /// The retry timers among them, dropped when the run stops.
    retry_timers: Vec<AbortHandle>,
    /// Tasks whose trigger rule is met, waiting for a free slot, in the order they became so.
    ready: VecDeque<usize>,
    running: usize,
    /// Tries of this run that may run at once.
    limit: usize,
    /// Ready tasks wait only for a pool slot held elsewhere.
    pool_wait: bool,
    deadlines: Deadlines,
    /// Stopped (Ctrl-C, or a scheduler detaching from its workers): nothing more starts, and
    /// the run goes back to queued.
    interrupted: bool,
    started: Instant,
}

/// What woke the run's loop.
enum Wake {
    Event(Event),
    SlaDue,
    Cancelled,
    /// Look again (a pool slot may be free).
    Again,
    /// Nothing is pending: the run is over.
    Idle,
}

impl<'a> RunLoop<'a> {
    /// Marks the run running and starts waiting for what was pending: workers' tries, retry
    /// delays, and every task whose trigger rule is met.
    pub(super) fn begin(
        exec: &'a Executor,
        req: &RunRequest<'a>,
        run: RunRecord,
        resumed: Resumed,
        progress: &'a dyn Progress,
        cancel: CancellationToken,
    ) -> Result<RunLoop<'a>, EngineError> {
        let pipeline = req.pipeline;
        exec.store.set_run_state(run.id, RunState::Running)?;
        let run = exec.store.run(run.id)?;
        let done = resumed.states.iter().filter(|s| s.is_finished()).count();
        tracing::info!(pipeline = %pipeline.id, run_id = %run.run_id, tasks = pipeline.tasks.len(), already_done = done, "run started");
        progress.run_started(&run, pipeline.tasks.len(), done);
        let deadlines = Deadlines::new(
            pipeline,
            &req.interval,
            run.started_at.unwrap_or_else(Utc::now),
            req.run_type == RunType::Scheduled,
        );
        let mut this = RunLoop {
            exec,
            pipeline,
            run,
            progress,
            cancel,
            states: resumed.states,
            tries: resumed.tries,
            max_tries: resumed.max_tries,
            readied_at: vec![None; pipeline.tasks.len()],
            pending: JoinSet::new(),
            retry_timers: Vec::new(),
            ready: VecDeque::new(),
            running: 0,
            limit: exec
                .parallelism
                .min(pipeline.max_active_tasks as usize)
                .max(1),
            pool_wait: false,
            deadlines,
            interrupted: false,
            started: Instant::now(),
        };
        for (i, try_number) in resumed.reattach {
            this.running += 1;
            let answer = this.queued(i, try_number, None, None);
            this.pending.spawn(answer);
        }
        for (i, at) in resumed.retry_at {
            let wait = at
                .map(|t| (t - Utc::now()).to_std().unwrap_or_default())
                .unwrap_or_default();
            this.retry_after(i, wait);
        }
        for i in 0..pipeline.tasks.len() {
            this.evaluate(i)?;
        }
        Ok(this)
    }

    /// Steps until nothing is pending.
    pub(super) async fn drive(&mut self) -> Result<(), EngineError> {
        loop {
            self.start_ready()?;
            match self.wait().await {
                Wake::Event(Event::TryDone(done)) => self.on_try_done(done)?,
                Wake::Event(Event::RetryDue { task }) => self.on_retry_due(task),
                Wake::SlaDue => {
                    for miss in self.deadlines.missed(&self.states) {
                        self.report().sla_missed(&miss, &self.states);
                    }
                }
                Wake::Cancelled => self.stop_starting(),
                Wake::Again => {}
                Wake::Idle => return Ok(()),
            }
        }
    }

    /// Stores the run's end: queued again when it was stopped, else success or failure.
    pub(super) fn finish(self) -> Result<RunOutcome, EngineError> {
        let store = &self.exec.store;
        if self.interrupted {
            store.set_run_state(self.run.id, RunState::Queued)?;
        } else {
            let state = outcome(self.pipeline, &self.states);
            // Measured before the state is stored, so whoever sees the run ended sees it counted.
            crate::metrics::run_finished(&self.pipeline.id, state.as_str(), self.started.elapsed());
            store.set_run_state(self.run.id, state)?;
        }
        Ok(RunOutcome {
            run: store.run(self.run.id)?,
            already_finished: false,
            interrupted: self.interrupted,
        })
    }

    /// Starts ready tasks, highest priority first, while the run has room and their pools have
    /// free slots.
    fn start_ready(&mut self) -> Result<(), EngineError> {
        self.pool_wait = false;
        while self.running < self.limit && !self.interrupted {
            let Some((k, slot)) = self.next_ready() else {
                self.pool_wait = !self.ready.is_empty();
                break;
            };
            let i = self.ready.remove(k).expect("chosen from the ready tasks");
            self.start_try(i, slot)?;
        }
        Ok(())
    }

    /// The ready task of highest priority whose pool has a free slot (first come first among
    /// equals): its place in `ready`, and the slot taken.
    fn next_ready(&self) -> Option<(usize, crate::pools::Slot)> {
        let tasks = &self.pipeline.tasks;
        let mut order: Vec<usize> = (0..self.ready.len()).collect();
        order.sort_by_key(|&k| std::cmp::Reverse(tasks[self.ready[k]].priority));
        order.into_iter().find_map(|k| {
            self.exec
                .pools
                .try_take(tasks[self.ready[k]].pool.as_deref())
                .map(|slot| (k, slot))
        })
    }

    /// Records the start of task `i`'s next try, then runs it here or hands it to a worker.
    fn start_try(&mut self, i: usize, slot: crate::pools::Slot) -> Result<(), EngineError> {
        let (exec, pipeline) = (self.exec, self.pipeline);
        let local = matches!(exec.dispatch, Dispatch::Local);
        if local && let Some(at) = self.readied_at[i].take() {
            crate::metrics::handed_off(&pipeline.id, at.elapsed());
        }
        self.running += 1;
        self.tries[i] += 1;
        let try_number = self.tries[i];
        let task = &pipeline.tasks[i];
        let log_path = exec.log_path(&self.run, &task.id, try_number);
        let log_name = log_path.to_string_lossy();
        if local {
            let pid = std::process::id();
            exec.store
                .start_try(self.run.id, &task.id, try_number, &log_name, pid)?;
        } else {
            let (queue, priority) = (&task.queue, task.priority);
            exec.store.start_queued_try(
                self.run.id,
                &task.id,
                try_number,
                &log_name,
                queue,
                priority,
            )?;
        }
        self.states[i] = TaskState::Running;
        tracing::debug!(pipeline = %pipeline.id, task = %task.id, try_number, log = %log_path.display(), "try started");
        self.progress.task_started(&self.run, &task.id, try_number);
        self.report()
            .emit_lineage(i, try_number, EventType::Start, None);
        if !local {
            let waited = self.readied_at[i].take().map(|at| at.elapsed());
            let answer = self.queued(i, try_number, slot, waited);
            self.pending.spawn(answer);
            return Ok(());
        }
        let input = exec.prepare_try(pipeline, &self.run, i, try_number, log_path)?;
        let stop = self.cancel.child_token();
        self.pending.spawn(async move {
            // The pool slot is given back when the try ends, however it ends.
            let _slot = slot;
            let started = Instant::now();
            let (result, log) = run_try(input, stop).await;
            Event::TryDone(TryDone {
                task: i,
                try_number,
                started,
                result,
                log,
                handoff: None,
            })
        });
        Ok(())
    }

    /// The run as its alerts and lineage events see it.
    fn report(&self) -> Report<'_> {
        Report {
            exec: self.exec,
            pipeline: self.pipeline,
            run: &self.run,
        }
    }

    /// Waits for a worker's answer to try `try_number` of task `i`, holding its pool `slot`.
    fn queued(
        &self,
        i: usize,
        try_number: u32,
        slot: crate::pools::Slot,
        waited: Option<Duration>,
    ) -> impl std::future::Future<Output = Event> + Send + 'static {
        let task = &self.pipeline.tasks[i];
        let queued = Queued {
            run: self.run.id,
            index: i,
            task: task.id.clone(),
            try_number,
            timeout: task.timeout,
            slot,
            waited,
        };
        let answer = await_answer(self.exec, queued, self.cancel.clone());
        async move { Event::TryDone(answer.await) }
    }

    /// Waits for the next thing that needs the run's attention.
    async fn wait(&mut self) -> Wake {
        if self.pending.is_empty() {
            if !self.pool_wait || self.interrupted {
                return Wake::Idle;
            }
            if self.cancel.is_cancelled() {
                return Wake::Cancelled;
            }
            tokio::time::sleep(POOL_POLL).await;
            return Wake::Again;
        }
        let sla_wait = self.deadlines.next_wait(&self.states);
        tokio::select! {
            _ = tokio::time::sleep(POOL_POLL), if self.pool_wait => Wake::Again,
            _ = tokio::time::sleep(sla_wait.unwrap_or(Duration::from_secs(3600))), if sla_wait.is_some() => Wake::SlaDue,
            joined = self.pending.join_next() => match joined {
                Some(Ok(event)) => Wake::Event(event),
                Some(Err(e)) if e.is_cancelled() => Wake::Again, // a retry timer, dropped
                // A task's panic is caught around its own future (`tries::execute`) and ends
                // that try alone; what is left to panic here is the executor's own code.
                Some(Err(e)) => panic!("the executor's wrapper of a try panicked: {e}; this is a bug in Sluice, please report it"),
                None => Wake::Idle,
            },
            _ = self.cancel.cancelled(), if !self.interrupted => Wake::Cancelled,
        }
    }

    /// Starts nothing more: running tries see the same token and stop; retry timers are
    /// dropped, and the tasks waiting on them resume from the store next time.
    fn stop_starting(&mut self) {
        self.interrupted = true;
        self.ready.clear();
        for timer in self.retry_timers.drain(..) {
            timer.abort();
        }
    }

    fn on_retry_due(&mut self, i: usize) {
        if self.interrupted || self.states[i] != TaskState::UpForRetry {
            return;
        }
        self.states[i] = TaskState::Scheduled;
        self.ready.push_back(i);
    }

    fn on_try_done(&mut self, done: TryDone) -> Result<(), EngineError> {
        self.running -= 1;
        if let Some(waited) = done.handoff {
            crate::metrics::handed_off(&self.pipeline.id, waited);
        }
        let took = done.started.elapsed();
        let verdict = match done.result {
            TryResult::Done(Ok(out)) => Verdict::success(out),
            TryResult::Done(Err(e)) => Verdict {
                error: Some(self.exec.redactor.redact(&e.message)),
                retryable: e.retryable,
                ..Verdict::new(TryOutcome::Failed)
            },
            TryResult::TimedOut(after) => Verdict {
                error: Some(format!(
                    "timed out after {} (timeout: {})",
                    secs(took),
                    secs(after)
                )),
                retryable: true,
                ..Verdict::new(TryOutcome::TimedOut)
            },
            TryResult::Interrupted => return self.on_interrupted(done.task, done.try_number),
            TryResult::Detached => {
                self.stop_starting();
                return Ok(());
            }
        };
        self.on_try_ended(done.task, done.try_number, took, verdict, done.log.as_ref())
    }

    /// A try stopped by Ctrl-C: closed as interrupted, the task made runnable again without
    /// using up a try, and nothing more starts.
    fn on_interrupted(&mut self, i: usize, try_number: u32) -> Result<(), EngineError> {
        let task = &self.pipeline.tasks[i];
        self.exec.store.interrupt_try(
            self.run.id,
            &task.id,
            try_number,
            "interrupted: sluice was stopped (Ctrl-C) while this try ran",
        )?;
        self.max_tries[i] += 1;
        self.states[i] = TaskState::None;
        // The try may report before the loop sees the cancellation itself.
        self.stop_starting();
        let interrupted = Some("interrupted");
        self.progress
            .task_finished(&self.run, &task.id, TaskState::None, interrupted);
        self.report()
            .emit_lineage(i, try_number, EventType::Abort, interrupted);
        Ok(())
    }

    /// A try that ended by itself (or timed out): recorded with the task's next state, told,
    /// then the retry timer or the downstream tasks.
    fn on_try_ended(
        &mut self,
        i: usize,
        try_number: u32,
        took: Duration,
        v: Verdict,
        log: Option<&TaskLog>,
    ) -> Result<(), EngineError> {
        let (pipeline, task) = (self.pipeline, &self.pipeline.tasks[i]);
        let next_state = if v.outcome == TryOutcome::Success {
            TaskState::Success
        } else if v.retryable && try_number < self.max_tries[i] && !self.interrupted {
            TaskState::UpForRetry
        } else {
            TaskState::Failed
        };
        let delay = (next_state == TaskState::UpForRetry).then(|| {
            let jitter_key = format!("{}.{}.{}", pipeline.id, task.id, self.run.run_id);
            task.retry.delay_after(try_number, &jitter_key)
        });
        self.record_end(i, try_number, &v, next_state, delay)?;
        let error = v.error.as_deref();
        if let (Some(e), Some(log)) = (error, log) {
            log.line(format!("try {try_number} {}: {e}", v.outcome));
            if let Some(d) = delay {
                log.line(format!("retrying in {}", secs(d)));
            }
        }
        let failed_id = match next_state {
            TaskState::Failed => Some(self.dead_letter(i, try_number, &v)?),
            _ => None,
        };
        self.report()
            .alert(i, try_number, next_state, error, log, failed_id);
        if let (TaskState::Success, Some(rows), Some(share)) =
            (next_state, v.rows, pipeline.row_drop)
            && let Some(drop) = self.report().row_drop(i, rows, share)?
        {
            if let Some(log) = log {
                log.line(format!("warning: {drop}"));
            }
            self.report()
                .alert(i, try_number, next_state, Some(&drop), log, None);
        }
        self.states[i] = next_state;
        self.tell_try_ended(i, try_number, took, &v, next_state);
        if let Some(d) = delay {
            self.retry_after(i, d);
        }
        if next_state.is_finished() {
            self.on_task_finished(i)?;
        }
        Ok(())
    }

    /// Stores how the try ended and the task's next state, in one transaction.
    fn record_end(
        &self,
        i: usize,
        try_number: u32,
        v: &Verdict,
        next_state: TaskState,
        delay: Option<Duration>,
    ) -> Result<(), EngineError> {
        let end = TryEnd {
            outcome: v.outcome,
            error: v.error.as_deref(),
            rows: v.rows,
            rejected: v.rejected,
            watermark: v.watermark.as_deref(),
            next_state,
            next_retry_at: delay
                .map(|d| Utc::now() + chrono::Duration::from_std(d).unwrap_or_default()),
        };
        let task = &self.pipeline.tasks[i].id;
        Ok(self
            .exec
            .store
            .finish_try(self.run.id, task, try_number, &end)?)
    }

    /// Retries exhausted (or pointless): the task's context goes to the dead-letter store,
    /// where `sluice dlq replay` picks it up. Returns its id there.
    fn dead_letter(&self, i: usize, try_number: u32, v: &Verdict) -> Result<i64, EngineError> {
        let task = &self.pipeline.tasks[i];
        let config = self
            .exec
            .rendered_config(self.pipeline, &self.run, task, try_number);
        let error = v.error.as_deref().unwrap_or(v.outcome.as_str());
        Ok(self
            .exec
            .store
            .add_failed_task(self.run.id, &task.id, error, &config)?)
    }

    /// Metrics, the tracing line, progress and lineage of a try that ended.
    fn tell_try_ended(
        &self,
        i: usize,
        try_number: u32,
        took: Duration,
        v: &Verdict,
        next_state: TaskState,
    ) {
        let (pipeline, task) = (self.pipeline, &self.pipeline.tasks[i]);
        let retried = next_state == TaskState::UpForRetry;
        let (outcome, rows) = (v.outcome, v.rows);
        crate::metrics::try_finished(
            &pipeline.id,
            &task.id,
            task.kind,
            outcome,
            took,
            rows,
            retried,
        );
        match &v.error {
            Some(e) => {
                tracing::info!(pipeline = %pipeline.id, task = %task.id, try_number, state = %next_state, error = %e, "try {outcome}")
            }
            None => {
                tracing::debug!(pipeline = %pipeline.id, task = %task.id, try_number, rows, "try succeeded")
            }
        }
        let error = v.error.as_deref();
        self.progress
            .task_finished(&self.run, &task.id, next_state, error);
        let event = match outcome {
            TryOutcome::Success => EventType::Complete,
            _ => EventType::Fail,
        };
        self.report().emit_lineage(i, try_number, event, error);
    }

    /// Task `i` will not run again in this run: its downstream tasks are evaluated now.
    fn on_task_finished(&mut self, i: usize) -> Result<(), EngineError> {
        for d in &self.pipeline.tasks[i].downstream {
            self.evaluate(*d)?;
        }
        let now = Instant::now();
        for &r in &self.ready {
            self.readied_at[r].get_or_insert(now);
        }
        Ok(())
    }

    fn retry_after(&mut self, i: usize, wait: Duration) {
        let timer = self.pending.spawn(async move {
            tokio::time::sleep(wait).await;
            Event::RetryDue { task: i }
        });
        self.retry_timers.push(timer);
    }

    /// Applies task `i`'s trigger rule if it is waiting; a task that is skipped or marked
    /// upstream_failed passes the evaluation on to its own downstream tasks.
    fn evaluate(&mut self, i: usize) -> Result<(), EngineError> {
        let pipeline = self.pipeline;
        let mut stack = vec![i];
        while let Some(i) = stack.pop() {
            if self.states[i] != TaskState::None {
                continue;
            }
            let task = &pipeline.tasks[i];
            let upstream: Vec<TaskState> = task.upstream.iter().map(|&u| self.states[u]).collect();
            let state = match task.trigger_rule.evaluate(&upstream) {
                Decision::Wait => continue,
                Decision::Run => {
                    self.states[i] = TaskState::Scheduled;
                    self.ready.push_back(i);
                    continue;
                }
                Decision::Skip => TaskState::Skipped,
                Decision::UpstreamFailed => TaskState::UpstreamFailed,
            };
            self.exec
                .store
                .set_task_state(self.run.id, &task.id, state)?;
            self.states[i] = state;
            self.progress
                .task_finished(&self.run, &task.id, state, None);
            stack.extend(task.downstream.iter().rev());
        }
        Ok(())
    }
}

/// How a try that ended by itself (or timed out) is recorded.
struct Verdict {
    outcome: TryOutcome,
    /// Secrets masked.
    error: Option<String>,
    retryable: bool,
    rows: Option<u64>,
    rejected: Option<u64>,
    watermark: Option<String>,
}

impl Verdict {
    fn new(outcome: TryOutcome) -> Verdict {
        Verdict {
            outcome,
            error: None,
            retryable: false,
            rows: None,
            rejected: None,
            watermark: None,
        }
    }

    fn success(out: TaskOutput) -> Verdict {
        Verdict {
            rows: out.rows,
            rejected: out.rejected,
            watermark: out.watermark,
            ..Verdict::new(TryOutcome::Success)
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
