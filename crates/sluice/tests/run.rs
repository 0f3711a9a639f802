//! `sluice run`, `backfill`, `clear`, `runs` and `logs` against the real binary, with real
//! processes and the embedded DuckDB warehouse.

use crate::common;

use std::time::{Duration, Instant};

use common::{TestProject, state_of, task_states};

fn project_with(pipeline: &str) -> TestProject {
    let p = TestProject::new();
    p.write("pipelines/p.yaml", pipeline);
    p
}

/// A pipeline of `n` tasks without dependencies; `task(i)` is the body of task `t{i}`.
fn independent_tasks(header: &str, n: usize, task: impl Fn(usize) -> String) -> TestProject {
    let mut yaml = format!("pipeline: p\n{header}tasks:\n");
    for i in 0..n {
        yaml.push_str(&format!("  t{i}: {{ {} }}\n", task(i)));
    }
    project_with(&yaml)
}

#[test]
fn retries_with_exponential_backoff_until_success() {
    // Fails on tries 1 and 2, succeeds on try 3; the delays are 200ms and 400ms (+ jitter).
    let p = project_with(
        r#"
pipeline: p
tasks:
  flaky:
    retries: 3
    retry_delay: 200ms
    retry_backoff: exponential
    shell: |
      n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count
      echo "try {{ try_number }} (attempt $n)"
      [ $n -ge 3 ]
  after_flaky: { after: [flaky], shell: "echo done" }
"#,
    );
    let started = Instant::now();
    let out = p.sluice(&["run", "p", "--date", "2024-01-01", "--json"]);
    let elapsed = started.elapsed();
    assert_eq!(out.code, 0, "{}", out.explain());
    let run = out.json();
    assert_eq!(run["state"], "success");
    assert_eq!(state_of(&run, "flaky"), ("success".into(), 3));
    assert_eq!(state_of(&run, "after_flaky"), ("success".into(), 1));
    assert!(
        elapsed >= Duration::from_millis(600),
        "retry delays were not waited: {elapsed:?}"
    );
    // Each try has its own log, rendered with its own try number.
    let logs = p.sluice(&[
        "logs",
        "p",
        "--date",
        "2024-01-01",
        "--task",
        "flaky",
        "--try",
        "2",
    ]);
    assert!(
        logs.stdout.contains("try 2 (attempt 2)"),
        "{}",
        logs.explain()
    );
    assert!(logs.stdout.contains("retrying in"), "{}", logs.explain());
}

#[test]
fn exhausted_retries_fail_the_run_with_error_and_log_tail() {
    let p = project_with(
        r#"
pipeline: p
defaults: { retries: 1, retry_delay: 50ms }
tasks:
  broken: { shell: "echo 'reading input'; echo 'disk on fire' >&2; exit 3" }
  downstream: { after: [broken], shell: "echo never" }
"#,
    );
    let out = p.sluice(&["run", "p", "--date", "2024-01-01"]);
    assert_eq!(out.code, 1, "{}", out.explain());
    assert!(
        out.stdout
            .contains("broken failed: command failed with exit status 3"),
        "{}",
        out.explain()
    );
    assert!(
        out.stdout.contains("disk on fire"),
        "the log tail is shown:\n{}",
        out.explain()
    );
    let runs = p.sluice(&["runs", "p", "--json"]);
    let run = &runs.json()[0];
    assert_eq!(run["state"], "failed");
    assert_eq!(state_of(run, "broken"), ("failed".into(), 2));
    assert_eq!(state_of(run, "downstream"), ("upstream_failed".into(), 0));
    assert!(
        run["tasks"][0]["error"]
            .as_str()
            .unwrap()
            .contains("exit status 3")
    );
}

/// Runs `p`'s single task, which must time out, stop promptly, and fail the run.
fn run_that_times_out(p: &TestProject) -> serde_json::Value {
    let started = Instant::now();
    let out = p.sluice(&["run", "p", "--date", "2024-01-01", "--json"]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the timeout did not stop the task:\n{}",
        out.explain()
    );
    assert_eq!(out.code, 1, "{}", out.explain());
    let run = out.json();
    let error = run["tasks"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("timed out"), "{run}");
    run
}

#[test]
fn timeout_kills_the_process_group() {
    let p = project_with(
        r#"
pipeline: p
tasks:
  slow:
    timeout: 1s
    shell: "sh -c 'echo $$ > child.pid; sleep 60' & wait"
"#,
    );
    let run = run_that_times_out(&p);
    assert_eq!(state_of(&run, "slow"), ("failed".into(), 1));
    let pid: i32 = p
        .read("child.pid")
        .trim()
        .parse()
        .expect("the grandchild wrote its pid");
    assert!(
        !common::process_alive(pid),
        "the task's grandchild process {pid} survived the timeout"
    );
}

#[test]
fn timeout_interrupts_a_warehouse_query() {
    let p = project_with(
        r#"
pipeline: p
tasks:
  heavy:
    timeout: 1s
    sql: "select count(*) from range(1000000000000) a"
"#,
    );
    run_that_times_out(&p);
}

#[test]
fn trigger_rules() {
    let p = project_with(
        r#"
pipeline: p
tasks:
  ok: { shell: "true" }
  bad: { shell: "false" }
  all_success: { after: [ok, bad], shell: "true" }
  all_done: { after: [ok, bad], trigger_rule: all_done, shell: "true" }
  one_failed: { after: [ok, bad], trigger_rule: one_failed, shell: "true" }
  one_success: { after: [ok, bad], trigger_rule: one_success, shell: "true" }
  none_failed: { after: [ok, bad], trigger_rule: none_failed, shell: "true" }
  all_failed: { after: [bad], trigger_rule: all_failed, shell: "true" }
  all_failed_skip: { after: [ok], trigger_rule: all_failed, shell: "true" }
  none_skipped: { after: [all_failed_skip], trigger_rule: none_skipped, shell: "true" }
  after_skip: { after: [all_failed_skip], shell: "true" }
  always: { after: [all_success], trigger_rule: always, shell: "true" }
  cascade: { after: [all_success], shell: "true" }
"#,
    );
    let out = p.sluice(&["run", "p", "--date", "2024-01-01", "--json"]);
    assert_eq!(out.code, 1, "a leaf failed:\n{}", out.explain());
    let run = out.json();
    let want = [
        ("ok", "success"),
        ("bad", "failed"),
        ("all_success", "upstream_failed"),
        ("all_done", "success"),
        ("one_failed", "success"),
        ("one_success", "success"),
        ("none_failed", "upstream_failed"),
        ("all_failed", "success"),
        ("all_failed_skip", "skipped"),
        ("none_skipped", "skipped"),
        ("after_skip", "skipped"),
        ("always", "success"),
        ("cascade", "upstream_failed"),
    ];
    for (task, state) in want {
        assert_eq!(state_of(&run, task).0, state, "task {task} in {run:#}");
    }
}

#[test]
fn independent_tasks_run_concurrently() {
    // Four tasks that each wait for the others to have started would deadlock if run one by one.
    let p = independent_tasks("", 4, |i| {
        format!(
            "timeout: 20s, shell: \"touch started_{i}; for n in $(seq 100); do [ $(ls started_* | wc -l) -ge 4 ] && exit 0; sleep 0.1; done; exit 1\""
        )
    });
    let out = p.sluice(&["run", "p", "--date", "2024-01-01"]);
    assert_eq!(out.code, 0, "{}", out.explain());
}

#[test]
fn resume_after_kill_does_not_repeat_finished_tasks() {
    let p = project_with(
        r#"
pipeline: p
tasks:
  first: { shell: "echo first >> trace" }
  second:
    after: [first]
    shell: "echo second >> trace; if [ -f block ]; then echo $$ > second.pid; exec sleep 60; fi"
  third: { after: [second], shell: "echo third >> trace" }
"#,
    );
    p.write("block", "");
    let mut child = p
        .command(&["run", "p", "--date", "2024-01-01", "-q"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !p.read("trace").contains("second") {
        assert!(Instant::now() < deadline, "second never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    sluice_testkit::send_signal(child.id(), libc::SIGKILL);
    child.wait().unwrap();
    std::fs::remove_file(p.path().join("block")).unwrap();

    let out = p.sluice(&["run", "p", "--date", "2024-01-01", "--json"]);
    assert_eq!(out.code, 0, "{}", out.explain());
    assert_eq!(
        p.read("trace"),
        "first\nsecond\nsecond\nthird\n",
        "first ran once, second again, third once"
    );
    let run = out.json();
    assert_eq!(state_of(&run, "first"), ("success".into(), 1));
    assert_eq!(state_of(&run, "second"), ("success".into(), 2));
    let first_try = p.sluice(&[
        "logs",
        "p",
        "--date",
        "2024-01-01",
        "--task",
        "second",
        "--try",
        "1",
    ]);
    assert!(
        first_try.stdout.contains("(interrupted)"),
        "{}",
        first_try.explain()
    );
    // Running it again does nothing: the run has finished.
    let again = p.sluice(&["run", "p", "--date", "2024-01-01"]);
    assert_eq!(again.code, 0, "{}", again.explain());
    assert!(
        again.stdout.contains("already finished"),
        "{}",
        again.explain()
    );
    assert_eq!(p.read("trace").lines().count(), 4);
    // The killed run's `sleep` was orphaned, as any child of a process killed with SIGKILL is.
    if let Ok(pid) = p.read("second.pid").trim().parse::<u32>() {
        sluice_testkit::send_signal(pid, libc::SIGKILL);
    }
}

#[test]
fn clear_with_downstream_reruns_only_those_tasks() {
    let p = project_with(
        r#"
pipeline: p
tasks:
  a: { shell: "echo a >> trace" }
  b: { after: [a], shell: "echo b >> trace" }
  c: { after: [b], shell: "echo c >> trace" }
  d: { after: [a], shell: "echo d >> trace" }
"#,
    );
    assert_eq!(p.sluice(&["run", "p", "--date", "2024-01-01"]).code, 0);
    let cleared = p.sluice(&[
        "clear",
        "p",
        "--date",
        "2024-01-01",
        "--task",
        "b",
        "--downstream",
    ]);
    assert_eq!(cleared.code, 0, "{}", cleared.explain());
    assert!(
        cleared.stdout.contains("cleared 2 tasks"),
        "{}",
        cleared.explain()
    );
    let out = p.sluice(&["run", "p", "--date", "2024-01-01", "--json"]);
    assert_eq!(out.code, 0, "{}", out.explain());
    let trace = p.read("trace");
    assert_eq!(trace.matches('a').count(), 1, "{trace}");
    assert_eq!(trace.matches('b').count(), 2, "{trace}");
    assert_eq!(trace.matches('c').count(), 2, "{trace}");
    assert_eq!(trace.matches('d').count(), 1, "{trace}");
    let unknown = p.sluice(&["clear", "p", "--date", "2024-01-01", "--task", "bb"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("did you mean `b`"),
        "{}",
        unknown.explain()
    );
}

#[test]
fn rerun_failed_runs_failed_tasks_again() {
    let p = project_with(
        r#"
pipeline: p
tasks:
  a: { shell: "echo a >> trace" }
  b: { after: [a], shell: "echo b >> trace; [ -f fixed ]" }
  c: { after: [b], shell: "echo c >> trace" }
"#,
    );
    assert_eq!(p.sluice(&["run", "p", "--date", "2024-01-01"]).code, 1);
    p.write("fixed", "");
    let out = p.sluice(&[
        "run",
        "p",
        "--date",
        "2024-01-01",
        "--rerun-failed",
        "--json",
    ]);
    assert_eq!(out.code, 0, "{}", out.explain());
    assert_eq!(p.read("trace"), "a\nb\nb\nc\n");
}

#[test]
fn backfill_runs_each_interval_and_dry_run_runs_nothing() {
    let p = project_with(
        r#"
pipeline: p
schedule: "0 6 * * *"
start_date: 2024-01-01
tasks:
  record: { shell: "echo {{ ds }} {{ data_interval_start }} {{ data_interval_end }} >> days" }
"#,
    );
    let dry = p.sluice(&[
        "backfill",
        "p",
        "--from",
        "2024-01-02",
        "--to",
        "2024-01-04",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(dry.code, 0, "{}", dry.explain());
    assert_eq!(dry.json().as_array().unwrap().len(), 3);
    assert_eq!(
        p.sluice(&["runs", "p", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        0,
        "dry run created runs"
    );

    let out = p.sluice(&[
        "backfill",
        "p",
        "--from",
        "2024-01-02",
        "--to",
        "2024-01-04",
        "--parallel",
        "2",
        "--json",
    ]);
    assert_eq!(out.code, 0, "{}", out.explain());
    let runs = out.json();
    let dates: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["logical_date"].as_str().unwrap())
        .collect();
    assert_eq!(
        dates,
        [
            "2024-01-02T06:00:00+00:00",
            "2024-01-03T06:00:00+00:00",
            "2024-01-04T06:00:00+00:00"
        ]
    );
    let mut days: Vec<String> = p.read("days").lines().map(str::to_string).collect();
    days.sort();
    assert_eq!(
        days,
        [
            "2024-01-02 2024-01-02T06:00:00+00:00 2024-01-03T06:00:00+00:00",
            "2024-01-03 2024-01-03T06:00:00+00:00 2024-01-04T06:00:00+00:00",
            "2024-01-04 2024-01-04T06:00:00+00:00 2024-01-05T06:00:00+00:00",
        ]
    );
    // Before the start date: a usage error, and no run.
    let early = p.sluice(&["run", "p", "--date", "2023-12-31"]);
    assert_eq!(early.code, 2, "{}", early.explain());
    assert!(
        early.stderr.contains("before the pipeline's start_date"),
        "{}",
        early.explain()
    );
}

#[test]
fn run_without_date_takes_the_latest_complete_interval() {
    let p = project_with(
        r#"
pipeline: p
schedule: "@daily"
start_date: 2024-01-01
tasks:
  a: { shell: "true" }
"#,
    );
    let out = p.sluice(&["run", "p", "--json"]);
    assert_eq!(out.code, 0, "{}", out.explain());
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    assert!(
        out.json()["logical_date"]
            .as_str()
            .unwrap()
            .starts_with(&yesterday),
        "{}",
        out.explain()
    );
}

#[test]
fn broken_pipeline_is_a_usage_error_and_creates_no_run() {
    let p = project_with("pipeline: p\ntasks:\n  a: { after: [nope], shell: \"true\" }\n");
    let out = p.sluice(&["run", "p", "--date", "2024-01-01"]);
    assert_eq!(out.code, 2, "{}", out.explain());
    assert!(
        out.stderr
            .contains("pipelines/p.yaml:3:16: error: task `a` depends on unknown task `nope`"),
        "{}",
        out.explain()
    );
    let unknown = p.sluice(&["run", "q", "--date", "2024-01-01"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("unknown pipeline `q`"),
        "{}",
        unknown.explain()
    );
    assert!(
        !p.path().join(".sluice/metadata.db").exists()
            || p.sluice(&["runs", "p", "--json"]).stdout.trim() == "[]"
    );
    let bad_date = p.sluice(&["run", "p", "--date", "2024-02-30"]);
    assert_eq!(bad_date.code, 2, "{}", bad_date.explain());
}

#[test]
fn python_tasks_get_native_kwargs_and_context() {
    let p = project_with(
        r#"
for_each:
  - { name: users, table: app_users }
pipeline: "etl_{{ item.name }}"
params: { limit: 10 }
tasks:
  extract:
    python: { callable: "jobs.extract:run", kwargs: { config: "{{ item }}", limit: "{{ params.limit }}", label: "x-{{ ds }}" } }
  boom:
    python: "jobs.extract:boom"
"#,
    );
    p.write(
        "python/jobs/__init__.py",
        "",
    )
    .write(
        "python/jobs/extract.py",
        r#"
import json
def run(config, limit, label, ds, try_number):
    with open("out.json", "w") as f:
        json.dump({"config": config, "limit": limit, "label": label, "ds": ds, "try": try_number}, f)
    print("extracted", config["table"])
    return {"rows": 42}

def boom(**context):
    raise ValueError(f"bad data for {context['ds']}")
"#,
    );
    let out = p.sluice(&["run", "etl_users", "--date", "2024-03-01", "--json"]);
    assert_eq!(out.code, 1, "{}", out.explain());
    let written: serde_json::Value =
        serde_json::from_str(&p.read("out.json")).expect("the callable ran");
    assert_eq!(
        written,
        serde_json::json!({"config": {"name": "users", "table": "app_users"}, "limit": 10, "label": "x-2024-03-01", "ds": "2024-03-01", "try": 1})
    );
    let run = out.json();
    assert_eq!(run["tasks"][0]["rows"], 42);
    let boom = run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == "boom")
        .unwrap();
    assert_eq!(
        boom["error"],
        "jobs.extract:boom raised ValueError: bad data for 2024-03-01"
    );
    let logs = p.sluice(&[
        "logs",
        "etl_users",
        "--date",
        "2024-03-01",
        "--task",
        "extract",
    ]);
    assert!(
        logs.stdout.contains("extracted app_users"),
        "{}",
        logs.explain()
    );
}

#[test]
fn demo_project_runs_end_to_end_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    common::init_demo(&demo);
    let run = |args: &[&str]| {
        let out = std::process::Command::new(common::sluice_bin())
            .args(args)
            .arg("--project")
            .arg(&demo)
            .output()
            .unwrap();
        common::outcome(args, out)
    };
    let check = run(&["check", "--json"]);
    assert_eq!(check.code, 0, "{}", check.explain());
    let ids: Vec<String> = check.json()["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pipeline"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        [
            "daily_sales_etl",
            "etl_mysql_orders",
            "etl_postgres_users",
            "etl_api_products"
        ]
    );

    let first = run(&["run", "daily_sales_etl", "--date", "2024-01-01", "--json"]);
    assert_eq!(first.code, 0, "{}", first.explain());
    assert!(
        task_states(&first.json())
            .iter()
            .all(|(_, s, _)| s == "success")
    );
    let counts = || {
        let db = sluice_warehouse::duckdb::Connection::open(demo.join("warehouse.duckdb")).unwrap();
        let staged: i64 = db
            .query_row("select count(*) from staging.orders", [], |r| r.get(0))
            .unwrap();
        let agg: i64 = db
            .query_row("select sum(orders) from analytics.daily_sales", [], |r| {
                r.get(0)
            })
            .unwrap();
        (staged, agg)
    };
    assert_eq!(counts(), (400, 400));
    // The day's one malformed row went to the dead-letter store, with its line and reason.
    let dlq = run(&["dlq", "list", "daily_sales_etl", "--json"]).json();
    let bad = dlq["bad_records"].as_array().expect("a list");
    assert_eq!(bad.len(), 1, "{dlq}");
    assert_eq!(bad[0]["line"], 402, "{dlq}");
    assert_eq!(bad[0]["task"], "extract_orders", "{dlq}");
    assert!(
        bad[0]["reason"]
            .as_str()
            .unwrap()
            .contains("column `total`: `n/a` is not a decimal(12,2)"),
        "{dlq}"
    );
    // Clearing and re-running the whole day leaves exactly the same rows.
    assert_eq!(
        run(&["clear", "daily_sales_etl", "--date", "2024-01-01"]).code,
        0
    );
    assert_eq!(
        run(&["run", "daily_sales_etl", "--date", "2024-01-01"]).code,
        0
    );
    assert_eq!(counts(), (400, 400));
    let second = run(&[
        "backfill",
        "daily_sales_etl",
        "--from",
        "2024-01-02",
        "--to",
        "2024-01-03",
        "--parallel",
        "2",
    ]);
    assert_eq!(second.code, 0, "{}", second.explain());
    assert_eq!(counts(), (1200, 1200));
    // The dynamic pipelines run too (their extract is a Python callable).
    let dynamic = run(&["run", "etl_api_products", "--date", "2024-01-05", "--json"]);
    assert_eq!(dynamic.code, 0, "{}", dynamic.explain());
}

#[test]
fn concurrent_warehouse_tasks_survive_transaction_conflicts() {
    // Eight tasks create the same schema and table at once and insert into it. DuckDB lets all
    // but one of the racing transactions fail with a write-write conflict; the sql kind tries
    // the loser again, so no task fails (retries: 0) and every row lands exactly once.
    let p = independent_tasks("defaults: { retries: 0 }\n", 8, |i| {
        format!(
            "sql: \"create schema if not exists s; create table if not exists s.t (x int); insert into s.t values ({i})\""
        )
    });
    let out = p.sluice(&["run", "p", "--date", "2024-01-01"]);
    assert_eq!(out.code, 0, "{}", out.explain());
    let db = sluice_warehouse::duckdb::Connection::open(p.path().join("warehouse.duckdb")).unwrap();
    let (n, distinct): (i64, i64) = db
        .query_row("select count(*), count(distinct x) from s.t", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((n, distinct), (8, 8));
}

#[test]
fn ctrl_c_stops_running_tasks_and_the_run_resumes_later() {
    let p = project_with(
        r#"
pipeline: p
tasks:
  long:
    shell: "echo $$ > long.pid; if [ -f block ]; then sleep 60; fi; echo done >> trace"
  next: { after: [long], shell: "echo next >> trace" }
"#,
    );
    p.write("block", "");
    let child = p
        .command(&["run", "p", "--date", "2024-01-01", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while p.read("long.pid").trim().is_empty() {
        assert!(Instant::now() < deadline, "the task never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let shell_pid: i32 = p.read("long.pid").trim().parse().unwrap();
    let stopped_at = Instant::now();
    sluice_testkit::send_signal(child.id(), libc::SIGINT);
    let out = common::outcome(&["run (interrupted)"], child.wait_with_output().unwrap());
    assert!(
        stopped_at.elapsed() < Duration::from_secs(15),
        "{}",
        out.explain()
    );
    assert_eq!(out.code, 1, "{}", out.explain());
    let run = out.json();
    assert_eq!(
        run["state"], "queued",
        "an interrupted run waits to be resumed: {run}"
    );
    assert_eq!(state_of(&run, "long"), ("none".into(), 1));
    assert!(
        !common::process_alive(shell_pid),
        "the task's process survived Ctrl-C"
    );
    assert_eq!(
        p.read("trace"),
        "",
        "nothing after the interrupted task ran"
    );

    std::fs::remove_file(p.path().join("block")).unwrap();
    let resumed = p.sluice(&["run", "p", "--date", "2024-01-01", "--json"]);
    assert_eq!(resumed.code, 0, "{}", resumed.explain());
    assert_eq!(p.read("trace"), "done\nnext\n");
    assert_eq!(state_of(&resumed.json(), "long"), ("success".into(), 2));
}

#[test]
fn sql_tasks_run_on_named_duckdb_connections_and_secrets_are_masked() {
    let p = project_with(
        r#"
pipeline: p
tasks:
  to_marts:
    sql: { on: marts, query: "create table t as select 42 as answer" }
  leaky:
    retries: 0
    sql: "select error('upstream rejected Hunter2-secret')"
"#,
    );
    // The file names another database for `marts`; the environment wins.
    p.write(
        "connections.yaml",
        "api: https://svc:Hunter2-secret@api.example.com/v1\nmarts: duckdb://elsewhere.duckdb\n",
    );
    let out = p
        .command(&["run", "p", "--date", "2024-01-01", "--json"])
        .env("SLUICE_CONN_MARTS", "duckdb://marts.duckdb")
        .output()
        .unwrap();
    let out = common::outcome(&["run"], out);
    assert_eq!(out.code, 1, "{}", out.explain());
    assert_eq!(state_of(&out.json(), "to_marts").0, "success");
    let db = sluice_warehouse::duckdb::Connection::open(p.path().join("marts.duckdb")).unwrap();
    let answer: i64 = db
        .query_row("select answer from t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(answer, 42);
    assert!(
        !p.path().join("elsewhere.duckdb").exists(),
        "the file won over the environment"
    );
    // The secret appears in neither the error, `sluice runs`, nor the log.
    let runs = p.sluice(&["runs", "p"]);
    let logs = p.sluice(&["logs", "p", "--date", "2024-01-01", "--task", "leaky"]);
    for text in [&out.stdout, &out.stderr, &runs.stdout, &logs.stdout] {
        assert!(!text.contains("Hunter2"), "a secret was printed:\n{text}");
    }
    assert!(
        runs.stdout.contains("upstream rejected ***"),
        "{}",
        runs.explain()
    );
}
