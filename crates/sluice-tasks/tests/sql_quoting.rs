//! The template filters `sql` and `ident` against the real databases: every hostile value of
//! `tests/sql_quoting/values.jsonl` is rendered by the `sql` filter into statements run on
//! DuckDB (the warehouse), PostgreSQL (127.0.0.1:5432, with `standard_conforming_strings` on
//! and off) and MariaDB (127.0.0.1:3306, with and without `NO_BACKSLASH_ESCAPES`), stored,
//! compared and read back; every hostile name of `identifiers.jsonl` names a table and its
//! column through the `ident` filter and is read back from the database's catalog. Statements
//! run through each driver's multi-statement path, so a value that escaped its literal would
//! run its second statement.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value as Json, json};
use sluice_core::sql::Dialect;
use sluice_core::template::{TemplateContext, render};
use sluice_testkit::{mariadb, pg};
use sluice_warehouse::Warehouse;
use sluice_warehouse::duckdb;

/// One line of a case file.
struct Case {
    line: usize,
    value: String,
    /// Dialect name → part of the error the filter must give instead of SQL.
    refused: serde_json::Map<String, Json>,
}

fn cases(file: &str) -> Vec<Case> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sql_quoting")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed: Json = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}:{line_no}: {e}", path.display()));
        let case = match parsed {
            Json::String(value) => Case {
                line: line_no,
                value,
                refused: Default::default(),
            },
            Json::Object(mut o) => {
                let value = match (o.remove("value"), o.remove("repeat"), o.get("times")) {
                    (Some(Json::String(v)), None, None) => v,
                    (None, Some(Json::String(r)), Some(n)) => {
                        r.repeat(n.as_u64().unwrap() as usize)
                    }
                    _ => panic!(
                        "{}:{line_no}: needs `value`, or `repeat` and `times`",
                        path.display()
                    ),
                };
                let refused = match o.remove("refused") {
                    Some(Json::Object(r)) => r,
                    None => Default::default(),
                    Some(other) => panic!("{}:{line_no}: `refused` is {other}", path.display()),
                };
                Case {
                    line: line_no,
                    value,
                    refused,
                }
            }
            other => panic!("{}:{line_no}: {other} is not a case", path.display()),
        };
        out.push(case);
    }
    out
}

/// A value shown in a failure: escaped, and cut when it is long.
fn shown(text: &str) -> String {
    let chars = text.chars().count();
    if chars <= 120 {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(120).collect();
        format!("{head:?}… ({chars} characters)")
    }
}

/// One database, reached the way its driver runs several statements in one call.
enum Db {
    Duck(duckdb::Connection),
    Pg(tokio_postgres::Client),
    My(mysql_async::Conn),
}

impl Db {
    async fn execute(&mut self, sql: &str) -> Result<(), String> {
        match self {
            Db::Duck(c) => c.execute_batch(sql).map_err(|e| e.to_string()),
            Db::Pg(c) => c.batch_execute(sql).await.map_err(|e| format!("{e:?}")),
            Db::My(c) => {
                use mysql_async::prelude::Queryable;
                c.query_drop(sql).await.map_err(|e| e.to_string())
            }
        }
    }

    /// Every row of a query, each column as text.
    async fn rows(
        &mut self,
        sql: &str,
        columns: usize,
    ) -> Result<Vec<Vec<Option<String>>>, String> {
        match self {
            Db::Duck(c) => {
                let mut stmt = c.prepare(sql).map_err(|e| e.to_string())?;
                let mut rows = stmt.query([]).map_err(|e| e.to_string())?;
                let mut out = Vec::new();
                while let Some(row) = rows.next().map_err(|e| e.to_string())? {
                    out.push(
                        (0..columns)
                            .map(|i| row.get::<_, duckdb::types::Value>(i).map(duck_text))
                            .collect::<Result<_, _>>()
                            .map_err(|e| e.to_string())?,
                    );
                }
                Ok(out)
            }
            Db::Pg(c) => {
                let messages = c.simple_query(sql).await.map_err(|e| format!("{e:?}"))?;
                Ok(messages
                    .into_iter()
                    .filter_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(r) => {
                            Some((0..columns).map(|i| r.get(i).map(str::to_string)).collect())
                        }
                        _ => None,
                    })
                    .collect())
            }
            Db::My(c) => {
                use mysql_async::prelude::Queryable;
                let rows: Vec<mysql_async::Row> = c.query(sql).await.map_err(|e| e.to_string())?;
                rows.into_iter()
                    .map(|r| (0..columns).map(|i| my_text(r.as_ref(i))).collect())
                    .collect()
            }
        }
    }

    /// (table, column) of every column in `schema`, from the catalog; the schema is a bound
    /// parameter, so this reading depends on no quoting.
    async fn catalog(&mut self, schema: &str) -> Result<Vec<(String, String)>, String> {
        const SQL: &str = "SELECT table_name, column_name FROM information_schema.columns \
                           WHERE table_schema = ";
        match self {
            Db::Duck(c) => {
                let mut stmt = c.prepare(&format!("{SQL}?")).map_err(|e| e.to_string())?;
                let rows = stmt
                    .query_map([schema], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(|e| e.to_string())?;
                rows.collect::<Result<_, _>>().map_err(|e| e.to_string())
            }
            Db::Pg(c) => {
                let rows = c
                    .query(&format!("{SQL}$1"), &[&schema])
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
            }
            Db::My(c) => {
                use mysql_async::prelude::Queryable;
                let rows: Vec<mysql_async::Row> = c
                    .exec(format!("{SQL}?"), (schema,))
                    .await
                    .map_err(|e| e.to_string())?;
                rows.into_iter()
                    .map(|r| {
                        let text = |i| my_text(r.as_ref(i))?.ok_or("a NULL name".to_string());
                        Ok((text(0)?, text(1)?))
                    })
                    .collect()
            }
        }
    }
}

fn duck_text(value: duckdb::types::Value) -> Option<String> {
    use duckdb::types::Value;
    match value {
        Value::Null => None,
        Value::Text(s) => Some(s),
        Value::BigInt(n) => Some(n.to_string()),
        Value::HugeInt(n) => Some(n.to_string()),
        Value::UBigInt(n) => Some(n.to_string()),
        Value::Int(n) => Some(n.to_string()),
        other => Some(format!("{other:?}")),
    }
}

fn my_text(value: Option<&mysql_async::Value>) -> Result<Option<String>, String> {
    match value {
        None | Some(mysql_async::Value::NULL) => Ok(None),
        Some(mysql_async::Value::Bytes(b)) => String::from_utf8(b.clone())
            .map(Some)
            .map_err(|e| format!("not UTF-8: {e}")),
        Some(other) => Ok(Some(other.as_sql(true))),
    }
}

/// A database to run the cases on, in a schema (or database) of its own.
struct Target {
    name: &'static str,
    dialect: Dialect,
    db: Db,
    /// Where the cases' tables live (the catalog's `table_schema`).
    schema: String,
    text_type: &'static str,
    /// What holds the schema: dropped after the connection, also when the test panics.
    _home: Home,
}

#[allow(dead_code, reason = "held for its Drop")]
enum Home {
    Folder(tempfile::TempDir),
    Pg(pg::Schema),
    MariaDb(mariadb::Database),
}

async fn duckdb() -> Target {
    let dir = tempfile::tempdir().unwrap();
    let conn = Warehouse::new(dir.path().join("warehouse.duckdb"))
        .connect()
        .unwrap();
    Target {
        name: "DuckDB",
        dialect: Dialect::DuckDb,
        db: Db::Duck(conn),
        schema: "main".into(),
        text_type: "VARCHAR",
        _home: Home::Folder(dir),
    }
}

/// PostgreSQL; with `standard_strings` off, a backslash in a plain literal escapes (the
/// setting's value before 9.1, still settable per session).
async fn postgres(standard_strings: bool) -> Target {
    let schema = pg::Schema::create("sluice_quoting");
    let (client, connection) = tokio_postgres::connect(pg::TEST_URL, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL at 127.0.0.1:5432");
    tokio::spawn(connection);
    let setting = if standard_strings { "on" } else { "off" };
    client
        .batch_execute(&format!(
            "SET search_path TO {}; SET standard_conforming_strings = {setting}",
            schema.name
        ))
        .await
        .unwrap();
    let one = client.query_one(r"SELECT '\\'", &[]).await.unwrap();
    assert_eq!(
        one.get::<_, &str>(0),
        if standard_strings { r"\\" } else { r"\" },
        "standard_conforming_strings"
    );
    Target {
        name: if standard_strings {
            "PostgreSQL"
        } else {
            "PostgreSQL (standard_conforming_strings off)"
        },
        dialect: Dialect::Postgres,
        db: Db::Pg(client),
        schema: schema.name.clone(),
        text_type: "text",
        _home: Home::Pg(schema),
    }
}

/// MariaDB, its session's sql_mode extended with NO_BACKSLASH_ESCAPES when `no_backslash`.
async fn mariadb(no_backslash: bool) -> Target {
    use mysql_async::prelude::Queryable;
    let database = mariadb::Database::create("sluice_quoting");
    let mut conn = mysql_async::Conn::from_url(database.url.as_str())
        .await
        .expect("MariaDB at 127.0.0.1:3306");
    if no_backslash {
        conn.query_drop("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')")
            .await
            .unwrap();
    }
    // The mode is what the test says it is: a backslash in a quoted literal escapes or not.
    let one: Option<String> = conn.query_first(r"SELECT '\\'").await.unwrap();
    assert_eq!(
        one.as_deref(),
        Some(if no_backslash { r"\\" } else { r"\" }),
        "sql_mode"
    );
    Target {
        name: if no_backslash {
            "MariaDB (NO_BACKSLASH_ESCAPES)"
        } else {
            "MariaDB"
        },
        dialect: Dialect::MySql,
        db: Db::My(conn),
        schema: database.name.clone(),
        text_type: "LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        _home: Home::MariaDb(database),
    }
}

fn dialect_key(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::DuckDb => "duckdb",
        Dialect::Postgres => "postgres",
        Dialect::MySql => "mysql",
    }
}

impl Target {
    fn context(&self, params: Json) -> TemplateContext {
        TemplateContext::sample("quoting", "case", params, None).in_dialect(self.dialect)
    }

    /// Renders `template` for a case; `Ok(None)` when the filter refused the case as the
    /// case file says it must.
    fn render(&self, case: &Case, template: &str, params: Json) -> Result<Option<String>, String> {
        let expected = case
            .refused
            .get(dialect_key(self.dialect))
            .and_then(Json::as_str);
        match (render(template, &self.context(params)), expected) {
            (Ok(sql), None) => Ok(Some(sql)),
            (Err(e), Some(part)) if e.message.contains(part) => Ok(None),
            (Err(e), Some(part)) => Err(format!(
                "refused with `{}`, expected an error containing `{part}`",
                e.message
            )),
            (Err(e), None) => Err(format!("the filter refused it: {}", e.message)),
            (Ok(sql), Some(part)) => Err(format!(
                "rendered `{}` where an error containing `{part}` was expected",
                shown(&sql)
            )),
        }
    }

    fn finish(self, failures: Vec<String>, what: &str) {
        assert!(
            failures.is_empty(),
            "{} of the {what} failed on {}:\n\n{}",
            failures.len(),
            self.name,
            failures.join("\n\n")
        );
    }
}

/// Each value: inserted through the `sql` filter, read back by id, and found again by a
/// comparison with its literal (`=` and `IN`).
async fn values_read_back(mut target: Target) {
    let table = "sluice_values";
    target
        .db
        .execute(&format!(
            "CREATE TABLE {table} (id INTEGER PRIMARY KEY, v {})",
            target.text_type
        ))
        .await
        .unwrap();
    let mut failures = Vec::new();
    for (id, case) in cases("values.jsonl").iter().enumerate() {
        let params = json!({"id": id, "value": case.value, "values": [case.value, "other"]});
        let mut report = |sql: &str, problem: String| {
            let mut m = format!("line {}: value {}\n  ", case.line, shown(&case.value));
            if !sql.is_empty() {
                let _ = write!(m, "SQL: {}\n  ", shown(sql));
            }
            m.push_str(&problem);
            failures.push(m);
        };
        let insert = "INSERT INTO sluice_values (id, v) VALUES ({{ params.id | sql }}, {{ params.value | sql }})";
        let sql = match target.render(case, insert, params.clone()) {
            Ok(Some(sql)) => sql,
            Ok(None) => continue,
            Err(problem) => {
                report("", problem);
                continue;
            }
        };
        if let Err(e) = target.db.execute(&sql).await {
            report(&sql, format!("the database refused it: {e}"));
            continue;
        }
        let select = format!("SELECT v FROM {table} WHERE id = {id}");
        match target.db.rows(&select, 1).await {
            Ok(rows) if rows == [vec![Some(case.value.clone())]] => {}
            Ok(rows) => {
                let back: Vec<String> = rows
                    .iter()
                    .map(|r| r[0].as_deref().map_or("NULL".into(), shown))
                    .collect();
                report(&sql, format!("read back: [{}]", back.join(", ")));
                continue;
            }
            Err(e) => {
                report(&sql, format!("reading it back failed: {e}"));
                continue;
            }
        }
        let compare = "SELECT count(*) FROM sluice_values WHERE id = {{ params.id | sql }} \
                       AND v = {{ params.value | sql }} AND v IN {{ params.values | sql }}";
        let sql = match target.render(case, compare, params) {
            Ok(Some(sql)) => sql,
            Ok(None) => continue,
            Err(problem) => {
                report("", problem);
                continue;
            }
        };
        match target.db.rows(&sql, 1).await {
            Ok(rows) if rows == [vec![Some("1".to_string())]] => {}
            Ok(rows) => report(&sql, format!("the literal matched {rows:?} rows, not 1")),
            Err(e) => report(&sql, format!("the comparison failed: {e}")),
        }
    }
    // A value that ran a second statement would have dropped or emptied the table.
    let count = target
        .db
        .rows(&format!("SELECT count(*) FROM {table}"), 1)
        .await;
    let stored = cases("values.jsonl")
        .iter()
        .filter(|c| !c.refused.contains_key(dialect_key(target.dialect)))
        .count();
    if count != Ok(vec![vec![Some(stored.to_string())]]) {
        failures.push(format!("the table holds {count:?} rows, not {stored}"));
    }
    target.finish(failures, "values");
}

/// Each name: a table and its column named by the `ident` filter, a row holding the name,
/// read back through the quoted names and found in the catalog exactly as written.
async fn identifiers_read_back(mut target: Target) {
    let mut failures = Vec::new();
    for case in cases("identifiers.jsonl") {
        let params = json!({"name": case.value});
        let text_type = target.text_type;
        let statements = [
            format!("CREATE TABLE {{{{ params.name | ident }}}} ({{{{ params.name | ident }}}} {text_type})"),
            "INSERT INTO {{ params.name | ident }} ({{ params.name | ident }}) VALUES ({{ params.name | sql }})".to_string(),
        ];
        let mut report = |sql: &str, problem: String| {
            let mut m = format!("line {}: name {}\n  ", case.line, shown(&case.value));
            if !sql.is_empty() {
                let _ = write!(m, "SQL: {}\n  ", shown(sql));
            }
            m.push_str(&problem);
            failures.push(m);
        };
        let mut rendered = Vec::new();
        for template in &statements {
            match target.render(&case, template, params.clone()) {
                Ok(Some(sql)) => rendered.push(sql),
                Ok(None) => break,
                Err(problem) => {
                    report("", problem);
                    break;
                }
            }
        }
        if rendered.len() < statements.len() {
            continue;
        }
        let mut ran = true;
        for sql in &rendered {
            if let Err(e) = target.db.execute(sql).await {
                report(sql, format!("the database refused it: {e}"));
                ran = false;
                break;
            }
        }
        if ran {
            let select = target
                .render(
                    &case,
                    "SELECT {{ params.name | ident }} FROM {{ params.name | ident }}",
                    params.clone(),
                )
                .ok()
                .flatten()
                .unwrap_or_default();
            match target.db.rows(&select, 1).await {
                Ok(rows) if rows == [vec![Some(case.value.clone())]] => {}
                Ok(rows) => report(&select, format!("read back {rows:?}")),
                Err(e) => report(&select, format!("reading it back failed: {e}")),
            }
            let want = vec![(case.value.clone(), case.value.clone())];
            match target.db.catalog(&target.schema).await {
                Ok(found) if found == want => {}
                Ok(found) => report(&rendered[0], format!("the catalog holds {found:?}")),
                Err(e) => report(&rendered[0], format!("reading the catalog failed: {e}")),
            }
        }
        // Whatever happened, the next case starts from an empty schema.
        let drop = target
            .render(
                &case,
                "DROP TABLE IF EXISTS {{ params.name | ident }}",
                params,
            )
            .ok()
            .flatten()
            .unwrap_or_default();
        if let Err(e) = target.db.execute(&drop).await {
            report(&drop, format!("dropping the table failed: {e}"));
        }
    }
    target.finish(failures, "identifiers");
}

#[tokio::test]
async fn values_read_back_on_duckdb() {
    values_read_back(duckdb().await).await;
}

#[tokio::test]
async fn values_read_back_on_postgres() {
    values_read_back(postgres(true).await).await;
}

#[tokio::test]
async fn values_read_back_on_postgres_without_standard_strings() {
    values_read_back(postgres(false).await).await;
}

#[tokio::test]
async fn values_read_back_on_mariadb() {
    values_read_back(mariadb(false).await).await;
}

#[tokio::test]
async fn values_read_back_on_mariadb_without_backslash_escapes() {
    values_read_back(mariadb(true).await).await;
}

#[tokio::test]
async fn identifiers_read_back_on_duckdb() {
    identifiers_read_back(duckdb().await).await;
}

#[tokio::test]
async fn identifiers_read_back_on_postgres() {
    identifiers_read_back(postgres(true).await).await;
}

#[tokio::test]
async fn identifiers_read_back_on_postgres_without_standard_strings() {
    identifiers_read_back(postgres(false).await).await;
}

#[tokio::test]
async fn identifiers_read_back_on_mariadb() {
    identifiers_read_back(mariadb(false).await).await;
}

#[tokio::test]
async fn identifiers_read_back_on_mariadb_without_backslash_escapes() {
    identifiers_read_back(mariadb(true).await).await;
}
