//! The task queue: how a scheduler hands tries to `sluice worker` processes through the
//! metadata database, with no broker besides it.
//!
//! A try is enqueued by the scheduler that owns its run, claimed by one worker with
//! `FOR UPDATE SKIP LOCKED` under a lease the worker renews, and answered with its result,
//! which the scheduler reads to decide what runs next. A worker that stops renewing (killed,
//! machine lost) has its lease expire: the try is answered `lost`, retryable, and counts as a
//! try. Only PostgreSQL serves workers; wake-ups travel by LISTEN/NOTIFY, with polling as the
//! fallback.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::db::{Conn, Dialect};
use crate::{Result, Store, StoreError, TryOutcome, parse_opt_ts, parse_ts, ts};

/// Channels the queue notifies: a try was enqueued; a try was answered.
pub const ENQUEUED: &str = "sluice_enqueued";
pub const ANSWERED: &str = "sluice_answered";

/// A try a worker claimed.
#[derive(Debug, Clone)]
pub struct Claim {
    pub id: i64,
    pub run: i64,
    pub task: String,
    pub try_number: u32,
    pub queue: String,
}

/// A worker's answer to a queued try (or the answer given for it when its lease expired).
#[derive(Debug, Clone)]
pub struct QueuedResult {
    /// Success, failed, timed_out, or lost.
    pub outcome: TryOutcome,
    pub error: Option<String>,
    pub retryable: bool,
    pub rows: Option<u64>,
    pub rejected: Option<u64>,
    pub watermark: Option<String>,
    pub worker: Option<String>,
    pub enqueued_at: DateTime<Utc>,
    pub claimed_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl QueuedResult {
    /// A result with nothing filled in, to build answers from.
    pub fn empty() -> QueuedResult {
        QueuedResult {
            outcome: TryOutcome::Failed,
            error: None,
            retryable: false,
            rows: None,
            rejected: None,
            watermark: None,
            worker: None,
            enqueued_at: Utc::now(),
            claimed_at: None,
            completed_at: None,
        }
    }
}

impl Store {
    fn postgres_only(&self, what: &str) -> Result<()> {
        match self.dialect() {
            Dialect::Postgres => Ok(()),
            Dialect::Sqlite => Err(StoreError::NeedsPostgres(what.to_string())),
        }
    }

    /// Records the start of a try and hands it to the workers of `queue`, in one transaction.
    /// Handing the same try again (a scheduler resuming) queues nothing more.
    pub fn start_queued_try(
        &self,
        run: i64,
        task: &str,
        try_number: u32,
        log_path: &str,
        queue: &str,
        priority: i64,
    ) -> Result<()> {
        self.postgres_only("handing tasks to workers")?;
        let now = ts(Utc::now());
        self.tx(|c| {
            crate::record_try_start(c, run, task, try_number, &now, log_path, std::process::id())?;
            c.execute(
                "INSERT INTO task_queue (run, task, try_number, queue, priority, state, enqueued_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6)
                 ON CONFLICT (run, task, try_number) DO NOTHING",
                params![run, task, try_number, queue, priority, &now],
            )?;
            notify(c, ENQUEUED, queue)
        })
    }

    /// Whether this try was handed to the workers (and so may still be running on one).
    pub fn is_enqueued(&self, run: i64, task: &str, try_number: u32) -> Result<bool> {
        if self.dialect() != Dialect::Postgres {
            return Ok(false);
        }
        Ok(self
            .conn()
            .query_opt(
                "SELECT 1 FROM task_queue WHERE run = ?1 AND task = ?2 AND try_number = ?3",
                params![run, task, try_number],
            )?
            .is_some())
    }

    /// Claims the queued try of highest priority (oldest first among equals) on one of
    /// `queues` for `worker`, under a lease of `lease`. Workers never wait on each other's
    /// claims: rows another worker is claiming are skipped.
    pub fn claim(&self, worker: &str, queues: &[String], lease: Duration) -> Result<Option<Claim>> {
        self.postgres_only("`sluice worker`")?;
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(lease).unwrap_or_default();
        self.tx(|c| {
            let row = c.query_opt(
                "UPDATE task_queue SET state = 'claimed', worker = ?1, lease_until = ?2, claimed_at = ?3
                 WHERE id = (SELECT id FROM task_queue
                             WHERE state = 'queued' AND queue = ANY(string_to_array(?4, ','))
                             ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING id, run, task, try_number, queue",
                params![worker, ts(until), ts(now), queues.join(",")],
            )?;
            let Some(row) = row else { return Ok(None) };
            let claim = Claim {
                id: row.int(0)?,
                run: row.int(1)?,
                task: row.text(2)?,
                try_number: row.uint(3)?,
                queue: row.text(4)?,
            };
            // The try starts now, on the worker: its timing excludes the wait in the queue.
            c.execute(
                "UPDATE task_tries SET started_at = ?4, pid = NULL
                 WHERE run = ?1 AND task = ?2 AND try_number = ?3",
                params![claim.run, &claim.task, claim.try_number, ts(now)],
            )?;
            Ok(Some(claim))
        })
    }

    /// Renews a claim's lease. False when the claim is no longer this worker's (its lease
    /// expired and the try was answered `lost`): the worker must stop the try.
    pub fn renew_lease(&self, claim: i64, worker: &str, lease: Duration) -> Result<bool> {
        let until = Utc::now() + chrono::Duration::from_std(lease).unwrap_or_default();
        Ok(self.conn().execute(
            "UPDATE task_queue SET lease_until = ?3 WHERE id = ?1 AND worker = ?2 AND state = 'claimed'",
            params![claim, worker, ts(until)],
        )? == 1)
    }

    /// Answers a claimed try. False when the claim was lost meanwhile (the answer is dropped:
    /// the try was already counted as lost and retried).
    pub fn answer(&self, claim: i64, worker: &str, result: &QueuedResult) -> Result<bool> {
        self.tx(|c| {
            let key = c
                .query_opt(
                    "SELECT run, task, try_number FROM task_queue WHERE id = ?1",
                    params![claim],
                )?
                .map(|r| Ok::<_, StoreError>(answer_key(r.int(0)?, &r.text(1)?, r.uint(2)?)))
                .transpose()?
                .unwrap_or_default();
            let n = c.execute(
                "UPDATE task_queue SET state = 'done', outcome = ?3, error = ?4, retryable = ?5,
                        rows = ?6, rejected = ?7, watermark = ?8, completed_at = ?9
                 WHERE id = ?1 AND worker = ?2 AND state = 'claimed'",
                params![
                    claim,
                    worker,
                    result.outcome,
                    result.error.as_deref(),
                    result.retryable,
                    result.rows.map(|r| r as i64),
                    result.rejected.map(|r| r as i64),
                    result.watermark.as_deref(),
                    ts(Utc::now())
                ],
            )?;
            notify(c, ANSWERED, &key)?;
            Ok(n == 1)
        })
    }

    /// Hands a claimed try back to the queue unanswered (its worker is stopping), for another
    /// worker to run under the same try number.
    pub fn release(&self, claim: i64, worker: &str) -> Result<bool> {
        self.tx(|c| {
            let n = c.execute(
                "UPDATE task_queue SET state = 'queued', worker = NULL, lease_until = NULL, claimed_at = NULL
                 WHERE id = ?1 AND worker = ?2 AND state = 'claimed'",
                params![claim, worker],
            )?;
            notify(c, ENQUEUED, "")?;
            Ok(n == 1)
        })
    }

    /// Answers `lost` every claim whose lease expired: its worker stopped renewing it.
    pub fn expire_leases(&self) -> Result<u64> {
        if self.dialect() != Dialect::Postgres {
            return Ok(0);
        }
        let now = ts(Utc::now());
        self.tx(|c| {
            let n = c.execute(
                "UPDATE task_queue SET state = 'done', outcome = ?2, retryable = 1, completed_at = ?1,
                        error = 'the worker ' || worker || ' stopped renewing its lease (killed or unreachable); the try is counted and retried'
                 WHERE state = 'claimed' AND lease_until < ?1",
                params![&now, TryOutcome::Lost],
            )?;
            if n > 0 {
                // No key: every waiter looks.
                notify(c, ANSWERED, "")?;
            }
            Ok(n)
        })
    }

    /// The answer to a queued try, once there is one.
    pub fn queued_result(
        &self,
        run: i64,
        task: &str,
        try_number: u32,
    ) -> Result<Option<QueuedResult>> {
        let row = self.conn().query_opt(
            "SELECT outcome, error, retryable, rows, rejected, watermark, worker, enqueued_at,
                    claimed_at, completed_at
             FROM task_queue WHERE run = ?1 AND task = ?2 AND try_number = ?3 AND state = 'done'",
            params![run, task, try_number],
        )?;
        row.map(|r| {
            Ok(QueuedResult {
                outcome: TryOutcome::parse(&r.text(0)?)?,
                error: r.opt_text(1)?,
                retryable: r.opt_int(2)?.unwrap_or(0) != 0,
                rows: r.opt_int(3)?.map(|v| v as u64),
                rejected: r.opt_int(4)?.map(|v| v as u64),
                watermark: r.opt_text(5)?,
                worker: r.opt_text(6)?,
                enqueued_at: parse_ts(&r.text(7)?)?,
                claimed_at: parse_opt_ts(r.opt_text(8)?)?,
                completed_at: parse_opt_ts(r.opt_text(9)?)?,
            })
        })
        .transpose()
    }

    /// Tries waiting for a worker (the scheduler's queue depth).
    pub fn queue_depth(&self) -> Result<u64> {
        if self.dialect() != Dialect::Postgres {
            return Ok(0);
        }
        Ok(self
            .conn()
            .query_one(
                "SELECT COUNT(*) FROM task_queue WHERE state = 'queued'",
                &[],
            )?
            .int(0)? as u64)
    }

    /// The PostgreSQL URL this store was opened with, for the listeners of notifications.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }
}

/// The payload of an answer's notification: which try was answered.
pub fn answer_key(run: i64, task: &str, try_number: u32) -> String {
    format!("{run}:{task}:{try_number}")
}

fn notify(c: &mut dyn Conn, channel: &str, payload: &str) -> Result<()> {
    c.query("SELECT pg_notify(?1, ?2)", params![channel, payload])?;
    Ok(())
}

/// The notifications of one channel: a wake-up for everyone, and each payload for those who
/// wait for a particular one (a run waiting on many tries queries only for the answered one).
/// An empty payload, or a reconnection, means "everyone look".
pub struct Notifications {
    wake: tokio::sync::Notify,
    payloads: tokio::sync::broadcast::Sender<String>,
}

impl Notifications {
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.wake.notified()
    }

    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.payloads.subscribe()
    }

    fn deliver(&self, payload: String) {
        self.wake.notify_waiters();
        let _ = self.payloads.send(payload);
    }
}

/// Listens on `channel` of the PostgreSQL database at `url`. Reconnects when the connection
/// drops (telling everyone to look, since notifications may have been missed). Needs a tokio
/// runtime.
pub async fn listen(url: &str, channel: &'static str) -> Result<Arc<Notifications>> {
    let target = sluice_connect::PgTarget::parse(url).map_err(|e| StoreError::Url {
        url: sluice_core::secrets::redact_uri_text(url),
        reason: e.to_string(),
    })?;
    let notes = Arc::new(Notifications {
        wake: tokio::sync::Notify::new(),
        payloads: tokio::sync::broadcast::channel(4096).0,
    });
    let first = subscribe(&target, channel, notes.clone()).await?;
    let again = notes.clone();
    tokio::spawn(async move {
        let mut session = first;
        loop {
            let _ = session.await;
            again.deliver(String::new());
            session = loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if let Ok(s) = subscribe(&target, channel, again.clone()).await {
                    break s;
                }
            };
        }
    });
    Ok(notes)
}

/// Connects, LISTENs, and returns the task that forwards notifications until the connection
/// ends.
async fn subscribe(
    target: &sluice_connect::PgTarget,
    channel: &str,
    notes: Arc<Notifications>,
) -> Result<tokio::task::JoinHandle<()>> {
    let (client, mut connection) = target
        .connect_raw()
        .await
        .map_err(|e| StoreError::Connect {
            url: target.target().to_string(),
            reason: e.to_string(),
        })?;
    let forward = tokio::spawn(async move {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    notes.deliver(n.payload().to_string())
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    client.batch_execute(&format!("LISTEN {channel}")).await?;
    // The client must outlive the LISTEN: keep it with the forwarding task.
    Ok(tokio::spawn(async move {
        let _client = client;
        let _ = forward.await;
    }))
}
