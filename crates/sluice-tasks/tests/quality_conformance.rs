//! Great Expectations' own test cases (see sluice-quality/tests/great_expectations) against the
//! SQL pushdown engine, on DuckDB and on the PostgreSQL at 127.0.0.1:5432: each case's data is
//! loaded into a table and validated where it lives. The cases that apply are those the
//! in-memory engine runs, so the two engines are held to the same results, and those GE runs
//! for SQL only: for PostgreSQL its `postgresql` cases, for DuckDB its `sqlite` ones (GE's
//! embedded SQL database). Columns take the SQL type the case declares for that backend.

use std::sync::Arc;

use sluice_core::sql::Dialect;
use sluice_io::arrow::record_batch::RecordBatch;
use sluice_quality::pushdown;
use sluice_tasks::quality::{DuckDatabase, PgDatabase};
use sluice_testkit::conformance;
use sluice_testkit::pg::{self, Schema};
use sluice_warehouse::Warehouse;
use sluice_warehouse::load::{self, Incoming, Mode, TableLoad};

fn names(batch: &RecordBatch) -> Vec<String> {
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

/// The SQL types a case declares for `backend`, in SQL's spelling (SQLAlchemy's
/// `DOUBLE_PRECISION` is `DOUBLE PRECISION`).
fn declared_types(case: &conformance::Case, backend: &str) -> Vec<(String, String)> {
    case.dataset["schemas"][backend]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(column, t)| Some((column.clone(), t.as_str()?.replace('_', " "))))
        .collect()
}

#[test]
fn great_expectations_cases_pass_on_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = Arc::new(Warehouse::new(dir.path().join("cases.duckdb")));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut n = 0;
    let (passed, failed, skipped) = conformance::run(&["pandas", "sqlite"], |case, validation| {
        let batch = conformance::batch(case);
        n += 1;
        let table = format!("case_{n}");
        let fields: Vec<_> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let columns = names(&batch);
        let mut conn = warehouse.connect().map_err(|e| e.to_string())?;
        load::load_table(
            &mut conn,
            &TableLoad {
                schema: "main",
                table: &table,
                create: Some(&fields),
                add: &[],
                widen: &[],
                insert: &columns,
                incoming: &columns,
                mode: Mode::Append,
            },
            Incoming::Batches(std::iter::once(Ok(batch))),
        )
        .map_err(|e| e.to_string())?;
        for (column, declared) in declared_types(case, "sqlite") {
            // SQLite's INTEGER and FLOAT are 8 bytes wide, DuckDB's 4.
            let declared = match declared.as_str() {
                "INTEGER" => "BIGINT".into(),
                "FLOAT" => "DOUBLE".into(),
                _ => declared,
            };
            // SQLite keeps a value that does not fit its column's type as it is; so does this.
            let _ = conn.execute_batch(&format!(
                "ALTER TABLE main.{table} ALTER COLUMN {} TYPE {declared}",
                Dialect::DuckDb.quote_ident(&column)
            ));
        }
        drop(conn);
        let mut db = DuckDatabase(warehouse.clone());
        let relation = format!("main.{}", Dialect::DuckDb.quote_ident(&table));
        let observed = runtime.block_on(pushdown::run(&validation.checks, &relation, &mut db))?;
        Ok(validation.judge(observed, &table))
    });
    conformance::report("DuckDB pushdown", passed, &failed, &skipped);
    assert!(passed >= 429, "only {passed} cases passed");
    assert!(failed.is_empty(), "{} cases failed", failed.len());
}

#[test]
fn great_expectations_cases_pass_on_postgres() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cases = Schema::create("sluice_ge");
    let schema = &cases.name;
    let client = Arc::new(
        runtime
            .block_on(sluice_io::postgres::connect(pg::TEST_URL))
            .unwrap(),
    );
    let mut n = 0;
    let (passed, failed, skipped) = conformance::run(
        &["pandas", "postgresql"],
        |case, validation| {
            let batch = conformance::batch(case);
            n += 1;
            let table = format!("case_{n}");
            let defs: Vec<String> = batch
                .schema()
                .fields()
                .iter()
                .map(|f| {
                    Ok(format!(
                        "{} {}",
                        Dialect::Postgres.quote_ident(f.name()),
                        sluice_io::postgres::pg_type(f.data_type()).map_err(|e| e.to_string())?
                    ))
                })
                .collect::<Result<_, String>>()?;
            let columns = names(&batch);
            runtime.block_on(async {
            client
                .batch_execute(&format!(
                    "CREATE TABLE {schema}.{table} ({})",
                    defs.join(", ")
                ))
                .await
                .map_err(|e| e.to_string())?;
            let stream = Box::pin(futures::stream::iter([Ok(batch)]));
            sluice_io::postgres::copy_in(client.as_ref(), schema, &table, &columns, stream)
                .await
                .map_err(|e| e.to_string())?;
            for (column, declared) in declared_types(case, "postgresql") {
                let c = Dialect::Postgres.quote_ident(&column);
                client
                    .batch_execute(&format!(
                        "ALTER TABLE {schema}.{table} ALTER COLUMN {c} TYPE {declared} USING {c}::{declared}"
                    ))
                    .await
                    .map_err(|e| format!("{e:?}"))?;
            }
            let mut db = PgDatabase(client.clone());
            let relation = format!(
                "{}.{}",
                Dialect::Postgres.quote_ident(schema),
                Dialect::Postgres.quote_ident(&table)
            );
            let observed = pushdown::run(&validation.checks, &relation, &mut db).await?;
            Ok(validation.judge(observed, &table))
        })
        },
    );
    drop(client);
    drop(cases);
    conformance::report("PostgreSQL pushdown", passed, &failed, &skipped);
    assert!(passed >= 425, "only {passed} cases passed");
    assert!(failed.is_empty(), "{} cases failed", failed.len());
}
