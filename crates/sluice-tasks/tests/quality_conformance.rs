//! Great Expectations' own test cases (see sluice-quality/tests/great_expectations) against the
//! SQL pushdown engine, on DuckDB and on the PostgreSQL at 127.0.0.1:5432: each case's data is
//! loaded into a table and validated where it lives. The cases that apply are those the
//! in-memory engine runs, so the two engines are held to the same results.

#[path = "../../sluice-quality/tests/conformance_runner/mod.rs"]
mod conformance_runner;

use std::sync::Arc;

use sluice_io::arrow::record_batch::RecordBatch;
use sluice_quality::pushdown::{self, quote_ident};
use sluice_tasks::quality::{DuckDatabase, PgDatabase};
use sluice_warehouse::Warehouse;
use sluice_warehouse::load::{self, Incoming, Mode, TableLoad};

use conformance_runner as conformance;

fn names(batch: &RecordBatch) -> Vec<String> {
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

#[test]
fn great_expectations_cases_pass_on_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = Arc::new(Warehouse::new(dir.path().join("cases.duckdb")));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut n = 0;
    let (passed, failed, skipped) = conformance::run("pandas", |case, validation| {
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
        let mut db = DuckDatabase(warehouse.clone());
        let relation = format!("main.{}", quote_ident(&table));
        let observed = runtime.block_on(pushdown::run(&validation.checks, &relation, &mut db))?;
        Ok(validation.judge(observed, &table))
    });
    conformance::report("DuckDB pushdown", passed, &failed, &skipped);
    assert!(passed >= 396, "only {passed} cases passed");
    assert!(failed.is_empty(), "{} cases failed", failed.len());
}

#[test]
fn great_expectations_cases_pass_on_postgres() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let uri = "postgres://postgres@127.0.0.1:5432/test";
    let schema = format!("sluice_ge_{}", std::process::id());
    let client = Arc::new(runtime.block_on(sluice_io::postgres::connect(uri)).unwrap());
    runtime
        .block_on(client.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        )))
        .unwrap();
    let mut n = 0;
    let (passed, failed, skipped) = conformance::run("pandas", |case, validation| {
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
                    quote_ident(f.name()),
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
            sluice_io::postgres::copy_in(client.as_ref(), &schema, &table, &columns, stream)
                .await
                .map_err(|e| e.to_string())?;
            let mut db = PgDatabase(client.clone());
            let relation = format!("{}.{}", quote_ident(&schema), quote_ident(&table));
            let observed = pushdown::run(&validation.checks, &relation, &mut db).await?;
            Ok(validation.judge(observed, &table))
        })
    });
    runtime
        .block_on(client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")))
        .unwrap();
    conformance::report("PostgreSQL pushdown", passed, &failed, &skipped);
    assert!(passed >= 396, "only {passed} cases passed");
    assert!(failed.is_empty(), "{} cases failed", failed.len());
}
