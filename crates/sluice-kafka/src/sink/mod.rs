//! Where a stream writes: one [`Sink`] per stream, behind one trait — PostgreSQL tables
//! (`postgres.rs`), MySQL/MariaDB tables (`mysql.rs`), Parquet files in the lake (`lake.rs`) and Kafka topics (`kafka.rs`) here;
//! DuckDB tables in the binary, which owns the warehouse (this crate never compiles DuckDB).
//! Dead letters go where the stream's `dead_letter:` says: into the sink's own database in the
//! same transaction, or first to a Kafka topic or the lake ([`SideDeadLetters`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use sluice_core::connections::{ConnectionKind, Connections};
use sluice_core::sql::Dialect;
use sluice_core::stream::{Stream, Target};
use sluice_stream::Fired;

use crate::{Record, Rejected, StreamError};

mod kafka;
mod lake;
mod mysql;
mod postgres;

pub use kafka::{KafkaDeadLetters, KafkaSink};
pub use lake::{LakeDeadLetters, LakeSink};
pub use mysql::MySqlSink;
pub use postgres::PgSink;

/// Where a table sink keeps the partitions' next offsets, in the sink's database.
pub const OFFSETS: &str = "sluice_stream_offsets";
/// Where a table sink keeps window state checkpoints, beside the offsets they cover.
pub const STATE: &str = "sluice_stream_state";
/// A table sink's dead letters when the stream names no `dead_letter:` table.
pub const DEFAULT_DEAD_LETTERS: &str = "sluice_stream_dead_letters";

/// Each partition's next offset to read, by topic and partition.
pub type Offsets = BTreeMap<(String, i32), i64>;

/// What a sink's operations return (boxed, so sinks can live behind `dyn Sink`).
pub type SinkFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StreamError>> + Send + 'a>>;

/// A stream's destination.
///
/// Invariant: `write` is all or nothing — when it returns an error, nothing of the batch is
/// visible (a table transaction rolled back; a file or a message set not yet committed), so the
/// batch can be written again.
pub trait Sink: Send {
    /// Each partition's next offset as the sink stored it with the rows (empty when it keeps
    /// none). Records below it are already written.
    fn stored_offsets(&mut self) -> SinkFuture<'_, Offsets>;

    /// The offsets and the window state as the last committed batch left them, read together
    /// (aggregating streams: the state holds exactly the records below the offsets).
    fn checkpoint(&mut self) -> SinkFuture<'_, Checkpoint>;

    /// Writes a batch; `next` holds each partition's next offset after it. With
    /// `exactly_once`, offsets (and `batch.state`) are stored in the same transaction.
    fn write<'a>(
        &'a mut self,
        batch: &'a SinkBatch<'a>,
        next: &'a Offsets,
        exactly_once: bool,
    ) -> SinkFuture<'a, Written>;

    /// The sink lost its connection and must be opened again.
    fn is_closed(&self) -> bool {
        false
    }
}

/// What a sink stored with its last batch.
#[derive(Debug, Default)]
pub struct Checkpoint {
    pub offsets: Offsets,
    pub state: Option<serde_json::Value>,
}

/// Whether any partition's stored offset differs from `expected` (a partition missing from
/// either counts as 0): another process of the group wrote the stream since.
pub fn moved(expected: &Offsets, stored: &Offsets) -> bool {
    let at = |o: &Offsets, tp| o.get(tp).copied().unwrap_or(0);
    expected
        .keys()
        .chain(stored.keys())
        .any(|tp| at(expected, tp) != at(stored, tp))
}

/// Opens DuckDB table sinks for the streams that name one (the binary supplies it).
pub trait OpenTable: Send + Sync {
    fn open<'a>(&'a self, stream: &'a Stream) -> SinkFuture<'a, Box<dyn Sink>>;
}

/// What opening a stream's sink needs: connections, the project's lake, and DuckDB.
#[derive(Clone)]
pub struct SinkSetup {
    pub connections: Connections,
    /// The project's lake, or why it is not usable.
    pub lake: Result<sluice_io::lake::Lake, String>,
    pub duckdb: Option<Arc<dyn OpenTable>>,
}

impl SinkSetup {
    /// The stream's sink, with its dead letters wherever `dead_letter:` says.
    pub async fn open(&self, stream: &Stream) -> Result<Box<dyn Sink>, StreamError> {
        let sink: Box<dyn Sink> = match &stream.sink.target {
            Target::Table {
                connection, kind, ..
            } => match kind {
                ConnectionKind::Postgres => {
                    let url = self.connection_uri(connection)?;
                    Box::new(PgSink::connect(&url, stream).await?)
                }
                ConnectionKind::MySql => {
                    let url = self.connection_uri(connection)?;
                    Box::new(MySqlSink::connect(&url, stream).await?)
                }
                ConnectionKind::DuckDb => match &self.duckdb {
                    Some(open) => open.open(stream).await?,
                    None => {
                        return Err(StreamError::Unsupported(format!(
                            "stream `{}`: DuckDB tables are written by the `sluice` binary",
                            stream.id
                        )));
                    }
                },
                other => {
                    return Err(StreamError::Unsupported(format!(
                        "stream `{}`: a {} connection holds no tables",
                        stream.id,
                        other.name()
                    )));
                }
            },
            Target::Lake { path } => Box::new(LakeSink::open(self.lake()?, path, stream)?),
            Target::Kafka { topic } => Box::new(KafkaSink::connect(stream, topic)?),
        };
        Ok(match (&stream.dead_letter, &stream.sink.target) {
            (Some(Target::Kafka { topic }), _) => Box::new(SideDeadLetters {
                inner: sink,
                side: Box::new(KafkaDeadLetters::connect(stream, topic)?),
            }),
            (Some(Target::Lake { path }), _) => Box::new(SideDeadLetters {
                inner: sink,
                side: Box::new(LakeDeadLetters::open(self.lake()?, path, stream)?),
            }),
            // A table of the sink's database (`sluice check` sees to that), or the sink's default.
            _ => sink,
        })
    }

    fn lake(&self) -> Result<&sluice_io::lake::Lake, StreamError> {
        self.lake
            .as_ref()
            .map_err(|e| StreamError::Sink(format!("the project's lake is not usable: {e}")))
    }

    fn connection_uri(&self, name: &str) -> Result<String, StreamError> {
        self.connections
            .get(name)
            .map(|c| c.expose_uri().to_string())
            .ok_or_else(|| StreamError::Sink(format!("no connection `{name}`")))
    }
}

/// What one transaction writes.
pub struct SinkBatch<'a> {
    pub rows: &'a [(Record, serde_json::Value)],
    pub results: &'a [Fired],
    pub bad: &'a [Rejected],
    /// The window state after the batch (checkpointed with the offsets).
    pub state: Option<&'a serde_json::Value>,
    /// The stored offsets of every partition the batch's window state stands for: if another
    /// process moved any of them since, the batch is refused (`StreamError::Fenced`). Writers of
    /// one aggregating stream are serialized, so the shared window state loses no update.
    pub expected: Option<&'a Offsets>,
}

impl<'a> SinkBatch<'a> {
    /// Records as rows, with the ones rejected (no window state, no fencing).
    pub fn rows(rows: &'a [(Record, serde_json::Value)], bad: &'a [Rejected]) -> SinkBatch<'a> {
        SinkBatch {
            rows,
            results: &[],
            bad,
            state: None,
            expected: None,
        }
    }
}

/// What one batch wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct Written {
    pub loaded: u64,
    pub dead_lettered: u64,
    pub skipped: u64,
}

/// A sink that keeps no dead letters of its own: they go first to `side` (durably), then the
/// batch to `inner`. A crash between the two writes dead letters again when the batch is
/// replayed, so the side output is at least once.
pub struct SideDeadLetters {
    inner: Box<dyn Sink>,
    side: Box<dyn DeadLetters>,
}

/// Somewhere dead letters are written apart from the sink.
pub trait DeadLetters: Send {
    fn write<'a>(&'a mut self, bad: &'a [&'a Rejected]) -> SinkFuture<'a, u64>;
}

impl Sink for SideDeadLetters {
    fn stored_offsets(&mut self) -> SinkFuture<'_, Offsets> {
        self.inner.stored_offsets()
    }

    fn checkpoint(&mut self) -> SinkFuture<'_, Checkpoint> {
        self.inner.checkpoint()
    }

    fn write<'a>(
        &'a mut self,
        batch: &'a SinkBatch<'a>,
        next: &'a Offsets,
        exactly_once: bool,
    ) -> SinkFuture<'a, Written> {
        Box::pin(async move {
            // Those below the stored offsets were sent when their batch was first written.
            let stored = self.inner.stored_offsets().await?;
            let bad: Vec<&Rejected> = batch
                .bad
                .iter()
                .filter(|b| b.record.is_new(&stored))
                .collect();
            let dead_lettered = if bad.is_empty() {
                0
            } else {
                self.side.write(&bad).await?
            };
            let rest = SinkBatch { bad: &[], ..*batch };
            let mut written = self.inner.write(&rest, next, exactly_once).await?;
            written.dead_lettered = dead_lettered;
            Ok(written)
        })
    }

    fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }
}

/// A key field's value as text: strings as they are, a missing field or null as the empty
/// string, anything else as JSON.
pub fn key_text(v: Option<&serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The rows to write: those not yet written (at or past `stored`), and with upsert `keys` only
/// the last row of each key (one statement must not update a row twice). Returns them with the
/// number skipped as already written.
pub fn rows_to_write<'a>(
    rows: &'a [(Record, serde_json::Value)],
    keys: &[String],
    stored: &Offsets,
) -> (Vec<&'a (Record, serde_json::Value)>, u64) {
    let mut out: Vec<&(Record, serde_json::Value)> = Vec::new();
    let mut by_key: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    let mut skipped = 0;
    for row in rows {
        if !row.0.is_new(stored) {
            skipped += 1;
            continue;
        }
        if keys.is_empty() {
            out.push(row);
            continue;
        }
        let key: Vec<String> = keys.iter().map(|k| key_text(row.1.get(k))).collect();
        match by_key.get(&key) {
            Some(&i) => out[i] = row,
            None => {
                by_key.insert(key, out.len());
                out.push(row);
            }
        }
    }
    (out, skipped)
}

/// What a table sink writes, the same in every database: the quoted table and dead-letter
/// table, the upsert keys, and for windowed results the group fields and result columns.
pub struct TableShape {
    /// The SQL of the database the tables live in.
    pub dialect: Dialect,
    pub stream: String,
    pub table: String,
    pub dead_letters: String,
    /// Upsert keys (record fields, or the group and `window_start` for results); empty when
    /// appending records.
    pub keys: Vec<String>,
    /// For windowed results: the group key fields and the result columns.
    pub results: Option<(Vec<String>, Vec<String>)>,
}

impl TableShape {
    pub fn of(stream: &Stream, dialect: Dialect) -> Result<TableShape, StreamError> {
        let Target::Table { table, .. } = &stream.sink.target else {
            return Err(StreamError::Unsupported("the sink is not a table".into()));
        };
        let dead_letters = match &stream.dead_letter {
            Some(Target::Table { table, .. }) => table.clone(),
            // Elsewhere (a topic, the lake): this table stays empty.
            _ => DEFAULT_DEAD_LETTERS.to_string(),
        };
        Ok(TableShape {
            dialect,
            stream: stream.id.clone(),
            table: dialect.quote_qualified(table),
            dead_letters: dialect.quote_qualified(&dead_letters),
            keys: table_keys(stream),
            results: stream.aggregate.as_ref().map(|a| {
                (
                    a.key.clone(),
                    a.compute.iter().map(|c| c.name.clone()).collect(),
                )
            }),
        })
    }

    /// The table's key: the upsert keys, else where the record came from.
    pub fn primary_key(&self) -> String {
        if self.keys.is_empty() {
            "_topic, _partition, _offset".to_string()
        } else {
            self.keys
                .iter()
                .map(|k| self.column(k))
                .collect::<Vec<_>>()
                .join(", ")
        }
    }

    /// A column name quoted in the tables' dialect.
    pub fn column(&self, name: &str) -> String {
        self.dialect.quote_ident(name)
    }

    /// The statements that create the sink's tables (and their schemas), in the tables'
    /// dialect, one statement per string.
    pub fn ddl(&self) -> Vec<String> {
        let t = ColumnTypes::of(self.dialect);
        let c = |name: &str| self.column(name);
        let columns = match &self.results {
            None => {
                let keys: String = self
                    .keys
                    .iter()
                    .map(|k| format!("{} {} NOT NULL, ", c(k), t.key))
                    .collect();
                format!(
                    "{keys}{record} {json} NOT NULL, {topic} {key} NOT NULL, {partition} integer NOT NULL,
                     {offset} bigint NOT NULL, {loaded_at} {ts} NOT NULL DEFAULT {now}",
                    record = c("record"),
                    topic = c("_topic"),
                    partition = c("_partition"),
                    offset = c("_offset"),
                    loaded_at = c("loaded_at"),
                    json = t.json,
                    key = t.key,
                    ts = t.timestamp,
                    now = t.now,
                )
            }
            Some((group, computed)) => {
                let group: String = group
                    .iter()
                    .map(|k| format!("{} {} NOT NULL, ", c(k), t.key))
                    .collect();
                let computed: String = computed
                    .iter()
                    .map(|name| format!("{} {}, ", c(name), t.double))
                    .collect();
                format!(
                    "{group}{start} {ts} NOT NULL, {end} {ts} NOT NULL,
                     {computed}{updated_at} {ts} NOT NULL DEFAULT {now}",
                    start = c("window_start"),
                    end = c("window_end"),
                    updated_at = c("updated_at"),
                    ts = t.timestamp,
                    now = t.now,
                )
            }
        };
        let mut statements: Vec<String> = Vec::new();
        for table in [&self.table, &self.dead_letters] {
            if let Some((schema, _)) = table.rsplit_once('.') {
                let create = format!("CREATE SCHEMA IF NOT EXISTS {schema}");
                if !statements.contains(&create) {
                    statements.push(create);
                }
            }
        }
        let (stream, topic, partition, updated_at) =
            (c("stream"), c("topic"), c("partition"), c("updated_at"));
        statements.extend([
            format!(
                "CREATE TABLE IF NOT EXISTS {OFFSETS} (
                    {stream} {key} NOT NULL, {topic} {key} NOT NULL, {partition} integer NOT NULL,
                    {next} bigint NOT NULL, {updated_at} {ts} NOT NULL DEFAULT {now},
                    PRIMARY KEY ({stream}, {topic}, {partition}))",
                next = c("next_offset"),
                key = t.key,
                ts = t.timestamp,
                now = t.now,
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {STATE} (
                    {stream} {key} PRIMARY KEY, {state} {json} NOT NULL,
                    {updated_at} {ts} NOT NULL DEFAULT {now})",
                state = c("state"),
                key = t.key,
                json = t.json,
                ts = t.timestamp,
                now = t.now,
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} ({columns}, PRIMARY KEY ({}))",
                self.table,
                self.primary_key()
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {dead} (
                    {stream} {key} NOT NULL, {topic} {key} NOT NULL, {partition} integer NOT NULL,
                    {offset} bigint NOT NULL, {payload} {text} NOT NULL,
                    {encoding} {key} NOT NULL DEFAULT 'utf8', {reason} {text} NOT NULL,
                    {created_at} {ts} NOT NULL DEFAULT {now},
                    PRIMARY KEY ({stream}, {topic}, {partition}, {offset}))",
                dead = self.dead_letters,
                offset = c("offset"),
                payload = c("payload"),
                encoding = c("payload_encoding"),
                reason = c("reason"),
                created_at = c("created_at"),
                key = t.key,
                text = t.text,
                ts = t.timestamp,
                now = t.now,
            ),
        ]);
        statements
    }
}

/// The column types of the sink's tables in each database.
struct ColumnTypes {
    json: &'static str,
    /// Keys and short names: MySQL indexes no unbounded `TEXT` (255 characters of utf8mb4 keep
    /// a three-column key within InnoDB's 3,072 bytes).
    key: &'static str,
    /// Payloads and reasons, unbounded.
    text: &'static str,
    timestamp: &'static str,
    now: &'static str,
    double: &'static str,
}

impl ColumnTypes {
    fn of(dialect: Dialect) -> ColumnTypes {
        match dialect {
            Dialect::DuckDb | Dialect::Postgres => ColumnTypes {
                json: if dialect == Dialect::Postgres {
                    "jsonb"
                } else {
                    "JSON"
                },
                key: "text",
                text: "text",
                timestamp: "timestamptz",
                now: "now()",
                double: "double precision",
            },
            // Timestamps in UTC: the sink's sessions run with `time_zone = '+00:00'`.
            Dialect::MySql => ColumnTypes {
                json: "JSON",
                key: "VARCHAR(255)",
                text: "LONGTEXT",
                timestamp: "DATETIME(6)",
                now: "CURRENT_TIMESTAMP(6)",
                double: "DOUBLE",
            },
        }
    }
}

/// The upsert keys of a stream's table: `key:` with `mode: upsert`, the group and
/// `window_start` for windowed results, none when appending records.
pub fn table_keys(stream: &Stream) -> Vec<String> {
    use sluice_core::stream::SinkMode;
    match (stream.sink.mode, &stream.aggregate) {
        (SinkMode::Upsert, _) => stream.sink.key.clone(),
        (SinkMode::Append, Some(a)) => a
            .key
            .iter()
            .cloned()
            .chain(["window_start".to_string()])
            .collect(),
        (SinkMode::Append, None) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(offset: i64, id: &str, n: i64) -> (Record, serde_json::Value) {
        (
            Record {
                topic: "t".into(),
                partition: 0,
                offset,
                payload: Vec::new(),
            },
            serde_json::json!({"id": id, "n": n}),
        )
    }

    #[test]
    fn rows_to_write_skip_what_is_stored_and_keep_the_last_of_a_key() {
        let rows = [
            row(5, "a", 1),
            row(6, "b", 2),
            row(7, "a", 3),
            row(8, "c", 4),
        ];
        let stored = Offsets::from([(("t".to_string(), 0), 6)]);
        let (out, skipped) = rows_to_write(&rows, &["id".to_string()], &stored);
        assert_eq!(skipped, 1);
        let picked: Vec<i64> = out.iter().map(|(r, _)| r.offset).collect();
        assert_eq!(picked, [6, 7, 8]);
        let (out, _) = rows_to_write(&rows, &[], &Offsets::new());
        assert_eq!(out.len(), 4);
    }
}
