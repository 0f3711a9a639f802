//! The PostgreSQL table sink: rows, dead letters and (exactly once) the partitions' next
//! offsets in one transaction.

use sluice_core::sql::Dialect;
use sluice_core::stream::Stream;
use sluice_stream::{Emit, Fired, Value};

use super::{
    Checkpoint, OFFSETS, Offsets, STATE, Sink, SinkBatch, SinkFuture, TableShape, Written,
    key_text, rows_to_write,
};
use crate::{Rejected, StreamError};

pub struct PgSink {
    client: tokio_postgres::Client,
    shape: TableShape,
}

fn sink_error(e: tokio_postgres::Error) -> StreamError {
    StreamError::Sink(error_text(&e))
}

fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

impl PgSink {
    pub async fn connect(url: &str, stream: &Stream) -> Result<PgSink, StreamError> {
        // Errors of the connector never hold the password.
        let target =
            sluice_connect::PgTarget::parse(url).map_err(|e| StreamError::Sink(e.to_string()))?;
        let client = target
            .connect()
            .await
            .map_err(|e| StreamError::Sink(e.to_string()))?;
        // A table locked by someone else (an ALTER, a long maintenance job) makes the write fail
        // after a while instead of hanging unseen: the batch is retried with backoff and the
        // wait shows in the log and in `stream.sink.retries`.
        client
            .batch_execute("SET lock_timeout = '5s'")
            .await
            .map_err(sink_error)?;
        let sink = PgSink {
            client,
            shape: TableShape::of(stream, Dialect::Postgres)?,
        };
        // Processes of one group start together: their `CREATE … IF NOT EXISTS` would race
        // (PostgreSQL checks existence before it takes the catalog's lock).
        sink.client
            .batch_execute(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock(hashtext('sluice stream tables')); {}; COMMIT;",
                sink.shape.ddl().join(";\n")
            ))
            .await
            .map_err(sink_error)?;
        Ok(sink)
    }

    /// The offsets and window state of the last committed batch, from one snapshot.
    pub async fn checkpoint(&mut self) -> Result<Checkpoint, StreamError> {
        let tx = self
            .client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(sink_error)?;
        let offsets = offsets_of(&tx, &self.shape.stream).await?;
        let state = tx
            .query_opt(
                &format!("SELECT state FROM {STATE} WHERE stream = $1"),
                &[&self.shape.stream],
            )
            .await
            .map_err(sink_error)?
            .map(|r| r.get(0));
        tx.commit().await.map_err(sink_error)?;
        Ok(Checkpoint { offsets, state })
    }

    /// Every partition's next offset, as committed with the rows.
    pub async fn stored_offsets(&self) -> Result<Offsets, StreamError> {
        offsets_of(&self.client, &self.shape.stream).await
    }

    /// Writes a batch. `next` holds each partition's next offset after the batch.
    pub async fn write(
        &mut self,
        batch: &SinkBatch<'_>,
        next: &Offsets,
        exactly_once: bool,
    ) -> Result<Written, StreamError> {
        let stream = self.shape.stream.clone();
        let tx = self.client.transaction().await.map_err(sink_error)?;
        if batch.expected.is_some() {
            // An aggregating stream's processes share one window state: one writes at a time
            // (taken first, before any row lock, so writers cannot deadlock).
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))",
                &[&format!("sluice stream {stream}")],
            )
            .await
            .map_err(sink_error)?;
        }
        // Exactly once: lock each partition's offsets row and skip what is below it (a replay,
        // or a stale owner after a rebalance, writes nothing twice).
        let mut stored = Offsets::new();
        if exactly_once {
            stored = lock_offsets(&tx, &stream, next).await?;
            if let Some(expected) = batch.expected {
                // Only over the offsets the batch's window state was built on.
                if super::moved(expected, &offsets_of(&tx, &stream).await?) {
                    tx.rollback().await.map_err(sink_error)?;
                    return Err(StreamError::Fenced);
                }
            }
        }
        let mut written = Written::default();
        let (rows, skipped) = rows_to_write(batch.rows, &self.shape.keys, &stored);
        written.skipped = skipped;
        if !rows.is_empty() {
            written.loaded = load_rows(&self.shape, &tx, &rows, exactly_once).await?;
        }
        if let Some((group, computed)) = &self.shape.results {
            let primary = self.shape.primary_key();
            written.loaded += write_results(
                &tx,
                &self.shape.table,
                &primary,
                group,
                computed,
                batch.results,
            )
            .await?;
        }
        if let Some(state) = batch.state {
            tx.execute(
                &format!(
                    "INSERT INTO {STATE} (stream, state) VALUES ($1, $2)
                     ON CONFLICT (stream) DO UPDATE SET state = excluded.state, updated_at = now()"
                ),
                &[&stream, state],
            )
            .await
            .map_err(sink_error)?;
        }
        let bad: Vec<&Rejected> = batch
            .bad
            .iter()
            .filter(|b| b.record.is_new(&stored))
            .collect();
        if !bad.is_empty() {
            written.dead_lettered =
                dead_letter(&tx, &self.shape.dead_letters, &stream, &bad).await?;
        }
        if exactly_once {
            advance_offsets(&tx, &stream, next).await?;
        }
        tx.commit().await.map_err(sink_error)?;
        Ok(written)
    }
}

/// Locks each partition's offsets row (made at 0 when there is none) and reads it: the next
/// offset not yet written.
async fn lock_offsets(
    tx: &tokio_postgres::Transaction<'_>,
    stream: &str,
    next: &Offsets,
) -> Result<Offsets, StreamError> {
    let mut stored = Offsets::new();
    for (topic, partition) in next.keys() {
        tx.execute(
            &format!(
                "INSERT INTO {OFFSETS} (stream, topic, partition, next_offset) VALUES ($1, $2, $3, 0)
                 ON CONFLICT DO NOTHING"
            ),
            &[&stream, topic, partition],
        )
        .await
        .map_err(sink_error)?;
        let row = tx
            .query_one(
                &format!(
                    "SELECT next_offset FROM {OFFSETS} WHERE stream = $1 AND topic = $2 AND partition = $3 FOR UPDATE"
                ),
                &[&stream, topic, partition],
            )
            .await
            .map_err(sink_error)?;
        stored.insert((topic.clone(), *partition), row.get(0));
    }
    Ok(stored)
}

/// Loads the batch's rows; how many went in.
async fn load_rows(
    shape: &TableShape,
    tx: &tokio_postgres::Transaction<'_>,
    rows: &[&(crate::Record, serde_json::Value)],
    exactly_once: bool,
) -> Result<u64, StreamError> {
    if !(shape.keys.is_empty() && exactly_once) {
        return insert_rows(shape, tx, rows).await;
    }
    // Appending with the offsets locked: rows at or above them are not in the table yet, so
    // they go in by binary COPY. A table that holds some of them anyway (written at least once
    // before) takes the INSERT that skips them.
    tx.batch_execute("SAVEPOINT sluice_copy")
        .await
        .map_err(sink_error)?;
    match copy_rows(tx, &shape.table, rows).await {
        Ok(n) => Ok(n),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            tx.batch_execute("ROLLBACK TO SAVEPOINT sluice_copy")
                .await
                .map_err(sink_error)?;
            insert_rows(shape, tx, rows).await
        }
        Err(e) => Err(sink_error(e)),
    }
}

/// Writes the dead letters to `table`, each once; how many were new.
async fn dead_letter(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
    stream: &str,
    bad: &[&Rejected],
) -> Result<u64, StreamError> {
    let topics: Vec<&str> = bad.iter().map(|b| b.record.topic.as_str()).collect();
    let partitions: Vec<i32> = bad.iter().map(|b| b.record.partition).collect();
    let offsets: Vec<i64> = bad.iter().map(|b| b.record.offset).collect();
    let (payloads, encodings): (Vec<String>, Vec<&str>) = bad
        .iter()
        .map(|b| crate::payload_text(&b.record.payload))
        .unzip();
    let reasons: Vec<&str> = bad.iter().map(|b| b.reason.as_str()).collect();
    tx.execute(
        &format!(
            "INSERT INTO {table} (stream, topic, partition, \"offset\", payload, payload_encoding, reason)
             SELECT $1, * FROM UNNEST($2::text[], $3::integer[], $4::bigint[], $5::text[], $7::text[], $6::text[])
             ON CONFLICT DO NOTHING"
        ),
        &[&stream, &topics, &partitions, &offsets, &payloads, &reasons, &encodings],
    )
    .await
    .map_err(sink_error)
}

/// Stores each partition's next offset after the batch (never moving one back).
async fn advance_offsets(
    tx: &tokio_postgres::Transaction<'_>,
    stream: &str,
    next: &Offsets,
) -> Result<(), StreamError> {
    for ((topic, partition), offset) in next {
        tx.execute(
            &format!(
                "UPDATE {OFFSETS} SET next_offset = GREATEST(next_offset, $4), updated_at = now()
                 WHERE stream = $1 AND topic = $2 AND partition = $3"
            ),
            &[&stream, topic, partition, offset],
        )
        .await
        .map_err(sink_error)?;
    }
    Ok(())
}

/// Inserts (or, with keys, upserts) the rows; rows already in the table are left as they are.
async fn insert_rows(
    shape: &TableShape,
    tx: &tokio_postgres::Transaction<'_>,
    rows: &[&(crate::Record, serde_json::Value)],
) -> Result<u64, StreamError> {
    let topics: Vec<&str> = rows.iter().map(|(r, _)| r.topic.as_str()).collect();
    let partitions: Vec<i32> = rows.iter().map(|(r, _)| r.partition).collect();
    let offsets: Vec<i64> = rows.iter().map(|(r, _)| r.offset).collect();
    let records: Vec<&serde_json::Value> = rows.iter().map(|(_, v)| v).collect();
    let mut columns: Vec<Vec<String>> = vec![Vec::new(); shape.keys.len()];
    for (_, v) in rows {
        for (i, k) in shape.keys.iter().enumerate() {
            columns[i].push(key_text(v.get(k)));
        }
    }
    let key_names: Vec<String> = shape
        .keys
        .iter()
        .map(|k| Dialect::Postgres.quote_ident(k))
        .collect();
    let key_params: Vec<String> = (0..shape.keys.len())
        .map(|i| format!("${}::text[]", i + 5))
        .collect();
    let conflict = if shape.keys.is_empty() {
        "ON CONFLICT DO NOTHING".to_string()
    } else {
        format!(
            "ON CONFLICT ({}) DO UPDATE SET record = excluded.record, _topic = excluded._topic,
             _partition = excluded._partition, _offset = excluded._offset, loaded_at = now()",
            key_names.join(", ")
        )
    };
    let sql = format!(
        "INSERT INTO {table} ({keys}record, _topic, _partition, _offset)
         SELECT * FROM UNNEST({params}$4::jsonb[], $1::text[], $2::integer[], $3::bigint[])
         {conflict}",
        table = shape.table,
        keys = key_names
            .iter()
            .map(|k| format!("{k}, "))
            .collect::<String>(),
        params = key_params
            .iter()
            .map(|p| format!("{p}, "))
            .collect::<String>(),
    );
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        vec![&topics, &partitions, &offsets, &records];
    for c in &columns {
        params.push(c);
    }
    tx.execute(&sql, &params).await.map_err(sink_error)
}

/// Appends the rows with binary COPY (the fastest way into PostgreSQL).
async fn copy_rows(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
    rows: &[&(crate::Record, serde_json::Value)],
) -> Result<u64, tokio_postgres::Error> {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    use tokio_postgres::types::Type;
    let sink = tx
        .copy_in(&format!(
            "COPY {table} (record, _topic, _partition, _offset) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let writer = BinaryCopyInWriter::new(sink, &[Type::JSONB, Type::TEXT, Type::INT4, Type::INT8]);
    futures::pin_mut!(writer);
    for (r, v) in rows {
        writer
            .as_mut()
            .write(&[v, &r.topic, &r.partition, &r.offset])
            .await?;
    }
    writer.finish().await
}

async fn offsets_of(
    client: &impl tokio_postgres::GenericClient,
    stream: &str,
) -> Result<Offsets, StreamError> {
    let rows = client
        .query(
            &format!("SELECT topic, partition, next_offset FROM {OFFSETS} WHERE stream = $1"),
            &[&stream],
        )
        .await
        .map_err(sink_error)?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                (r.get::<_, String>(0), r.get::<_, i32>(1)),
                r.get::<_, i64>(2),
            )
        })
        .collect())
}

impl Sink for PgSink {
    fn stored_offsets(&mut self) -> SinkFuture<'_, Offsets> {
        Box::pin(PgSink::stored_offsets(self))
    }

    fn checkpoint(&mut self) -> SinkFuture<'_, Checkpoint> {
        Box::pin(PgSink::checkpoint(self))
    }

    fn write<'a>(
        &'a mut self,
        batch: &'a SinkBatch<'a>,
        next: &'a Offsets,
        exactly_once: bool,
    ) -> SinkFuture<'a, Written> {
        Box::pin(PgSink::write(self, batch, next, exactly_once))
    }

    fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}

/// Windowed results: upserted on the table's key; retracted windows deleted.
async fn write_results(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
    primary: &str,
    group: &[String],
    computed: &[String],
    results: &[Fired],
) -> Result<u64, StreamError> {
    {
        type Param = Box<dyn tokio_postgres::types::ToSql + Sync + Send>;
        let ts = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
        let mut n = 0;
        for f in results {
            let mut params: Vec<Param> =
                f.key.iter().map(|k| Box::new(k.clone()) as Param).collect();
            params.push(Box::new(ts(f.start)));
            if f.emit == Emit::Retract {
                let key_match: Vec<String> = group
                    .iter()
                    .enumerate()
                    .map(|(i, g)| format!("{} = ${}", Dialect::Postgres.quote_ident(g), i + 1))
                    .chain([format!("window_start = ${}", group.len() + 1)])
                    .collect();
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                    params.iter().map(|p| p.as_ref() as _).collect();
                tx.execute(
                    &format!("DELETE FROM {table} WHERE {}", key_match.join(" AND ")),
                    &refs,
                )
                .await
                .map_err(sink_error)?;
                continue;
            }
            params.push(Box::new(ts(f.end)));
            for v in &f.values {
                params.push(Box::new(match v {
                    Value::Number(x) => Some(*x),
                    _ => None,
                }));
            }
            let columns: Vec<String> = group
                .iter()
                .map(|g| Dialect::Postgres.quote_ident(g))
                .chain(["window_start".into(), "window_end".into()])
                .chain(computed.iter().map(|c| Dialect::Postgres.quote_ident(c)))
                .collect();
            let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
            let updates: Vec<String> = ["window_end".to_string()]
                .into_iter()
                .chain(computed.iter().map(|c| Dialect::Postgres.quote_ident(c)))
                .map(|c| format!("{c} = excluded.{c}"))
                .collect();
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                params.iter().map(|p| p.as_ref() as _).collect();
            n += tx
                .execute(
                    &format!(
                        "INSERT INTO {} ({}) VALUES ({})
                         ON CONFLICT ({}) DO UPDATE SET {}, updated_at = now()",
                        table,
                        columns.join(", "),
                        placeholders.join(", "),
                        primary,
                        updates.join(", ")
                    ),
                    &refs,
                )
                .await
                .map_err(sink_error)?;
        }
        Ok(n)
    }
}
