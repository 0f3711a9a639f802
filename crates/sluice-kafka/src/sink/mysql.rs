//! The MySQL/MariaDB table sink: rows, dead letters, window state and (exactly once) the
//! partitions' next offsets in one InnoDB transaction, as the PostgreSQL sink does.
//!
//! Values are bound as parameters (multi-row `INSERT`s of at most [`ROWS_PER_STATEMENT`]
//! rows); upserts are `INSERT … ON DUPLICATE KEY UPDATE`. Never `INSERT IGNORE`: it would turn
//! a value the column cannot hold into a warning and a truncated row.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Transaction, TxOpts, Value as MyValue};
use sluice_core::sql::Dialect;
use sluice_core::stream::Stream;
use sluice_stream::{Emit, Fired, Value};

use super::{
    Checkpoint, OFFSETS, Offsets, STATE, Sink, SinkBatch, SinkFuture, TableShape, Written,
    key_text, rows_to_write,
};
use crate::{Rejected, StreamError};

/// Rows per `INSERT`: well under the protocol's 65,535 placeholders for any key count.
const ROWS_PER_STATEMENT: usize = 1_000;

pub struct MySqlSink {
    conn: Conn,
    shape: TableShape,
    /// The connection failed (not a statement): the sink must be opened again.
    closed: bool,
}

impl MySqlSink {
    pub async fn connect(url: &str, stream: &Stream) -> Result<MySqlSink, StreamError> {
        // Errors of the connector never hold the password; the session runs in UTC.
        let (conn, _) = sluice_io::mysql::connect(url)
            .await
            .map_err(|e| StreamError::Sink(e.to_string()))?;
        let mut sink = MySqlSink {
            conn,
            shape: TableShape::of(stream, Dialect::MySql)?,
            closed: false,
        };
        // A row locked by someone else makes the write fail after a while instead of hanging
        // unseen: the batch is retried with backoff (as PostgreSQL's lock_timeout).
        sink.conn
            .query_drop("SET SESSION innodb_lock_wait_timeout = 5")
            .await
            .map_err(|e| sink.error(e))?;
        // Processes of one group start together; DDL commits implicitly in MySQL, so the
        // creations are serialized by a named lock rather than a transaction.
        let ddl = sink.shape.ddl();
        // NULL (an error taking it) reads as None, never a panic.
        let locked: Option<Option<i64>> = sink
            .conn
            .query_first("SELECT GET_LOCK('sluice stream tables', 30)")
            .await
            .map_err(|e| sink.error(e))?;
        if locked != Some(Some(1)) {
            return Err(StreamError::Sink(
                "could not take the lock that serializes creating the stream's tables \
                 (`sluice stream tables`) within 30 s"
                    .into(),
            ));
        }
        let mut created = Ok(());
        for statement in &ddl {
            if let Err(e) = sink.conn.query_drop(statement.as_str()).await {
                created = Err(sink.error(e));
                break;
            }
        }
        let released = sink
            .conn
            .query_drop("DO RELEASE_LOCK('sluice stream tables')")
            .await;
        created?;
        released.map_err(|e| sink.error(e))?;
        Ok(sink)
    }

    fn error(&mut self, e: mysql_async::Error) -> StreamError {
        if !matches!(e, mysql_async::Error::Server(_)) {
            self.closed = true;
        }
        sink_error(e)
    }

    /// The offsets and window state of the last committed batch, from one snapshot.
    pub async fn checkpoint(&mut self) -> Result<Checkpoint, StreamError> {
        let stream = self.shape.stream.clone();
        let result = async {
            let mut options = TxOpts::default();
            options.with_consistent_snapshot(true).with_readonly(true);
            let mut tx = self.conn.start_transaction(options).await?;
            let offsets = offsets_of(&mut tx, &stream).await?;
            let state: Option<String> = tx
                .exec_first(
                    format!(
                        "SELECT {} FROM {STATE} WHERE {} = ?",
                        col("state"),
                        col("stream")
                    ),
                    (stream.as_str(),),
                )
                .await?;
            tx.commit().await?;
            Ok::<_, mysql_async::Error>((offsets, state))
        }
        .await;
        let (offsets, state) = result.map_err(|e| self.error(e))?;
        let state = match state {
            Some(text) => serde_json::from_str::<serde_json::Value>(&text)
                .map_err(|e| StreamError::Sink(format!("the stored window state: {e}")))?,
            None => serde_json::Value::Null,
        };
        Ok(Checkpoint {
            offsets,
            // The lock row a writer made before any state was stored holds JSON null.
            state: (!state.is_null()).then_some(state),
        })
    }

    /// Every partition's next offset, as committed with the rows.
    pub async fn stored_offsets(&mut self) -> Result<Offsets, StreamError> {
        let stream = self.shape.stream.clone();
        let result = offsets_of(&mut self.conn, &stream).await;
        result.map_err(|e| self.error(e))
    }

    /// Writes a batch. `next` holds each partition's next offset after the batch.
    pub async fn write(
        &mut self,
        batch: &SinkBatch<'_>,
        next: &Offsets,
        exactly_once: bool,
    ) -> Result<Written, StreamError> {
        let MySqlSink { conn, shape, .. } = self;
        let result = write(conn, shape, batch, next, exactly_once).await;
        match result {
            Ok(written) => Ok(written),
            Err(Failure::Fenced) => Err(StreamError::Fenced),
            Err(Failure::Database(e)) => Err(self.error(e)),
        }
    }
}

enum Failure {
    Fenced,
    Database(mysql_async::Error),
}

impl From<mysql_async::Error> for Failure {
    fn from(e: mysql_async::Error) -> Failure {
        Failure::Database(e)
    }
}

fn sink_error(e: mysql_async::Error) -> StreamError {
    StreamError::Sink(match &e {
        mysql_async::Error::Server(s) => format!("MySQL error {}: {}", s.code, s.message),
        other => other.to_string(),
    })
}

/// A column name quoted for MySQL.
fn col(name: &str) -> String {
    Dialect::MySql.quote_ident(name)
}

async fn write(
    conn: &mut Conn,
    shape: &TableShape,
    batch: &SinkBatch<'_>,
    next: &Offsets,
    exactly_once: bool,
) -> Result<Written, Failure> {
    let stream = shape.stream.as_str();
    // Dropped without a commit (an error below), the transaction rolls back.
    let mut tx = conn.start_transaction(TxOpts::default()).await?;
    if batch.expected.is_some() {
        // An aggregating stream's processes share one window state: one writes at a time. The
        // state row is the lock (made with JSON null if none is stored yet), taken first,
        // before any other row lock, so writers cannot deadlock.
        tx.exec_drop(
            format!(
                "INSERT INTO {STATE} ({s}, {st}) VALUES (?, 'null') ON DUPLICATE KEY UPDATE {s} = {s}",
                s = col("stream"),
                st = col("state")
            ),
            (stream,),
        )
        .await?;
        tx.exec_drop(
            format!(
                "SELECT 1 FROM {STATE} WHERE {} = ? FOR UPDATE",
                col("stream")
            ),
            (stream,),
        )
        .await?;
    }
    // Exactly once: lock each partition's offsets row and skip what is below it (a replay, or
    // a stale owner after a rebalance, writes nothing twice).
    let mut stored = Offsets::new();
    if exactly_once {
        stored = lock_offsets(&mut tx, stream, next).await?;
        if let Some(expected) = batch.expected
            && super::moved(expected, &offsets_of(&mut tx, stream).await?)
        {
            tx.rollback().await?;
            return Err(Failure::Fenced);
        }
    }
    let mut written = Written::default();
    let (rows, skipped) = rows_to_write(batch.rows, &shape.keys, &stored);
    written.skipped = skipped;
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        written.loaded += insert_rows(&mut tx, shape, chunk).await?;
    }
    if let Some((group, computed)) = &shape.results {
        written.loaded += write_results(&mut tx, shape, group, computed, batch.results).await?;
    }
    if let Some(state) = batch.state {
        tx.exec_drop(
            format!(
                "INSERT INTO {STATE} ({s}, {st}) VALUES (?, ?)
                 ON DUPLICATE KEY UPDATE {st} = VALUES({st}), {u} = CURRENT_TIMESTAMP(6)",
                s = col("stream"),
                st = col("state"),
                u = col("updated_at"),
            ),
            (stream, state.to_string()),
        )
        .await?;
    }
    let bad: Vec<&Rejected> = batch
        .bad
        .iter()
        .filter(|b| b.record.is_new(&stored))
        .collect();
    for chunk in bad.chunks(ROWS_PER_STATEMENT) {
        written.dead_lettered += dead_letter(&mut tx, &shape.dead_letters, stream, chunk).await?;
    }
    if exactly_once {
        for ((topic, partition), offset) in next {
            tx.exec_drop(
                format!(
                    "UPDATE {OFFSETS} SET {n} = GREATEST({n}, ?), {u} = CURRENT_TIMESTAMP(6)
                     WHERE {s} = ? AND {t} = ? AND {p} = ?",
                    n = col("next_offset"),
                    u = col("updated_at"),
                    s = col("stream"),
                    t = col("topic"),
                    p = col("partition"),
                ),
                (*offset, stream, topic.as_str(), *partition),
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(written)
}

/// Locks each partition's offsets row (made at 0 when there is none) and reads it: the next
/// offset not yet written.
async fn lock_offsets(
    tx: &mut Transaction<'_>,
    stream: &str,
    next: &Offsets,
) -> Result<Offsets, mysql_async::Error> {
    let (s, t, p, n) = (
        col("stream"),
        col("topic"),
        col("partition"),
        col("next_offset"),
    );
    let mut stored = Offsets::new();
    for (topic, partition) in next.keys() {
        tx.exec_drop(
            format!(
                "INSERT INTO {OFFSETS} ({s}, {t}, {p}, {n}) VALUES (?, ?, ?, 0)
                 ON DUPLICATE KEY UPDATE {s} = {s}"
            ),
            (stream, topic.as_str(), *partition),
        )
        .await?;
        let offset: Option<i64> = tx
            .exec_first(
                format!(
                    "SELECT {n} FROM {OFFSETS} WHERE {s} = ? AND {t} = ? AND {p} = ? FOR UPDATE"
                ),
                (stream, topic.as_str(), *partition),
            )
            .await?;
        stored.insert((topic.clone(), *partition), offset.unwrap_or(0));
    }
    Ok(stored)
}

async fn offsets_of(db: &mut impl Queryable, stream: &str) -> Result<Offsets, mysql_async::Error> {
    let rows: Vec<(String, i32, i64)> = db
        .exec(
            format!(
                "SELECT {}, {}, {} FROM {OFFSETS} WHERE {} = ?",
                col("topic"),
                col("partition"),
                col("next_offset"),
                col("stream")
            ),
            (stream,),
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|(topic, partition, offset)| ((topic, partition), offset))
        .collect())
}

/// `(?, ?, …), (?, ?, …)`: `rows` groups of `width` placeholders.
fn placeholders(rows: usize, width: usize) -> String {
    let row = format!("({})", vec!["?"; width].join(", "));
    vec![row; rows].join(", ")
}

/// Inserts (or, with keys, upserts) the rows; rows already in the table are left as they are.
/// Returns how many were written.
async fn insert_rows(
    tx: &mut Transaction<'_>,
    shape: &TableShape,
    rows: &[&(crate::Record, serde_json::Value)],
) -> Result<u64, mysql_async::Error> {
    let data = ["record", "_topic", "_partition", "_offset"];
    let columns: Vec<String> = shape
        .keys
        .iter()
        .map(String::as_str)
        .chain(data)
        .map(col)
        .collect();
    let mut params: Vec<MyValue> = Vec::with_capacity(rows.len() * columns.len());
    for (record, value) in rows {
        params.extend(shape.keys.iter().map(|k| key_text(value.get(k)).into()));
        params.extend([
            value.to_string().into(),
            record.topic.as_str().into(),
            record.partition.into(),
            record.offset.into(),
        ]);
    }
    let on_duplicate = if shape.keys.is_empty() {
        // Already there (written before by an at-least-once run): kept as it is.
        format!("{o} = {o}", o = col("_offset"))
    } else {
        data.iter()
            .map(|c| format!("{c} = VALUES({c})", c = col(c)))
            .chain([format!("{} = CURRENT_TIMESTAMP(6)", col("loaded_at"))])
            .collect::<Vec<_>>()
            .join(", ")
    };
    tx.exec_drop(
        format!(
            "INSERT INTO {} ({}) VALUES {} ON DUPLICATE KEY UPDATE {on_duplicate}",
            shape.table,
            columns.join(", "),
            placeholders(rows.len(), columns.len()),
        ),
        Params::Positional(params),
    )
    .await?;
    Ok(if shape.keys.is_empty() {
        // One per row inserted; a kept duplicate counts 0.
        tx.affected_rows()
    } else {
        // Every row is written, inserted or updated (MySQL counts an update twice).
        rows.len() as u64
    })
}

/// Writes the dead letters, each once; how many were new.
async fn dead_letter(
    tx: &mut Transaction<'_>,
    table: &str,
    stream: &str,
    bad: &[&Rejected],
) -> Result<u64, mysql_async::Error> {
    let columns = [
        "stream",
        "topic",
        "partition",
        "offset",
        "payload",
        "payload_encoding",
        "reason",
    ]
    .map(col);
    let mut params: Vec<MyValue> = Vec::with_capacity(bad.len() * columns.len());
    for b in bad {
        let (payload, encoding) = crate::payload_text(&b.record.payload);
        params.extend([
            stream.into(),
            b.record.topic.as_str().into(),
            b.record.partition.into(),
            b.record.offset.into(),
            payload.into(),
            encoding.into(),
            b.reason.as_str().into(),
        ]);
    }
    tx.exec_drop(
        format!(
            "INSERT INTO {table} ({}) VALUES {} ON DUPLICATE KEY UPDATE {s} = {s}",
            columns.join(", "),
            placeholders(bad.len(), columns.len()),
            s = col("stream"),
        ),
        Params::Positional(params),
    )
    .await?;
    Ok(tx.affected_rows())
}

/// Windowed results: upserted on the table's key; retracted windows deleted.
async fn write_results(
    tx: &mut Transaction<'_>,
    shape: &TableShape,
    group: &[String],
    computed: &[String],
    results: &[Fired],
) -> Result<u64, mysql_async::Error> {
    // DATETIME(6) in UTC, as the session's time zone.
    let ts = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .format("%Y-%m-%d %H:%M:%S%.6f")
            .to_string()
    };
    let key_match: Vec<String> = group
        .iter()
        .map(|g| col(g))
        .chain([col("window_start")])
        .map(|c| format!("{c} = ?"))
        .collect();
    let columns: Vec<String> = group
        .iter()
        .map(|g| col(g))
        .chain([col("window_start"), col("window_end")])
        .chain(computed.iter().map(|c| col(c)))
        .collect();
    let updates: Vec<String> = [col("window_end")]
        .into_iter()
        .chain(computed.iter().map(|c| col(c)))
        .map(|c| format!("{c} = VALUES({c})"))
        .chain([format!("{} = CURRENT_TIMESTAMP(6)", col("updated_at"))])
        .collect();
    let mut n = 0;
    for f in results {
        let mut params: Vec<MyValue> = f.key.iter().map(|k| k.as_str().into()).collect();
        params.push(ts(f.start).into());
        if f.emit == Emit::Retract {
            tx.exec_drop(
                format!(
                    "DELETE FROM {} WHERE {}",
                    shape.table,
                    key_match.join(" AND ")
                ),
                Params::Positional(params),
            )
            .await?;
            continue;
        }
        params.push(ts(f.end).into());
        params.extend(f.values.iter().map(|v| match v {
            Value::Number(x) => MyValue::from(*x),
            _ => MyValue::NULL,
        }));
        tx.exec_drop(
            format!(
                "INSERT INTO {} ({}) VALUES {} ON DUPLICATE KEY UPDATE {}",
                shape.table,
                columns.join(", "),
                placeholders(1, columns.len()),
                updates.join(", ")
            ),
            Params::Positional(params),
        )
        .await?;
        n += 1;
    }
    Ok(n)
}

impl Sink for MySqlSink {
    fn stored_offsets(&mut self) -> SinkFuture<'_, Offsets> {
        Box::pin(MySqlSink::stored_offsets(self))
    }

    fn checkpoint(&mut self) -> SinkFuture<'_, Checkpoint> {
        Box::pin(MySqlSink::checkpoint(self))
    }

    fn write<'a>(
        &'a mut self,
        batch: &'a SinkBatch<'a>,
        next: &'a Offsets,
        exactly_once: bool,
    ) -> SinkFuture<'a, Written> {
        Box::pin(MySqlSink::write(self, batch, next, exactly_once))
    }

    fn is_closed(&self) -> bool {
        self.closed
    }
}
