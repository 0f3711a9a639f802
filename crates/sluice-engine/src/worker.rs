//! `sluice worker`: takes tries from the metadata database's task queue, runs them, answers.
//!
//! A worker claims up to `concurrency` tries of its queues, each under a lease it renews every
//! third of the lease while the try runs. Asked to stop, it claims nothing more and lets its
//! tries finish; asked to abandon them, it stops them and hands them back to the queue
//! unanswered, for another worker to run under the same try number. Killed, it simply stops
//! renewing: its leases expire and the schedulers count those tries as lost and retry them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_core::Pipeline;
use sluice_store::{Claim, QueuedResult, StoreError, TryOutcome, db::Dialect};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::executor::{TryInput, TryResult, run_try};
use crate::{EngineError, Executor};

/// How often an idle worker looks at the queue when no notification woke it, and expires the
/// leases of dead workers.
const POLL: Duration = Duration::from_millis(500);

/// Finds a pipeline of the worker's project by id.
pub type PipelineLookup = dyn Fn(&str) -> Option<Arc<Pipeline>> + Send + Sync;

pub struct Worker {
    /// Runs the tries (its `dispatch` is ignored: a worker runs what it claims itself).
    pub exec: Executor,
    /// Names this worker in the queue and in messages (host:pid).
    pub name: String,
    pub queues: Vec<String>,
    pub concurrency: usize,
    pub lease: Duration,
    pub pipelines: Box<PipelineLookup>,
}

impl Worker {
    /// Works until `stop`, then lets the running tries finish; `abandon` stops them and hands
    /// them back.
    pub async fn run(
        self: Arc<Self>,
        stop: CancellationToken,
        abandon: CancellationToken,
    ) -> Result<(), EngineError> {
        let store = &self.exec.store;
        if store.dialect() != Dialect::Postgres {
            return Err(StoreError::NeedsPostgres("`sluice worker`".into()).into());
        }
        let enqueued = match store.url() {
            Some(url) => Some(sluice_store::listen(url, sluice_store::ENQUEUED).await?),
            None => None,
        };
        tracing::info!(worker = %self.name, queues = ?self.queues, concurrency = self.concurrency, "worker started");
        let mut running: JoinSet<()> = JoinSet::new();
        let mut expired_at = Instant::now() - POLL;
        loop {
            let notified = enqueued.as_ref().map(|n| n.notified());
            let mut notified = std::pin::pin!(notified);
            if let Some(n) = notified.as_mut().as_pin_mut() {
                n.enable();
            }
            if stop.is_cancelled() {
                if running.is_empty() {
                    tracing::info!(worker = %self.name, "worker stopped");
                    return Ok(());
                }
            } else {
                while running.len() < self.concurrency {
                    match store.claim(&self.name, &self.queues, self.lease) {
                        Ok(Some(claim)) => {
                            running.spawn(self.clone().serve(claim, abandon.clone()));
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(worker = %self.name, "cannot claim a try: {e}");
                            break;
                        }
                    }
                }
            }
            if expired_at.elapsed() >= POLL {
                expired_at = Instant::now();
                if let Err(e) = store.expire_leases() {
                    tracing::warn!("cannot expire the leases of lost workers: {e}");
                }
            }
            tokio::select! {
                _ = async {
                    match notified.as_mut().as_pin_mut() {
                        Some(n) => n.await,
                        None => std::future::pending().await,
                    }
                } => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.cancelled(), if !stop.is_cancelled() => {}
            }
        }
    }

    /// Runs one claimed try and answers it (or hands it back when abandoned).
    async fn serve(self: Arc<Self>, claim: Claim, abandon: CancellationToken) {
        let store = &self.exec.store;
        tracing::debug!(worker = %self.name, task = %claim.task, run = claim.run, try_number = claim.try_number, "claimed");
        let answered = match self.execute(&claim, &abandon).await {
            Some(result) => store.answer(claim.id, &self.name, &result),
            None => store.release(claim.id, &self.name),
        };
        match answered {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(worker = %self.name, task = %claim.task, "this worker's lease on the try expired before it answered; the try was counted as lost and retried")
            }
            Err(e) => {
                tracing::warn!(worker = %self.name, task = %claim.task, "cannot answer the try: {e}")
            }
        }
    }

    /// Runs the try, renewing its lease. None: abandoned, to be handed back.
    async fn execute(&self, claim: &Claim, abandon: &CancellationToken) -> Option<QueuedResult> {
        let input = match self.prepare(claim) {
            Ok(input) => input,
            Err(message) => return Some(failed(message, true)),
        };
        let (result, log) = self.run_leased(claim, input, abandon).await;
        let answer = match result {
            TryResult::Done(Ok(out)) => QueuedResult {
                outcome: TryOutcome::Success,
                rows: out.rows,
                rejected: out.rejected,
                watermark: out.watermark,
                ..QueuedResult::empty()
            },
            TryResult::Done(Err(e)) => failed(self.exec.redactor.redact(&e.message), e.retryable),
            TryResult::TimedOut(after) => QueuedResult {
                outcome: TryOutcome::TimedOut,
                error: Some(format!("timed out (timeout: {}s)", after.as_secs_f64())),
                retryable: true,
                ..QueuedResult::empty()
            },
            TryResult::Interrupted | TryResult::Detached => {
                if abandon.is_cancelled() {
                    if let Some(log) = &log {
                        log.line(format!("handed back to the queue by worker {}", self.name));
                    }
                    return None;
                }
                failed("stopped: this worker lost its lease".into(), true)
            }
        };
        if let (Some(log), Some(error)) = (&log, &answer.error) {
            log.line(format!(
                "try {} {}: {error}",
                claim.try_number, answer.outcome
            ));
        }
        Some(answer)
    }

    /// What the claimed try needs, from this worker's project; else why it cannot run here.
    fn prepare(&self, claim: &Claim) -> Result<TryInput, String> {
        let run =
            (self.exec.store.run(claim.run)).map_err(|e| format!("cannot read the run: {e}"))?;
        let Some(pipeline) = (self.pipelines)(&run.pipeline) else {
            return Err(format!(
                "pipeline `{}` is not in the project of worker {}\n  hint: deploy the same project folder to every worker",
                run.pipeline, self.name
            ));
        };
        let Some(i) = pipeline.task_index(&claim.task) else {
            return Err(format!(
                "pipeline `{}` of worker {} has no task `{}`\n  hint: deploy the same project folder to every worker",
                run.pipeline, self.name, claim.task
            ));
        };
        let log_path = self.exec.log_path(&run, &claim.task, claim.try_number);
        (self.exec)
            .prepare_try(&pipeline, &run, i, claim.try_number, log_path)
            .map_err(|e| e.to_string())
    }

    /// Runs the try while renewing its lease every third of it; stops it when the lease is lost
    /// (another worker may run it now: this one must not go on) or when abandoned.
    async fn run_leased(
        &self,
        claim: &Claim,
        input: TryInput,
        abandon: &CancellationToken,
    ) -> (TryResult, Option<sluice_core::TaskLog>) {
        let store = &self.exec.store;
        let stop = CancellationToken::new();
        let mut work = std::pin::pin!(run_try(input, stop.clone()));
        let mut beat = tokio::time::interval(self.lease / 3);
        beat.tick().await;
        loop {
            tokio::select! {
                r = &mut work => return r,
                _ = beat.tick() => match store.renew_lease(claim.id, &self.name, self.lease) {
                    Ok(true) => {}
                    Ok(false) => stop.cancel(),
                    Err(e) => tracing::warn!(worker = %self.name, "cannot renew a lease: {e}"),
                },
                _ = abandon.cancelled(), if !stop.is_cancelled() => stop.cancel(),
            }
        }
    }
}

/// A failed answer.
fn failed(message: String, retryable: bool) -> QueuedResult {
    QueuedResult {
        outcome: TryOutcome::Failed,
        error: Some(message),
        retryable,
        ..QueuedResult::empty()
    }
}
