//! The DuckDB table sink of streams: the same tables as the PostgreSQL sink (records as JSON
//! with their topic, partition and offset, or windowed results; dead letters; the partitions'
//! next offsets and the window state), written in one DuckDB transaction per batch. It lives in
//! the binary because the binary owns the warehouse: DuckDB lets one process write a file, so a
//! stream shares the process's open database with the tasks of `sluice serve`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sluice_core::connections::{Connections, WAREHOUSE};
use sluice_core::sql::Dialect;
use sluice_core::stream::{Stream, Target};
use sluice_kafka::sink::{Checkpoint, OFFSETS, STATE, TableShape, key_text, moved, rows_to_write};
use sluice_kafka::{
    Offsets, OpenTable, Rejected, Sink, SinkBatch, SinkFuture, StreamError, Written,
};
use sluice_stream::{Emit, Value};
use sluice_warehouse::duckdb::{self, Connection, params};
use sluice_warehouse::{Warehouse, Warehouses};

/// Incoming rows are appended here, then inserted (or upserted) into the table in one statement.
const INCOMING: &str = "__sluice_stream_incoming";

/// Opens DuckDB sinks: the project's warehouse or a `duckdb://` connection.
pub struct DuckTables {
    pub warehouses: Arc<Warehouses>,
    pub default: PathBuf,
    pub root: PathBuf,
    pub connections: Connections,
}

impl OpenTable for DuckTables {
    fn open<'a>(&'a self, stream: &'a Stream) -> SinkFuture<'a, Box<dyn Sink>> {
        Box::pin(async move {
            let Target::Table { connection, .. } = &stream.sink.target else {
                return Err(StreamError::Unsupported("the sink is not a table".into()));
            };
            let path = match self.connections.get(connection) {
                Some(c) => c.duckdb_path(&self.root).ok_or_else(|| {
                    StreamError::Unsupported(format!("`{connection}` is not a DuckDB connection"))
                })?,
                None if connection == WAREHOUSE => self.default.clone(),
                None => return Err(StreamError::Sink(format!("no connection `{connection}`"))),
            };
            let warehouse = self.warehouses.get(&path);
            let stream = stream.clone();
            let sink = tokio::task::spawn_blocking(move || DuckSink::open(&warehouse, &stream))
                .await
                .map_err(|e| StreamError::Sink(e.to_string()))??;
            Ok(Box::new(sink) as Box<dyn Sink>)
        })
    }
}

pub struct DuckSink {
    conn: Arc<Mutex<Connection>>,
    shape: Arc<TableShape>,
}

fn sink_error(e: duckdb::Error) -> StreamError {
    StreamError::Sink(format!("DuckDB: {e}"))
}

impl DuckSink {
    fn open(warehouse: &Warehouse, stream: &Stream) -> Result<DuckSink, StreamError> {
        let conn = warehouse
            .connect()
            .map_err(|e| StreamError::Sink(e.to_string()))?;
        let shape = TableShape::of(stream, Dialect::DuckDb)?;
        let incoming: String = shape
            .keys
            .iter()
            .map(|k| format!("{} VARCHAR, ", shape.column(k)))
            .collect();
        // Rows are appended here, then inserted (or upserted) into the table in one statement.
        let ddl = format!(
            "{};
             CREATE TEMP TABLE IF NOT EXISTS {INCOMING} (
                {incoming}record VARCHAR, _topic VARCHAR, _partition INTEGER, _offset BIGINT);",
            shape.ddl().join(";\n")
        );
        conn.execute_batch(&ddl).map_err(sink_error)?;
        Ok(DuckSink {
            conn: Arc::new(Mutex::new(conn)),
            shape: Arc::new(shape),
        })
    }

    /// Runs `work` on the connection, on a blocking thread (DuckDB's calls block).
    fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection, &TableShape) -> Result<T, StreamError> + Send + 'static,
    ) -> SinkFuture<'static, T> {
        let (conn, shape) = (self.conn.clone(), self.shape.clone());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                work(&mut conn, &shape)
            })
            .await
            .map_err(|e| StreamError::Sink(e.to_string()))?
        })
    }
}

fn stored_offsets(conn: &Connection, stream: &str) -> Result<Offsets, StreamError> {
    let mut statement = conn
        .prepare(&format!(
            "SELECT topic, partition, next_offset FROM {OFFSETS} WHERE stream = ?"
        ))
        .map_err(sink_error)?;
    let rows = statement
        .query_map(params![stream], |r| {
            Ok((
                (r.get::<_, String>(0)?, r.get::<_, i32>(1)?),
                r.get::<_, i64>(2)?,
            ))
        })
        .map_err(sink_error)?;
    rows.collect::<Result<Offsets, _>>().map_err(sink_error)
}

impl Sink for DuckSink {
    fn stored_offsets(&mut self) -> SinkFuture<'_, Offsets> {
        self.blocking(|conn, shape| stored_offsets(conn, &shape.stream))
    }

    fn checkpoint(&mut self) -> SinkFuture<'_, Checkpoint> {
        self.blocking(|conn, shape| {
            // One transaction: DuckDB's snapshot gives offsets and state of the same commit.
            let tx = conn.transaction().map_err(sink_error)?;
            let offsets = stored_offsets(&tx, &shape.stream)?;
            let mut statement = tx
                .prepare(&format!(
                    "SELECT state::VARCHAR FROM {STATE} WHERE stream = ?"
                ))
                .map_err(sink_error)?;
            let mut rows = statement
                .query_map(params![shape.stream], |r| r.get::<_, String>(0))
                .map_err(sink_error)?;
            let state = match rows.next() {
                None => None,
                Some(text) => Some(
                    serde_json::from_str(&text.map_err(sink_error)?)
                        .map_err(|e| StreamError::Sink(format!("the window state: {e}")))?,
                ),
            };
            drop(rows);
            drop(statement);
            tx.commit().map_err(sink_error)?;
            Ok(Checkpoint { offsets, state })
        })
    }

    fn write<'a>(
        &'a mut self,
        batch: &'a SinkBatch<'a>,
        next: &'a Offsets,
        exactly_once: bool,
    ) -> SinkFuture<'a, Written> {
        // The batch moves to the blocking thread as owned rows.
        let rows: Vec<(sluice_kafka::Record, serde_json::Value)> = batch.rows.to_vec();
        let results = batch.results.to_vec();
        let bad: Vec<Rejected> = batch.bad.to_vec();
        let state = batch.state.map(|s| s.to_string());
        let expected = batch.expected.cloned();
        let next = next.clone();
        self.blocking(move |conn, shape| {
            let tx = conn.transaction().map_err(sink_error)?;
            let mut stored = Offsets::new();
            if exactly_once {
                // DuckDB has no row locks: a second writer of these rows in this process fails
                // its commit with a conflict, and its batch is retried.
                for (topic, partition) in next.keys() {
                    tx.execute(
                        &format!(
                            "INSERT INTO {OFFSETS} (stream, topic, partition, next_offset)
                             VALUES (?, ?, ?, 0) ON CONFLICT DO NOTHING"
                        ),
                        params![shape.stream, topic, partition],
                    )
                    .map_err(sink_error)?;
                }
                stored = stored_offsets(&tx, &shape.stream)?;
                if expected.as_ref().is_some_and(|e| moved(e, &stored)) {
                    return Err(StreamError::Fenced);
                }
            }
            let mut written = Written::default();
            let (fresh, skipped) = rows_to_write(&rows, &shape.keys, &stored);
            written.skipped = skipped;
            if !fresh.is_empty() {
                written.loaded = insert_rows(&tx, shape, &fresh)?;
            }
            if let Some((group, computed)) = &shape.results {
                written.loaded += write_results(&tx, shape, group, computed, &results)?;
            }
            if let Some(state) = &state {
                tx.execute(
                    &format!(
                        "INSERT INTO {STATE} (stream, state) VALUES (?, ?::JSON)
                         ON CONFLICT (stream) DO UPDATE SET state = excluded.state, updated_at = now()"
                    ),
                    params![shape.stream, state],
                )
                .map_err(sink_error)?;
            }
            {
                let mut insert = tx
                    .prepare(&format!(
                        "INSERT INTO {} (stream, topic, partition, \"offset\", payload, payload_encoding, reason)
                         VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        shape.dead_letters
                    ))
                    .map_err(sink_error)?;
                for b in bad.iter().filter(|b| b.record.is_new(&stored)) {
                    let (payload, encoding) = sluice_kafka::payload_text(&b.record.payload);
                    written.dead_lettered += insert
                        .execute(params![
                            shape.stream,
                            b.record.topic,
                            b.record.partition,
                            b.record.offset,
                            payload,
                            encoding,
                            b.reason
                        ])
                        .map_err(sink_error)? as u64;
                }
            }
            if exactly_once {
                let mut update = tx
                    .prepare(&format!(
                        "UPDATE {OFFSETS} SET next_offset = greatest(next_offset, ?), updated_at = now()
                         WHERE stream = ? AND topic = ? AND partition = ?"
                    ))
                    .map_err(sink_error)?;
                for ((topic, partition), offset) in &next {
                    update
                        .execute(params![offset, shape.stream, topic, partition])
                        .map_err(sink_error)?;
                }
            }
            tx.commit().map_err(sink_error)?;
            Ok(written)
        })
    }
}

/// Appends the rows to the incoming table, then moves them into the table in one statement.
fn insert_rows(
    tx: &duckdb::Transaction<'_>,
    shape: &TableShape,
    rows: &[&(sluice_kafka::Record, serde_json::Value)],
) -> Result<u64, StreamError> {
    tx.execute_batch(&format!("DELETE FROM {INCOMING}"))
        .map_err(sink_error)?;
    {
        let mut appender = tx
            .appender_to_catalog_and_db(INCOMING, "temp", "main")
            .map_err(sink_error)?;
        let mut values: Vec<duckdb::types::Value> = Vec::with_capacity(shape.keys.len() + 4);
        for (record, value) in rows {
            values.clear();
            for k in &shape.keys {
                values.push(duckdb::types::Value::Text(key_text(value.get(k))));
            }
            values.push(duckdb::types::Value::Text(value.to_string()));
            values.push(duckdb::types::Value::Text(record.topic.clone()));
            values.push(duckdb::types::Value::Int(record.partition));
            values.push(duckdb::types::Value::BigInt(record.offset));
            appender
                .append_row(duckdb::appender_params_from_iter(values.iter()))
                .map_err(sink_error)?;
        }
        appender.flush().map_err(sink_error)?;
    }
    let keys: Vec<String> = shape.keys.iter().map(|k| shape.column(k)).collect();
    let key_list: String = keys.iter().map(|k| format!("{k}, ")).collect();
    let conflict = if keys.is_empty() {
        "ON CONFLICT DO NOTHING".to_string()
    } else {
        format!(
            "ON CONFLICT ({}) DO UPDATE SET record = excluded.record, _topic = excluded._topic,
             _partition = excluded._partition, _offset = excluded._offset, loaded_at = now()",
            keys.join(", ")
        )
    };
    let n = tx
        .execute(
            &format!(
                "INSERT INTO {table} ({key_list}record, _topic, _partition, _offset)
                 SELECT {key_list}record::JSON, _topic, _partition, _offset FROM {INCOMING}
                 {conflict}",
                table = shape.table
            ),
            [],
        )
        .map_err(sink_error)?;
    Ok(n as u64)
}

/// Windowed results: upserted on the table's key; retracted windows deleted.
fn write_results(
    tx: &duckdb::Transaction<'_>,
    shape: &TableShape,
    group: &[String],
    computed: &[String],
    results: &[sluice_stream::Fired],
) -> Result<u64, StreamError> {
    let key_match: Vec<String> = group
        .iter()
        .map(|g| format!("{} = ?", shape.column(g)))
        .chain(["window_start = to_timestamp(CAST(? AS BIGINT) / 1000.0)".to_string()])
        .collect();
    let columns: Vec<String> = group
        .iter()
        .map(|g| shape.column(g))
        .chain(["window_start".into(), "window_end".into()])
        .chain(computed.iter().map(|c| shape.column(c)))
        .collect();
    let placeholders: Vec<String> = group
        .iter()
        .map(|_| "?".to_string())
        .chain([
            "to_timestamp(CAST(? AS BIGINT) / 1000.0)".into(),
            "to_timestamp(CAST(? AS BIGINT) / 1000.0)".into(),
        ])
        .chain(computed.iter().map(|_| "?".to_string()))
        .collect();
    let updates: Vec<String> = ["window_end".to_string()]
        .into_iter()
        .chain(computed.iter().map(|c| shape.column(c)))
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    let mut delete = tx
        .prepare(&format!(
            "DELETE FROM {} WHERE {}",
            shape.table,
            key_match.join(" AND ")
        ))
        .map_err(sink_error)?;
    let mut upsert = tx
        .prepare(&format!(
            "INSERT INTO {} ({}) VALUES ({})
             ON CONFLICT ({}) DO UPDATE SET {}, updated_at = now()",
            shape.table,
            columns.join(", "),
            placeholders.join(", "),
            shape.primary_key(),
            updates.join(", ")
        ))
        .map_err(sink_error)?;
    let mut n = 0;
    for f in results {
        let mut values: Vec<duckdb::types::Value> = f
            .key
            .iter()
            .map(|k| duckdb::types::Value::Text(k.clone()))
            .collect();
        values.push(duckdb::types::Value::BigInt(f.start));
        if f.emit == Emit::Retract {
            delete
                .execute(duckdb::params_from_iter(values.iter()))
                .map_err(sink_error)?;
            continue;
        }
        values.push(duckdb::types::Value::BigInt(f.end));
        for v in &f.values {
            values.push(match v {
                Value::Number(x) => duckdb::types::Value::Double(*x),
                _ => duckdb::types::Value::Null,
            });
        }
        n += upsert
            .execute(duckdb::params_from_iter(values.iter()))
            .map_err(sink_error)? as u64;
    }
    Ok(n)
}
