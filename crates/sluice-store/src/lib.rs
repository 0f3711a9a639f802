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
use sluice_core::{DataInterval, RunState, TaskState};

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
    pub pid: Option<i64>,
}

/// How a try ended.
#[derive(Debug, Clone)]
pub struct TryEnd<'a> {
    pub outcome: &'a str,
    pub error: Option<&'a str>,
    pub rows: Option<u64>,
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
];

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

    pub fn set_run_state(&self, run: i64, state: RunState) -> Result<()> {
        let now = ts(Utc::now());
        let conn = self.conn();
        match state {
            RunState::Running => conn.execute(
                "UPDATE runs SET state = ?2, started_at = COALESCE(started_at, ?3), ended_at = NULL WHERE id = ?1",
                params![run, state.as_str(), now],
            )?,
            RunState::Success | RunState::Failed => conn.execute(
                "UPDATE runs SET state = ?2, ended_at = ?3 WHERE id = ?1",
                params![run, state.as_str(), now],
            )?,
            RunState::Queued => conn.execute(
                "UPDATE runs SET state = ?2, ended_at = NULL WHERE id = ?1",
                params![run, state.as_str()],
            )?,
        };
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
            "UPDATE task_tries SET outcome = ?4, ended_at = ?5, error = ?6, rows = ?7,
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
            end.rows.map(|r| r as i64)
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

    /// Tries of a task, oldest first.
    pub fn tries(&self, run: i64, task: &str) -> Result<Vec<TryRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT try_number, outcome, started_at, ended_at, duration_ms, error, log_path, rows, pid
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
            ))
        })?;
        rows.map(|row| {
            let (try_number, outcome, started, ended, duration_ms, error, log_path, rows, pid) =
                row?;
            Ok(TryRecord {
                try_number,
                outcome,
                started_at: parse_ts(&started)?,
                ended_at: parse_opt_ts(ended)?,
                duration_ms,
                error,
                log_path,
                rows,
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
}
