//! Scale-out on PostgreSQL, with real processes on 127.0.0.1: `sluice serve --workers`
//! schedulers hand tries to `sluice worker`s through the metadata database. Workers are killed
//! with SIGKILL while they run tries; every task still succeeds and every row lands once.
//! Two schedulers at once create each run and each try once. Workers keep to their queues.

use crate::common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::pg::Database;
use common::server::Server;
use common::{TestProject, sluice_bin};
use serde_json::json;

/// A project whose metadata lives in `db`.
fn project(db: &Database) -> TestProject {
    let p = TestProject::new();
    p.write(
        "sluice.yaml",
        &format!("name: scale\nparallelism: 64\nmetadata: {}\n", db.url),
    );
    p
}

fn worker(p: &TestProject, name: &str, extra: &[&str]) -> Child {
    Command::new(sluice_bin())
        .args(["worker", "--name", name, "--lease", "2s", "--project"])
        .arg(p.path())
        .args(extra)
        .env_remove("SLUICE_METADATA")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sluice worker")
}

fn kill(child: &mut Child) {
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
}

/// A shell task that records that it ran, works a little, then loads its row idempotently
/// (a merge on the key: a re-run after a crash writes nothing twice).
fn row_task(db: &Database, task: &str) -> String {
    format!(
        "  {task}:\n    shell:\n      command: >-\n        psql -qAtX {url} -c \"INSERT INTO executions (task) VALUES ('{task}')\"\n        && sleep 0.3\n        && psql -qAtX {url} -c \"INSERT INTO hits (task) VALUES ('{task}') ON CONFLICT (task) DO NOTHING\"\n",
        url = db.url
    )
}

#[test]
fn killed_workers_lose_no_task_and_duplicate_no_row() {
    let db = Database::create("sluice_chaos");
    db.execute(
        "CREATE TABLE hits (task text PRIMARY KEY, at timestamptz NOT NULL DEFAULT now());
         CREATE TABLE executions (task text NOT NULL, at timestamptz NOT NULL DEFAULT now());",
    );
    let p = project(&db);
    let mut yaml = String::from(
        "pipeline: chaos\nschedule: none\nstart_date: 2024-01-01\nmax_active_tasks: 64\ndefaults:\n  retries: 20\n  retry_delay: 200ms\ntasks:\n",
    );
    let tasks: Vec<String> = (0..200).map(|i| format!("t{i:03}")).collect();
    for t in &tasks {
        yaml.push_str(&row_task(&db, t));
    }
    p.write("pipelines/chaos.yaml", &yaml);

    let server = Server::start_with(&p, None, &["--workers"]);
    let mut workers: Vec<Child> = (0..3)
        .map(|w| worker(&p, &format!("w{w}"), &["--concurrency", "4"]))
        .collect();
    let (status, run) = server.post("/api/pipelines/chaos/runs", json!({ "date": "2024-01-01" }));
    assert_eq!(status, 201, "{run}");
    let id = run["id"].as_i64().unwrap();

    // Kill a worker at a random moment every 0.4–1.2 s, and start it again.
    let mut seed = u64::from(std::process::id()) | 1;
    let mut random = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut kills = 0;
    let state = loop {
        let state = server.get(&format!("/api/runs/{id}"))["state"]
            .as_str()
            .unwrap()
            .to_string();
        if state == "success" || state == "failed" {
            break state;
        }
        assert!(Instant::now() < deadline, "the run did not finish in time");
        std::thread::sleep(Duration::from_millis(400 + random(800)));
        let w = random(3) as usize;
        kill(&mut workers[w]);
        kills += 1;
        workers[w] = worker(&p, &format!("w{w}-{kills}"), &["--concurrency", "4"]);
    };
    for w in &mut workers {
        kill(w);
    }

    let run = server.get(&format!("/api/runs/{id}"));
    assert_eq!(state, "success", "{run}");
    let not_success: Vec<&serde_json::Value> = run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["state"] != "success")
        .collect();
    assert!(not_success.is_empty(), "{not_success:?}");
    assert_eq!(
        db.column("SELECT count(*) || '/' || count(DISTINCT task) FROM hits"),
        ["200/200"],
        "each task's row exactly once"
    );
    let executions: usize = db.column("SELECT count(*) FROM executions")[0]
        .parse()
        .unwrap();
    let lost: usize = db.column("SELECT count(*) FROM task_queue WHERE outcome = 'lost'")[0]
        .parse()
        .unwrap();
    let outcomes = db.column(
        "SELECT outcome || ': ' || count(*) FROM task_tries GROUP BY outcome ORDER BY outcome",
    );
    eprintln!(
        "chaos: {kills} workers killed, {lost} tries lost with them and retried, {executions} executions for 200 tasks; tries {outcomes:?}"
    );
    for e in db.column(
        "SELECT left(error, 200) || ' (' || count(*) || ')' FROM task_tries WHERE error IS NOT NULL
         GROUP BY left(error, 200) LIMIT 5",
    ) {
        eprintln!("  {e}");
    }
    assert!(kills >= 3, "the run outlived several kills ({kills})");
    assert!(lost >= 1, "some kills hit running tries ({lost} lost)");
    // Every lost try counts as a try, and each task succeeded exactly once.
    assert_eq!(
        outcomes,
        [format!("failed: {lost}"), "success: 200".to_string()],
        "one success per task; every other try is a lost one"
    );
    assert_eq!(server.stop(), Some(0));
}

#[test]
fn two_schedulers_create_each_run_and_try_once_and_workers_keep_to_their_queues() {
    let db = Database::create("sluice_schedulers");
    let p = project(&db);
    let start = chrono::Utc::now() - chrono::Duration::hours(6);
    p.write(
        "pipelines/hourly.yaml",
        &format!(
            "pipeline: hourly\nschedule: \"@hourly\"\nstart_date: \"{}\"\ncatchup: true\nmax_active_runs: 3\ntasks:\n  extract: {{ shell: {{ command: \"sleep 0.1\" }} }}\n  train: {{ after: [extract], queue: gpu, shell: {{ command: \"echo trained\" }} }}\n  publish: {{ after: [train], shell: {{ command: \"echo published\" }} }}\n",
            start.format("%Y-%m-%dT%H:00:00")
        ),
    );
    let a = Server::start_with(&p, None, &["--workers"]);
    let b = Server::start_with(&p, None, &["--workers"]);
    let mut general = worker(&p, "general", &[]);
    let mut gpu = worker(&p, "gpu", &["--queues", "gpu"]);
    a.wait_up_to(
        Duration::from_secs(90),
        "six hourly runs to succeed",
        || {
            let runs = a.runs("hourly");
            runs.len() >= 6 && runs.iter().all(|r| r["state"] == "success")
        },
    );
    kill(&mut general);
    kill(&mut gpu);
    let runs = db.column("SELECT count(*) || '/' || count(DISTINCT logical_date) FROM runs");
    let (all, distinct) = runs[0].split_once('/').unwrap();
    assert_eq!(all, distinct, "no run created twice");
    assert_eq!(
        db.column(
            "SELECT run || ':' || task FROM task_tries GROUP BY run, task HAVING count(*) > 1"
        ),
        Vec::<String>::new(),
        "no try dispatched twice"
    );
    let placement = db.column("SELECT DISTINCT task || '@' || worker FROM task_queue ORDER BY 1");
    assert_eq!(
        placement,
        ["extract@general", "publish@general", "train@gpu"],
        "each task on its queue's worker"
    );
    assert_eq!(a.stop(), Some(0));
    assert_eq!(b.stop(), Some(0));
}

#[test]
fn handing_tries_to_workers_needs_postgres() {
    let p = TestProject::new();
    let out = p.sluice(&["serve", "--workers", "--addr", "127.0.0.1:0"]);
    assert_eq!(out.code, 2, "{}", out.explain());
    assert!(
        out.stderr.contains("needs the metadata on PostgreSQL"),
        "{}",
        out.explain()
    );
    let out = p.sluice(&["worker"]);
    assert_eq!(out.code, 2, "{}", out.explain());
    assert!(
        out.stderr.contains("metadata: postgres://"),
        "{}",
        out.explain()
    );
}

/// A scheduler stopped while a worker runs a try leaves the try running; the next scheduler
/// waits for that try's answer instead of starting it again.
#[test]
fn a_restarted_scheduler_waits_for_the_tries_its_predecessor_handed_out() {
    let db = Database::create("sluice_reattach");
    let p = project(&db);
    p.write(
        "pipelines/slow.yaml",
        "pipeline: slow\nschedule: none\nstart_date: 2024-01-01\ntasks:\n  wait: { shell: { command: \"sleep 3\" } }\n  after_wait: { after: [wait], shell: { command: \"echo done\" } }\n",
    );
    let mut w = worker(&p, "w", &[]);
    let server = Server::start_with(&p, None, &["--workers"]);
    let (status, run) = server.post("/api/pipelines/slow/runs", json!({ "date": "2024-01-01" }));
    assert_eq!(status, 201, "{run}");
    let id = run["id"].as_i64().unwrap();
    server.wait_for("the slow task to run on the worker", || {
        db.column("SELECT count(*) FROM task_queue WHERE state = 'claimed'") == ["1"]
    });
    assert_eq!(server.stop(), Some(0));

    let server = Server::start_with(&p, None, &["--workers"]);
    server.wait_for("the resumed run to finish", || {
        server.get(&format!("/api/runs/{id}"))["state"] == "success"
    });
    let outcomes = server.try_outcomes(id, "wait");
    assert_eq!(
        outcomes,
        ["success"],
        "one try, run once, answered to the new scheduler"
    );
    kill(&mut w);
    assert_eq!(server.stop(), Some(0));
}
