//! `sql` tasks and the warehouse on the servers teams run: PostgreSQL and MariaDB — one
//! transaction, rows per statement, hostile values quoted by the server's own rules,
//! cancellation that stops the server-side query, and the demo pipeline on PostgreSQL.

use std::time::{Duration, Instant};

use crate::common::{self, TestProject, state_of};
use sluice_testkit::{mariadb, pg};

fn project(connections: &str, pipeline: &str) -> TestProject {
    let p = TestProject::new();
    p.write("connections.yaml", connections);
    p.write("pipelines/p.yaml", pipeline);
    p
}

/// A value with every character that ends or escapes a literal somewhere.
const HOSTILE: &str = r#"it's a \'; DROP TABLE x; -- "quoted" \\ back\slash"#;

fn pipeline_for(table: &str, extra_task: &str) -> String {
    format!(
        r#"
pipeline: p
params: {{ note: {hostile} }}
tasks:
  transform:
    retries: 0
    sql:
      on: dw
      query: |
        CREATE TABLE {table} (id INTEGER, note VARCHAR(200), day DATE);
        INSERT INTO {table} VALUES (1, {{{{ params.note | sql }}}}, {{{{ ds | sql }}}}),
                                   (2, {{{{ 'x' | sql }}}}, {{{{ ds | sql }}}});
        UPDATE {table} SET id = id + 10;
{extra_task}"#,
        hostile = serde_json::to_string(HOSTILE).unwrap(),
    )
}

#[test]
fn sql_tasks_on_postgres_run_in_one_transaction_with_rows_per_statement() {
    let schema = pg::Schema::create("sqlpg");
    let table = format!("{}.notes", schema.name);
    let p = project(
        &format!("dw: {}\n", pg::TEST_URL),
        &pipeline_for(&table, ""),
    );
    let out = p.sluice(&["run", "p", "--date", "2024-03-01", "--json"]);
    assert_eq!(out.code, 0, "{}", out.explain());
    assert_eq!(
        schema.column(&format!("SELECT note FROM {table} WHERE id = 11")),
        vec![HOSTILE.to_string()]
    );
    assert_eq!(
        schema.column(&format!(
            "SELECT count(*) FROM {table} WHERE day = '2024-03-01'"
        )),
        vec!["2"]
    );
    let log = p.sluice(&["logs", "p", "--date", "2024-03-01", "--task", "transform"]);
    for line in [
        "statement 1 (CREATE TABLE",
        "statement 2 (INSERT INTO",
        ": 2 rows",
        "statement 3 (UPDATE",
        "committed: 3 statement(s), 4 rows",
    ] {
        assert!(
            log.stdout.contains(line),
            "`{line}` missing:\n{}",
            log.stdout
        );
    }

    // A failing statement rolls back everything before it, the CREATE TABLE included.
    let broken = format!("{}.broken", schema.name);
    p.write(
        "pipelines/p.yaml",
        &format!(
            "pipeline: p\ntasks:\n  t:\n    retries: 0\n    sql:\n      on: dw\n      query: |\n        \
             CREATE TABLE {broken} (id int);\n        INSERT INTO {broken} VALUES (1);\n        \
             SELECT no_such_column FROM {broken};\n"
        ),
    );
    let out = p.sluice(&["run", "p", "--date", "2024-03-02", "--json"]);
    assert_eq!(out.code, 1, "{}", out.explain());
    let error = out.json()["tasks"][0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.contains("column \"no_such_column\" does not exist") && error.contains("line 3"),
        "{error}"
    );
    assert_eq!(
        schema.column(&format!("SELECT to_regclass('{broken}') IS NULL")),
        vec!["t"]
    );
}

#[test]
fn a_timed_out_postgres_task_cancels_its_query_on_the_server() {
    let marker = sluice_testkit::unique_name("cancel_me");
    let p = project(
        &format!("dw: {}\n", pg::TEST_URL),
        &format!(
            "pipeline: p\ntasks:\n  slow:\n    retries: 0\n    timeout: 1s\n    sql: {{ on: dw, query: \
             \"SELECT pg_sleep(60), '{marker}'\" }}\n  limited:\n    retries: 0\n    sql: {{ on: dw, \
             statement_timeout: 300ms, query: \"SELECT pg_sleep(30)\" }}\n"
        ),
    );
    let started = Instant::now();
    let out = p.sluice(&["run", "p", "--date", "2024-03-01", "--json"]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{}",
        out.explain()
    );
    assert_eq!(out.code, 1, "{}", out.explain());
    let run = out.json();
    assert_eq!(state_of(&run, "slow").0, "failed");
    let limited = run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == "limited")
        .unwrap();
    assert!(
        limited["error"]
            .as_str()
            .unwrap()
            .contains("canceling statement due to statement timeout"),
        "{run}"
    );
    // The server stopped the query: nothing of this test is still running there.
    stopped_on_the_server(|| {
        pg::column(
            pg::TEST_URL,
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%{marker}%' AND pid <> \
                 pg_backend_pid() AND state = 'active'"
            ),
        )
    });
}

/// Waits (up to 5 s) until `running` — a count of the test's queries on the server — is 0.
fn stopped_on_the_server(mut running: impl FnMut() -> Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while running() != ["0"] {
        assert!(
            Instant::now() < deadline,
            "the query still runs on the server"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sql_tasks_on_mariadb_quote_by_its_rules_and_kill_the_query_on_timeout() {
    let db = mariadb::Database::create("sqlmy");
    let table = format!("{}.notes", db.name);
    let marker = sluice_testkit::unique_name("kill_me");
    let slow = format!(
        "  slow:\n    retries: 0\n    timeout: 1s\n    sql: {{ on: dw, query: \"SELECT SLEEP(60), \
         '{marker}'\" }}\n"
    );
    let p = project(&format!("dw: {}\n", db.url), &pipeline_for(&table, &slow));
    let out = p.sluice(&["run", "p", "--date", "2024-03-01", "--json"]);
    assert_eq!(out.code, 1, "{}", out.explain());
    let run = out.json();
    assert_eq!(state_of(&run, "transform").0, "success", "{run}");
    assert_eq!(state_of(&run, "slow").0, "failed", "{run}");
    assert_eq!(
        db.column(&format!("SELECT note FROM {table} WHERE id = 11")),
        vec![HOSTILE.to_string()]
    );
    let log = p.sluice(&["logs", "p", "--date", "2024-03-01", "--task", "transform"]);
    assert!(
        log.stdout.contains("statement 3 (UPDATE") && log.stdout.contains(": 2 rows"),
        "{}",
        log.stdout
    );
    stopped_on_the_server(|| {
        db.column(&format!(
            "SELECT count(*) FROM information_schema.processlist WHERE info LIKE '%{marker}%' \
             AND id <> CONNECTION_ID()"
        ))
    });
}

#[test]
fn the_demo_pipeline_runs_on_a_postgres_warehouse_idempotently() {
    let dw = pg::Database::create("demo_dw");
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    common::init_demo(&demo);
    let run = |args: &[&str]| {
        let out = std::process::Command::new(common::sluice_bin())
            .args(args)
            .arg("--project")
            .arg(&demo)
            .env("SLUICE_CONN_WAREHOUSE", &dw.url)
            .output()
            .unwrap();
        common::outcome(args, out)
    };
    let check = run(&["check"]);
    assert_eq!(check.code, 0, "{}", check.explain());
    runs_the_demo_twice_to_the_same_rows(&run, |sql| dw.column(sql));
    // The article's suite, on the loaded table where it lives (SQL pushdown).
    let suite = demo.join("suites/orders_suite.json");
    let validate = run(&[
        "validate",
        "--suite",
        suite.to_str().unwrap(),
        "warehouse:staging.orders",
        "--format",
        "json",
    ]);
    assert_eq!(validate.code, 0, "{}", validate.explain());
    assert_eq!(validate.json()["success"], true, "{}", validate.stdout);
    // Nothing went to the embedded warehouse.
    assert!(!demo.join("warehouse.duckdb").exists());
}

#[test]
fn run_refuses_what_check_rejects_in_the_project_settings() {
    let p = project(
        "warehouse: https://example.com/not-a-database\n",
        "pipeline: p\ntasks:\n  t: { shell: \"echo ran > ran.txt\" }\n",
    );
    let check = p.sluice(&["check"]);
    assert_eq!(check.code, 1, "{}", check.explain());
    let out = p.sluice(&["run", "p", "--date", "2024-01-01"]);
    assert_eq!(out.code, 2, "{}", out.explain());
    assert!(
        out.stderr.contains("the `warehouse` connection is HTTP"),
        "{}",
        out.explain()
    );
    assert!(!p.path().join("ran.txt").exists(), "the task ran");
}

#[test]
fn the_demo_pipeline_runs_on_a_mariadb_warehouse_idempotently() {
    // The demo names its schemas (`staging`, `analytics`): MySQL's databases of those names.
    let dw = mariadb::Database::create("demo_dw");
    let reset = || dw.execute("DROP DATABASE IF EXISTS staging; DROP DATABASE IF EXISTS analytics");
    reset();
    let p = TestProject::demo();
    let run = |args: &[&str]| {
        let out = p
            .command(args)
            .env("SLUICE_CONN_WAREHOUSE", &dw.url)
            .output()
            .unwrap();
        common::outcome(args, out)
    };
    runs_the_demo_twice_to_the_same_rows(&run, |sql| dw.column(sql));
    // The article's suite on the loaded table, streamed out of MariaDB.
    let suite = p.path().join("suites/orders_suite.json");
    let validate = run(&[
        "validate",
        "--suite",
        suite.to_str().unwrap(),
        "warehouse:staging.orders",
        "--format",
        "json",
    ]);
    assert_eq!(validate.code, 0, "{}", validate.explain());
    assert_eq!(validate.json()["success"], true, "{}", validate.stdout);
    reset();
}

#[test]
fn metadata_workers_and_warehouse_on_a_tls_only_postgres_with_verify_full() {
    let pg = sluice_testkit::tls::TlsPostgres::start();
    pg.psql("CREATE DATABASE meta");
    pg.psql("CREATE DATABASE dw");
    let ca = pg.ca.cert_file.display().to_string();
    let url = |db: &str| {
        format!(
            "postgres://postgres:{}@localhost:{}/{db}?sslmode=verify-full&sslrootcert={ca}",
            pg.password, pg.port
        )
    };
    let p = TestProject::demo();
    let port = sluice_testkit::net::free_port();
    let mut serve = common::server::Server::command(&p, port);
    serve
        .arg("--workers")
        .env("SLUICE_METADATA", url("meta"))
        .env("SLUICE_CONN_WAREHOUSE", url("dw"));
    let server = common::server::Server::spawn(serve, port, None);
    let mut worker = p
        .command(&["worker", "--name", "w1"])
        .env("SLUICE_METADATA", url("meta"))
        .env("SLUICE_CONN_WAREHOUSE", url("dw"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (status, run) = server.post(
        "/api/pipelines/daily_sales_etl/runs",
        serde_json::json!({ "date": "2024-01-01" }),
    );
    assert_eq!(status, 201, "{run}");
    let id = run["id"].as_i64().unwrap();
    server.wait_up_to(Duration::from_secs(120), "the run to finish", || {
        let state = server.get(&format!("/api/runs/{id}"))["state"].clone();
        state == "success" || state == "failed"
    });
    let _ = worker.kill();
    let _ = worker.wait();
    let run = server.get(&format!("/api/runs/{id}"));
    assert_eq!(run["state"], "success", "{run}");
    let rows = pg.column("dw", "SELECT sum(orders) FROM analytics.daily_sales");
    assert_eq!(rows, ["400"]);
    let tries = pg.column("meta", "SELECT count(*) FROM task_queue");
    assert_ne!(tries, ["0"], "the tries went through the queue");
}

/// Runs the demo for 2024-01-01, clears it and runs it again: both times the warehouse holds
/// the day's 400 orders, loaded and aggregated once.
fn runs_the_demo_twice_to_the_same_rows(
    run: &dyn Fn(&[&str]) -> common::Outcome,
    column: impl Fn(&str) -> Vec<String>,
) {
    for _ in 0..2 {
        let out = run(&["run", "daily_sales_etl", "--date", "2024-01-01", "--json"]);
        assert_eq!(out.code, 0, "{}", out.explain());
        assert_eq!(
            run(&["clear", "daily_sales_etl", "--date", "2024-01-01"]).code,
            0
        );
        assert_eq!(column("SELECT count(*) FROM staging.orders"), vec!["400"]);
        assert_eq!(
            column("SELECT sum(orders) FROM analytics.daily_sales"),
            vec!["400"]
        );
    }
}
