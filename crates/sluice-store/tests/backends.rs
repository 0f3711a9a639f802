//! The metadata store's behaviour, the same on both backends: every case runs on SQLite (a
//! temporary file) and on the PostgreSQL at 127.0.0.1:5432 (trust auth), in a database of its
//! own that is dropped afterwards.

use chrono::{DateTime, Utc};
use sluice_core::{DataInterval, DeadLetter, RunState, SchemaChange, TaskState};
use sluice_store::{RunType, Store, TryEnd, TryOutcome};
use sluice_testkit::pg;

enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(pg::Database),
}

impl Backend {
    /// A store on this backend; opening it again sees what the earlier one wrote.
    fn open(&self) -> Store {
        match self {
            Backend::Sqlite(dir) => Store::open(&dir.path().join("m.db")).unwrap(),
            Backend::Postgres(db) => Store::connect(&db.url).unwrap(),
        }
    }

    /// A PostgreSQL database of the case's own, dropped with the backend.
    fn postgres(case_name: &str) -> Backend {
        Backend::Postgres(pg::Database::create(&format!("sluice_store_{case_name}")))
    }
}

/// Runs `case` on SQLite, then on PostgreSQL.
fn on_both(case_name: &str, case: fn(&Backend)) {
    case(&Backend::Sqlite(tempfile::tempdir().unwrap()));
    case(&Backend::postgres(case_name));
}

fn interval(day: u32) -> DataInterval {
    let start = DateTime::parse_from_rfc3339(&format!("2024-01-{day:02}T06:00:00Z"))
        .unwrap()
        .with_timezone(&Utc);
    DataInterval {
        start,
        end: start + chrono::Duration::days(1),
    }
}

fn runs_are_unique_per_logical_date_and_resume(db: &Backend) {
    let store = db.open();
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
                outcome: TryOutcome::Success,
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
    let store = db.open();
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

fn a_scheduler_finds_where_it_left_off_and_what_to_resume(db: &Backend) {
    let store = db.open();
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
    // The grid: every task of the latest two runs (by logical date), in one query.
    let mut grid = store.grid("p", 2).unwrap();
    grid.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let runs_in_grid: std::collections::BTreeSet<i64> = grid.iter().map(|g| g.0).collect();
    assert!(!runs_in_grid.contains(&first.id), "{grid:?}");
    assert!(runs_in_grid.contains(&second.id), "{grid:?}");
    assert_eq!(grid.len(), 2 * tasks.len(), "{grid:?}");
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

fn interrupted_tries_do_not_use_up_retries_and_clear_adds_tries(db: &Backend) {
    let store = db.open();
    let (run, _) = store
        .ensure_run("p", &interval(2), RunType::Manual, &[("a", 1)])
        .unwrap();
    store.start_try(run.id, "a", 1, "log", 1).unwrap();
    store
        .interrupt_try(run.id, "a", 1, "the process running it died")
        .unwrap();
    let ti = &store.task_instances(run.id).unwrap()[0];
    assert_eq!((ti.state, ti.tries, ti.max_tries), (TaskState::None, 1, 2));
    assert_eq!(
        store.tries(run.id, "a").unwrap()[0].outcome,
        TryOutcome::Interrupted
    );
    store.clear(run.id, &[("a", 2)]).unwrap();
    let ti = &store.task_instances(run.id).unwrap()[0];
    assert_eq!(ti.max_tries, 1 + 3);
    assert_eq!(store.run(run.id).unwrap().state, RunState::Queued);
}

fn finish(store: &Store, run: i64, task: &str, try_number: u32, outcome: TryOutcome, mark: &str) {
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

fn watermarks_advance_only_when_the_run_succeeds(db: &Backend) {
    let store = db.open();
    let (r1, _) = store
        .ensure_run("p", &interval(1), RunType::Manual, &[("x", 1)])
        .unwrap();
    finish(&store, r1.id, "x", 1, TryOutcome::Success, "10");
    store.set_run_state(r1.id, RunState::Failed).unwrap();
    assert_eq!(store.watermark("p", "x").unwrap(), None);
    store.set_run_state(r1.id, RunState::Success).unwrap();
    assert_eq!(store.watermark("p", "x").unwrap().as_deref(), Some("10"));

    // The last successful try's mark wins; a failed try's mark is never committed.
    let (r2, _) = store
        .ensure_run("p", &interval(2), RunType::Manual, &[("x", 2)])
        .unwrap();
    finish(&store, r2.id, "x", 1, TryOutcome::Success, "20");
    finish(&store, r2.id, "x", 2, TryOutcome::Failed, "99");
    store.set_run_state(r2.id, RunState::Success).unwrap();
    assert_eq!(store.watermark("p", "x").unwrap().as_deref(), Some("20"));
}

fn dead_letters_and_schema_changes_are_kept_per_run(db: &Backend) {
    let store = db.open();
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

#[test]
fn runs_are_unique_per_logical_date_and_resume_on_both() {
    on_both(
        "runs_are_unique_per_logical_da",
        runs_are_unique_per_logical_date_and_resume,
    );
}

#[test]
fn a_scheduler_finds_where_it_left_off_and_what_to_resume_on_both() {
    on_both(
        "a_scheduler_finds_where_it_lef",
        a_scheduler_finds_where_it_left_off_and_what_to_resume,
    );
}

#[test]
fn interrupted_tries_do_not_use_up_retries_and_clear_adds_tries_on_both() {
    on_both(
        "interrupted_tries_do_not_use_u",
        interrupted_tries_do_not_use_up_retries_and_clear_adds_tries,
    );
}

#[test]
fn watermarks_advance_only_when_the_run_succeeds_on_both() {
    on_both(
        "watermarks_advance_only_when_t",
        watermarks_advance_only_when_the_run_succeeds,
    );
}

#[test]
fn dead_letters_and_schema_changes_are_kept_per_run_on_both() {
    on_both(
        "dead_letters_and_schema_change",
        dead_letters_and_schema_changes_are_kept_per_run,
    );
}

/// Two schedulers creating the same runs at once: each run and task instance exists once.
fn racing_schedulers_create_each_run_once(db: &Backend) {
    let (a, b) = (db.open(), db.open());
    let create = |store: &Store| {
        (1..=20)
            .filter(|&day| {
                store
                    .ensure_run(
                        "p",
                        &interval(day),
                        RunType::Scheduled,
                        &[("x", 1), ("y", 1)],
                    )
                    .unwrap()
                    .1
            })
            .count()
    };
    let (made_a, made_b) = std::thread::scope(|s| {
        let ta = s.spawn(|| create(&a));
        let tb = s.spawn(|| create(&b));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    assert_eq!(made_a + made_b, 20, "each run is reported created once");
    let runs = a.runs("p", 100).unwrap();
    assert_eq!(runs.len(), 20);
    for run in runs {
        assert_eq!(b.task_instances(run.id).unwrap().len(), 2);
    }
}

#[test]
fn racing_schedulers_create_each_run_once_on_both() {
    on_both("racing", racing_schedulers_create_each_run_once);
}

/// On PostgreSQL one process at a time holds a run; the lock goes when its holder's connection
/// does, however the holder ends.
#[test]
fn a_run_lock_is_held_by_one_store_and_released_with_it() {
    let db = Backend::postgres("locks");
    let (a, b) = (db.open(), db.open());
    assert!(a.try_lock_run(7).unwrap());
    assert!(!b.try_lock_run(7).unwrap(), "held by the other store");
    assert!(b.try_lock_run(8).unwrap(), "another run is free");
    a.unlock_run(7).unwrap();
    assert!(b.try_lock_run(7).unwrap());
    drop(b);
    // The server ends the session when it sees the connection close: soon, not at once.
    let freed = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        a.try_lock_run(7).unwrap()
    });
    assert!(freed, "released when its holder closed");
}

/// Workers claim each queued try once, highest priority first, only from their queues; a lease
/// that is not renewed expires into a `lost`, retryable answer, and the late worker's answer
/// is refused.
#[test]
fn workers_claim_each_try_once_and_expired_leases_are_lost() {
    use std::time::Duration;
    let db = Backend::postgres("queue");
    let store = db.open();
    let tasks: Vec<(String, u32)> = (0..40).map(|i| (format!("t{i}"), 1)).collect();
    let specs: Vec<(&str, u32)> = tasks.iter().map(|(t, n)| (t.as_str(), *n)).collect();
    let (run, _) = store
        .ensure_run("p", &interval(1), RunType::Manual, &specs)
        .unwrap();
    for (i, (task, _)) in tasks.iter().enumerate() {
        let queue = if i == 0 { "gpu" } else { "default" };
        store
            .start_queued_try(run.id, task, 1, "log", queue, i as i64)
            .unwrap();
        // Again (a scheduler resuming): still one queued try.
        store
            .start_queued_try(run.id, task, 1, "log", queue, i as i64)
            .unwrap();
    }
    assert_eq!(store.queue_depth().unwrap(), 40);

    let default = vec!["default".to_string()];
    let lease = Duration::from_secs(30);
    let claimed: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..3)
            .map(|w| {
                let default = &default;
                let db = &db;
                s.spawn(move || {
                    let store = db.open();
                    let mut mine = Vec::new();
                    while let Some(c) = store.claim(&format!("w{w}"), default, lease).unwrap() {
                        mine.push(c.task);
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert_eq!(
        claimed.len(),
        39,
        "every default-queue try once: {claimed:?}"
    );
    let unique: std::collections::BTreeSet<_> = claimed.iter().collect();
    assert_eq!(unique.len(), 39);
    assert!(
        !claimed.contains(&"t0".to_string()),
        "t0 is on the gpu queue"
    );

    let gpu = store
        .claim("g", &["gpu".to_string()], Duration::from_millis(1))
        .unwrap()
        .unwrap();
    assert_eq!(gpu.task, "t0");
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(store.expire_leases().unwrap(), 1);
    let lost = store.queued_result(run.id, "t0", 1).unwrap().unwrap();
    assert_eq!(lost.outcome, TryOutcome::Lost);
    assert!(lost.retryable);
    assert!(lost.error.as_deref().unwrap().contains("worker g"));
    assert!(!store.renew_lease(gpu.id, "g", lease).unwrap());
    let late = sluice_store::QueuedResult {
        outcome: TryOutcome::Success,
        ..lost.clone()
    };
    assert!(
        !store.answer(gpu.id, "g", &late).unwrap(),
        "a lost claim's answer is refused"
    );
}

#[test]
fn tokens_sessions_and_the_audit_log() {
    on_both("access", |b| {
        use sluice_store::Role;
        let store = b.open();
        assert!(!store.has_tokens().unwrap());
        let ops = store
            .create_token("ci", Role::Operator, &["finance_*".to_string()])
            .unwrap();
        let admin = store.create_token("root", Role::Admin, &[]).unwrap();
        assert!(ops.starts_with("sluice_") && ops != admin);
        assert!(store.has_tokens().unwrap());
        let err = store.create_token("ci", Role::Viewer, &[]).unwrap_err();
        assert!(err.to_string().contains("exists already"), "{err}");
        // Only a digest is kept: the secret finds its token, nothing else does.
        let found = store.token_by_secret(&ops).unwrap().unwrap();
        assert_eq!((found.name.as_str(), found.role), ("ci", Role::Operator));
        assert_eq!(found.pipelines, ["finance_*"]);
        assert!(store.token_by_secret("sluice_guess").unwrap().is_none());

        let session = store
            .create_session(
                "ci",
                Role::Operator,
                &found.pipelines,
                chrono::Duration::hours(8),
            )
            .unwrap();
        assert_eq!(store.session(&session).unwrap().unwrap().principal, "ci");
        let expired = store
            .create_session("root", Role::Admin, &[], chrono::Duration::seconds(-1))
            .unwrap();
        assert!(store.session(&expired).unwrap().is_none());

        // Revoking ends the token's sessions; the name stays taken.
        assert!(store.revoke_token("ci").unwrap());
        assert!(!store.revoke_token("ci").unwrap());
        assert!(store.token_by_secret(&ops).unwrap().is_none());
        assert!(store.session(&session).unwrap().is_none());
        let names: Vec<(String, bool)> = store
            .tokens()
            .unwrap()
            .into_iter()
            .map(|t| (t.name, t.revoked_at.is_some()))
            .collect();
        assert_eq!(names, [("ci".into(), true), ("root".into(), false)]);

        for n in 0..3 {
            let params = serde_json::json!({ "n": n });
            store
                .add_audit(
                    "root",
                    "127.0.0.1",
                    "POST /api/pipelines/p/pause",
                    &params,
                    200,
                )
                .unwrap();
        }
        let newest = store.audit(2, None).unwrap();
        assert_eq!(newest.len(), 2);
        assert_eq!(newest[0].parameters["n"], 2);
        let older = store.audit(10, Some(newest[1].id)).unwrap();
        assert_eq!(older.len(), 1);
        assert_eq!(older[0].parameters["n"], 0);
        assert_eq!(older[0].action, "POST /api/pipelines/p/pause");
    });
}
