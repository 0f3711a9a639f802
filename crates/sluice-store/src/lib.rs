//! The metadata store: runs, task instances and every try, in SQLite.
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
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sluice_core::{DataInterval, DeadLetter, RunState, SchemaChange, TaskState};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("metadata database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
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
    /// running, success, failed, timed_out or interrupted.
    pub outcome: String,
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
    pub outcome: &'a str,
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
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating if needed) the metadata database and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Folder {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let store = Store {
            conn: Mutex::new(conn),
        };
        store.migrate()?;
        Ok(store)
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back), so
        // the poisoned guard is safe to reuse.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn migrate(&self) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Finds the run of `pipeline` at this interval's logical date, or creates it with its task
    /// instances. Tasks added to the pipeline since the run was created get an instance too.
    pub fn ensure_run(
        &self,
        pipeline: &str,
        interval: &DataInterval,
        run_type: RunType,
        tasks: &[(&str, u32)],
    ) -> Result<(RunRecord, bool)> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let logical = ts(interval.logical_date());
        let existing: Option<i64> = tx
            .query_row(
                "SELECT id FROM runs WHERE pipeline = ?1 AND logical_date = ?2",
                params![pipeline, logical],
                |r| r.get(0),
            )
            .optional()?;
        let (id, created) = match existing {
            Some(id) => (id, false),
            None => {
                let run_id = format!(
                    "{}__{}",
                    run_type.as_str(),
                    interval
                        .logical_date()
                        .to_rfc3339_opts(SecondsFormat::Secs, false)
                );
                tx.execute(
                    "INSERT INTO runs (pipeline, run_id, run_type, logical_date, interval_start, interval_end, state, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7)",
                    params![
                        pipeline,
                        run_id,
                        run_type.as_str(),
                        logical,
                        ts(interval.start),
                        ts(interval.end),
                        ts(Utc::now())
                    ],
                )?;
                (tx.last_insert_rowid(), true)
            }
        };
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO task_instances (run, task, state, max_tries) VALUES (?1, ?2, 'none', ?3)",
            )?;
            for (task, max_tries) in tasks {
                insert.execute(params![id, task, max_tries])?;
            }
        }
        let run = read_run(&tx, id)?;
        tx.commit()?;
        Ok((run, created))
    }

    pub fn run(&self, id: i64) -> Result<RunRecord> {
        read_run(&self.conn(), id)
    }

    pub fn find_run(
        &self,
        pipeline: &str,
        logical_date: DateTime<Utc>,
    ) -> Result<Option<RunRecord>> {
        let conn = self.conn();
        let id: Option<i64> = conn
            .query_row(
                "SELECT id FROM runs WHERE pipeline = ?1 AND logical_date = ?2",
                params![pipeline, ts(logical_date)],
                |r| r.get(0),
            )
            .optional()?;
        id.map(|id| read_run(&conn, id)).transpose()
    }

    /// The latest scheduled run of a pipeline (by logical date): where its scheduler left off.
    pub fn latest_scheduled(&self, pipeline: &str) -> Result<Option<RunRecord>> {
        let conn = self.conn();
        let id: Option<i64> = conn
            .query_row(
                "SELECT id FROM runs WHERE pipeline = ?1 AND run_type = 'scheduled'
                 ORDER BY logical_date DESC LIMIT 1",
                params![pipeline],
                |r| r.get(0),
            )
            .optional()?;
        id.map(|id| read_run(&conn, id)).transpose()
    }

    /// Runs not finished (queued or running), oldest first: what a restarted scheduler resumes.
    pub fn unfinished_runs(&self) -> Result<Vec<RunRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id FROM runs WHERE state IN ('queued', 'running') ORDER BY logical_date",
        )?;
        let ids: Vec<i64> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        ids.into_iter().map(|id| read_run(&conn, id)).collect()
    }

    /// Records a backfill of `pipeline` over logical dates `from`..=`to` (YYYY-MM-DD).
    pub fn add_backfill(&self, pipeline: &str, from: &str, to: &str) -> Result<BackfillRecord> {
        let conn = self.conn();
        let now = Utc::now();
        conn.execute(
            "INSERT INTO backfills (pipeline, from_date, to_date, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![pipeline, from, to, ts(now)],
        )?;
        Ok(BackfillRecord {
            id: conn.last_insert_rowid(),
            pipeline: pipeline.to_string(),
            from: from.to_string(),
            to: to.to_string(),
            created_at: now,
        })
    }

    /// Backfills, newest first (all pipelines when `pipeline` is None).
    pub fn backfills(&self, pipeline: Option<&str>) -> Result<Vec<BackfillRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, pipeline, from_date, to_date, created_at FROM backfills
             WHERE ?1 IS NULL OR pipeline = ?1 ORDER BY id DESC",
        )?;
        let rows = stmt
            .query_map(params![pipeline], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get::<_, String>(4)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<(i64, String, String, String, String)>>>()?;
        rows.into_iter()
            .map(|(id, pipeline, from, to, created)| {
                Ok(BackfillRecord {
                    id,
                    pipeline,
                    from,
                    to,
                    created_at: parse_ts(&created)?,
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
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT state FROM runs WHERE pipeline = ?1 AND logical_date = ?2")?;
        dates
            .iter()
            .map(|d| {
                let state: Option<String> = stmt
                    .query_row(params![pipeline, ts(*d)], |r| r.get(0))
                    .optional()?;
                state
                    .map(|s| s.parse::<RunState>().map_err(StoreError::Corrupt))
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
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT pipeline FROM pipeline_flags WHERE paused = 1")?;
        let names = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(names)
    }

    /// The latest runs of a pipeline, newest logical date first.
    pub fn runs(&self, pipeline: &str, limit: usize) -> Result<Vec<RunRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id FROM runs WHERE pipeline = ?1 ORDER BY logical_date DESC LIMIT ?2",
        )?;
        let ids: Vec<i64> = stmt
            .query_map(params![pipeline, limit as i64], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        ids.into_iter().map(|id| read_run(&conn, id)).collect()
    }

    /// Sets a run's state. A run that succeeds commits its tasks' pending high-water marks in
    /// the same transaction: a mark advances only when everything downstream of it loaded.
    pub fn set_run_state(&self, run: i64, state: RunState) -> Result<()> {
        let now = ts(Utc::now());
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        match state {
            RunState::Running => tx.execute(
                "UPDATE runs SET state = ?2, started_at = COALESCE(started_at, ?3), ended_at = NULL WHERE id = ?1",
                params![run, state.as_str(), now],
            )?,
            RunState::Success | RunState::Failed => tx.execute(
                "UPDATE runs SET state = ?2, ended_at = ?3 WHERE id = ?1",
                params![run, state.as_str(), now],
            )?,
            RunState::Queued => tx.execute(
                "UPDATE runs SET state = ?2, ended_at = NULL WHERE id = ?1",
                params![run, state.as_str()],
            )?,
        };
        if state == RunState::Success {
            tx.execute(
                "INSERT INTO watermarks (pipeline, task, value, run, updated_at)
                 SELECT r.pipeline, t.task, t.watermark, r.id, ?2
                 FROM task_tries t JOIN runs r ON r.id = t.run
                 WHERE t.run = ?1 AND t.outcome = 'success' AND t.watermark IS NOT NULL
                   AND t.try_number = (SELECT MAX(try_number) FROM task_tries l
                                       WHERE l.run = t.run AND l.task = t.task AND l.outcome = 'success')
                 ON CONFLICT (pipeline, task) DO UPDATE SET value = excluded.value, run = excluded.run,
                    updated_at = excluded.updated_at",
                params![run, now],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn task_instances(&self, run: i64) -> Result<Vec<TaskInstanceRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT task, state, tries, max_tries, next_retry_at, started_at, ended_at
             FROM task_instances WHERE run = ?1",
        )?;
        let rows = stmt.query_map(params![run], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, u32>(2)?,
                r.get::<_, u32>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
            ))
        })?;
        rows.map(|row| {
            let (task, state, tries, max_tries, next, started, ended) = row?;
            Ok(TaskInstanceRecord {
                task,
                state: parse_state(&state)?,
                tries,
                max_tries,
                next_retry_at: parse_opt_ts(next)?,
                started_at: parse_opt_ts(started)?,
                ended_at: parse_opt_ts(ended)?,
            })
        })
        .collect()
    }

    /// Sets a task's state without a try (scheduled, skipped, upstream_failed, none).
    pub fn set_task_state(&self, run: i64, task: &str, state: TaskState) -> Result<()> {
        let conn = self.conn();
        let ended = state.is_finished().then(|| ts(Utc::now()));
        conn.prepare_cached(
            "UPDATE task_instances SET state = ?3, ended_at = ?4 WHERE run = ?1 AND task = ?2",
        )?
        .execute(params![run, task, state.as_str(), ended])?;
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
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.prepare_cached(
            "UPDATE task_instances SET state = 'running', tries = ?3, next_retry_at = NULL,
                    started_at = ?4, ended_at = NULL
             WHERE run = ?1 AND task = ?2",
        )?
        .execute(params![run, task, try_number, ts(now)])?;
        tx.prepare_cached(
            "INSERT OR REPLACE INTO task_tries (run, task, try_number, outcome, started_at, log_path, pid)
             VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6)",
        )?
        .execute(params![run, task, try_number, ts(now), log_path, pid])?;
        tx.commit()?;
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
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.prepare_cached(
            "UPDATE task_tries SET outcome = ?4, ended_at = ?5, error = ?6, rows = ?7, watermark = ?8,
                    rejected = ?9,
                    duration_ms = CAST(ROUND((julianday(?5) - julianday(started_at)) * 86400000) AS INTEGER)
             WHERE run = ?1 AND task = ?2 AND try_number = ?3",
        )?
        .execute(params![
            run,
            task,
            try_number,
            end.outcome,
            ts(now),
            end.error,
            end.rows.map(|r| r as i64),
            end.watermark,
            end.rejected.map(|r| r as i64)
        ])?;
        tx.prepare_cached(
            "UPDATE task_instances SET state = ?3, next_retry_at = ?4, ended_at = ?5 WHERE run = ?1 AND task = ?2",
        )?
        .execute(params![
            run,
            task,
            end.next_state.as_str(),
            end.next_retry_at.map(ts),
            end.next_state.is_finished().then(|| ts(now))
        ])?;
        tx.commit()?;
        Ok(())
    }

    /// The committed high-water mark of a task.
    pub fn watermark(&self, pipeline: &str, task: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .prepare_cached("SELECT value FROM watermarks WHERE pipeline = ?1 AND task = ?2")?
            .query_row(params![pipeline, task], |r| r.get(0))
            .optional()?)
    }

    pub fn add_dead_letters(
        &self,
        run: i64,
        task: &str,
        try_number: u32,
        records: &[DeadLetter],
    ) -> Result<()> {
        let now = ts(Utc::now());
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO dead_letters (run, task, try_number, source, line, row_number, reason, record, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for d in records {
                stmt.execute(params![
                    run,
                    task,
                    try_number,
                    d.source,
                    d.line.map(|v| v as i64),
                    d.row.map(|v| v as i64),
                    d.reason,
                    d.record,
                    now
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Records a task that exhausted its retries (its tries are read from the run when shown).
    pub fn add_failed_task(
        &self,
        run: i64,
        task: &str,
        error: &str,
        config: &serde_json::Value,
    ) -> Result<i64> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO failed_tasks (run, task, error, config, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![run, task, error, config.to_string(), ts(Utc::now())],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Failed tasks, newest first (of one pipeline when given).
    pub fn failed_tasks(
        &self,
        pipeline: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FailedTaskRecord>> {
        let ids: Vec<i64> = {
            let conn = self.conn();
            let mut stmt = conn.prepare_cached(
                "SELECT f.id FROM failed_tasks f JOIN runs r ON r.id = f.run
                 WHERE ?1 IS NULL OR r.pipeline = ?1 ORDER BY f.id DESC LIMIT ?2",
            )?;
            stmt.query_map(params![pipeline, limit as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?
        };
        ids.into_iter()
            .map(|id| self.failed_task(id).map(|f| f.expect("listed just now")))
            .collect()
    }

    pub fn failed_task(&self, id: i64) -> Result<Option<FailedTaskRecord>> {
        let row = self
            .conn()
            .query_row(
                "SELECT run, task, error, config, created_at, replayed_at FROM failed_tasks WHERE id = ?1",
                params![id],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, Option<String>>(5)?,
                    ))
                },
            )
            .optional()?;
        let Some((run, task, error, config, created, replayed)) = row else {
            return Ok(None);
        };
        let run = self.run(run)?;
        Ok(Some(FailedTaskRecord {
            id,
            tries: self.tries(run.id, &task)?,
            pipeline: run.pipeline,
            run_id: run.run_id,
            logical_date: run.logical_date,
            task,
            error,
            config: serde_json::from_str(&config)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            created_at: parse_ts(&created)?,
            replayed_at: parse_opt_ts(replayed)?,
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
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT t.rows FROM task_tries t JOIN runs r ON r.id = t.run
             WHERE r.pipeline = ?1 AND t.task = ?2 AND t.run <> ?3 AND t.outcome = 'success'
               AND t.rows IS NOT NULL
             ORDER BY r.logical_date DESC, t.try_number DESC LIMIT ?4",
        )?;
        let rows = stmt
            .query_map(params![pipeline, task, except_run, limit as i64], |r| {
                r.get(0)
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    pub fn mark_replayed(&self, id: i64) -> Result<()> {
        self.conn().execute(
            "UPDATE failed_tasks SET replayed_at = ?2 WHERE id = ?1",
            params![id, ts(Utc::now())],
        )?;
        Ok(())
    }

    /// Deletes failed tasks and bad records recorded before `before`; returns how many.
    pub fn purge_dead_letters(&self, before: DateTime<Utc>) -> Result<usize> {
        let conn = self.conn();
        let cut = ts(before);
        let tasks = conn.execute(
            "DELETE FROM failed_tasks WHERE created_at < ?1",
            params![cut],
        )?;
        let records = conn.execute(
            "DELETE FROM dead_letters WHERE created_at < ?1",
            params![cut],
        )?;
        Ok(tasks + records)
    }

    /// Bad records, newest first, optionally of one pipeline (and one of its tasks).
    pub fn dead_letters(
        &self,
        pipeline: Option<&str>,
        task: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetterRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT d.id, r.pipeline, r.run_id, d.task, d.try_number, d.source, d.line, d.row_number,
                    d.reason, d.record, d.created_at
             FROM dead_letters d JOIN runs r ON r.id = d.run
             WHERE (?1 IS NULL OR r.pipeline = ?1) AND (?2 IS NULL OR d.task = ?2)
             ORDER BY d.id DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![pipeline, task, limit as i64], |r| {
            Ok((
                DeadLetterRecord {
                    id: r.get(0)?,
                    pipeline: r.get(1)?,
                    run_id: r.get(2)?,
                    task: r.get(3)?,
                    try_number: r.get(4)?,
                    source: r.get(5)?,
                    line: r.get(6)?,
                    row: r.get(7)?,
                    reason: r.get(8)?,
                    record: r.get(9)?,
                    created_at: Utc::now(),
                },
                r.get::<_, String>(10)?,
            ))
        })?;
        rows.map(|row| {
            let (mut d, created) = row?;
            d.created_at = parse_ts(&created)?;
            Ok(d)
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
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO schema_changes (run, task, try_number, target, change, column_name, from_type, to_type, applied_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for c in changes {
                stmt.execute(params![
                    run,
                    task,
                    try_number,
                    c.target,
                    c.change,
                    c.column,
                    c.from_type,
                    c.to_type,
                    now
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Schema changes applied during a run, in the order they were applied.
    pub fn schema_changes(&self, run: i64) -> Result<Vec<SchemaChangeRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT task, try_number, target, change, column_name, from_type, to_type, applied_at
             FROM schema_changes WHERE run = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![run], |r| {
            Ok((
                SchemaChangeRecord {
                    task: r.get(0)?,
                    try_number: r.get(1)?,
                    target: r.get(2)?,
                    change: r.get(3)?,
                    column: r.get(4)?,
                    from_type: r.get(5)?,
                    to_type: r.get(6)?,
                    applied_at: Utc::now(),
                },
                r.get::<_, String>(7)?,
            ))
        })?;
        rows.map(|row| {
            let (mut c, applied) = row?;
            c.applied_at = parse_ts(&applied)?;
            Ok(c)
        })
        .collect()
    }

    /// Tries of a task, oldest first.
    pub fn tries(&self, run: i64, task: &str) -> Result<Vec<TryRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT try_number, outcome, started_at, ended_at, duration_ms, error, log_path, rows, pid,
                    rejected
             FROM task_tries WHERE run = ?1 AND task = ?2 ORDER BY try_number",
        )?;
        let rows = stmt.query_map(params![run, task], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<i64>>(7)?,
                r.get::<_, Option<i64>>(8)?,
                r.get::<_, Option<i64>>(9)?,
            ))
        })?;
        rows.map(|row| {
            let (
                try_number,
                outcome,
                started,
                ended,
                duration_ms,
                error,
                log_path,
                rows,
                pid,
                rejected,
            ) = row?;
            Ok(TryRecord {
                try_number,
                outcome,
                started_at: parse_ts(&started)?,
                ended_at: parse_opt_ts(ended)?,
                duration_ms,
                error,
                log_path,
                rows,
                rejected,
                pid,
            })
        })
        .collect()
    }

    /// Makes tasks runnable again: state none, and `retries` more tries from the current one
    /// (as Airflow's clear does). The run goes back to queued.
    pub fn clear(&self, run: i64, tasks: &[(&str, u32)]) -> Result<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut n = 0;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE task_instances SET state = 'none', max_tries = tries + ?3, next_retry_at = NULL,
                        started_at = NULL, ended_at = NULL
                 WHERE run = ?1 AND task = ?2",
            )?;
            for (task, retries) in tasks {
                n += stmt.execute(params![run, task, retries + 1])?;
            }
        }
        tx.execute(
            "UPDATE runs SET state = 'queued', ended_at = NULL WHERE id = ?1",
            params![run],
        )?;
        tx.commit()?;
        Ok(n)
    }

    /// A try whose process died (killed, machine lost) is closed as `interrupted`, and the
    /// task is made runnable again with one more try allowed, so the interruption does not use
    /// up a retry.
    pub fn interrupt_try(&self, run: i64, task: &str, try_number: u32, reason: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE task_tries SET outcome = 'interrupted', error = ?4, ended_at = COALESCE(ended_at, ?5)
             WHERE run = ?1 AND task = ?2 AND try_number = ?3 AND outcome = 'running'",
            params![run, task, try_number, reason, ts(Utc::now())],
        )?;
        tx.execute(
            "UPDATE task_instances SET state = 'none', max_tries = max_tries + 1, next_retry_at = NULL
             WHERE run = ?1 AND task = ?2",
            params![run, task],
        )?;
        tx.commit()?;
        Ok(())
    }
}

fn read_run(conn: &Connection, id: i64) -> Result<RunRecord> {
    let row = conn.query_row(
        "SELECT pipeline, run_id, run_type, logical_date, interval_start, interval_end, state,
                created_at, started_at, ended_at
         FROM runs WHERE id = ?1",
        params![id],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, Option<String>>(8)?,
                r.get::<_, Option<String>>(9)?,
            ))
        },
    )?;
    let (pipeline, run_id, run_type, logical, start, end, state, created, started, ended) = row;
    Ok(RunRecord {
        id,
        pipeline,
        run_id,
        run_type,
        logical_date: parse_ts(&logical)?,
        data_interval_start: parse_ts(&start)?,
        data_interval_end: parse_ts(&end)?,
        state: parse_state(&state)?,
        created_at: parse_ts(&created)?,
        started_at: parse_opt_ts(started)?,
        ended_at: parse_opt_ts(ended)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(day: u32) -> DataInterval {
        let start = DateTime::parse_from_rfc3339(&format!("2024-01-{day:02}T06:00:00Z"))
            .unwrap()
            .with_timezone(&Utc);
        DataInterval {
            start,
            end: start + chrono::Duration::days(1),
        }
    }

    #[test]
    fn runs_are_unique_per_logical_date_and_resume() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("m.db")).unwrap();
        let (run, created) = store
            .ensure_run("p", &interval(1), RunType::Manual, &[("a", 1), ("b", 3)])
            .unwrap();
        assert!(created);
        assert_eq!(run.run_id, "manual__2024-01-01T06:00:00+00:00");
        store.start_try(run.id, "a", 1, "log", 1).unwrap();
        store
            .finish_try(
                run.id,
                "a",
                1,
                &TryEnd {
                    outcome: "success",
                    error: None,
                    rows: Some(5),
                    rejected: None,
                    watermark: Some("2024-01-01 10:00:00"),
                    next_state: TaskState::Success,
                    next_retry_at: None,
                },
            )
            .unwrap();
        drop(store);
        // Re-opened, with a task added to the pipeline since.
        let store = Store::open(&dir.path().join("m.db")).unwrap();
        let (again, created) = store
            .ensure_run(
                "p",
                &interval(1),
                RunType::Manual,
                &[("a", 1), ("b", 3), ("c", 1)],
            )
            .unwrap();
        assert!(!created);
        assert_eq!(again.id, run.id);
        let tis = store.task_instances(run.id).unwrap();
        assert_eq!(tis.len(), 3);
        let a = tis.iter().find(|t| t.task == "a").unwrap();
        assert_eq!((a.state, a.tries), (TaskState::Success, 1));
        let tries = store.tries(run.id, "a").unwrap();
        assert_eq!(tries[0].rows, Some(5));
        assert!(tries[0].duration_ms.is_some());
    }

    #[test]
    fn a_scheduler_finds_where_it_left_off_and_what_to_resume() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("m.db")).unwrap();
        assert!(store.latest_scheduled("p").unwrap().is_none());
        let tasks = [("a", 1)];
        let (first, _) = store
            .ensure_run("p", &interval(1), RunType::Scheduled, &tasks)
            .unwrap();
        let (second, _) = store
            .ensure_run("p", &interval(2), RunType::Scheduled, &tasks)
            .unwrap();
        store
            .ensure_run("p", &interval(9), RunType::Manual, &tasks)
            .unwrap();
        assert_eq!(store.latest_scheduled("p").unwrap().unwrap().id, second.id);
        store.set_run_state(first.id, RunState::Success).unwrap();
        store.set_run_state(second.id, RunState::Running).unwrap();
        let open: Vec<String> = store
            .unfinished_runs()
            .unwrap()
            .into_iter()
            .map(|r| r.run_id)
            .collect();
        assert_eq!(
            open,
            [
                "scheduled__2024-01-02T06:00:00+00:00",
                "manual__2024-01-09T06:00:00+00:00"
            ]
        );
        assert_eq!(
            store
                .run_states(
                    "p",
                    &[interval(1).start, interval(2).start, interval(3).start]
                )
                .unwrap(),
            [Some(RunState::Success), Some(RunState::Running), None]
        );
        let b = store.add_backfill("p", "2024-01-01", "2024-01-03").unwrap();
        assert_eq!(store.backfills(Some("p")).unwrap()[0].id, b.id);
        assert!(store.backfills(Some("q")).unwrap().is_empty());
        store.set_paused("p", true).unwrap();
        store.set_paused("q", false).unwrap();
        assert_eq!(
            store.paused().unwrap().into_iter().collect::<Vec<_>>(),
            ["p"]
        );
        store.set_paused("p", false).unwrap();
        assert!(store.paused().unwrap().is_empty());
    }

    #[test]
    fn interrupted_tries_do_not_use_up_retries_and_clear_adds_tries() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("m.db")).unwrap();
        let (run, _) = store
            .ensure_run("p", &interval(2), RunType::Manual, &[("a", 1)])
            .unwrap();
        store.start_try(run.id, "a", 1, "log", 1).unwrap();
        store
            .interrupt_try(run.id, "a", 1, "the process running it died")
            .unwrap();
        let ti = &store.task_instances(run.id).unwrap()[0];
        assert_eq!((ti.state, ti.tries, ti.max_tries), (TaskState::None, 1, 2));
        assert_eq!(store.tries(run.id, "a").unwrap()[0].outcome, "interrupted");
        store.clear(run.id, &[("a", 2)]).unwrap();
        let ti = &store.task_instances(run.id).unwrap()[0];
        assert_eq!(ti.max_tries, 1 + 3);
        assert_eq!(store.run(run.id).unwrap().state, RunState::Queued);
    }

    fn finish(store: &Store, run: i64, task: &str, try_number: u32, outcome: &str, mark: &str) {
        store.start_try(run, task, try_number, "log", 1).unwrap();
        store
            .finish_try(
                run,
                task,
                try_number,
                &TryEnd {
                    outcome,
                    error: None,
                    rows: None,
                    rejected: None,
                    watermark: Some(mark),
                    next_state: TaskState::Success,
                    next_retry_at: None,
                },
            )
            .unwrap();
    }

    #[test]
    fn watermarks_advance_only_when_the_run_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("m.db")).unwrap();
        let (r1, _) = store
            .ensure_run("p", &interval(1), RunType::Manual, &[("x", 1)])
            .unwrap();
        finish(&store, r1.id, "x", 1, "success", "10");
        store.set_run_state(r1.id, RunState::Failed).unwrap();
        assert_eq!(store.watermark("p", "x").unwrap(), None);
        store.set_run_state(r1.id, RunState::Success).unwrap();
        assert_eq!(store.watermark("p", "x").unwrap().as_deref(), Some("10"));

        // The last successful try's mark wins; a failed try's mark is never committed.
        let (r2, _) = store
            .ensure_run("p", &interval(2), RunType::Manual, &[("x", 2)])
            .unwrap();
        finish(&store, r2.id, "x", 1, "success", "20");
        finish(&store, r2.id, "x", 2, "failed", "99");
        store.set_run_state(r2.id, RunState::Success).unwrap();
        assert_eq!(store.watermark("p", "x").unwrap().as_deref(), Some("20"));
    }

    #[test]
    fn dead_letters_and_schema_changes_are_kept_per_run() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("m.db")).unwrap();
        let (run, _) = store
            .ensure_run("p", &interval(1), RunType::Manual, &[("load", 1)])
            .unwrap();
        let bad = DeadLetter {
            source: "raw/a.csv".into(),
            line: Some(7),
            row: Some(6),
            reason: "column amount: `x` is not a number".into(),
            record: "1,x".into(),
        };
        store
            .add_dead_letters(run.id, "load", 1, std::slice::from_ref(&bad))
            .unwrap();
        let got = store.dead_letters(Some("p"), None, 10).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].line, got[0].row), (Some(7), Some(6)));
        assert_eq!(got[0].reason, bad.reason);
        assert!(
            store
                .dead_letters(Some("other"), None, 10)
                .unwrap()
                .is_empty()
        );

        let change = SchemaChange {
            target: "warehouse:staging.orders".into(),
            change: "add_column".into(),
            column: "coupon".into(),
            from_type: None,
            to_type: "VARCHAR".into(),
        };
        store
            .add_schema_changes(run.id, "load", 1, &[change])
            .unwrap();
        let changes = store.schema_changes(run.id).unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(
            (changes[0].column.as_str(), changes[0].to_type.as_str()),
            ("coupon", "VARCHAR")
        );
    }
}
