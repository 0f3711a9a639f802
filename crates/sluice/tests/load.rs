//! `extract` and `load` against the real binary: load modes into PostgreSQL and the DuckDB
//! warehouse, atomic failures and the dead-letter store, schema evolution, incremental
//! extraction, and secrets that must never be printed or stored.
//!
//! Needs PostgreSQL at 127.0.0.1:5432 (trust auth, database `test`); every test works in its
//! own schema and drops it at the end.

use crate::common;

use std::path::Path;

use common::{Outcome, TestProject, state_of};
use serde_json::Value;
use sluice_testkit::pg::Schema;

const PG_URI: &str = sluice_testkit::pg::TEST_URL;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A PostgreSQL schema of its own for one test, dropped when the test ends (also on panic).
struct Pg {
    schema: String,
    owned: Schema,
}

impl Pg {
    fn new() -> Pg {
        let owned = Schema::create("t");
        Pg {
            schema: owned.name.clone(),
            owned,
        }
    }

    /// Runs statements; `{s}` stands for this test's schema.
    fn exec(&self, sql: &str) {
        self.owned.execute(sql);
    }

    /// The rows of a query returning one text column; `{s}` stands for this test's schema.
    fn strings(&self, sql: &str) -> Vec<String> {
        self.owned.column(sql)
    }

    fn count(&self, table: &str) -> i64 {
        self.strings(&format!("SELECT count(*)::text FROM {{s}}.{table}"))[0]
            .parse()
            .unwrap()
    }

    /// `name type, …` of a table's columns, in order.
    fn columns(&self, table: &str) -> String {
        self.strings(&format!(
            "SELECT coalesce(string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position), '')
             FROM information_schema.columns WHERE table_schema = '{{s}}' AND table_name = '{table}'"
        ))
        .remove(0)
    }
}

/// A project whose `pg` connection is the test database.
fn project() -> TestProject {
    let p = TestProject::new();
    p.write("connections.yaml", &format!("pg: {PG_URI}\n"));
    p
}

fn run(p: &TestProject, pipeline: &str, date: &str) -> Outcome {
    p.sluice(&["run", pipeline, "--date", date, "--json"])
}

/// Runs `pipeline` for `date`, which must succeed; returns the run's JSON.
fn run_ok(p: &TestProject, pipeline: &str, date: &str) -> Value {
    let out = run(p, pipeline, date);
    assert_eq!(out.code, 0, "the run should succeed:\n{}", out.explain());
    let json = out.json();
    assert_eq!(json["state"], "success", "{}", out.explain());
    json
}

/// Runs `pipeline` for `date`, which must fail; returns the run's JSON.
fn run_failed(p: &TestProject, pipeline: &str, date: &str) -> Value {
    let out = run(p, pipeline, date);
    assert_eq!(out.code, 1, "the run should fail:\n{}", out.explain());
    let json = out.json();
    assert_eq!(json["state"], "failed", "{}", out.explain());
    json
}

/// Clears every task of a run and runs it again, which must succeed.
fn rerun_ok(p: &TestProject, pipeline: &str, date: &str) -> Value {
    let cleared = p.sluice(&["clear", pipeline, "--date", date]);
    assert_eq!(cleared.code, 0, "{}", cleared.explain());
    run_ok(p, pipeline, date)
}

fn task<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["task"] == name)
        .unwrap_or_else(|| panic!("no task {name} in {run:#}"))
}

fn error_of(run: &Value, name: &str) -> String {
    task(run, name)["error"]
        .as_str()
        .unwrap_or_else(|| panic!("task {name} has no error in {run:#}"))
        .to_string()
}

/// `sluice runs <pipeline> --json`: the newest run first.
fn runs_json(p: &TestProject, pipeline: &str) -> Vec<Value> {
    let out = p.sluice(&["runs", pipeline, "--json"]);
    assert_eq!(out.code, 0, "{}", out.explain());
    out.json().as_array().expect("an array of runs").clone()
}

/// `sluice dlq list <pipeline> --json`.
fn dead_letters(p: &TestProject, pipeline: &str) -> Vec<Value> {
    let out = p.sluice(&["dlq", "list", pipeline, "--json"]);
    assert_eq!(out.code, 0, "{}", out.explain());
    out.json()["bad_records"]
        .as_array()
        .expect("an array of dead letters")
        .clone()
}

fn duck_open(path: &Path) -> sluice_warehouse::duckdb::Connection {
    sluice_warehouse::duckdb::Connection::open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// Runs statements on the project's warehouse (only while no sluice process runs).
fn duck_exec(p: &TestProject, sql: &str) {
    duck_open(&p.path().join("warehouse.duckdb"))
        .execute_batch(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The rows of a query returning one text column, on a DuckDB database.
fn duck_query(db: &sluice_warehouse::duckdb::Connection, sql: &str) -> Vec<String> {
    let mut stmt = db.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let rows: Vec<String> = stmt
        .query_map([], |r| {
            Ok(r.get::<_, Option<String>>(0)?
                .unwrap_or_else(|| "NULL".into()))
        })
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows
}

/// The rows of a query returning one text column, on the project's warehouse.
fn duck_strings(p: &TestProject, sql: &str) -> Vec<String> {
    duck_query(&duck_open(&p.path().join("warehouse.duckdb")), sql)
}

/// `name type, …` of a warehouse table's columns, in order.
fn duck_columns(p: &TestProject, schema: &str, table: &str) -> String {
    duck_strings(
        p,
        &format!(
            "SELECT coalesce(string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position), '')
             FROM information_schema.columns WHERE table_schema = '{schema}' AND table_name = '{table}'"
        ),
    )
    .remove(0)
}

/// Writes a Parquet file with DuckDB from a query.
fn write_parquet(path: &Path, query: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    sluice_warehouse::duckdb::Connection::open_in_memory()
        .unwrap()
        .execute_batch(&format!(
            "COPY ({query}) TO '{}' (FORMAT parquet)",
            path.display()
        ))
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// The rows of a query over a Parquet file (`{file}` stands for its path).
fn parquet_strings(path: &Path, query: &str) -> Vec<String> {
    let db = sluice_warehouse::duckdb::Connection::open_in_memory().unwrap();
    duck_query(
        &db,
        &query.replace("{file}", &format!("read_parquet('{}')", path.display())),
    )
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A CSV of `n` rows `id,amount` whose row `bad` (1-based) has a non-numeric amount.
fn csv_with_bad_row(n: usize, bad: usize) -> String {
    let mut csv = String::from("id,amount\n");
    for i in 1..=n {
        if i == bad {
            csv.push_str(&format!("{i},abc\n"));
        } else {
            csv.push_str(&format!("{i},{i}.25\n"));
        }
    }
    csv
}

const ORDERS_CSV: &str =
    "id,amount,order_date\n1,10.5,2024-01-01\n2,20.25,2024-01-01\n3,30.75,2024-01-01\n";

/// A single-task pipeline `id` whose task `load` has the given `load:` body (indented).
fn load_pipeline(id: &str, body: &str) -> String {
    format!(
        "pipeline: {id}\nschedule: \"@daily\"\nstart_date: 2024-01-01\ntasks:\n  load:\n    load:\n{body}"
    )
}

// ---------------------------------------------------------------------------------------------
// 1. Load modes into PostgreSQL
// ---------------------------------------------------------------------------------------------

#[test]
fn pg_append_creates_the_table_and_a_rerun_appends_again() {
    let pg = Pg::new();
    let p = project();
    p.write("lake/raw/orders.csv", ORDERS_CSV).write(
        "pipelines/p.yaml",
        &load_pipeline(
            "p",
            &format!(
                "      from: lake://raw/orders.csv\n      into: {{ connection: pg, table: {}.orders }}\n      mode: append\n",
                pg.schema
            ),
        ),
    );
    let first = run_ok(&p, "p", "2024-01-01");
    assert_eq!(task(&first, "load")["rows"], 3, "{first:#}");
    assert_eq!(
        pg.columns("orders"),
        "id bigint, amount double precision, order_date date",
        "the table is created with the inferred types"
    );
    assert_eq!(
        pg.strings("SELECT id || '|' || amount || '|' || order_date FROM {s}.orders ORDER BY id"),
        strs(&[
            "1|10.5|2024-01-01",
            "2|20.25|2024-01-01",
            "3|30.75|2024-01-01"
        ])
    );
    let second = rerun_ok(&p, "p", "2024-01-01");
    assert_eq!(task(&second, "load")["rows"], 3, "{second:#}");
    assert_eq!(pg.count("orders"), 6, "append twice doubles the rows");
    assert_eq!(
        pg.strings("SELECT id || 'x' || count(*) FROM {s}.orders GROUP BY id ORDER BY id"),
        strs(&["1x2", "2x2", "3x2"])
    );
}

#[test]
fn pg_replace_twice_leaves_exactly_the_files_rows() {
    let pg = Pg::new();
    pg.exec(
        "CREATE TABLE {s}.orders (id bigint, amount double precision, order_date date);
         INSERT INTO {s}.orders SELECT g, g * 1.5, DATE '2023-06-01' FROM generate_series(101, 105) g",
    );
    let p = project();
    p.write("lake/raw/orders.csv", ORDERS_CSV).write(
        "pipelines/p.yaml",
        &load_pipeline(
            "p",
            &format!(
                "      from: lake://raw/orders.csv\n      into: {{ connection: pg, table: {}.orders }}\n      mode: replace\n",
                pg.schema
            ),
        ),
    );
    let want = strs(&[
        "1|10.5|2024-01-01",
        "2|20.25|2024-01-01",
        "3|30.75|2024-01-01",
    ]);
    let rows = || {
        pg.strings("SELECT id || '|' || amount || '|' || order_date FROM {s}.orders ORDER BY id")
    };
    run_ok(&p, "p", "2024-01-01");
    assert_eq!(rows(), want, "replace leaves exactly the file's rows");
    rerun_ok(&p, "p", "2024-01-01");
    assert_eq!(rows(), want, "a second replace leaves the same rows");
}

#[test]
fn pg_replace_partition_replaces_only_that_days_rows() {
    let pg = Pg::new();
    pg.exec(
        "CREATE TABLE {s}.orders (id bigint NOT NULL, order_date date, amount numeric(10,2));
         INSERT INTO {s}.orders VALUES
           (1, '2023-12-31', 1.00), (2, '2023-12-31', 2.00),
           (3, '2024-01-01', 3.00), (4, '2024-01-01', 4.00),
           (5, '2024-01-02', 5.00)",
    );
    let p = project();
    p.write(
        "lake/raw/2024-01-01.csv",
        "id,order_date,amount\n3,2024-01-01,33.30\n6,2024-01-01,6.60\n7,2024-01-01,7.70\n",
    )
    .write(
        "lake/raw/2024-01-02.csv",
        "id,order_date,amount\n8,2024-01-02,8.80\n",
    )
    .write(
        "pipelines/p.yaml",
        &load_pipeline(
            "p",
            &format!(
                r#"      from: {{ files: "lake://raw/{{{{ ds }}}}.csv", schema: {{ id: int64!, order_date: date, amount: "decimal(10,2)" }} }}
      into: {{ connection: pg, table: {}.orders }}
      mode: replace_partition
      partition: {{ column: order_date, value: "{{{{ ds }}}}" }}
"#,
                pg.schema
            ),
        ),
    );
    let rows = || {
        pg.strings("SELECT id || '|' || order_date || '|' || amount FROM {s}.orders ORDER BY id")
    };
    let day1 = strs(&[
        "1|2023-12-31|1.00",
        "2|2023-12-31|2.00",
        "3|2024-01-01|33.30",
        "5|2024-01-02|5.00",
        "6|2024-01-01|6.60",
        "7|2024-01-01|7.70",
    ]);
    let run1 = run_ok(&p, "p", "2024-01-01");
    assert_eq!(task(&run1, "load")["rows"], 3, "{run1:#}");
    assert_eq!(
        rows(),
        day1,
        "only 2024-01-01's rows were replaced (4 is gone, 3 is updated)"
    );
    rerun_ok(&p, "p", "2024-01-01");
    assert_eq!(rows(), day1, "running the day again leaves the same rows");

    run_ok(&p, "p", "2024-01-02");
    assert_eq!(
        rows(),
        strs(&[
            "1|2023-12-31|1.00",
            "2|2023-12-31|2.00",
            "3|2024-01-01|33.30",
            "6|2024-01-01|6.60",
            "7|2024-01-01|7.70",
            "8|2024-01-02|8.80",
        ]),
        "the next day replaces only its own rows"
    );
}

#[test]
fn pg_merge_updates_changed_rows_inserts_new_ones_and_is_idempotent() {
    let pg = Pg::new();
    pg.exec(
        "CREATE TABLE {s}.customers (id bigint, name text, amount double precision);
         INSERT INTO {s}.customers VALUES (1, 'a', 1.5), (2, 'b', 2.5), (3, 'c', 3.5)",
    );
    let p = project();
    p.write(
        "lake/raw/customers.csv",
        "id,name,amount\n2,B,20.5\n3,c,3.5\n4,d,4.5\n",
    )
    .write(
        "pipelines/p.yaml",
        &load_pipeline(
            "p",
            &format!(
                "      from: lake://raw/customers.csv\n      into: {{ connection: pg, table: {}.customers }}\n      mode: merge\n      keys: [id]\n",
                pg.schema
            ),
        ),
    );
    let want = strs(&["1|a|1.5", "2|B|20.5", "3|c|3.5", "4|d|4.5"]);
    let rows =
        || pg.strings("SELECT id || '|' || name || '|' || amount FROM {s}.customers ORDER BY id");
    run_ok(&p, "p", "2024-01-01");
    assert_eq!(rows(), want);
    rerun_ok(&p, "p", "2024-01-01");
    assert_eq!(rows(), want, "merging the same file again changes nothing");
    assert_eq!(
        pg.strings(
            "SELECT count(*)::text FROM information_schema.tables WHERE table_schema = '{s}'"
        ),
        strs(&["1"]),
        "no staging table is left behind"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Load modes into the DuckDB warehouse
// ---------------------------------------------------------------------------------------------

#[test]
fn warehouse_append_and_replace() {
    let p = TestProject::new();
    p.write("lake/raw/orders.csv", ORDERS_CSV).write(
        "pipelines/p.yaml",
        r#"
pipeline: p
schedule: "@daily"
start_date: 2024-01-01
tasks:
  appended:
    load: { from: "lake://raw/orders.csv", into: staging.appended, mode: append }
  replaced:
    after: [appended]
    load: { from: "lake://raw/orders.csv", into: staging.replaced, mode: replace }
"#,
    );
    duck_exec(
        &p,
        "CREATE SCHEMA staging;
         CREATE TABLE staging.replaced (id BIGINT, amount DOUBLE, order_date DATE);
         INSERT INTO staging.replaced SELECT range, range * 1.5, DATE '2023-06-01' FROM range(100, 110);",
    );
    let first = run_ok(&p, "p", "2024-01-01");
    assert_eq!(task(&first, "appended")["rows"], 3, "{first:#}");
    assert_eq!(task(&first, "replaced")["rows"], 3, "{first:#}");
    assert_eq!(
        duck_columns(&p, "staging", "appended"),
        "id BIGINT, amount DOUBLE, order_date DATE"
    );
    let replaced = || {
        duck_strings(
            &p,
            "SELECT concat_ws('|', id, amount, order_date) FROM staging.replaced ORDER BY id",
        )
    };
    let want = strs(&[
        "1|10.5|2024-01-01",
        "2|20.25|2024-01-01",
        "3|30.75|2024-01-01",
    ]);
    assert_eq!(replaced(), want);
    rerun_ok(&p, "p", "2024-01-01");
    assert_eq!(
        duck_strings(
            &p,
            "SELECT concat_ws('x', id, count(*)) FROM staging.appended GROUP BY id ORDER BY id"
        ),
        strs(&["1x2", "2x2", "3x2"]),
        "append twice doubles the rows"
    );
    assert_eq!(replaced(), want, "replace twice leaves the file's rows");
}

#[test]
fn warehouse_replace_partition_replaces_only_that_days_rows() {
    let p = TestProject::new();
    p.write(
        "lake/raw/2024-01-01.csv",
        "id,order_date,amount\n3,2024-01-01,33.30\n6,2024-01-01,6.60\n7,2024-01-01,7.70\n",
    )
    .write(
        "pipelines/p.yaml",
        &load_pipeline(
            "p",
            r#"      from: { files: "lake://raw/{{ ds }}.csv", schema: { id: int64!, order_date: date, amount: "decimal(10,2)" } }
      into: staging.orders
      mode: replace_partition
      partition: { column: order_date, value: "{{ ds }}" }
"#,
        ),
    );
    duck_exec(
        &p,
        "CREATE SCHEMA staging;
         CREATE TABLE staging.orders (id BIGINT NOT NULL, order_date DATE, amount DECIMAL(10,2));
         INSERT INTO staging.orders VALUES
           (1, '2023-12-31', 1.00), (2, '2023-12-31', 2.00),
           (3, '2024-01-01', 3.00), (4, '2024-01-01', 4.00),
           (5, '2024-01-02', 5.00);",
    );
    let rows = || {
        duck_strings(
            &p,
            "SELECT concat_ws('|', id, order_date, amount) FROM staging.orders ORDER BY id",
        )
    };
    let want = strs(&[
        "1|2023-12-31|1.00",
        "2|2023-12-31|2.00",
        "3|2024-01-01|33.30",
        "5|2024-01-02|5.00",
        "6|2024-01-01|6.60",
        "7|2024-01-01|7.70",
    ]);
    let first = run_ok(&p, "p", "2024-01-01");
    assert_eq!(task(&first, "load")["rows"], 3, "{first:#}");
    assert_eq!(rows(), want, "only 2024-01-01's rows were replaced");
    rerun_ok(&p, "p", "2024-01-01");
    assert_eq!(rows(), want, "running the day again leaves the same rows");
}

#[test]
fn warehouse_merge_from_parquet_updates_inserts_and_is_idempotent() {
    let p = TestProject::new();
    write_parquet(
        &p.path().join("lake/raw/customers.parquet"),
        "SELECT * FROM (VALUES (2::BIGINT, 'B', 20.5::DOUBLE), (3, 'c', 3.5), (4, 'd', 4.5)) t(id, name, amount)",
    );
    p.write(
        "pipelines/p.yaml",
        &load_pipeline(
            "p",
            "      from: lake://raw/customers.parquet\n      into: staging.customers\n      mode: merge\n      keys: [id]\n",
        ),
    );
    duck_exec(
        &p,
        "CREATE SCHEMA staging;
         CREATE TABLE staging.customers (id BIGINT, name VARCHAR, amount DOUBLE);
         INSERT INTO staging.customers VALUES (1, 'a', 1.5), (2, 'b', 2.5), (3, 'c', 3.5);",
    );
    let rows = || {
        duck_strings(
            &p,
            "SELECT concat_ws('|', id, name, amount) FROM staging.customers ORDER BY id",
        )
    };
    let want = strs(&["1|a|1.5", "2|B|20.5", "3|c|3.5", "4|d|4.5"]);
    let first = run_ok(&p, "p", "2024-01-01");
    assert_eq!(task(&first, "load")["rows"], 3, "{first:#}");
    assert_eq!(rows(), want);
    rerun_ok(&p, "p", "2024-01-01");
    assert_eq!(rows(), want, "merging the same file again changes nothing");
}

// ---------------------------------------------------------------------------------------------
// 3. Failures leave the target unchanged; bad records go to the dead-letter store
// ---------------------------------------------------------------------------------------------

/// The one dead letter of `pipeline`, which must be row `row` on physical line `line`.
fn assert_one_dead_letter(p: &TestProject, pipeline: &str, line: u64, row: u64) -> Value {
    let letters = dead_letters(p, pipeline);
    assert_eq!(letters.len(), 1, "one bad record: {letters:#?}");
    let bad = letters[0].clone();
    assert_eq!(bad["pipeline"], pipeline, "{bad:#}");
    assert_eq!(bad["task"], "load", "{bad:#}");
    assert_eq!(bad["try_number"], 1, "{bad:#}");
    assert_eq!(bad["source"], "lake://raw/orders.csv", "{bad:#}");
    assert_eq!(bad["line"], line, "the physical line (header = 1): {bad:#}");
    assert_eq!(bad["row"], row, "{bad:#}");
    assert_eq!(bad["record"], format!("{row},abc"), "{bad:#}");
    let reason = bad["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("amount") && reason.contains("abc"),
        "the reason names the column and the value: {bad:#}"
    );
    bad
}

#[test]
fn pg_bad_record_fails_the_load_and_leaves_the_table_unchanged() {
    let pg = Pg::new();
    pg.exec(
        "CREATE TABLE {s}.orders (id bigint, amount double precision);
         INSERT INTO {s}.orders VALUES (9001, 1.5), (9002, 2.5), (9003, 3.5)",
    );
    let p = project();
    p.write("lake/raw/orders.csv", &csv_with_bad_row(1000, 500));
    // `replace` empties the table inside the transaction before the rows stream in: the
    // rollback must bring the old rows back.
    let body = |max: u32| {
        format!(
            "      from: {{ files: \"lake://raw/orders.csv\", schema: {{ id: int64, amount: float64 }} }}\n      into: {{ connection: pg, table: {}.orders }}\n      mode: replace\n      max_bad_records: {max}\n",
            pg.schema
        )
    };
    p.write("pipelines/strict.yaml", &load_pipeline("strict", &body(0)))
        .write(
            "pipelines/lenient.yaml",
            &load_pipeline("lenient", &body(5)),
        );
    let old = strs(&["9001|1.5", "9002|2.5", "9003|3.5"]);
    let rows = || pg.strings("SELECT id || '|' || amount FROM {s}.orders ORDER BY id");

    let failed = run_failed(&p, "strict", "2024-01-01");
    assert_eq!(state_of(&failed, "load"), ("failed".into(), 1));
    let error = error_of(&failed, "load");
    assert!(
        error.contains("lake://raw/orders.csv:501") && error.contains("max_bad_records"),
        "the error says where the bad record is and what allows it: {error}"
    );
    assert_eq!(
        rows(),
        old,
        "a failed load leaves the table exactly as it was"
    );
    assert_one_dead_letter(&p, "strict", 501, 500);

    let loaded = run_ok(&p, "lenient", "2024-01-01");
    assert_eq!(task(&loaded, "load")["rows"], 999, "{loaded:#}");
    assert_eq!(pg.count("orders"), 999);
    assert_eq!(
        pg.strings(
            "SELECT count(*) || '|' || min(id) || '|' || max(id) || '|' || count(*) FILTER (WHERE id = 500) FROM {s}.orders"
        ),
        strs(&["999|1|1000|0"]),
        "every good row loaded, the bad one did not"
    );
    assert_one_dead_letter(&p, "lenient", 501, 500);
}

#[test]
fn pg_failure_after_rows_were_copied_rolls_back() {
    // More rows than one batch: the first batch is already in the table (inside the
    // transaction) when the bad record is met.
    let pg = Pg::new();
    pg.exec(
        "CREATE TABLE {s}.orders (id bigint, amount double precision);
         INSERT INTO {s}.orders VALUES (9001, 1.5), (9002, 2.5)",
    );
    let p = project();
    p.write("lake/raw/orders.csv", &csv_with_bad_row(70_000, 69_000))
        .write(
            "pipelines/p.yaml",
            &load_pipeline(
                "p",
                &format!(
                    "      from: {{ files: \"lake://raw/orders.csv\", schema: {{ id: int64, amount: float64 }} }}\n      into: {{ connection: pg, table: {}.orders }}\n      mode: append\n",
                    pg.schema
                ),
            ),
        );
    let failed = run_failed(&p, "p", "2024-01-01");
    assert_eq!(state_of(&failed, "load"), ("failed".into(), 1));
    assert_eq!(
        pg.strings("SELECT id::text FROM {s}.orders ORDER BY id"),
        strs(&["9001", "9002"]),
        "the rows copied before the failure were rolled back"
    );
    assert_one_dead_letter(&p, "p", 69_001, 69_000);
}

#[test]
fn warehouse_bad_record_fails_the_load_and_leaves_the_table_unchanged() {
    let p = TestProject::new();
    p.write("lake/raw/orders.csv", &csv_with_bad_row(1000, 500));
    let body = |max: u32| {
        format!(
            "      from: {{ files: \"lake://raw/orders.csv\", schema: {{ id: int64, amount: float64 }} }}\n      into: staging.orders\n      mode: replace\n      max_bad_records: {max}\n"
        )
    };
    p.write("pipelines/strict.yaml", &load_pipeline("strict", &body(0)))
        .write(
            "pipelines/lenient.yaml",
            &load_pipeline("lenient", &body(5)),
        );
    duck_exec(
        &p,
        "CREATE SCHEMA staging;
         CREATE TABLE staging.orders (id BIGINT, amount DOUBLE);
         INSERT INTO staging.orders VALUES (9001, 1.5), (9002, 2.5), (9003, 3.5);",
    );
    let rows = || {
        duck_strings(
            &p,
            "SELECT concat_ws('|', id, amount) FROM staging.orders ORDER BY id",
        )
    };
    let failed = run_failed(&p, "strict", "2024-01-01");
    assert_eq!(state_of(&failed, "load"), ("failed".into(), 1));
    let error = error_of(&failed, "load");
    assert!(
        error.contains("lake://raw/orders.csv:501") && error.contains("max_bad_records"),
        "the error is the bad record's, not DuckDB's view of the aborted load: {error}"
    );
    assert_eq!(rows(), strs(&["9001|1.5", "9002|2.5", "9003|3.5"]));
    assert_one_dead_letter(&p, "strict", 501, 500);

    let loaded = run_ok(&p, "lenient", "2024-01-01");
    assert_eq!(task(&loaded, "load")["rows"], 999, "{loaded:#}");
    assert_eq!(
        duck_strings(
            &p,
            "SELECT concat_ws('|', count(*), min(id), max(id), count(*) FILTER (WHERE id = 500)) FROM staging.orders"
        ),
        strs(&["999|1|1000|0"])
    );
    assert_one_dead_letter(&p, "lenient", 501, 500);
}

#[test]
fn ndjson_malformed_line_goes_to_the_dead_letter_store_with_its_line() {
    let p = TestProject::new();
    // Line 3 is blank (skipped, but still a line); line 4 is cut short.
    p.write(
        "lake/raw/events.ndjson",
        "{\"id\": 1, \"kind\": \"a\"}\n{\"id\": 2, \"kind\": \"b\"}\n\n{\"id\": 3, \"kind\": \n{\"id\": 4, \"kind\": \"d\"}\n",
    );
    let body = |max: u32| {
        format!(
            "      from: lake://raw/events.ndjson\n      into: staging.events\n      mode: append\n      max_bad_records: {max}\n"
        )
    };
    p.write("pipelines/strict.yaml", &load_pipeline("strict", &body(0)))
        .write(
            "pipelines/lenient.yaml",
            &load_pipeline("lenient", &body(1)),
        );

    let failed = run_failed(&p, "strict", "2024-01-01");
    let error = error_of(&failed, "load");
    assert!(
        error.contains("lake://raw/events.ndjson:4"),
        "the error points at the malformed line: {error}"
    );

    let loaded = run_ok(&p, "lenient", "2024-01-01");
    assert_eq!(task(&loaded, "load")["rows"], 3, "{loaded:#}");
    assert_eq!(
        duck_strings(
            &p,
            "SELECT concat_ws(':', id, kind) FROM staging.events ORDER BY id"
        ),
        strs(&["1:a", "2:b", "4:d"])
    );
    let letters = dead_letters(&p, "lenient");
    assert_eq!(letters.len(), 1, "{letters:#?}");
    let bad = &letters[0];
    assert_eq!(bad["source"], "lake://raw/events.ndjson", "{bad:#}");
    assert_eq!(bad["line"], 4, "the physical line: {bad:#}");
    assert_eq!(bad["row"], 3, "the third record: {bad:#}");
    assert_eq!(bad["record"], "{\"id\": 3, \"kind\": ", "{bad:#}");
    assert!(
        bad["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("invalid JSON"),
        "{bad:#}"
    );
    // Filtering by task works, and the strict pipeline's record is kept too.
    let by_task = p.sluice(&["dlq", "list", "strict", "--task", "load", "--json"]);
    assert_eq!(by_task.code, 0, "{}", by_task.explain());
    assert_eq!(
        by_task.json()["bad_records"].as_array().map(Vec::len),
        Some(1)
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Schema evolution
// ---------------------------------------------------------------------------------------------

/// Checks that a `fail` policy error lists every difference of the standard case: `coupon`
/// added, `note` removed, `qty` int32 → int64.
fn assert_lists_differences(error: &str, target: &str) {
    for line in [
        "  added:   coupon (string)",
        "  removed: note (string)",
        "  changed: qty int32 → int64",
    ] {
        assert!(error.contains(line), "the error lists `{line}`:\n{error}");
    }
    assert!(
        error.contains(target) && error.contains("schema_evolution: fail"),
        "the error names the target and the policy:\n{error}"
    );
}

/// Checks the error of `ignore_extra` when the incoming `qty` is int64 and the table's int32.
fn assert_unapplied_widening_is_explained(error: &str) {
    assert!(
        error.contains("schema_evolution: ignore_extra")
            && error.contains("changed: qty int32 → int64")
            && error.contains("add_columns"),
        "the error names the column, both types, and the policy that would widen it:\n{error}"
    );
    assert!(
        !error.contains("coupon"),
        "extra columns are not a problem under ignore_extra:\n{error}"
    );
    // The hint must not claim that widenings are applied: under ignore_extra none is.
    let hint = error
        .lines()
        .find(|l| l.trim_start().starts_with("hint:"))
        .unwrap_or_default();
    assert!(
        !hint.contains("are applied") || hint.contains("add_columns"),
        "under ignore_extra no widening is applied, yet the hint says safe widenings are:\n{error}"
    );
}

/// Checks the schema changes `add_columns` recorded: `coupon` added, `qty` widened.
fn assert_recorded_changes(run: &Value, target: &str) {
    let changes = run["schema_changes"]
        .as_array()
        .unwrap_or_else(|| panic!("no schema_changes in {run:#}"));
    assert_eq!(changes.len(), 2, "{changes:#?}");
    let find = |change: &str, column: &str| {
        changes
            .iter()
            .find(|c| c["change"] == change && c["column"] == column)
            .unwrap_or_else(|| panic!("no {change} of {column} in {changes:#?}"))
    };
    let added = find("add_column", "coupon");
    let widened = find("widen_column", "qty");
    for c in [added, widened] {
        assert_eq!(c["task"], "load", "{c:#}");
        assert_eq!(c["try_number"], 1, "{c:#}");
        assert_eq!(c["target"], target, "{c:#}");
    }
    assert!(added["from_type"].is_null(), "{added:#}");
    let lower = |v: &Value| v.as_str().unwrap_or_default().to_ascii_lowercase();
    assert!(
        ["text", "varchar"].contains(&lower(&added["to_type"]).as_str()),
        "{added:#}"
    );
    assert_eq!(lower(&widened["from_type"]), "integer", "{widened:#}");
    assert_eq!(lower(&widened["to_type"]), "bigint", "{widened:#}");
}

fn assert_runs_text_shows_changes(p: &TestProject, pipeline: &str) {
    let text = p.sluice(&["runs", pipeline]);
    assert_eq!(text.code, 0, "{}", text.explain());
    assert!(
        text.stdout.contains("add_column `coupon`") && text.stdout.contains("widen_column `qty`"),
        "`sluice runs` shows the schema changes:\n{}",
        text.explain()
    );
}

const EVOLVED_CSV: &str = "id,qty,price,coupon\n3,30,3.5,SAVE10\n4,40,4.5,\n";

#[test]
fn pg_schema_evolution_under_each_policy() {
    let pg = Pg::new();
    for table in [
        "items_fail",
        "items_add",
        "items_ignore",
        "items_ignore_wide",
    ] {
        pg.exec(&format!(
            "CREATE TABLE {{s}}.{table} (id bigint, qty integer, price real, note text);
             INSERT INTO {{s}}.{table} VALUES (1, 10, 1.5, 'one'), (2, 20, 2.5, 'two')"
        ));
    }
    let p = project();
    p.write("lake/raw/items.csv", EVOLVED_CSV);
    let pipeline = |id: &str, table: &str, policy: &str, qty: &str| {
        p.write(
            &format!("pipelines/{id}.yaml"),
            &load_pipeline(
                id,
                &format!(
                    "      from: {{ files: \"lake://raw/items.csv\", schema: {{ id: int64, qty: {qty}, price: float32, coupon: string }} }}\n      into: {{ connection: pg, table: {}.{table} }}\n      mode: append\n      schema_evolution: {policy}\n",
                    pg.schema
                ),
            ),
        );
    };
    pipeline("p_fail", "items_fail", "fail", "int64");
    pipeline("p_add", "items_add", "add_columns", "int64");
    pipeline("p_ignore", "items_ignore", "ignore_extra", "int32");
    pipeline(
        "p_ignore_wide",
        "items_ignore_wide",
        "ignore_extra",
        "int64",
    );
    let old_rows = strs(&["1|10|1.5|one", "2|20|2.5|two"]);
    let rows = |table: &str| {
        pg.strings(&format!(
            "SELECT concat_ws('|', id, qty, price, coalesce(note, 'NULL')) FROM {{s}}.{table} ORDER BY id"
        ))
    };
    let original = "id bigint, qty integer, price real, note text";

    // fail: every difference is listed, and nothing changes.
    let failed = run_failed(&p, "p_fail", "2024-01-01");
    let target = format!("pg:{}.items_fail", pg.schema);
    assert_lists_differences(&error_of(&failed, "load"), &target);
    let listed = runs_json(&p, "p_fail");
    assert_lists_differences(&error_of(&listed[0], "load"), &target);
    assert_eq!(pg.columns("items_fail"), original);
    assert_eq!(rows("items_fail"), old_rows);

    // add_columns: coupon added, qty widened, both recorded.
    let added = run_ok(&p, "p_add", "2024-01-01");
    assert_eq!(task(&added, "load")["rows"], 2, "{added:#}");
    assert_eq!(
        pg.columns("items_add"),
        "id bigint, qty bigint, price real, note text, coupon text"
    );
    assert_eq!(
        pg.strings(
            "SELECT concat_ws('|', id, qty, price, coalesce(note, 'NULL'), coalesce(coupon, 'NULL')) FROM {s}.items_add ORDER BY id"
        ),
        strs(&[
            "1|10|1.5|one|NULL",
            "2|20|2.5|two|NULL",
            "3|30|3.5|NULL|SAVE10",
            "4|40|4.5|NULL|NULL"
        ])
    );
    let target = format!("pg:{}.items_add", pg.schema);
    assert_recorded_changes(&added, &target);
    assert_recorded_changes(&runs_json(&p, "p_add")[0], &target);
    assert_runs_text_shows_changes(&p, "p_add");

    // ignore_extra: coupon is not loaded, the rows are.
    let ignored = run_ok(&p, "p_ignore", "2024-01-01");
    assert_eq!(task(&ignored, "load")["rows"], 2, "{ignored:#}");
    assert_eq!(ignored["schema_changes"], serde_json::json!([]));
    assert_eq!(pg.columns("items_ignore"), original);
    assert_eq!(
        rows("items_ignore"),
        strs(&[
            "1|10|1.5|one",
            "2|20|2.5|two",
            "3|30|3.5|NULL",
            "4|40|4.5|NULL"
        ])
    );

    // ignore_extra with a widening it does not apply: a clear failure, nothing changes.
    let wide = run_failed(&p, "p_ignore_wide", "2024-01-01");
    assert_eq!(pg.columns("items_ignore_wide"), original);
    assert_eq!(rows("items_ignore_wide"), old_rows);
    assert_unapplied_widening_is_explained(&error_of(&wide, "load"));
}

#[test]
fn warehouse_schema_evolution_under_each_policy() {
    let p = TestProject::new();
    let mut setup = String::from("CREATE SCHEMA staging;");
    for table in [
        "items_fail",
        "items_add",
        "items_ignore",
        "items_ignore_wide",
    ] {
        setup.push_str(&format!(
            "CREATE TABLE staging.{table} (id BIGINT, qty INTEGER, price REAL, note VARCHAR);
             INSERT INTO staging.{table} VALUES (1, 10, 1.5, 'one'), (2, 20, 2.5, 'two');"
        ));
    }
    duck_exec(&p, &setup);
    // Parquet with qty as int64 and a new coupon column (note is missing).
    write_parquet(
        &p.path().join("lake/raw/items.parquet"),
        "SELECT * FROM (VALUES (3::BIGINT, 30::BIGINT, 3.5::FLOAT, 'SAVE10'), (4, 40, 4.5, NULL)) t(id, qty, price, coupon)",
    );
    p.write("lake/raw/items.csv", EVOLVED_CSV);
    let pipeline = |id: &str, table: &str, policy: &str, from: &str| {
        p.write(
            &format!("pipelines/{id}.yaml"),
            &load_pipeline(
                id,
                &format!(
                    "      from: {from}\n      into: staging.{table}\n      mode: append\n      schema_evolution: {policy}\n"
                ),
            ),
        );
    };
    let parquet = "lake://raw/items.parquet";
    pipeline("p_fail", "items_fail", "fail", parquet);
    pipeline("p_add", "items_add", "add_columns", parquet);
    pipeline(
        "p_ignore",
        "items_ignore",
        "ignore_extra",
        "{ files: \"lake://raw/items.csv\", schema: { id: int64, qty: int32, price: float32, coupon: string } }",
    );
    pipeline(
        "p_ignore_wide",
        "items_ignore_wide",
        "ignore_extra",
        parquet,
    );
    let old_rows = strs(&["1|10|1.5|one", "2|20|2.5|two"]);
    let rows = |table: &str| {
        duck_strings(
            &p,
            &format!(
                "SELECT concat_ws('|', id, qty, price, coalesce(note, 'NULL')) FROM staging.{table} ORDER BY id"
            ),
        )
    };
    let original = "id BIGINT, qty INTEGER, price FLOAT, note VARCHAR";

    let failed = run_failed(&p, "p_fail", "2024-01-01");
    assert_lists_differences(&error_of(&failed, "load"), "staging.items_fail");
    assert_lists_differences(
        &error_of(&runs_json(&p, "p_fail")[0], "load"),
        "staging.items_fail",
    );
    assert_eq!(duck_columns(&p, "staging", "items_fail"), original);
    assert_eq!(rows("items_fail"), old_rows);

    let added = run_ok(&p, "p_add", "2024-01-01");
    assert_eq!(task(&added, "load")["rows"], 2, "{added:#}");
    assert_eq!(
        duck_columns(&p, "staging", "items_add"),
        "id BIGINT, qty BIGINT, price FLOAT, note VARCHAR, coupon VARCHAR"
    );
    assert_eq!(
        duck_strings(
            &p,
            "SELECT concat_ws('|', id, qty, price, coalesce(note, 'NULL'), coalesce(coupon, 'NULL')) FROM staging.items_add ORDER BY id"
        ),
        strs(&[
            "1|10|1.5|one|NULL",
            "2|20|2.5|two|NULL",
            "3|30|3.5|NULL|SAVE10",
            "4|40|4.5|NULL|NULL"
        ])
    );
    let target = added["schema_changes"][0]["target"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        target.starts_with("warehouse") && target.ends_with(":staging.items_add"),
        "the target names the warehouse and the table: {added:#}"
    );
    assert_recorded_changes(&added, &target);
    assert_recorded_changes(&runs_json(&p, "p_add")[0], &target);
    assert_runs_text_shows_changes(&p, "p_add");

    let ignored = run_ok(&p, "p_ignore", "2024-01-01");
    assert_eq!(task(&ignored, "load")["rows"], 2, "{ignored:#}");
    assert_eq!(ignored["schema_changes"], serde_json::json!([]));
    assert_eq!(duck_columns(&p, "staging", "items_ignore"), original);
    assert_eq!(
        rows("items_ignore"),
        strs(&[
            "1|10|1.5|one",
            "2|20|2.5|two",
            "3|30|3.5|NULL",
            "4|40|4.5|NULL"
        ])
    );

    let wide = run_failed(&p, "p_ignore_wide", "2024-01-01");
    assert_eq!(duck_columns(&p, "staging", "items_ignore_wide"), original);
    assert_eq!(rows("items_ignore_wide"), old_rows);
    assert_unapplied_widening_is_explained(&error_of(&wide, "load"));
}

// ---------------------------------------------------------------------------------------------
// 5. Incremental extraction
// ---------------------------------------------------------------------------------------------

fn incremental_pipeline(schema: &str, into: &str) -> String {
    format!(
        r#"
pipeline: inc
schedule: "@daily"
start_date: 2024-01-01
tasks:
  extract_orders:
    extract:
      from: {{ connection: pg, query: "select id, amount, updated_at from {schema}.orders where updated_at > {{{{ incremental.last_value | sql }}}} order by id" }}
      to: "lake://orders/{{{{ ds }}}}/data.parquet"
      incremental: {{ column: updated_at, initial: "1970-01-01" }}
  load_orders:
    after: [extract_orders]
    load:
      from: "lake://orders/{{{{ ds }}}}/data.parquet"
      into: {into}
      mode: append
"#
    )
}

#[test]
fn incremental_extract_advances_only_when_the_run_succeeds() {
    let pg = Pg::new();
    pg.exec(
        "CREATE TABLE {s}.orders (id int, amount numeric(10,2), updated_at timestamp);
         INSERT INTO {s}.orders VALUES
           (1, 10.00, '2024-01-01 10:00:00'), (2, 20.00, '2024-01-01 11:00:00'),
           (3, 30.00, '2024-01-01 12:00:00')",
    );
    let p = project();
    p.write(
        "pipelines/inc.yaml",
        &incremental_pipeline(&pg.schema, "staging.orders"),
    );
    let extracted = |date: &str| {
        parquet_strings(
            &p.path().join(format!("lake/orders/{date}/data.parquet")),
            "SELECT id::VARCHAR FROM {file} ORDER BY id",
        )
    };
    let staged = || duck_strings(&p, "SELECT id::VARCHAR FROM staging.orders ORDER BY id");

    // Run 1: everything.
    let run1 = run_ok(&p, "inc", "2024-01-01");
    assert_eq!(task(&run1, "extract_orders")["rows"], 3, "{run1:#}");
    assert_eq!(extracted("2024-01-01"), strs(&["1", "2", "3"]));
    assert_eq!(staged(), strs(&["1", "2", "3"]));

    // Run 2: only the rows updated since.
    pg.exec(
        "INSERT INTO {s}.orders VALUES (4, 40.00, '2024-01-02 09:00:00'), (5, 50.00, '2024-01-02 10:00:00')",
    );
    let run2 = run_ok(&p, "inc", "2024-01-02");
    assert_eq!(task(&run2, "extract_orders")["rows"], 2, "{run2:#}");
    assert_eq!(task(&run2, "load_orders")["rows"], 2, "{run2:#}");
    assert_eq!(extracted("2024-01-02"), strs(&["4", "5"]));
    assert_eq!(staged(), strs(&["1", "2", "3", "4", "5"]));

    // Run 3: the extract succeeds, the load fails (its table has other columns), so the run
    // fails and the mark must not advance.
    pg.exec(
        "INSERT INTO {s}.orders VALUES (6, 60.00, '2024-01-03 09:00:00'), (7, 70.00, '2024-01-03 10:00:00')",
    );
    duck_exec(
        &p,
        "CREATE SCHEMA IF NOT EXISTS staging; CREATE TABLE staging.conflict (other VARCHAR);",
    );
    p.write(
        "pipelines/inc.yaml",
        &incremental_pipeline(&pg.schema, "staging.conflict"),
    );
    let run3 = run_failed(&p, "inc", "2024-01-03");
    assert_eq!(state_of(&run3, "extract_orders"), ("success".into(), 1));
    assert_eq!(task(&run3, "extract_orders")["rows"], 2, "{run3:#}");
    assert_eq!(state_of(&run3, "load_orders"), ("failed".into(), 1));
    assert_eq!(extracted("2024-01-03"), strs(&["6", "7"]));

    // Run 4, after the fix: the rows run 3 read are read again.
    p.write(
        "pipelines/inc.yaml",
        &incremental_pipeline(&pg.schema, "staging.orders"),
    );
    let run4 = run_ok(&p, "inc", "2024-01-04");
    assert_eq!(
        task(&run4, "extract_orders")["rows"],
        2,
        "the failed run's rows are extracted again: {run4:#}"
    );
    assert_eq!(extracted("2024-01-04"), strs(&["6", "7"]));
    assert_eq!(staged(), strs(&["1", "2", "3", "4", "5", "6", "7"]));
    let log = p.sluice(&[
        "logs",
        "inc",
        "--date",
        "2024-01-04",
        "--task",
        "extract_orders",
    ]);
    assert!(
        log.stdout.contains("2024-01-02 10:00:00"),
        "the last value used is run 2's mark:\n{}",
        log.explain()
    );

    // Run 5: nothing new, nothing extracted (the successful run 4 advanced the mark).
    let run5 = run_ok(&p, "inc", "2024-01-05");
    assert_eq!(task(&run5, "extract_orders")["rows"], 0, "{run5:#}");
    assert_eq!(staged().len(), 7);
}

// ---------------------------------------------------------------------------------------------
// 6. Secrets
// ---------------------------------------------------------------------------------------------

#[test]
fn connection_secrets_are_never_printed_or_stored() {
    const SECRET: &str = "Sup3rS3cret";
    let pg = Pg::new();
    pg.exec(
        "CREATE TABLE {s}.people (id bigint, name text); INSERT INTO {s}.people VALUES (1, 'ann'), (2, 'bob')",
    );
    let p = TestProject::new();
    p.write(
        "connections.yaml",
        &format!("src: postgres://postgres:{SECRET}@127.0.0.1:5432/test\n"),
    )
    .write(
        "pipelines/sec.yaml",
        &format!(
            r#"
pipeline: sec
schedule: "@daily"
start_date: 2024-01-01
tasks:
  extract:
    extract:
      from: {{ connection: src, query: "select id, name from {s}.people order by id" }}
      to: "lake://people/{{{{ ds }}}}.parquet"
  load:
    after: [extract]
    load:
      from: "lake://people/{{{{ ds }}}}.parquet"
      into: {{ connection: src, table: {s}.people_copy }}
      mode: replace
  reload:
    load:
      from: "lake://fixed/people.parquet"
      into: {{ connection: src, table: {s}.people_again }}
      mode: replace
"#,
            s = pg.schema
        ),
    );
    write_parquet(
        &p.path().join("lake/fixed/people.parquet"),
        "SELECT * FROM (VALUES (1::BIGINT, 'ann')) t(id, name)",
    );
    let mut outputs: Vec<(String, String)> = Vec::new();
    let mut keep = |what: &str, out: &Outcome| {
        outputs.push((format!("{what} stdout"), out.stdout.clone()));
        outputs.push((format!("{what} stderr"), out.stderr.clone()));
    };

    let ok = run(&p, "sec", "2024-01-01");
    assert_eq!(ok.code, 0, "the password is accepted:\n{}", ok.explain());
    keep("successful run", &ok);
    assert_eq!(pg.count("people_copy"), 2);

    // The same password on a port nobody listens on.
    p.write(
        "connections.yaml",
        &format!("src: postgres://postgres:{SECRET}@127.0.0.1:1/test\n"),
    );
    let failed = p.sluice(&["run", "sec", "--date", "2024-01-02"]);
    assert_eq!(failed.code, 1, "{}", failed.explain());
    keep("failed run", &failed);
    let failed_json = p.sluice(&["run", "sec", "--date", "2024-01-02", "--json"]);
    keep("failed run --json", &failed_json);
    let run2 = failed_json.json();
    assert_eq!(state_of(&run2, "extract").0, "failed", "{run2:#}");
    assert_eq!(state_of(&run2, "reload").0, "failed", "{run2:#}");
    for t in ["extract", "reload"] {
        let error = error_of(&run2, t);
        assert!(
            error.contains("127.0.0.1"),
            "the error still says where the connection failed: {error}"
        );
    }

    keep("runs --json", &p.sluice(&["runs", "sec", "--json"]));
    keep("runs", &p.sluice(&["runs", "sec"]));
    keep("dlq list", &p.sluice(&["dlq", "list", "--json"]));
    for date in ["2024-01-01", "2024-01-02"] {
        for t in ["extract", "load", "reload"] {
            let logs = p.sluice(&["logs", "sec", "--date", date, "--task", t]);
            keep(&format!("logs {date} {t}"), &logs);
        }
    }
    for (what, text) in &outputs {
        assert!(
            !text.contains(SECRET),
            "the password was printed by {what}:\n{text}"
        );
    }
    // Nothing Sluice keeps (metadata database and its journal, logs) holds it either.
    let kept = common::files_under(&p.path().join(".sluice"));
    assert!(kept.iter().any(|f| f.ends_with("metadata.db")), "{kept:?}");
    assert!(
        kept.iter()
            .any(|f| f.components().any(|c| c.as_os_str() == "logs")),
        "{kept:?}"
    );
    for file in kept {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "{} holds the password",
            file.display()
        );
    }
}
