//! DuckDB as a source (a query's result as Arrow batches) and as a load target, on blocking
//! threads that talk to the async side through bounded channels.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use sluice_io::arrow::datatypes::{Field, SchemaRef};
use sluice_io::arrow::record_batch::RecordBatch;
use sluice_io::{BatchStream, IoError};
use sluice_warehouse::Warehouse;
use sluice_warehouse::load::{self, Incoming, TableLoad};
use tokio::sync::{mpsc, oneshot};

fn duck_error(e: impl std::fmt::Display) -> IoError {
    IoError::remote("DuckDB", e.to_string())
}

/// Runs `sql` and streams its result.
pub async fn query_batches(
    warehouse: Arc<Warehouse>,
    sql: String,
) -> Result<(SchemaRef, BatchStream), IoError> {
    let (schema_tx, schema_rx) = oneshot::channel::<Result<SchemaRef, IoError>>();
    let (tx, rx) = mpsc::channel::<Result<RecordBatch, IoError>>(2);
    tokio::task::spawn_blocking(move || {
        let run = || -> Result<(), IoError> {
            let conn = warehouse.connect().map_err(duck_error)?;
            let mut stmt = conn.prepare(&sql).map_err(duck_error)?;
            let batches = stmt.query_arrow([]).map_err(duck_error)?;
            let _ = schema_tx.send(Ok(batches.get_schema()));
            for batch in batches {
                if tx.blocking_send(Ok(batch)).is_err() {
                    break;
                }
            }
            Ok(())
        };
        if let Err(e) = run() {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let schema = schema_rx
        .await
        .map_err(|_| IoError::remote("DuckDB", "the query failed before returning columns"))?;
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    match schema {
        Ok(s) => Ok((s, stream.boxed())),
        Err(e) => Err(e),
    }
}

/// The columns of a table, or `None` when it does not exist.
pub async fn table_fields(
    warehouse: Arc<Warehouse>,
    schema: String,
    table: String,
) -> Result<Option<Vec<Field>>, IoError> {
    tokio::task::spawn_blocking(move || {
        let conn = warehouse.connect().map_err(duck_error)?;
        load::table_fields(&conn, &schema, &table).map_err(duck_error)
    })
    .await
    .map_err(duck_error)?
}

pub struct DuckLoad {
    pub schema: String,
    pub table: String,
    pub plan: sluice_io::schema::Plan,
    pub mode: sluice_io::load::LoadMode,
    /// Every column of the incoming data, in order.
    pub incoming: Vec<String>,
}

/// Loads local Parquet files (scanned by DuckDB) or a stream of batches, in one transaction.
pub async fn load(
    warehouse: Arc<Warehouse>,
    spec: DuckLoad,
    parquet: Option<Vec<std::path::PathBuf>>,
    stream: BatchStream,
) -> Result<u64, IoError> {
    // The first error of the stream is the one worth reporting (a bad record, a broken file),
    // not DuckDB's view of the aborted append.
    let stream_error: Arc<Mutex<Option<IoError>>> = Arc::default();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<RecordBatch, String>>(2);
    let pump = if parquet.is_none() {
        let errors = stream_error.clone();
        Some(tokio::spawn(async move {
            let mut stream = stream;
            while let Some(batch) = stream.next().await {
                let item = match batch {
                    Ok(b) => Ok(b),
                    Err(e) => {
                        let shown = e.to_string();
                        *errors.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                        Err(shown)
                    }
                };
                let failed = item.is_err();
                if tx.send(item).is_err() || failed {
                    break;
                }
            }
        }))
    } else {
        drop(tx);
        None
    };
    let result = tokio::task::spawn_blocking(move || {
        let mut conn = warehouse.connect().map_err(duck_error)?;
        let widen: Vec<(String, sluice_io::arrow::datatypes::DataType)> = spec
            .plan
            .widen
            .iter()
            .map(|(c, _, to)| (c.clone(), to.clone()))
            .collect();
        let mode = match &spec.mode {
            sluice_io::load::LoadMode::Append => load::Mode::Append,
            sluice_io::load::LoadMode::Replace => load::Mode::Replace,
            sluice_io::load::LoadMode::ReplacePartition { column, values } => {
                load::Mode::ReplacePartition { column, values }
            }
            sluice_io::load::LoadMode::Merge { keys } => load::Mode::Merge { keys },
        };
        let table_load = TableLoad {
            schema: &spec.schema,
            table: &spec.table,
            create: spec.plan.create.as_deref(),
            add: &spec.plan.add,
            widen: &widen,
            insert: &spec.plan.insert,
            incoming: &spec.incoming,
            mode,
        };
        let incoming = match parquet {
            Some(files) => Incoming::Parquet(files),
            None => Incoming::Batches(rx.into_iter()),
        };
        load::load_table(&mut conn, &table_load, incoming).map_err(duck_error)
    })
    .await
    .map_err(duck_error)?;
    if let Some(p) = pump {
        p.abort();
    }
    match result {
        Ok(rows) => Ok(rows),
        Err(e) => Err(stream_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or(e)),
    }
}
