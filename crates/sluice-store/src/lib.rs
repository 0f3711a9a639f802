//! The metadata store: runs, task instances and every try, in SQLite or PostgreSQL.
//!
//! **Invariant:** every state change of a run or a task goes through this store, in a
//! transaction, before the executor acts on it, so a process killed at any moment leaves a
//! consistent record that the next `sluice run` resumes from.
//!
//! SQLite runs in WAL mode with `synchronous=NORMAL`: a committed transaction survives the
//! process being killed (`kill -9`); only an operating-system crash may lose the last commits.

use std::path::Path;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

#[macro_use]
pub mod db;
// After `db`, whose `params!` macro the modules below use.
mod access;
mod outcome;
mod queue;

pub use access::{AuditEntry, Role, SessionRecord, TokenRecord};
pub use outcome::TryOutcome;
pub use queue::{ANSWERED, Claim, ENQUEUED, Notifications, QueuedResult, answer_key, listen};

use db::{Conn, Dialect, Value};
use serde::Serialize;
use sluice_core::{DataInterval, DeadLetter, RunState, SchemaChange, TaskState};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("metadata database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("metadata database error (PostgreSQL): {0}")]
    Postgres(String),
    #[error(
        "cannot connect to the metadata database {url}: {reason}\n  hint: check `metadata:` in sluice.yaml or SLUICE_METADATA, and that the server accepts connections"
    )]
    Connect { url: String, reason: String },
    #[error(
        "`{url}` is not a PostgreSQL URL: {reason}\n  hint: write it as postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
    )]
    Url { url: String, reason: String },
    #[error(
        "{0} needs the metadata on PostgreSQL\n  hint: set `metadata: postgres://…` in sluice.yaml (or SLUICE_METADATA) for the scheduler and every worker"
    )]
    NeedsPostgres(String),
    #[error("cannot create the metadata folder {path}: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the metadata database holds a value it cannot read: {0}; this is a bug in Sluice, please report it"
    )]
    Corrupt(String),
    #[error(
        "the metadata database was written by a newer Sluice (schema version {found}, this one knows {known}); upgrade sluice"
    )]
    TooNew { found: i64, known: i64 },
    /// What was asked contradicts what is stored (a name in use).
    #[error("{0}")]
    Conflict(String),
    #[error("the system gave no randomness for a secret: {0}")]
    Randomness(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// How a run came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunType {
    Manual,
    Scheduled,
    Backfill,
}

impl RunType {
    pub fn as_str(self) -> &'static str {
        match self {
            RunType::Manual => "manual",
            RunType::Scheduled => "scheduled",
            RunType::Backfill => "backfill",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    #[serde(skip)]
    pub id: i64,
    pub pipeline: String,
    pub run_id: String,
    pub run_type: String,
    pub logical_date: DateTime<Utc>,
    pub data_interval_start: DateTime<Utc>,
    pub data_interval_end: DateTime<Utc>,
    pub state: RunState,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// A backfill started through the server; its progress is read from its runs.
#[derive(Debug, Clone, Serialize)]
pub struct BackfillRecord {
    pub id: i64,
    pub pipeline: String,
    /// First and last logical date, YYYY-MM-DD, inclusive.
    pub from: String,
    pub to: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskInstanceRecord {
    pub task: String,
    pub state: TaskState,
    /// Tries started so far.
    pub tries: u32,
    /// The try number after which no retry is made.
    pub max_tries: u32,
    pub next_retry_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TryRecord {
    pub try_number: u32,
    /// Running, success, failed, timed_out or interrupted (a lost try is recorded as failed).
    pub outcome: TryOutcome,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    pub log_path: Option<String>,
    pub rows: Option<i64>,
    /// Rows set aside: quarantined or sent to the dead-letter store.
    pub rejected: Option<i64>,
    pub pid: Option<i64>,
}

/// How a try ended.
#[derive(Debug, Clone)]
pub struct TryEnd<'a> {
    pub outcome: TryOutcome,
    pub error: Option<&'a str>,
    pub rows: Option<u64>,
    pub rejected: Option<u64>,
    /// A high-water mark to commit when the run succeeds.
    pub watermark: Option<&'a str>,
    /// The task's state afterwards.
    pub next_state: TaskState,
    pub next_retry_at: Option<DateTime<Utc>>,
}

const MIGRATIONS: &[&str] = &[
    // 1: runs, task instances, tries.
    "CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        pipeline TEXT NOT NULL,
        run_id TEXT NOT NULL,
        run_type TEXT NOT NULL,
        logical_date TEXT NOT NULL,
        interval_start TEXT NOT NULL,
        interval_end TEXT NOT NULL,
        state TEXT NOT NULL,
        created_at TEXT NOT NULL,
        started_at TEXT,
        ended_at TEXT,
        UNIQUE (pipeline, logical_date)
     );
     CREATE TABLE task_instances (
        run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        task TEXT NOT NULL,
        state TEXT NOT NULL,
        tries INTEGER NOT NULL DEFAULT 0,
        max_tries INTEGER NOT NULL,
        next_retry_at TEXT,
        started_at TEXT,
        ended_at TEXT,
        PRIMARY KEY (run, task)
     );
     CREATE TABLE task_tries (
        run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        task TEXT NOT NULL,
        try_number INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        duration_ms INTEGER,
        error TEXT,
        log_path TEXT,
        rows INTEGER,
        pid INTEGER,
        PRIMARY KEY (run, task, try_number)
     );
     CREATE INDEX runs_by_pipeline ON runs (pipeline, logical_date);",
    // 2: incremental high-water marks, the dead-letter store, applied schema changes.
    "ALTER TABLE task_tries ADD COLUMN watermark TEXT;
     CREATE TABLE watermarks (
        pipeline TEXT NOT NULL,
        task TEXT NOT NULL,
        value TEXT NOT NULL,
        run INTEGER REFERENCES runs(id) ON DELETE SET NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (pipeline, task)
     );
     CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY,
        run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        task TEXT NOT NULL,
        try_number INTEGER NOT NULL,
        source TEXT NOT NULL,
        line INTEGER,
        row_number INTEGER,
        reason TEXT NOT NULL,
        record TEXT NOT NULL,
        created_at TEXT NOT NULL
     );
     CREATE INDEX dead_letters_by_run ON dead_letters (run, task);
     CREATE TABLE schema_changes (
        id INTEGER PRIMARY KEY,
        run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        task TEXT NOT NULL,
        try_number INTEGER NOT NULL,
        target TEXT NOT NULL,
        change TEXT NOT NULL,
        column_name TEXT NOT NULL,
        from_type TEXT,
        to_type TEXT NOT NULL,
        applied_at TEXT NOT NULL
     );",
    // 3: pipelines paused by an operator (`sluice serve` does not schedule them).
    "CREATE TABLE pipeline_flags (
        pipeline TEXT PRIMARY KEY,
        paused INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT NOT NULL
     );",
    // 4: backfills started through the server, kept so their progress survives a restart.
    "CREATE TABLE backfills (
        id INTEGER PRIMARY KEY,
        pipeline TEXT NOT NULL,
        from_date TEXT NOT NULL,
        to_date TEXT NOT NULL,
        created_at TEXT NOT NULL
     );",
    // 5: tasks that exhausted their retries, with what is needed to understand and replay them.
    "CREATE TABLE failed_tasks (
        id INTEGER PRIMARY KEY,
        run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        task TEXT NOT NULL,
        error TEXT NOT NULL,
        config TEXT NOT NULL,
        created_at TEXT NOT NULL,
        replayed_at TEXT
     );",
    // 6: rows a try set aside (quarantined or dead-lettered), beside the rows it processed.
    "ALTER TABLE task_tries ADD COLUMN rejected INTEGER;",
    // 7: tries handed to `sluice worker`s: claimed under a lease, answered with their result.
    "CREATE TABLE task_queue (
        id INTEGER PRIMARY KEY,
        run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        task TEXT NOT NULL,
        try_number INTEGER NOT NULL,
        queue TEXT NOT NULL,
        priority INTEGER NOT NULL,
        state TEXT NOT NULL,
        worker TEXT,
        lease_until TEXT,
        enqueued_at TEXT NOT NULL,
        claimed_at TEXT,
        completed_at TEXT,
        outcome TEXT,
        error TEXT,
        retryable INTEGER,
        rows INTEGER,
        rejected INTEGER,
        watermark TEXT,
        UNIQUE (run, task, try_number)
     );
     CREATE INDEX task_queue_ready ON task_queue (state, queue, priority);",
    // 8: who may use the server (tokens, browser sessions) and what was changed through it.
    "CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        pipelines TEXT NOT NULL,
        secret_hash TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        revoked_at TEXT
     );
     CREATE TABLE sessions (
        id_hash TEXT PRIMARY KEY,
        principal TEXT NOT NULL,
        role TEXT NOT NULL,
        pipelines TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
     );
     CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        principal TEXT NOT NULL,
        address TEXT NOT NULL,
        action TEXT NOT NULL,
        parameters TEXT NOT NULL,
        status INTEGER NOT NULL
     );",
];

/// A bad record in the dead-letter store.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterRecord {
    pub id: i64,
    pub pipeline: String,
    pub run_id: String,
    pub task: String,
    pub try_number: u32,
    pub source: String,
    pub line: Option<i64>,
    pub row: Option<i64>,
    pub reason: String,
    pub record: String,
    pub created_at: DateTime<Utc>,
}

/// A task that exhausted its retries: the dead-letter store's entry for a task.
#[derive(Debug, Clone, Serialize)]
pub struct FailedTaskRecord {
    pub id: i64,
    pub pipeline: String,
    pub run_id: String,
    pub logical_date: DateTime<Utc>,
    pub task: String,
    pub error: String,
    /// The task's configuration as rendered for that run, secrets masked.
    pub config: serde_json::Value,
    pub tries: Vec<TryRecord>,
    pub created_at: DateTime<Utc>,
    pub replayed_at: Option<DateTime<Utc>>,
}

/// A schema change applied to a target, as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct SchemaChangeRecord {
    pub task: String,
    pub try_number: u32,
    pub target: String,
    pub change: String,
    pub column: String,
    pub from_type: Option<String>,
    pub to_type: String,
    pub applied_at: DateTime<Utc>,
}

pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_ts(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp `{s}`: {e}")))
}

fn parse_opt_ts(s: Option<String>) -> Result<Option<DateTime<Utc>>> {
    s.as_deref().map(parse_ts).transpose()
}

fn parse_state<T: FromStr<Err = String>>(s: &str) -> Result<T> {
    s.parse().map_err(StoreError::Corrupt)
}

pub struct Store {
    conn: Mutex<Box<dyn Conn>>,
    /// The PostgreSQL URL, for connections of its own (notifications).
    url: Option<String>,
}

/// Where the metadata lives, as configured (`metadata:` or `SLUICE_METADATA`).
pub enum Location<'a> {
    Sqlite(&'a Path),
    Postgres(&'a str),
}

impl Store {
    /// Opens the metadata database at `location` and brings its schema up to date.
    pub fn open_at(location: Location<'_>) -> Result<Store> {
        match location {
            Location::Sqlite(path) => Store::open(path),
            Location::Postgres(url) => Store::connect(url),
        }
    }

    /// Opens (creating if needed) a SQLite metadata database.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Folder {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Store::with(Box::new(db::Sqlite(conn)), None)
    }

    /// Connects to a PostgreSQL metadata database (`postgres://…`), shared by every scheduler
    /// and worker that names it.
    pub fn connect(url: &str) -> Result<Store> {
        Store::with(Box::new(db::Postgres::connect(url)?), Some(url.to_string()))
    }

    fn with(conn: Box<dyn Conn>, url: Option<String>) -> Result<Store> {
        let store = Store {
            conn: Mutex::new(conn),
            url,
        };
        store.migrate()?;
        Ok(store)
    }

    pub fn dialect(&self) -> Dialect {
        self.conn().dialect()
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Box<dyn Conn>> {
        // A panic while holding the lock leaves the database consistent (the open transaction,
        // if any, is rolled back by `tx`), so the poisoned guard is safe to reuse.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `work` in one transaction: committed when it returns Ok, rolled back otherwise.
    fn tx<T>(&self, work: impl FnOnce(&mut dyn Conn) -> Result<T>) -> Result<T> {
        let mut conn = self.conn();
        let begin = match conn.dialect() {
            // Take the write lock up front: a read-then-write transaction cannot then fail
            // half-way on a busy database.
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        };
        conn.batch(begin)?;
        match work(&mut **conn) {
            Ok(v) => match conn.batch("COMMIT") {
                Ok(()) => Ok(v),
                Err(e) => {
                    let _ = conn.batch("ROLLBACK");
                    Err(e)
                }
            },
            Err(e) => {
                let _ = conn.batch("ROLLBACK");
                Err(e)
            }
        }
    }

    fn migrate(&self) -> Result<()> {
        let known = MIGRATIONS.len() as i64;
        let dialect = self.dialect();
        self.tx(|c| {
            let version = match dialect {
                Dialect::Sqlite => c.query_one("PRAGMA user_version", &[])?.int(0)?,
                Dialect::Postgres => {
                    // Schedulers and workers starting together migrate one at a time.
                    c.query("SELECT pg_advisory_xact_lock(?1)", params![MIGRATION_LOCK])?;
                    c.batch("CREATE TABLE IF NOT EXISTS sluice_schema (version BIGINT NOT NULL)")?;
                    c.query_one("SELECT COALESCE(MAX(version), 0) FROM sluice_schema", &[])?
                        .int(0)?
                }
            };
            if version > known {
                return Err(StoreError::TooNew {
                    found: version,
                    known,
                });
            }
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
                match dialect {
                    Dialect::Sqlite => c.batch(sql)?,
                    Dialect::Postgres => c.batch(&db::postgres_ddl(sql))?,
                }
                let v = (i + 1) as i64;
                match dialect {
                    Dialect::Sqlite => c.batch(&format!("PRAGMA user_version = {v}"))?,
                    Dialect::Postgres => {
                        c.execute("DELETE FROM sluice_schema", &[])?;
                        c.execute(
                            "INSERT INTO sluice_schema (version) VALUES (?1)",
                            params![v],
                        )?;
                    }
                }
            }
            Ok(())
        })
    }

    /// Finds the run of `pipeline` at this interval's logical date, or creates it with its task
    /// instances. Tasks added to the pipeline since the run was created get an instance too.
    /// Schedulers racing to create the same run create it once (the unique key decides).
    pub fn ensure_run(
        &self,
        pipeline: &str,
        interval: &DataInterval,
        run_type: RunType,
        tasks: &[(&str, u32)],
    ) -> Result<(RunRecord, bool)> {
        let logical = ts(interval.logical_date());
        self.tx(|c| {
            let run_id = format!(
                "{}__{}",
                run_type.as_str(),
                interval
                    .logical_date()
                    .to_rfc3339_opts(SecondsFormat::Secs, false)
            );
            let inserted = c.query_opt(
                "INSERT INTO runs (pipeline, run_id, run_type, logical_date, interval_start, interval_end, state, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7)
                 ON CONFLICT (pipeline, logical_date) DO NOTHING RETURNING id",
                params![
                    pipeline,
                    run_id,
                    run_type.as_str(),
                    &logical,
                    ts(interval.start),
                    ts(interval.end),
                    ts(Utc::now())
                ],
            )?;
            let (id, created) = match inserted {
                Some(row) => (row.int(0)?, true),
                None => (
                    c.query_one(
                        "SELECT id FROM runs WHERE pipeline = ?1 AND logical_date = ?2",
                        params![pipeline, &logical],
                    )?
                    .int(0)?,
                    false,
                ),
            };
            for (task, max_tries) in tasks {
                c.execute(
                    "INSERT INTO task_instances (run, task, state, max_tries) VALUES (?1, ?2, 'none', ?3)
                     ON CONFLICT (run, task) DO NOTHING",
                    params![id, *task, *max_tries],
                )?;
            }
            Ok((read_run(c, id)?, created))
        })
    }

    pub fn run(&self, id: i64) -> Result<RunRecord> {
        read_run(&mut **self.conn(), id)
    }

    pub fn find_run(
        &self,
        pipeline: &str,
        logical_date: DateTime<Utc>,
    ) -> Result<Option<RunRecord>> {
        let mut c = self.conn();
        let row = c.query_opt(
            "SELECT id FROM runs WHERE pipeline = ?1 AND logical_date = ?2",
            params![pipeline, ts(logical_date)],
        )?;
        row.map(|r| read_run(&mut **c, r.int(0)?)).transpose()
    }

    /// The latest scheduled run of a pipeline (by logical date): where its scheduler left off.
    pub fn latest_scheduled(&self, pipeline: &str) -> Result<Option<RunRecord>> {
        let mut c = self.conn();
        let row = c.query_opt(
            "SELECT id FROM runs WHERE pipeline = ?1 AND run_type = 'scheduled'
             ORDER BY logical_date DESC LIMIT 1",
            params![pipeline],
        )?;
        row.map(|r| read_run(&mut **c, r.int(0)?)).transpose()
    }

    /// Runs not finished (queued or running), oldest first: what a restarted scheduler resumes.
    pub fn unfinished_runs(&self) -> Result<Vec<RunRecord>> {
        self.runs_where(
            "SELECT id FROM runs WHERE state IN ('queued', 'running') ORDER BY logical_date, id",
            &[],
        )
    }

    fn runs_where(&self, sql: &str, params: &[Value]) -> Result<Vec<RunRecord>> {
        let mut c = self.conn();
        let ids = c.query(sql, params)?;
        ids.iter().map(|r| read_run(&mut **c, r.int(0)?)).collect()
    }

    /// Records a backfill of `pipeline` over logical dates `from`..=`to` (YYYY-MM-DD).
    pub fn add_backfill(&self, pipeline: &str, from: &str, to: &str) -> Result<BackfillRecord> {
        let now = Utc::now();
        let id = self
            .conn()
            .query_one(
                "INSERT INTO backfills (pipeline, from_date, to_date, created_at) VALUES (?1, ?2, ?3, ?4)
                 RETURNING id",
                params![pipeline, from, to, ts(now)],
            )?
            .int(0)?;
        Ok(BackfillRecord {
            id,
            pipeline: pipeline.to_string(),
            from: from.to_string(),
            to: to.to_string(),
            created_at: now,
        })
    }

    /// Backfills, newest first (all pipelines when `pipeline` is None).
    pub fn backfills(&self, pipeline: Option<&str>) -> Result<Vec<BackfillRecord>> {
        let rows = self.conn().query(
            "SELECT id, pipeline, from_date, to_date, created_at FROM backfills
             WHERE CAST(?1 AS TEXT) IS NULL OR pipeline = ?1 ORDER BY id DESC",
            params![pipeline],
        )?;
        rows.iter()
            .map(|r| {
                Ok(BackfillRecord {
                    id: r.int(0)?,
                    pipeline: r.text(1)?,
                    from: r.text(2)?,
                    to: r.text(3)?,
                    created_at: parse_ts(&r.text(4)?)?,
                })
            })
            .collect()
    }

    /// The states of `pipeline`'s runs at these logical dates (None: no run yet).
    pub fn run_states(
        &self,
        pipeline: &str,
        dates: &[DateTime<Utc>],
    ) -> Result<Vec<Option<RunState>>> {
        let mut c = self.conn();
        dates
            .iter()
            .map(|d| {
                c.query_opt(
                    "SELECT state FROM runs WHERE pipeline = ?1 AND logical_date = ?2",
                    params![pipeline, ts(*d)],
                )?
                .map(|r| parse_state(&r.text(0)?))
                .transpose()
            })
            .collect()
    }

    pub fn set_paused(&self, pipeline: &str, paused: bool) -> Result<()> {
        self.conn().execute(
            "INSERT INTO pipeline_flags (pipeline, paused, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (pipeline) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at",
            params![pipeline, paused, ts(Utc::now())],
        )?;
        Ok(())
    }

    /// The pipelines an operator paused.
    pub fn paused(&self) -> Result<std::collections::BTreeSet<String>> {
        self.conn()
            .query("SELECT pipeline FROM pipeline_flags WHERE paused = 1", &[])?
            .iter()
            .map(|r| r.text(0))
            .collect()
    }

    /// The latest runs of a pipeline, newest logical date first.
    pub fn runs(&self, pipeline: &str, limit: usize) -> Result<Vec<RunRecord>> {
        self.runs_where(
            "SELECT id FROM runs WHERE pipeline = ?1 ORDER BY logical_date DESC LIMIT ?2",
            params![pipeline, limit],
        )
    }

    /// Sets a run's state. A run that succeeds commits its tasks' pending high-water marks in
    /// the same transaction: a mark advances only when everything downstream of it loaded.
    pub fn set_run_state(&self, run: i64, state: RunState) -> Result<()> {
        let now = ts(Utc::now());
        self.tx(|c| {
            match state {
                RunState::Running => c.execute(
                    "UPDATE runs SET state = ?2, started_at = COALESCE(started_at, ?3), ended_at = NULL WHERE id = ?1",
                    params![run, state.as_str(), &now],
                )?,
                RunState::Success | RunState::Failed => c.execute(
                    "UPDATE runs SET state = ?2, ended_at = ?3 WHERE id = ?1",
                    params![run, state.as_str(), &now],
                )?,
                RunState::Queued => c.execute(
                    "UPDATE runs SET state = ?2, ended_at = NULL WHERE id = ?1",
                    params![run, state.as_str()],
                )?,
            };
            if state == RunState::Success {
                c.execute(
                    "INSERT INTO watermarks (pipeline, task, value, run, updated_at)
                     SELECT r.pipeline, t.task, t.watermark, r.id, ?2
                     FROM task_tries t JOIN runs r ON r.id = t.run
                     WHERE t.run = ?1 AND t.outcome = ?3 AND t.watermark IS NOT NULL
                       AND t.try_number = (SELECT MAX(try_number) FROM task_tries l
                                           WHERE l.run = t.run AND l.task = t.task AND l.outcome = ?3)
                     ON CONFLICT (pipeline, task) DO UPDATE SET value = excluded.value, run = excluded.run,
                        updated_at = excluded.updated_at",
                    params![run, &now, TryOutcome::Success],
                )?;
            }
            Ok(())
        })
    }

    /// The task states of `pipeline`'s latest `limit` runs (by logical date), in one query: the
    /// grid of the web UI. (run id, task, state) in no particular order.
    pub fn grid(&self, pipeline: &str, limit: usize) -> Result<Vec<(i64, String, TaskState)>> {
        let rows = self.conn().query(
            "SELECT t.run, t.task, t.state FROM task_instances t
             JOIN (SELECT id FROM runs WHERE pipeline = ?1 ORDER BY logical_date DESC LIMIT ?2) r
               ON r.id = t.run",
            params![pipeline, limit],
        )?;
        rows.iter()
            .map(|r| Ok((r.int(0)?, r.text(1)?, parse_state(&r.text(2)?)?)))
            .collect()
    }

    pub fn task_instances(&self, run: i64) -> Result<Vec<TaskInstanceRecord>> {
        let rows = self.conn().query(
            "SELECT task, state, tries, max_tries, next_retry_at, started_at, ended_at
             FROM task_instances WHERE run = ?1 ORDER BY task",
            params![run],
        )?;
        rows.iter()
            .map(|r| {
                Ok(TaskInstanceRecord {
                    task: r.text(0)?,
                    state: parse_state(&r.text(1)?)?,
                    tries: r.uint(2)?,
                    max_tries: r.uint(3)?,
                    next_retry_at: parse_opt_ts(r.opt_text(4)?)?,
                    started_at: parse_opt_ts(r.opt_text(5)?)?,
                    ended_at: parse_opt_ts(r.opt_text(6)?)?,
                })
            })
            .collect()
    }

    /// Sets a task's state without a try (scheduled, skipped, upstream_failed, none).
    pub fn set_task_state(&self, run: i64, task: &str, state: TaskState) -> Result<()> {
        let ended = state.is_finished().then(|| ts(Utc::now()));
        self.conn().execute(
            "UPDATE task_instances SET state = ?3, ended_at = ?4 WHERE run = ?1 AND task = ?2",
            params![run, task, state.as_str(), ended],
        )?;
        Ok(())
    }

    /// Records the start of try `try_number` and marks the task running, in one transaction.
    pub fn start_try(
        &self,
        run: i64,
        task: &str,
        try_number: u32,
        log_path: &str,
        pid: u32,
    ) -> Result<DateTime<Utc>> {
        let now = Utc::now();
        self.tx(|c| record_try_start(c, run, task, try_number, &ts(now), log_path, pid))?;
        Ok(now)
    }

    /// Records how a try ended and the task's next state, in one transaction.
    pub fn finish_try(
        &self,
        run: i64,
        task: &str,
        try_number: u32,
        end: &TryEnd<'_>,
    ) -> Result<()> {
        let now = Utc::now();
        self.tx(|c| {
            let started = c
                .query_opt(
                    "SELECT started_at FROM task_tries WHERE run = ?1 AND task = ?2 AND try_number = ?3",
                    params![run, task, try_number],
                )?
                .map(|r| r.text(0))
                .transpose()?;
            let duration_ms = started
                .map(|s| parse_ts(&s))
                .transpose()?
                .map(|s| (now - s).num_milliseconds());
            c.execute(
                "UPDATE task_tries SET outcome = ?4, ended_at = ?5, error = ?6, rows = ?7, watermark = ?8,
                        rejected = ?9, duration_ms = ?10
                 WHERE run = ?1 AND task = ?2 AND try_number = ?3",
                params![
                    run,
                    task,
                    try_number,
                    end.outcome,
                    ts(now),
                    end.error,
                    end.rows.map(|r| r as i64),
                    end.watermark,
                    end.rejected.map(|r| r as i64),
                    duration_ms
                ],
            )?;
            c.execute(
                "UPDATE task_instances SET state = ?3, next_retry_at = ?4, ended_at = ?5 WHERE run = ?1 AND task = ?2",
                params![
                    run,
                    task,
                    end.next_state.as_str(),
                    end.next_retry_at.map(ts),
                    end.next_state.is_finished().then(|| ts(now))
                ],
            )?;
            Ok(())
        })
    }

    /// The committed high-water mark of a task.
    pub fn watermark(&self, pipeline: &str, task: &str) -> Result<Option<String>> {
        self.conn()
            .query_opt(
                "SELECT value FROM watermarks WHERE pipeline = ?1 AND task = ?2",
                params![pipeline, task],
            )?
            .map(|r| r.text(0))
            .transpose()
    }

    pub fn add_dead_letters(
        &self,
        run: i64,
        task: &str,
        try_number: u32,
        records: &[DeadLetter],
    ) -> Result<()> {
        let now = ts(Utc::now());
        self.tx(|c| {
            for d in records {
                c.execute(
                    "INSERT INTO dead_letters (run, task, try_number, source, line, row_number, reason, record, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        run,
                        task,
                        try_number,
                        &d.source,
                        d.line.map(|v| v as i64),
                        d.row.map(|v| v as i64),
                        &d.reason,
                        &d.record,
                        &now
                    ],
                )?;
            }
            Ok(())
        })
    }

    /// Records a task that exhausted its retries (its tries are read from the run when shown).
    pub fn add_failed_task(
        &self,
        run: i64,
        task: &str,
        error: &str,
        config: &serde_json::Value,
    ) -> Result<i64> {
        self.conn()
            .query_one(
                "INSERT INTO failed_tasks (run, task, error, config, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 RETURNING id",
                params![run, task, error, config.to_string(), ts(Utc::now())],
            )?
            .int(0)
    }

    /// Failed tasks, newest first (of one pipeline when given).
    pub fn failed_tasks(
        &self,
        pipeline: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FailedTaskRecord>> {
        let ids = self.conn().query(
            "SELECT f.id FROM failed_tasks f JOIN runs r ON r.id = f.run
             WHERE CAST(?1 AS TEXT) IS NULL OR r.pipeline = ?1 ORDER BY f.id DESC LIMIT ?2",
            params![pipeline, limit],
        )?;
        ids.iter()
            .map(|r| {
                self.failed_task(r.int(0)?)?
                    .ok_or_else(|| StoreError::Corrupt("a failed task vanished".into()))
            })
            .collect()
    }

    pub fn failed_task(&self, id: i64) -> Result<Option<FailedTaskRecord>> {
        // Replayed: a later try of the task in its run succeeded (however it was re-run); a
        // replay that fails again leaves the entry as it was. `replayed_at` holds the marks of
        // Sluice versions that set it when a replay started.
        let row = self.conn().query_opt(
            "SELECT f.run, f.task, f.error, f.config, f.created_at,
                    COALESCE(f.replayed_at, (
                        SELECT MIN(t.ended_at) FROM task_tries t
                        WHERE t.run = f.run AND t.task = f.task AND t.outcome = ?2
                          AND t.ended_at > f.created_at))
             FROM failed_tasks f WHERE f.id = ?1",
            params![id, TryOutcome::Success],
        )?;
        let Some(row) = row else {
            return Ok(None);
        };
        let run = self.run(row.int(0)?)?;
        let task = row.text(1)?;
        Ok(Some(FailedTaskRecord {
            id,
            tries: self.tries(run.id, &task)?,
            pipeline: run.pipeline,
            run_id: run.run_id,
            logical_date: run.logical_date,
            task,
            error: row.text(2)?,
            config: serde_json::from_str(&row.text(3)?)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            created_at: parse_ts(&row.text(4)?)?,
            replayed_at: parse_opt_ts(row.opt_text(5)?)?,
        }))
    }

    /// Rows reported by the latest successful tries of `task` in `pipeline`'s other runs,
    /// newest first.
    pub fn recent_rows(
        &self,
        pipeline: &str,
        task: &str,
        except_run: i64,
        limit: usize,
    ) -> Result<Vec<i64>> {
        self.conn()
            .query(
                "SELECT t.rows FROM task_tries t JOIN runs r ON r.id = t.run
                 WHERE r.pipeline = ?1 AND t.task = ?2 AND t.run <> ?3 AND t.outcome = ?5
                   AND t.rows IS NOT NULL
                 ORDER BY r.logical_date DESC, t.try_number DESC LIMIT ?4",
                params![pipeline, task, except_run, limit, TryOutcome::Success],
            )?
            .iter()
            .map(|r| r.int(0))
            .collect()
    }

    /// Deletes failed tasks and bad records recorded before `before`; returns how many.
    pub fn purge_dead_letters(&self, before: DateTime<Utc>) -> Result<usize> {
        let cut = ts(before);
        self.tx(|c| {
            let tasks = c.execute(
                "DELETE FROM failed_tasks WHERE created_at < ?1",
                params![&cut],
            )?;
            let records = c.execute(
                "DELETE FROM dead_letters WHERE created_at < ?1",
                params![&cut],
            )?;
            Ok((tasks + records) as usize)
        })
    }

    /// Bad records, newest first, optionally of one pipeline (and one of its tasks).
    pub fn dead_letters(
        &self,
        pipeline: Option<&str>,
        task: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetterRecord>> {
        let rows = self.conn().query(
            "SELECT d.id, r.pipeline, r.run_id, d.task, d.try_number, d.source, d.line, d.row_number,
                    d.reason, d.record, d.created_at
             FROM dead_letters d JOIN runs r ON r.id = d.run
             WHERE (CAST(?1 AS TEXT) IS NULL OR r.pipeline = ?1)
               AND (CAST(?2 AS TEXT) IS NULL OR d.task = ?2)
             ORDER BY d.id DESC LIMIT ?3",
            params![pipeline, task, limit],
        )?;
        rows.iter()
            .map(|r| {
                Ok(DeadLetterRecord {
                    id: r.int(0)?,
                    pipeline: r.text(1)?,
                    run_id: r.text(2)?,
                    task: r.text(3)?,
                    try_number: r.uint(4)?,
                    source: r.text(5)?,
                    line: r.opt_int(6)?,
                    row: r.opt_int(7)?,
                    reason: r.text(8)?,
                    record: r.text(9)?,
                    created_at: parse_ts(&r.text(10)?)?,
                })
            })
            .collect()
    }

    pub fn add_schema_changes(
        &self,
        run: i64,
        task: &str,
        try_number: u32,
        changes: &[SchemaChange],
    ) -> Result<()> {
        let now = ts(Utc::now());
        self.tx(|c| {
            for ch in changes {
                c.execute(
                    "INSERT INTO schema_changes (run, task, try_number, target, change, column_name, from_type, to_type, applied_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        run,
                        task,
                        try_number,
                        &ch.target,
                        &ch.change,
                        &ch.column,
                        ch.from_type.as_deref(),
                        &ch.to_type,
                        &now
                    ],
                )?;
            }
            Ok(())
        })
    }

    /// Schema changes applied during a run, in the order they were applied.
    pub fn schema_changes(&self, run: i64) -> Result<Vec<SchemaChangeRecord>> {
        let rows = self.conn().query(
            "SELECT task, try_number, target, change, column_name, from_type, to_type, applied_at
             FROM schema_changes WHERE run = ?1 ORDER BY id",
            params![run],
        )?;
        rows.iter()
            .map(|r| {
                Ok(SchemaChangeRecord {
                    task: r.text(0)?,
                    try_number: r.uint(1)?,
                    target: r.text(2)?,
                    change: r.text(3)?,
                    column: r.text(4)?,
                    from_type: r.opt_text(5)?,
                    to_type: r.text(6)?,
                    applied_at: parse_ts(&r.text(7)?)?,
                })
            })
            .collect()
    }

    /// Tries of a task, oldest first.
    pub fn tries(&self, run: i64, task: &str) -> Result<Vec<TryRecord>> {
        let rows = self.conn().query(
            "SELECT try_number, outcome, started_at, ended_at, duration_ms, error, log_path, rows, pid,
                    rejected
             FROM task_tries WHERE run = ?1 AND task = ?2 ORDER BY try_number",
            params![run, task],
        )?;
        rows.iter()
            .map(|r| {
                Ok(TryRecord {
                    try_number: r.uint(0)?,
                    outcome: TryOutcome::parse(&r.text(1)?)?,
                    started_at: parse_ts(&r.text(2)?)?,
                    ended_at: parse_opt_ts(r.opt_text(3)?)?,
                    duration_ms: r.opt_int(4)?,
                    error: r.opt_text(5)?,
                    log_path: r.opt_text(6)?,
                    rows: r.opt_int(7)?,
                    pid: r.opt_int(8)?,
                    rejected: r.opt_int(9)?,
                })
            })
            .collect()
    }

    /// Makes tasks runnable again: state none, and `retries` more tries from the current one
    /// (as Airflow's clear does). The run goes back to queued.
    pub fn clear(&self, run: i64, tasks: &[(&str, u32)]) -> Result<usize> {
        self.tx(|c| {
            let mut n = 0;
            for (task, retries) in tasks {
                n += c.execute(
                    "UPDATE task_instances SET state = 'none', max_tries = tries + ?3, next_retry_at = NULL,
                            started_at = NULL, ended_at = NULL
                     WHERE run = ?1 AND task = ?2",
                    params![run, *task, retries + 1],
                )?;
            }
            c.execute(
                "UPDATE runs SET state = 'queued', ended_at = NULL WHERE id = ?1",
                params![run],
            )?;
            Ok(n as usize)
        })
    }

    /// A try whose process died (killed, machine lost) is closed as `interrupted`, and the
    /// task is made runnable again with one more try allowed, so the interruption does not use
    /// up a retry.
    pub fn interrupt_try(&self, run: i64, task: &str, try_number: u32, reason: &str) -> Result<()> {
        self.tx(|c| {
            c.execute(
                "UPDATE task_tries SET outcome = ?6, error = ?4, ended_at = COALESCE(ended_at, ?5)
                 WHERE run = ?1 AND task = ?2 AND try_number = ?3 AND outcome = ?7",
                params![
                    run,
                    task,
                    try_number,
                    reason,
                    ts(Utc::now()),
                    TryOutcome::Interrupted,
                    TryOutcome::Running
                ],
            )?;
            c.execute(
                "UPDATE task_instances SET state = 'none', max_tries = max_tries + 1, next_retry_at = NULL
                 WHERE run = ?1 AND task = ?2",
                params![run, task],
            )?;
            Ok(())
        })
    }

    /// Takes the lock that lets one process execute a run. On PostgreSQL it is a session
    /// advisory lock: held by this store's connection, released by `unlock_run` or, however
    /// the process dies, when its connection closes. On SQLite the caller's file lock does this
    /// job and this always succeeds.
    pub fn try_lock_run(&self, run: i64) -> Result<bool> {
        let mut c = self.conn();
        match c.dialect() {
            Dialect::Sqlite => Ok(true),
            Dialect::Postgres => Ok(c
                .query_one("SELECT pg_try_advisory_lock(?1)", params![RUN_LOCKS + run])?
                .int(0)?
                != 0),
        }
    }

    pub fn unlock_run(&self, run: i64) -> Result<()> {
        let mut c = self.conn();
        if c.dialect() == Dialect::Postgres {
            c.query("SELECT pg_advisory_unlock(?1)", params![RUN_LOCKS + run])?;
        }
        Ok(())
    }
}

/// Advisory lock keys (PostgreSQL): one for migrations, and a range for runs (plus the run id),
/// chosen so as not to meet the small keys other applications tend to use.
const MIGRATION_LOCK: i64 = 0x51CE_0000_0000_0000;
const RUN_LOCKS: i64 = 0x51CE_0001_0000_0000;

/// Marks the task running and records its try as started.
fn record_try_start(
    c: &mut dyn Conn,
    run: i64,
    task: &str,
    try_number: u32,
    now: &str,
    log_path: &str,
    pid: u32,
) -> Result<()> {
    c.execute(
        "UPDATE task_instances SET state = 'running', tries = ?3, next_retry_at = NULL,
                started_at = ?4, ended_at = NULL
         WHERE run = ?1 AND task = ?2",
        params![run, task, try_number, now],
    )?;
    // A try number started again (after `clear`) starts afresh.
    c.execute(
        "INSERT INTO task_tries (run, task, try_number, outcome, started_at, log_path, pid)
         VALUES (?1, ?2, ?3, ?7, ?4, ?5, ?6)
         ON CONFLICT (run, task, try_number) DO UPDATE SET outcome = excluded.outcome,
            started_at = excluded.started_at, log_path = excluded.log_path, pid = excluded.pid,
            ended_at = NULL, duration_ms = NULL, error = NULL, rows = NULL, watermark = NULL,
            rejected = NULL",
        params![
            run,
            task,
            try_number,
            now,
            log_path,
            pid,
            TryOutcome::Running
        ],
    )?;
    Ok(())
}

fn read_run(c: &mut dyn Conn, id: i64) -> Result<RunRecord> {
    let r = c.query_one(
        "SELECT pipeline, run_id, run_type, logical_date, interval_start, interval_end, state,
                created_at, started_at, ended_at
         FROM runs WHERE id = ?1",
        params![id],
    )?;
    Ok(RunRecord {
        id,
        pipeline: r.text(0)?,
        run_id: r.text(1)?,
        run_type: r.text(2)?,
        logical_date: parse_ts(&r.text(3)?)?,
        data_interval_start: parse_ts(&r.text(4)?)?,
        data_interval_end: parse_ts(&r.text(5)?)?,
        state: parse_state(&r.text(6)?)?,
        created_at: parse_ts(&r.text(7)?)?,
        started_at: parse_opt_ts(r.opt_text(8)?)?,
        ended_at: parse_opt_ts(r.opt_text(9)?)?,
    })
}
