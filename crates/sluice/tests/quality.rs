//! Data quality against the real binary: the demo's quarantine, `validate` tasks that fail or
//! warn, and `sluice validate` on files, the lake, the DuckDB warehouse and PostgreSQL — the
//! last three giving the same results for the same rows.
//!
//! Needs PostgreSQL at 127.0.0.1:5432 (trust auth, database `test`).

use crate::common;

use std::path::Path;
use std::process::Command;

use common::{TestProject, outcome, sluice_bin, state_of};
use serde_json::Value;

const PG_URI: &str = common::pg::TEST_URL;

fn duck_strings(db: &Path, sql: &str) -> Vec<String> {
    let conn = sluice_warehouse::duckdb::Connection::open(db).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn the_demo_quarantines_the_malformed_row_and_loads_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("demo");
    common::init_demo(&project);
    let p = project.to_str().unwrap();
    // 2024-01-04's export has one order with a malformed e-mail.
    let run = outcome(
        &[],
        Command::new(sluice_bin())
            .args([
                "run",
                "daily_sales_etl",
                "--project",
                p,
                "--date",
                "2024-01-04",
                "--json",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{}", run.explain());
    let json = run.json();
    assert_eq!(state_of(&json, "validate_data").0, "success");
    // Both counts are recorded: the rows that continued and the rows set aside.
    let validate = json["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == "validate_data")
        .unwrap();
    assert_eq!(
        (validate["rows"].as_i64(), validate["rejected"].as_i64()),
        (Some(400), Some(1))
    );

    // The good rows continued: 400 in staging, none with the malformed address.
    let warehouse = project.join("warehouse.duckdb");
    let loaded = duck_strings(
        &warehouse,
        "SELECT count(*)::VARCHAR || ' ' || count(*) FILTER (WHERE email LIKE '% at %')::VARCHAR
         FROM staging.orders WHERE order_date = DATE '2024-01-04'",
    );
    assert_eq!(loaded, ["400 0"]);

    // The bad row is in the quarantine file with the expectation it broke.
    let quarantine = project.join("lake/quarantine/orders/2024-01-04.parquet");
    let mem = tempfile::tempdir().unwrap();
    let rows = duck_strings(
        &mem.path().join("q.duckdb"),
        &format!(
            "SELECT email || ' | ' || _failed_expectations FROM read_parquet('{}')",
            quarantine.display()
        ),
    );
    assert_eq!(
        rows,
        ["customer42 at example.com | expect_column_values_to_match_regex"]
    );

    // The task recorded both counts, and its reports are beside its log.
    let logs = outcome(
        &[],
        Command::new(sluice_bin())
            .args([
                "logs",
                "daily_sales_etl",
                "--project",
                p,
                "--date",
                "2024-01-04",
                "--task",
                "validate_data",
            ])
            .output()
            .unwrap(),
    );
    assert!(
        logs.stdout
            .contains("400 row(s) passed and continue; 1 row(s) quarantined"),
        "{}",
        logs.explain()
    );
    assert!(
        logs.stdout
            .contains("✗ expect_column_values_to_match_regex")
    );
    let html_path = logs
        .stdout
        .lines()
        .find_map(|l| l.split("report: ").nth(1))
        .expect("the log names the report");
    let html = std::fs::read_to_string(html_path).unwrap();
    assert!(html.starts_with("<!doctype html>") && html.contains("orders_suite"));
    assert!(
        !html.contains("<script src") && !html.contains("http://") && !html.contains("https://")
    );
    let result: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(html_path).with_extension("json")).unwrap(),
    )
    .unwrap();
    assert_eq!(result["statistics"]["unsuccessful_expectations"], 1);
}

const ORDERS_CSV: &str = "order_id,total,status\n1,10.5,paid\n2,-3,paid\n3,7,lost\n4,,paid\n";

const SUITE: &str = r#"{"expectation_suite_name": "orders", "expectations": [
  {"expectation_type": "expect_column_values_to_be_between", "kwargs": {"column": "total", "min_value": 0}},
  {"expectation_type": "expect_column_values_to_be_in_set", "kwargs": {"column": "status", "value_set": ["paid"], "mostly": 0.5}},
  {"expectation_type": "expect_column_mean_to_be_between", "kwargs": {"column": "total", "min_value": 0, "max_value": 100}},
  {"expectation_type": "expect_column_values_to_not_be_null", "kwargs": {"column": "total"}}
]}"#;

#[test]
fn a_failing_suite_fails_or_warns_as_the_task_says() {
    let p = TestProject::new();
    p.write("lake/orders.csv", ORDERS_CSV)
        .write("suites/orders.json", SUITE);
    for (name, on_failure) in [("strict", "fail"), ("lenient", "warn")] {
        p.write(
            &format!("pipelines/{name}.yaml"),
            &format!(
                "pipeline: {name}\nschedule: \"@daily\"\nstart_date: 2024-01-01\ntasks:\n  check:\n    validate:\n      suite: suites/orders.json\n      data: lake://orders.csv\n      on_failure: {on_failure}\n"
            ),
        );
    }
    let strict = p.sluice(&["run", "strict", "--date", "2024-01-01", "--json"]);
    assert_eq!(strict.code, 1, "{}", strict.explain());
    let json = strict.json();
    let (state, tries) = state_of(&json, "check");
    // Bad data does not get better by waiting: no retries.
    assert_eq!((state.as_str(), tries), ("failed", 1));
    let error = json.to_string();
    assert!(
        error.contains("suite suites/orders.json failed 2 of 4 expectations")
            && error.contains("expect_column_values_to_be_between")
            && error.contains("1 of 3 values unexpected")
            && error.contains("expect_column_values_to_not_be_null"),
        "{error}"
    );
    let lenient = p.sluice(&["run", "lenient", "--date", "2024-01-01"]);
    assert_eq!(lenient.code, 0, "{}", lenient.explain());
    let log = p.sluice(&["logs", "lenient", "--date", "2024-01-01", "--task", "check"]);
    assert!(
        log.stdout.contains("warning (on_failure: warn)"),
        "{}",
        log.explain()
    );
}

/// The parts of a result that must not depend on the engine.
fn verdicts(result: &Value) -> Vec<(bool, Value, Value, Value)> {
    result["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["success"].as_bool().unwrap(),
                r["result"]["unexpected_count"].clone(),
                r["result"]["observed_value"].clone(),
                r["result"]["partial_unexpected_list"].clone(),
            )
        })
        .collect()
}

#[test]
fn sluice_validate_gives_one_verdict_on_files_the_warehouse_and_postgres() {
    let p = TestProject::new();
    p.write("data/orders.csv", ORDERS_CSV)
        .write("lake/in/orders.csv", ORDERS_CSV)
        .write("suites/orders.json", SUITE)
        .write(
            "suites/good.yaml",
            "name: good\nexpectations:\n  - type: ExpectColumnValuesToNotBeNull\n    kwargs: {column: order_id}\n",
        );
    let suite = p.path().join("suites/orders.json");
    let suite = suite.to_str().unwrap();
    let file = p.path().join("data/orders.csv");

    let expected = verdicts_on_the_file(&p, suite, &file);
    let from_lake = validate_json(&p, suite, "lake://in/*.csv");
    assert_eq!(verdicts(&from_lake.json()), expected);

    // The same rows in the warehouse and in PostgreSQL, validated where they live.
    let in_duck = validate_in_the_warehouse(&p, suite, &file);
    assert_eq!(in_duck.code, 1, "{}", in_duck.explain());
    assert_eq!(verdicts(&in_duck.json()), expected);
    let in_pg = validate_in_postgres(&p, suite);
    assert_eq!(in_pg.code, 1, "{}", in_pg.explain());
    assert_eq!(verdicts(&in_pg.json()), expected);

    // Passing, the text and HTML reports, and usage errors.
    passes_reports_and_refuses(&p, suite, &file);
}

/// `sluice validate --suite SUITE DATA --format json`.
fn validate_json(p: &TestProject, suite: &str, data: &str) -> common::Outcome {
    p.sluice(&["validate", "--suite", suite, data, "--format", "json"])
}

/// The suite on the CSV file: two of four expectations fail, with their figures. The verdicts
/// every other place must give.
fn verdicts_on_the_file(
    p: &TestProject,
    suite: &str,
    file: &Path,
) -> Vec<(bool, Value, Value, Value)> {
    let from_file = validate_json(p, suite, file.to_str().unwrap());
    assert_eq!(from_file.code, 1, "{}", from_file.explain());
    let from_file = from_file.json();
    assert_eq!(from_file["success"], false);
    assert_eq!(from_file["statistics"]["evaluated_expectations"], 4);
    assert_eq!(from_file["statistics"]["successful_expectations"], 2);
    let expected = verdicts(&from_file);
    assert_eq!(expected[0].1, 1);
    assert_eq!(expected[0].3, serde_json::json!([-3.0]));
    assert_eq!(
        expected[1],
        (true, 1.into(), Value::Null, serde_json::json!(["lost"]))
    );
    assert_eq!(expected[2].2, serde_json::json!(14.5 / 3.0));
    expected
}

/// The file's rows as the warehouse's `main.orders`, validated there.
fn validate_in_the_warehouse(p: &TestProject, suite: &str, file: &Path) -> common::Outcome {
    let warehouse = p.path().join("warehouse.duckdb");
    sluice_warehouse::duckdb::Connection::open(&warehouse)
        .unwrap()
        .execute_batch(&format!(
            "CREATE TABLE orders AS SELECT * FROM read_csv('{}', header = true, columns = {{'order_id': 'BIGINT', 'total': 'DECIMAL(10,2)', 'status': 'VARCHAR'}})",
            file.display()
        ))
        .unwrap();
    validate_json(p, suite, "warehouse:main.orders")
}

/// The same rows in a PostgreSQL table (of a schema of its own), validated there.
fn validate_in_postgres(p: &TestProject, suite: &str) -> common::Outcome {
    let orders = common::pg::Schema::create("quality");
    let schema = &orders.name;
    orders.execute(
        "CREATE TABLE {s}.orders (order_id bigint, total numeric(10,2), status text);
         INSERT INTO {s}.orders VALUES (1, 10.5, 'paid'), (2, -3, 'paid'), (3, 7, 'lost'), (4, NULL, 'paid');",
    );
    outcome(
        &[],
        p.command(&[
            "validate",
            "--suite",
            suite,
            &format!("pg:{schema}.orders"),
            "--format",
            "json",
        ])
        .env("SLUICE_CONN_PG", PG_URI)
        .output()
        .unwrap(),
    )
}

/// A suite that passes (text report), the HTML report, and usage errors: an unknown expectation
/// type (with its position and a suggestion), an unknown connection, a missing file.
fn passes_reports_and_refuses(p: &TestProject, suite: &str, file: &Path) {
    let good = p.path().join("suites/good.yaml");
    let passing = p.sluice(&[
        "validate",
        "--suite",
        good.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert_eq!(passing.code, 0, "{}", passing.explain());
    assert!(passing.stdout.contains("good on ") && passing.stdout.contains("passed — 1 of 1"));
    let html = p.sluice(&[
        "validate",
        "--suite",
        suite,
        file.to_str().unwrap(),
        "--format",
        "html",
    ]);
    assert!(
        html.stdout.starts_with("<!doctype html>"),
        "{}",
        html.explain()
    );
    p.write("suites/bad.json", r#"{"name": "x", "expectations": [{"type": "expect_column_values_to_be_betwen", "kwargs": {"column": "total"}}]}"#);
    let bad = p.path().join("suites/bad.json");
    let refused = p.sluice(&[
        "validate",
        "--suite",
        bad.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert_eq!(refused.code, 2, "{}", refused.explain());
    assert!(
        refused
            .stderr
            .contains("bad.json:1:42: error: expectations[0]: unknown expectation type")
            && refused
                .stderr
                .contains("did you mean `expect_column_values_to_be_between`?"),
        "{}",
        refused.explain()
    );
    let unknown = p.sluice(&["validate", "--suite", suite, "nowhere:main.orders"]);
    assert_eq!(unknown.code, 2, "{}", unknown.explain());
    let missing = p.sluice(&["validate", "--suite", suite, "data/none.csv"]);
    assert_eq!(missing.code, 2, "{}", missing.explain());
}

/// `{"$PARAMETER": …}` arguments: values from `--param`, from the task's templated
/// `parameters:` (here the run's `ds`) and from the suite's own `suite_parameters`.
#[test]
fn suite_parameters_take_their_values_from_the_run() {
    let p = TestProject::new();
    p.write(
        "lake/days.csv",
        "day,amount,status\n2024-01-01,5,paid\n2024-01-02,7,lost\n",
    )
    .write(
        "suites/params.json",
        r#"{"name": "params", "suite_parameters": {"min_rows": 2}, "expectations": [
  {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": {"$PARAMETER": "min_rows"}}},
  {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "max_value": {"$PARAMETER": "cap * 2"}}},
  {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "status", "value_set": {"$PARAMETER": "statuses"}}},
  {"type": "expect_column_max_to_be_between", "kwargs": {"column": "day", "max_value": {"$PARAMETER": "run_date"}}}
]}"#,
    );
    let suite = p.path().join("suites/params.json");
    let suite = suite.to_str().unwrap();
    let validate = |params: &[&str]| {
        let mut args = vec![
            "validate",
            "--suite",
            suite,
            "lake://days.csv",
            "--format",
            "json",
        ];
        for param in params {
            args.extend(["--param", param]);
        }
        p.sluice(&args)
    };
    let all = [
        "cap=4",
        r#"statuses=["paid","lost"]"#,
        "run_date=2024-01-02",
    ];
    let passing = validate(&all);
    assert_eq!(passing.code, 0, "{}", passing.explain());
    // The results show the values the run used, as GE's do.
    let result = passing.json();
    assert_eq!(
        result["results"][1]["expectation_config"]["kwargs"]["max_value"],
        8
    );
    assert_eq!(
        result["results"][0]["expectation_config"]["kwargs"]["min_value"],
        2
    );

    let failing = validate(&["cap=3", r#"statuses=["paid"]"#, "run_date=2024-01-01"]);
    assert_eq!(failing.code, 1, "{}", failing.explain());
    let successes: Vec<bool> = failing.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["success"].as_bool().unwrap())
        .collect();
    assert_eq!(successes, [true, false, false, false]);

    let missing = validate(&all[..2]);
    assert_eq!(missing.code, 2, "{}", missing.explain());
    assert!(
        missing.stderr.contains(
            "params.json:5:3: error: expectations[3]: `max_value` uses the suite parameter `run_date`, which has no value"
        ) && missing.stderr.contains("hint: give it with --param run_date=VALUE"),
        "{}",
        missing.explain()
    );

    // In a pipeline the run's own date is the parameter.
    p.write(
        "pipelines/daily.yaml",
        "pipeline: daily\nschedule: \"@daily\"\nstart_date: 2024-01-01\ntasks:\n  check:\n    validate:\n      suite: suites/params.json\n      data: lake://days.csv\n      parameters: { cap: 10, statuses: [paid, lost], run_date: \"{{ ds }}\" }\n",
    );
    let early = p.sluice(&["run", "daily", "--date", "2024-01-01", "--json"]);
    assert_eq!(early.code, 1, "{}", early.explain());
    assert!(
        early
            .json()
            .to_string()
            .contains("expect_column_max_to_be_between"),
        "{}",
        early.explain()
    );
    let on_time = p.sluice(&["run", "daily", "--date", "2024-01-02"]);
    assert_eq!(on_time.code, 0, "{}", on_time.explain());
}

/// Quarantine into tables (the warehouse and PostgreSQL): each row with the expectations it
/// broke and the run it came from; re-running a run replaces its rows, other runs' stay.
#[test]
fn quarantine_tables_keep_each_runs_rejected_rows_once() {
    let p = TestProject::new();
    let schema = format!("rejects_{}", std::process::id());
    p.write("lake/orders.csv", ORDERS_CSV)
        .write(
            "suites/rows.json",
            r#"{"name": "rows", "expectations": [
  {"type": "expect_column_values_to_be_between", "kwargs": {"column": "total", "min_value": 0}},
  {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "status", "value_set": ["paid"]}}
]}"#,
        )
        .write(
            "pipelines/orders.yaml",
            &format!(
                "pipeline: orders\nschedule: \"@daily\"\nstart_date: 2024-01-01\ntasks:
  to_warehouse:
    validate:
      suite: suites/rows.json
      data: lake://orders.csv
      on_failure: quarantine
      output: \"lake://good/duck/{{{{ ds }}}}.parquet\"
      quarantine: {{ table: quality.rejected }}
  to_postgres:
    validate:
      suite: suites/rows.json
      data: lake://orders.csv
      on_failure: quarantine
      output: \"lake://good/pg/{{{{ ds }}}}.parquet\"
      quarantine: {{ table: {schema}.rejected, connection: pg }}
"
            ),
        );
    let run = |date: &str| {
        outcome(
            &[],
            p.command(&["run", "orders", "--date", date])
                .env("SLUICE_CONN_PG", PG_URI)
                .output()
                .unwrap(),
        )
    };
    for date in ["2024-01-01", "2024-01-01", "2024-01-02"] {
        let out = run(date);
        assert_eq!(out.code, 0, "{}", out.explain());
    }
    let query = "SELECT concat_ws(' ', order_id, _failed_expectations, count(*), count(DISTINCT _quarantined_for)) FROM {t} GROUP BY order_id, _failed_expectations ORDER BY 1";
    let want = [
        "2 expect_column_values_to_be_between 2 2",
        "3 expect_column_values_to_be_in_set 2 2",
    ];
    let duck = duck_strings(
        &p.path().join("warehouse.duckdb"),
        &query.replace("{t}", "quality.rejected"),
    );
    assert_eq!(duck, want);
    let pg = Command::new("psql")
        .args([PG_URI, "-X", "-At", "-c"])
        .arg(query.replace("{t}", &format!("{schema}.rejected")))
        .output()
        .expect("psql");
    common::pg::execute(PG_URI, &format!("DROP SCHEMA {schema} CASCADE"));
    assert_eq!(
        String::from_utf8_lossy(&pg.stdout)
            .lines()
            .collect::<Vec<_>>(),
        want,
        "{}",
        String::from_utf8_lossy(&pg.stderr)
    );
    // The rows that passed continue in the lake, as with a quarantine file.
    assert!(p.path().join("lake/good/pg/2024-01-02.parquet").is_file());
}
