//! PostgreSQL as a source and a sink, through binary COPY in both directions.
//!
//! Rows never pass through `tokio_postgres::Row`: `extract` decodes the binary COPY stream straight
//! into Arrow builders and `copy_in` encodes Arrow arrays straight into binary COPY rows. That keeps
//! a large transfer at one batch of memory and avoids a per-value allocation.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, RecordBatch,
    RecordBatchOptions, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::compute::{CastOptions, can_cast_types, cast_with_options};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Field, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use sluice_connect::PgTarget;
pub use tokio_postgres::Client;
use tokio_postgres::error::ErrorPosition;
use tokio_postgres::types::{Kind, Type};
use tokio_postgres::{CopyOutStream, GenericClient};

use sluice_core::sql::Dialect;

use crate::{BATCH_ROWS, BatchStream, IoError};

const SYSTEM: &str = "PostgreSQL";

/// Signature, flags (no OIDs) and an empty header extension.
const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
const COPY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// PostgreSQL counts dates and timestamps from 2000-01-01, Arrow from 1970-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Numeric columns declared without precision have no fixed scale; ten decimal places keep
/// typical money and ratio values exact while leaving 28 integer digits.
const UNCONSTRAINED_NUMERIC: (u8, i8) = (38, 10);

/// COPY data is handed to the connection in chunks of about this size: large enough to keep
/// per-message overhead negligible, small enough to keep memory flat.
const COPY_CHUNK: usize = 256 * 1024;

/// Connects with the URI's TLS parameters (libpq's `sslmode`, …) and spawns the connection
/// task. Errors never contain the URI or password.
pub async fn connect(uri: &str) -> Result<Client, IoError> {
    let target = PgTarget::parse(uri).map_err(|e| IoError::from_connect(SYSTEM, e))?;
    target
        .connect()
        .await
        .map_err(|e| IoError::from_connect(SYSTEM, e))
}

/// Runs `query` and streams its rows as Arrow batches of about `batch_rows` rows. The schema is
/// known before the first batch (also for zero rows); a result without rows yields no batch.
pub async fn extract(
    client: impl Into<Arc<Client>>,
    query: &str,
    batch_rows: usize,
) -> Result<(SchemaRef, BatchStream), IoError> {
    let client: Arc<Client> = client.into();
    let query = trim_query(query);
    let statement = client
        .prepare(query)
        .await
        .map_err(|e| pg_error("the query failed", e))?;
    if !statement.params().is_empty() {
        return Err(IoError::invalid(format!(
            "{SYSTEM}: the query has {} parameter(s) ($1…); extraction runs it through COPY, which \
             cannot bind parameters, so write the values into the query",
            statement.params().len()
        )));
    }
    let mut fields = Vec::with_capacity(statement.columns().len());
    let mut kinds = Vec::with_capacity(statement.columns().len());
    for column in statement.columns() {
        let kind = pg_kind(column.type_(), column.type_modifier()).map_err(|reason| {
            IoError::invalid(format!(
                "column `{name}` of the query has {reason}, which sluice cannot read; cast it in \
                 the query, e.g. `{name}::text`",
                name = column.name()
            ))
        })?;
        fields.push(Field::new(column.name(), kind.arrow_type(), true));
        kinds.push(kind);
    }
    drop(statement);
    let schema: SchemaRef = Arc::new(Schema::new(fields));

    let batch_rows = if batch_rows == 0 {
        BATCH_ROWS
    } else {
        batch_rows
    };
    let decoder = CopyDecoder::new(schema.clone(), &kinds, batch_rows)?;
    let copy = format!("COPY (\n{query}\n) TO STDOUT (FORMAT binary)");
    let stream = client
        .copy_out(copy.as_str())
        .await
        .map_err(|e| pg_error("the query failed", e))?;
    let state = ExtractState {
        _client: client,
        stream: Box::pin(stream),
        decoder,
        finished: false,
    };
    let batches = futures::stream::try_unfold(state, |mut state| async move {
        Ok(state.next_batch().await?.map(|batch| (batch, state)))
    });
    Ok((schema, Box::pin(batches)))
}

/// The Arrow type for a PostgreSQL column type (with its typmod for numeric(p,s)).
pub fn arrow_type(ty: &Type, typmod: i32) -> Result<DataType, IoError> {
    pg_kind(ty, typmod)
        .map(|kind| kind.arrow_type())
        .map_err(|reason| {
            IoError::invalid(format!(
                "{reason} has no Arrow equivalent in sluice; cast it in the query, e.g. `col::text`"
            ))
        })
}

/// The PostgreSQL type name to declare for an Arrow type (CREATE TABLE / ALTER TABLE ADD COLUMN).
pub fn pg_type(dt: &DataType) -> Result<String, IoError> {
    let name = match dt {
        DataType::Boolean => "boolean",
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint",
        DataType::Int32 | DataType::UInt16 => "integer",
        DataType::Int64 | DataType::UInt32 => "bigint",
        DataType::UInt64 => "numeric(20,0)",
        DataType::Float16 | DataType::Float32 => "real",
        DataType::Float64 => "double precision",
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) => {
            return Ok(format!("numeric({p},{s})"));
        }
        DataType::Decimal256(p, s) if *p <= 38 => return Ok(format!("numeric({p},{s})")),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text",
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Timestamp(_, None) => "timestamp",
        DataType::Timestamp(_, Some(_)) => "timestamptz",
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "bytea",
        DataType::Dictionary(_, values) => return pg_type(values),
        other => {
            return Err(IoError::invalid(format!(
                "Arrow type {other} has no PostgreSQL column type in sluice; cast it first, \
                 e.g. to text"
            )));
        }
    };
    Ok(name.to_string())
}

/// The columns of `schema.table` as Arrow fields, in column order; None when the table does not
/// exist.
pub async fn table_fields(
    client: &impl GenericClient,
    schema: &str,
    table: &str,
) -> Result<Option<Vec<Field>>, IoError> {
    let Some(columns) = table_columns(client, schema, table).await? else {
        return Ok(None);
    };
    columns
        .into_iter()
        .map(|column| {
            let kind = column.kind.map_err(|reason| {
                IoError::invalid(format!(
                    "column `{}` of {}.{} has {reason}, which sluice cannot read; cast it in the \
                     query, e.g. `{}::text`",
                    column.name, schema, table, column.name
                ))
            })?;
            Ok(Field::new(column.name, kind.arrow_type(), !column.not_null))
        })
        .collect::<Result<Vec<_>, IoError>>()
        .map(Some)
}

/// Streams `batches` into `"schema"."table" (columns…)` with one binary COPY and returns the rows
/// written. `columns` names the target columns in the batches' column order. Works on a client or
/// inside a transaction; on error the COPY is aborted and, in a transaction, the transaction is
/// left failed for the caller to roll back.
pub async fn copy_in(
    client: &impl GenericClient,
    schema: &str,
    table: &str,
    columns: &[String],
    mut batches: BatchStream,
) -> Result<u64, IoError> {
    let table_columns = table_columns(client, schema, table).await?.ok_or_else(|| {
        IoError::invalid(format!("{SYSTEM}: table {schema}.{table} does not exist"))
    })?;
    let mut targets = Vec::with_capacity(columns.len());
    for name in columns {
        let column = table_columns
            .iter()
            .find(|c| &c.name == name)
            .ok_or_else(|| {
                IoError::invalid(format!(
                    "{SYSTEM}: column `{name}` does not exist in {schema}.{table}"
                ))
            })?;
        let kind = column.kind.clone().map_err(|reason| {
            IoError::invalid(format!(
                "column `{name}` of {schema}.{table} has {reason}, which sluice cannot load; \
                 change its type, e.g. `ALTER TABLE … ALTER COLUMN {name} TYPE text`"
            ))
        })?;
        targets.push(Target {
            name: name.clone(),
            kind,
            type_name: column.type_name.clone(),
        });
    }

    let statement = format!(
        "COPY {}.{} ({}) FROM STDIN (FORMAT binary)",
        Dialect::Postgres.quote_ident(schema),
        Dialect::Postgres.quote_ident(table),
        columns
            .iter()
            .map(|c| Dialect::Postgres.quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let context = format!("loading {schema}.{table} failed");
    let sink = client
        .client()
        .copy_in::<_, Bytes>(statement.as_str())
        .await
        .map_err(|e| pg_error(&context, e))?;
    // Leaving early drops the sink, which makes tokio-postgres abort the COPY.
    let mut sink = std::pin::pin!(sink);

    let mut buf = BytesMut::with_capacity(COPY_CHUNK + 64 * 1024);
    buf.put_slice(COPY_HEADER);
    let field_count = i16::try_from(targets.len())
        .map_err(|_| IoError::invalid(format!("{SYSTEM}: too many columns for one COPY")))?;
    let mut rows_before: u64 = 0;
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        if batch.num_columns() != targets.len() {
            return Err(IoError::invalid(format!(
                "loading {schema}.{table}: a batch has {} columns but {} target columns were named",
                batch.num_columns(),
                targets.len()
            )));
        }
        let arrays = batch
            .columns()
            .iter()
            .zip(&targets)
            .map(|(array, target)| cast_for_target(array, target, rows_before))
            .collect::<Result<Vec<_>, IoError>>()?;
        let encoders = arrays
            .iter()
            .zip(&targets)
            .map(|(array, target)| Encoder::new(array.as_ref(), target.kind))
            .collect::<Result<Vec<_>, IoError>>()?;
        for row in 0..batch.num_rows() {
            buf.put_i16(field_count);
            for (encoder, target) in encoders.iter().zip(&targets) {
                encoder.encode(row, &mut buf).map_err(|message| {
                    IoError::invalid(format!(
                        "column `{}` row {}: {message}",
                        target.name,
                        rows_before + row as u64 + 1
                    ))
                })?;
            }
            if buf.len() >= COPY_CHUNK {
                sink.send(buf.split().freeze())
                    .await
                    .map_err(|e| pg_error(&context, e))?;
            }
        }
        rows_before += batch.num_rows() as u64;
    }
    buf.put_i16(-1);
    sink.send(buf.freeze())
        .await
        .map_err(|e| pg_error(&context, e))?;
    sink.as_mut()
        .finish()
        .await
        .map_err(|e| pg_error(&context, e))
}

// ---------------------------------------------------------------------------------------------
// Types

/// The PostgreSQL types sluice moves, each with one binary format and one Arrow type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PgKind {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric {
        precision: u8,
        scale: i8,
        constrained: bool,
    },
    Text,
    Json,
    Jsonb,
    Uuid,
    Date,
    Timestamp,
    TimestampTz,
    Bytea,
}

impl PgKind {
    fn arrow_type(self) -> DataType {
        match self {
            PgKind::Bool => DataType::Boolean,
            PgKind::Int2 => DataType::Int16,
            PgKind::Int4 => DataType::Int32,
            PgKind::Int8 => DataType::Int64,
            PgKind::Float4 => DataType::Float32,
            PgKind::Float8 => DataType::Float64,
            PgKind::Numeric {
                precision, scale, ..
            } => DataType::Decimal128(precision, scale),
            PgKind::Text | PgKind::Json | PgKind::Jsonb | PgKind::Uuid => DataType::Utf8,
            PgKind::Date => DataType::Date32,
            PgKind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            PgKind::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            PgKind::Bytea => DataType::Binary,
        }
    }
}

/// The kind of a PostgreSQL type, or why it has none ("type `xml`").
fn pg_kind(ty: &Type, typmod: i32) -> Result<PgKind, String> {
    const BOOL: u32 = 16;
    const BYTEA: u32 = 17;
    const NAME: u32 = 19;
    const INT8: u32 = 20;
    const INT2: u32 = 21;
    const INT4: u32 = 23;
    const TEXT: u32 = 25;
    const JSON: u32 = 114;
    const FLOAT4: u32 = 700;
    const FLOAT8: u32 = 701;
    const BPCHAR: u32 = 1042;
    const VARCHAR: u32 = 1043;
    const DATE: u32 = 1082;
    const TIMESTAMP: u32 = 1114;
    const TIMESTAMPTZ: u32 = 1184;
    const NUMERIC: u32 = 1700;
    const UUID: u32 = 2950;
    const JSONB: u32 = 3802;
    Ok(match ty.oid() {
        BOOL => PgKind::Bool,
        INT2 => PgKind::Int2,
        INT4 => PgKind::Int4,
        INT8 => PgKind::Int8,
        FLOAT4 => PgKind::Float4,
        FLOAT8 => PgKind::Float8,
        NUMERIC => numeric_kind(typmod)?,
        TEXT | VARCHAR | BPCHAR | NAME => PgKind::Text,
        JSON => PgKind::Json,
        JSONB => PgKind::Jsonb,
        UUID => PgKind::Uuid,
        DATE => PgKind::Date,
        TIMESTAMP => PgKind::Timestamp,
        TIMESTAMPTZ => PgKind::TimestampTz,
        BYTEA => PgKind::Bytea,
        // A domain travels in its base type's binary format.
        _ => match ty.kind() {
            Kind::Domain(base) => pg_kind(base, typmod)?,
            _ => return Err(format!("type `{}`", ty.name())),
        },
    })
}

fn numeric_kind(typmod: i32) -> Result<PgKind, String> {
    // typmod is ((precision << 16) | scale) + 4, the scale an 11-bit signed field since PG 15.
    if typmod < 4 {
        let (precision, scale) = UNCONSTRAINED_NUMERIC;
        return Ok(PgKind::Numeric {
            precision,
            scale,
            constrained: false,
        });
    }
    let packed = typmod - 4;
    let precision = (packed >> 16) & 0xffff;
    let scale = ((packed & 0x7ff) ^ 1024) - 1024;
    // numeric(2,5) holds 0.00012: Arrow needs the precision to cover the scale.
    let arrow_precision = precision.max(scale);
    if !(1..=38).contains(&arrow_precision) || scale < -38 {
        return Err(format!(
            "type `numeric({precision},{scale})`, wider than the 38 digits of Decimal128"
        ));
    }
    Ok(PgKind::Numeric {
        precision: arrow_precision as u8,
        scale: scale as i8,
        constrained: true,
    })
}

struct PgColumn {
    name: String,
    kind: Result<PgKind, String>,
    type_name: String,
    not_null: bool,
}

async fn table_columns(
    client: &impl GenericClient,
    schema: &str,
    table: &str,
) -> Result<Option<Vec<PgColumn>>, IoError> {
    // The LEFT JOIN keeps one row for an existing table without columns, so "no rows" means
    // "no table".
    const SQL: &str = "SELECT a.attname::text, a.atttypid, a.atttypmod, a.attnotnull, \
                format_type(a.atttypid, a.atttypmod), t.typtype, t.typbasetype, t.typtypmod \
         FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_catalog.pg_attribute a \
                ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
         LEFT JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
         WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
         ORDER BY a.attnum";
    let context = format!("reading the columns of {schema}.{table} failed");
    let rows = client
        .query(SQL, &[&schema, &table])
        .await
        .map_err(|e| pg_error(&context, e))?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut columns = Vec::with_capacity(rows.len());
    for row in rows {
        let catalog = |e| pg_error(&context, e);
        let Some(name) = row.try_get::<_, Option<String>>(0).map_err(catalog)? else {
            continue;
        };
        let type_oid: u32 = row.try_get(1).map_err(catalog)?;
        let typmod: i32 = row.try_get(2).map_err(catalog)?;
        let not_null: bool = row.try_get(3).map_err(catalog)?;
        let type_name: String = row.try_get(4).map_err(catalog)?;
        let typtype: i8 = row.try_get(5).map_err(catalog)?;
        let base_oid: u32 = row.try_get(6).map_err(catalog)?;
        let base_typmod: i32 = row.try_get(7).map_err(catalog)?;
        let (oid, typmod) = if typtype == b'd' as i8 {
            (base_oid, base_typmod)
        } else {
            (type_oid, typmod)
        };
        let kind = match Type::from_oid(oid) {
            Some(ty) => pg_kind(&ty, typmod).map_err(|_| format!("type `{type_name}`")),
            None => Err(format!("type `{type_name}`")),
        };
        columns.push(PgColumn {
            name,
            kind,
            type_name,
            not_null,
        });
    }
    Ok(Some(columns))
}

// ---------------------------------------------------------------------------------------------
// Errors

/// Turns a tokio-postgres error into an IoError that shows what the server said (never the bare
/// "db error"). Errors that another attempt cannot fix (bad data, bad SQL, missing objects,
/// rejected credentials) are Invalid; everything else may be transient and stays Remote.
pub(crate) fn pg_error(context: &str, e: tokio_postgres::Error) -> IoError {
    let Some(db) = e.as_db_error() else {
        let message = format!("{context}: {}", error_chain(&e));
        return IoError::remote(SYSTEM, message);
    };
    let mut message = format!("{context}: {}", db.message());
    if let Some(detail) = db.detail() {
        let _ = write!(message, "; detail: {detail}");
    }
    if let Some(hint) = db.hint() {
        let _ = write!(message, "; hint: {hint}");
    }
    match db.position() {
        Some(ErrorPosition::Original(position)) => {
            let _ = write!(message, "; at character {position}");
        }
        Some(ErrorPosition::Internal { position, query }) => {
            let _ = write!(
                message,
                "; at character {position} of internal query `{query}`"
            );
        }
        None => {}
    }
    if let Some(context) = db.where_() {
        let _ = write!(message, "; context: {}", context.replace('\n', "; "));
    }
    let code = db.code().code();
    let _ = write!(message, " (SQLSTATE {code})");
    // 22 data exception, 23 integrity violation, 42 syntax or access rule, 0A not supported,
    // 28 invalid authorization, 3D unknown database, 3F unknown schema.
    if ["22", "23", "42", "0A", "28", "3D", "3F"]
        .iter()
        .any(|class| code.starts_with(class))
    {
        IoError::invalid(format!("{SYSTEM}: {message}"))
    } else {
        IoError::remote(SYSTEM, message)
    }
}

/// The error and its causes: tokio-postgres puts the useful part ("Connection refused",
/// "invalid value for parameter `sslmode`") in the source, not in its own message.
fn error_chain(e: &tokio_postgres::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !message.contains(&cause_text) {
            let _ = write!(message, ": {cause_text}");
        }
        source = cause.source();
    }
    message
}

/// COPY wraps the query in parentheses, where a trailing semicolon is a syntax error.
fn trim_query(query: &str) -> &str {
    let mut query = query.trim();
    while let Some(rest) = query.strip_suffix(';') {
        query = rest.trim_end();
    }
    query
}

// ---------------------------------------------------------------------------------------------
// Extract: binary COPY -> Arrow

struct ExtractState {
    // The connection ends when the client is dropped, so the stream keeps it.
    _client: Arc<Client>,
    stream: std::pin::Pin<Box<CopyOutStream>>,
    decoder: CopyDecoder,
    finished: bool,
}

impl ExtractState {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>, IoError> {
        loop {
            if self.finished {
                return Ok(None);
            }
            if self.decoder.decode()? {
                return self.decoder.flush().map(Some);
            }
            match self.stream.next().await {
                Some(Ok(chunk)) => self.decoder.push(chunk),
                Some(Err(e)) => return Err(pg_error("the query failed", e)),
                None => {
                    self.finished = true;
                    self.decoder.check_end()?;
                    if self.decoder.rows > 0 {
                        return self.decoder.flush().map(Some);
                    }
                    return Ok(None);
                }
            }
        }
    }
}

struct CopyDecoder {
    schema: SchemaRef,
    columns: Vec<ColumnBuilder>,
    batch_rows: usize,
    /// Received bytes not decoded yet; PostgreSQL sends one message per row, so this is usually
    /// one whole message and never needs copying.
    pending: Bytes,
    header_read: bool,
    trailer_read: bool,
    /// Rows in the batch being built.
    rows: usize,
    /// Rows decoded so far, for error messages.
    row_number: u64,
}

impl CopyDecoder {
    fn new(schema: SchemaRef, kinds: &[PgKind], batch_rows: usize) -> Result<Self, IoError> {
        let capacity = batch_rows.min(BATCH_ROWS);
        let columns = schema
            .fields()
            .iter()
            .zip(kinds)
            .map(|(field, kind)| ColumnBuilder::new(field.name(), *kind, capacity))
            .collect::<Result<Vec<_>, IoError>>()?;
        Ok(CopyDecoder {
            schema,
            columns,
            batch_rows,
            pending: Bytes::new(),
            header_read: false,
            trailer_read: false,
            rows: 0,
            row_number: 0,
        })
    }

    fn push(&mut self, chunk: Bytes) {
        if self.pending.is_empty() {
            self.pending = chunk;
        } else {
            let mut joined = BytesMut::with_capacity(self.pending.len() + chunk.len());
            joined.extend_from_slice(&self.pending);
            joined.extend_from_slice(&chunk);
            self.pending = joined.freeze();
        }
    }

    /// Decodes whole rows until the batch is full (returns true) or the data runs out.
    fn decode(&mut self) -> Result<bool, IoError> {
        if !self.header_read && !self.read_header()? {
            return Ok(false);
        }
        while self.rows < self.batch_rows && !self.trailer_read {
            let buf = &self.pending[..];
            if buf.len() < 2 {
                break;
            }
            let fields = i16::from_be_bytes([buf[0], buf[1]]);
            if fields == -1 {
                self.trailer_read = true;
                self.pending.advance(2);
                break;
            }
            if fields as usize != self.columns.len() {
                return Err(malformed(format!(
                    "a row has {fields} fields, expected {}",
                    self.columns.len()
                )));
            }
            let Some(row_len) = complete_row_len(buf, self.columns.len())? else {
                break;
            };
            self.row_number += 1;
            let mut pos = 2;
            for column in &mut self.columns {
                let len = i32::from_be_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]]);
                pos += 4;
                let value = if len < 0 {
                    None
                } else {
                    let value = &buf[pos..pos + len as usize];
                    pos += len as usize;
                    Some(value)
                };
                column.append(value).map_err(|message| {
                    IoError::invalid(format!(
                        "column `{}` row {}: {message}",
                        column.name, self.row_number
                    ))
                })?;
            }
            self.pending.advance(row_len);
            self.rows += 1;
        }
        Ok(self.rows >= self.batch_rows)
    }

    fn read_header(&mut self) -> Result<bool, IoError> {
        let buf = &self.pending[..];
        if buf.len() < 19 {
            return Ok(false);
        }
        if &buf[..11] != COPY_SIGNATURE {
            return Err(malformed("the COPY stream has no binary signature".into()));
        }
        let flags = u32::from_be_bytes([buf[11], buf[12], buf[13], buf[14]]);
        if flags & (1 << 16) != 0 {
            return Err(malformed("the COPY stream includes OIDs".into()));
        }
        let extension = u32::from_be_bytes([buf[15], buf[16], buf[17], buf[18]]) as usize;
        if buf.len() < 19 + extension {
            return Ok(false);
        }
        self.pending.advance(19 + extension);
        self.header_read = true;
        Ok(true)
    }

    fn check_end(&self) -> Result<(), IoError> {
        if !self.trailer_read || !self.pending.is_empty() {
            return Err(IoError::remote(
                SYSTEM,
                "the COPY stream of the query ended early; the connection was probably lost",
            ));
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<RecordBatch, IoError> {
        let arrays = self
            .columns
            .iter_mut()
            .map(ColumnBuilder::finish)
            .collect::<Vec<_>>();
        let options = RecordBatchOptions::new().with_row_count(Some(self.rows));
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)?;
        self.rows = 0;
        Ok(batch)
    }
}

fn malformed(message: String) -> IoError {
    IoError::remote(SYSTEM, format!("unexpected COPY data: {message}"))
}

/// The byte length of the row at the start of `buf`, or None when it has not fully arrived.
fn complete_row_len(buf: &[u8], fields: usize) -> Result<Option<usize>, IoError> {
    let mut pos = 2;
    for _ in 0..fields {
        let Some(len) = buf.get(pos..pos + 4) else {
            return Ok(None);
        };
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        pos += 4;
        if len >= 0 {
            pos += len as usize;
        } else if len != -1 {
            return Err(malformed(format!("a field has length {len}")));
        }
    }
    Ok((buf.len() >= pos).then_some(pos))
}

struct ColumnBuilder {
    name: String,
    builder: Builder,
}

enum Builder {
    Bool(BooleanBuilder),
    Int2(Int16Builder),
    Int4(Int32Builder),
    Int8(Int64Builder),
    Float4(Float32Builder),
    Float8(Float64Builder),
    Numeric {
        builder: Decimal128Builder,
        precision: u8,
        scale: i8,
        constrained: bool,
    },
    Text(StringBuilder),
    Json(StringBuilder),
    Jsonb(StringBuilder),
    Uuid(StringBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Bytea(BinaryBuilder),
}

impl ColumnBuilder {
    fn new(name: &str, kind: PgKind, capacity: usize) -> Result<Self, IoError> {
        let builder = match kind {
            PgKind::Bool => Builder::Bool(BooleanBuilder::with_capacity(capacity)),
            PgKind::Int2 => Builder::Int2(Int16Builder::with_capacity(capacity)),
            PgKind::Int4 => Builder::Int4(Int32Builder::with_capacity(capacity)),
            PgKind::Int8 => Builder::Int8(Int64Builder::with_capacity(capacity)),
            PgKind::Float4 => Builder::Float4(Float32Builder::with_capacity(capacity)),
            PgKind::Float8 => Builder::Float8(Float64Builder::with_capacity(capacity)),
            PgKind::Numeric {
                precision,
                scale,
                constrained,
            } => Builder::Numeric {
                builder: Decimal128Builder::with_capacity(capacity)
                    .with_precision_and_scale(precision, scale)?,
                precision,
                scale,
                constrained,
            },
            PgKind::Text => Builder::Text(StringBuilder::with_capacity(capacity, capacity * 8)),
            PgKind::Json => Builder::Json(StringBuilder::with_capacity(capacity, capacity * 8)),
            PgKind::Jsonb => Builder::Jsonb(StringBuilder::with_capacity(capacity, capacity * 8)),
            PgKind::Uuid => Builder::Uuid(StringBuilder::with_capacity(capacity, capacity * 36)),
            PgKind::Date => Builder::Date(Date32Builder::with_capacity(capacity)),
            PgKind::Timestamp | PgKind::TimestampTz => Builder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity)
                    .with_data_type(kind.arrow_type()),
            ),
            PgKind::Bytea => Builder::Bytea(BinaryBuilder::with_capacity(capacity, capacity * 8)),
        };
        Ok(ColumnBuilder {
            name: name.to_string(),
            builder,
        })
    }

    fn append(&mut self, value: Option<&[u8]>) -> Result<(), String> {
        let Some(v) = value else {
            match &mut self.builder {
                Builder::Bool(b) => b.append_null(),
                Builder::Int2(b) => b.append_null(),
                Builder::Int4(b) => b.append_null(),
                Builder::Int8(b) => b.append_null(),
                Builder::Float4(b) => b.append_null(),
                Builder::Float8(b) => b.append_null(),
                Builder::Numeric { builder, .. } => builder.append_null(),
                Builder::Text(b) | Builder::Json(b) | Builder::Jsonb(b) | Builder::Uuid(b) => {
                    b.append_null()
                }
                Builder::Date(b) => b.append_null(),
                Builder::Timestamp(b) => b.append_null(),
                Builder::Bytea(b) => b.append_null(),
            }
            return Ok(());
        };
        match &mut self.builder {
            Builder::Bool(b) => b.append_value(fixed::<1>(v)?[0] != 0),
            Builder::Int2(b) => b.append_value(i16::from_be_bytes(fixed(v)?)),
            Builder::Int4(b) => b.append_value(i32::from_be_bytes(fixed(v)?)),
            Builder::Int8(b) => b.append_value(i64::from_be_bytes(fixed(v)?)),
            Builder::Float4(b) => b.append_value(f32::from_be_bytes(fixed(v)?)),
            Builder::Float8(b) => b.append_value(f64::from_be_bytes(fixed(v)?)),
            Builder::Numeric {
                builder,
                precision,
                scale,
                constrained,
            } => {
                let value = decode_numeric(v, *precision, *scale).map_err(|e| {
                    numeric_error_message(e, &self.name, *precision, *scale, *constrained)
                })?;
                builder.append_value(value);
            }
            Builder::Text(b) | Builder::Json(b) => b.append_value(utf8(v)?),
            Builder::Jsonb(b) => match v.split_first() {
                Some((1, text)) => b.append_value(utf8(text)?),
                _ => return Err("unknown jsonb binary format version".into()),
            },
            Builder::Uuid(b) => b.append_value(format_uuid(&fixed::<16>(v)?)),
            Builder::Date(b) => {
                let days = i32::from_be_bytes(fixed(v)?);
                if days == i32::MAX || days == i32::MIN {
                    return Err(format!(
                        "the date is infinite, which Arrow cannot hold; map it in the query, \
                         e.g. `NULLIF({}, 'infinity')`",
                        self.name
                    ));
                }
                let days = days
                    .checked_add(PG_EPOCH_DAYS)
                    .ok_or("the date is out of Arrow's range")?;
                b.append_value(days);
            }
            Builder::Timestamp(b) => {
                let micros = i64::from_be_bytes(fixed(v)?);
                if micros == i64::MAX || micros == i64::MIN {
                    return Err(format!(
                        "the timestamp is infinite, which Arrow cannot hold; map it in the query, \
                         e.g. `NULLIF({}, 'infinity')`",
                        self.name
                    ));
                }
                let micros = micros
                    .checked_add(PG_EPOCH_MICROS)
                    .ok_or("the timestamp is out of Arrow's range")?;
                b.append_value(micros);
            }
            Builder::Bytea(b) => b.append_value(v),
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        match &mut self.builder {
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Int2(b) => Arc::new(b.finish()),
            Builder::Int4(b) => Arc::new(b.finish()),
            Builder::Int8(b) => Arc::new(b.finish()),
            Builder::Float4(b) => Arc::new(b.finish()),
            Builder::Float8(b) => Arc::new(b.finish()),
            Builder::Numeric { builder, .. } => Arc::new(builder.finish()),
            Builder::Text(b) | Builder::Json(b) | Builder::Jsonb(b) | Builder::Uuid(b) => {
                Arc::new(b.finish())
            }
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Timestamp(b) => Arc::new(b.finish()),
            Builder::Bytea(b) => Arc::new(b.finish()),
        }
    }
}

fn fixed<const N: usize>(v: &[u8]) -> Result<[u8; N], String> {
    v.try_into()
        .map_err(|_| format!("expected {N} bytes, got {}", v.len()))
}

fn utf8(v: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(v).map_err(|e| format!("the text is not valid UTF-8: {e}"))
}

fn numeric_error_message(
    error: NumericError,
    column: &str,
    precision: u8,
    scale: i8,
    constrained: bool,
) -> String {
    match error {
        NumericError::NaN => format!(
            "the numeric value is NaN, which Decimal128 cannot hold; map it in the query, e.g. \
             `NULLIF({column}, 'NaN')` or `{column}::float8`"
        ),
        NumericError::Infinite => format!(
            "the numeric value is infinite, which Decimal128 cannot hold; map it in the query, \
             e.g. `{column}::float8`"
        ),
        NumericError::Overflow if constrained => {
            format!("the numeric value does not fit Decimal128({precision},{scale})")
        }
        NumericError::Overflow => format!(
            "the numeric value has more than {} integer digits, more than Decimal128({precision},\
             {scale}) holds for a numeric without declared precision; cast it in the query, e.g. \
             `{column}::numeric(38,2)` or `{column}::text`",
            precision as i32 - scale as i32
        ),
        NumericError::Malformed => "malformed numeric value".to_string(),
    }
}

fn format_uuid(bytes: &[u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(36);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(HEX[(byte >> 4) as usize] as char);
        out.push(HEX[(byte & 0xf) as usize] as char);
    }
    out
}

fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let text = text.trim();
    let text = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(text);
    let mut out = [0u8; 16];
    let mut nibbles = 0;
    for c in text.bytes() {
        if c == b'-' {
            continue;
        }
        let value = (c as char).to_digit(16)? as u8;
        if nibbles == 32 {
            return None;
        }
        out[nibbles / 2] |= if nibbles % 2 == 0 { value << 4 } else { value };
        nibbles += 1;
    }
    (nibbles == 32).then_some(out)
}

// ---------------------------------------------------------------------------------------------
// Numeric codec
//
// The binary numeric is: ndigits (i16), weight (i16), sign (u16), dscale (u16), then ndigits
// base-10000 digits (i16), the first worth 10000^weight.

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

const POW10: [i128; 39] = {
    let mut table = [1i128; 39];
    let mut i = 1;
    while i < 39 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NumericError {
    NaN,
    Infinite,
    /// More integer digits than the precision allows.
    Overflow,
    Malformed,
}

/// Decodes a binary numeric into a Decimal128 value with `scale`. Digits beyond the scale (only
/// possible for a numeric without declared scale) are rounded half away from zero, as PostgreSQL
/// rounds when it casts to numeric(p,s).
fn decode_numeric(raw: &[u8], precision: u8, scale: i8) -> Result<i128, NumericError> {
    if raw.len() < 8 {
        return Err(NumericError::Malformed);
    }
    let ndigits = i16::from_be_bytes([raw[0], raw[1]]);
    let weight = i16::from_be_bytes([raw[2], raw[3]]) as i32;
    let sign = u16::from_be_bytes([raw[4], raw[5]]);
    let negative = match sign {
        NUMERIC_POS => false,
        NUMERIC_NEG => true,
        NUMERIC_NAN => return Err(NumericError::NaN),
        NUMERIC_PINF | NUMERIC_NINF => return Err(NumericError::Infinite),
        _ => return Err(NumericError::Malformed),
    };
    if ndigits < 0 || raw.len() != 8 + 2 * ndigits as usize {
        return Err(NumericError::Malformed);
    }
    let scale = scale as i32;
    let mut magnitude: i128 = 0;
    let mut round_up = false;
    for (i, digit) in raw[8..].chunks_exact(2).enumerate() {
        let digit = u16::from_be_bytes([digit[0], digit[1]]);
        if digit >= 10_000 {
            return Err(NumericError::Malformed);
        }
        if digit == 0 {
            continue;
        }
        // Power of ten of the digit's last decimal place in the scaled integer.
        let exponent = 4 * (weight - i as i32) + scale;
        if exponent >= 0 {
            let factor = *POW10.get(exponent as usize).ok_or(NumericError::Overflow)?;
            magnitude = (digit as i128)
                .checked_mul(factor)
                .and_then(|v| magnitude.checked_add(v))
                .ok_or(NumericError::Overflow)?;
        } else {
            let dropped = -exponent;
            if dropped < 4 {
                magnitude = magnitude
                    .checked_add((digit / 10u16.pow(dropped as u32)) as i128)
                    .ok_or(NumericError::Overflow)?;
            }
            // The first dropped decimal place decides the rounding.
            let place = dropped - 1;
            if (0..4).contains(&place) && (digit / 10u16.pow(place as u32)) % 10 >= 5 {
                round_up = true;
            }
        }
    }
    if round_up {
        magnitude = magnitude.checked_add(1).ok_or(NumericError::Overflow)?;
    }
    if magnitude >= POW10[precision.min(38) as usize] {
        return Err(NumericError::Overflow);
    }
    Ok(if negative { -magnitude } else { magnitude })
}

/// Appends the binary numeric (length prefix included) for the Decimal128 `value` with `scale`.
fn encode_numeric(value: i128, scale: i8, out: &mut BytesMut) {
    let scale = scale as i32;
    let mut magnitude = value.unsigned_abs();
    // Base-10000 groups from the least significant; group g is worth 10000^(lowest_group + g).
    // Digits below the decimal point must start on a group boundary, so the lowest
    // `scale mod 4` decimal digits form a group of their own, shifted up.
    let misalignment = scale.rem_euclid(4) as u32;
    let lowest_group = (misalignment as i32 - scale) / 4 - i32::from(misalignment > 0);
    let mut groups = [0u16; 12];
    let mut count = 0;
    if misalignment > 0 {
        let divisor = 10u128.pow(misalignment);
        groups[0] = ((magnitude % divisor) as u16) * 10u16.pow(4 - misalignment);
        magnitude /= divisor;
        count = 1;
    }
    while magnitude > 0 {
        groups[count] = (magnitude % 10_000) as u16;
        magnitude /= 10_000;
        count += 1;
    }
    let groups = &groups[..count];
    let low = groups.iter().position(|&g| g != 0);
    let high = groups.iter().rposition(|&g| g != 0);
    let dscale = scale.max(0) as u16;
    let (digits, weight, sign): (&[u16], i32, u16) = match (low, high) {
        (Some(low), Some(high)) => (
            &groups[low..=high],
            lowest_group + high as i32,
            if value < 0 { NUMERIC_NEG } else { NUMERIC_POS },
        ),
        _ => (&[], 0, NUMERIC_POS),
    };
    out.put_i32(8 + 2 * digits.len() as i32);
    out.put_i16(digits.len() as i16);
    out.put_i16(weight as i16);
    out.put_u16(sign);
    out.put_u16(dscale);
    for digit in digits.iter().rev() {
        out.put_u16(*digit);
    }
}

// ---------------------------------------------------------------------------------------------
// Copy in: Arrow -> binary COPY

struct Target {
    name: String,
    kind: PgKind,
    type_name: String,
}

/// Casts an incoming column to what the target column's encoder takes. Failed conversions are
/// reported with the first offending value and its row in the load.
fn cast_for_target(
    array: &ArrayRef,
    target: &Target,
    rows_before: u64,
) -> Result<ArrayRef, IoError> {
    let from = array.data_type();
    let to = match (target.kind, from) {
        // A numeric without declared scale takes any decimal as it is; forcing it to the
        // Decimal128(38,10) that extraction uses would drop digits the column can hold.
        (
            PgKind::Numeric {
                constrained: false, ..
            },
            DataType::Decimal128(..),
        ) => from.clone(),
        (
            PgKind::Numeric {
                constrained: false, ..
            },
            DataType::Decimal32(p, s) | DataType::Decimal64(p, s),
        ) => DataType::Decimal128(*p, *s),
        (PgKind::Uuid, DataType::FixedSizeBinary(16)) => from.clone(),
        (kind, _) => kind.arrow_type(),
    };
    if from == &to {
        return Ok(array.clone());
    }
    if !can_cast_types(from, &to) {
        return Err(IoError::invalid(format!(
            "column `{}`: Arrow type {from} cannot be loaded into a PostgreSQL column of type {}",
            target.name, target.type_name
        )));
    }
    let cast = cast_with_options(array, &to, &CastOptions::default())?;
    // The safe cast turns failures into NULLs; a NULL where the input had a value is a failure.
    if cast.logical_null_count() > array.logical_null_count() {
        let input_nulls = array.logical_nulls();
        let output_nulls = cast.logical_nulls();
        let failed = (0..array.len()).find(|&i| {
            let was_null = input_nulls.as_ref().is_some_and(|n| n.is_null(i));
            let is_null = output_nulls.as_ref().is_some_and(|n| n.is_null(i));
            is_null && !was_null
        });
        if let Some(row) = failed {
            let value = ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())
                .map(|f| f.value(row).to_string())
                .unwrap_or_default();
            let value: String = if value.chars().count() > 80 {
                value.chars().take(80).chain("…".chars()).collect()
            } else {
                value
            };
            return Err(IoError::invalid(format!(
                "column `{}` row {}: value `{value}` ({from}) cannot be converted to the column's \
                 type {}",
                target.name,
                rows_before + row as u64 + 1,
                target.type_name
            )));
        }
    }
    Ok(cast)
}

enum Values<'a> {
    Bool(&'a arrow::array::BooleanArray),
    Int2(&'a arrow::array::Int16Array),
    Int4(&'a arrow::array::Int32Array),
    Int8(&'a arrow::array::Int64Array),
    Float4(&'a arrow::array::Float32Array),
    Float8(&'a arrow::array::Float64Array),
    Numeric(&'a arrow::array::Decimal128Array, i8),
    Text(&'a arrow::array::StringArray),
    Jsonb(&'a arrow::array::StringArray),
    UuidText(&'a arrow::array::StringArray),
    UuidBytes(&'a arrow::array::FixedSizeBinaryArray),
    Date(&'a arrow::array::Date32Array),
    Timestamp(&'a arrow::array::TimestampMicrosecondArray),
    Bytea(&'a arrow::array::BinaryArray),
}

struct Encoder<'a> {
    array: &'a dyn Array,
    values: Values<'a>,
}

impl<'a> Encoder<'a> {
    fn new(array: &'a dyn Array, kind: PgKind) -> Result<Self, IoError> {
        let mismatch = || {
            IoError::invalid(format!(
                "internal error: {} array after the cast for {kind:?}",
                array.data_type()
            ))
        };
        let values = match kind {
            PgKind::Bool => Values::Bool(array.as_boolean_opt().ok_or_else(mismatch)?),
            PgKind::Int2 => {
                Values::Int2(array.as_primitive_opt::<Int16Type>().ok_or_else(mismatch)?)
            }
            PgKind::Int4 => {
                Values::Int4(array.as_primitive_opt::<Int32Type>().ok_or_else(mismatch)?)
            }
            PgKind::Int8 => {
                Values::Int8(array.as_primitive_opt::<Int64Type>().ok_or_else(mismatch)?)
            }
            PgKind::Float4 => Values::Float4(
                array
                    .as_primitive_opt::<Float32Type>()
                    .ok_or_else(mismatch)?,
            ),
            PgKind::Float8 => Values::Float8(
                array
                    .as_primitive_opt::<Float64Type>()
                    .ok_or_else(mismatch)?,
            ),
            PgKind::Numeric { .. } => {
                let DataType::Decimal128(_, scale) = array.data_type() else {
                    return Err(mismatch());
                };
                Values::Numeric(
                    array
                        .as_primitive_opt::<Decimal128Type>()
                        .ok_or_else(mismatch)?,
                    *scale,
                )
            }
            PgKind::Text | PgKind::Json => {
                Values::Text(array.as_string_opt::<i32>().ok_or_else(mismatch)?)
            }
            PgKind::Jsonb => Values::Jsonb(array.as_string_opt::<i32>().ok_or_else(mismatch)?),
            PgKind::Uuid => match array.data_type() {
                DataType::FixedSizeBinary(16) => {
                    Values::UuidBytes(array.as_fixed_size_binary_opt().ok_or_else(mismatch)?)
                }
                _ => Values::UuidText(array.as_string_opt::<i32>().ok_or_else(mismatch)?),
            },
            PgKind::Date => Values::Date(
                array
                    .as_primitive_opt::<Date32Type>()
                    .ok_or_else(mismatch)?,
            ),
            PgKind::Timestamp | PgKind::TimestampTz => Values::Timestamp(
                array
                    .as_primitive_opt::<TimestampMicrosecondType>()
                    .ok_or_else(mismatch)?,
            ),
            PgKind::Bytea => Values::Bytea(array.as_binary_opt::<i32>().ok_or_else(mismatch)?),
        };
        Ok(Encoder { array, values })
    }

    fn encode(&self, row: usize, out: &mut BytesMut) -> Result<(), String> {
        if self.array.is_null(row) {
            out.put_i32(-1);
            return Ok(());
        }
        match &self.values {
            Values::Bool(a) => {
                out.put_i32(1);
                out.put_u8(a.value(row) as u8);
            }
            Values::Int2(a) => {
                out.put_i32(2);
                out.put_i16(a.value(row));
            }
            Values::Int4(a) => {
                out.put_i32(4);
                out.put_i32(a.value(row));
            }
            Values::Int8(a) => {
                out.put_i32(8);
                out.put_i64(a.value(row));
            }
            Values::Float4(a) => {
                out.put_i32(4);
                out.put_f32(a.value(row));
            }
            Values::Float8(a) => {
                out.put_i32(8);
                out.put_f64(a.value(row));
            }
            Values::Numeric(a, scale) => encode_numeric(a.value(row), *scale, out),
            Values::Text(a) => put_bytes(out, a.value(row).as_bytes())?,
            Values::Jsonb(a) => {
                let text = a.value(row).as_bytes();
                put_len(out, text.len() + 1)?;
                // jsonb's binary format is a version byte followed by the JSON text.
                out.put_u8(1);
                out.put_slice(text);
            }
            Values::UuidText(a) => {
                let text = a.value(row);
                let uuid = parse_uuid(text).ok_or_else(|| format!("`{text}` is not a UUID"))?;
                put_bytes(out, &uuid)?;
            }
            Values::UuidBytes(a) => put_bytes(out, a.value(row))?,
            Values::Date(a) => {
                let days = a
                    .value(row)
                    .checked_sub(PG_EPOCH_DAYS)
                    .ok_or("the date is out of PostgreSQL's range")?;
                out.put_i32(4);
                out.put_i32(days);
            }
            Values::Timestamp(a) => {
                let micros = a
                    .value(row)
                    .checked_sub(PG_EPOCH_MICROS)
                    .ok_or("the timestamp is out of PostgreSQL's range")?;
                out.put_i32(8);
                out.put_i64(micros);
            }
            Values::Bytea(a) => put_bytes(out, a.value(row))?,
        }
        Ok(())
    }
}

fn put_len(out: &mut BytesMut, len: usize) -> Result<(), String> {
    let len = i32::try_from(len)
        .map_err(|_| format!("the value has {len} bytes, more than one COPY field can carry"))?;
    out.put_i32(len);
    Ok(())
}

fn put_bytes(out: &mut BytesMut, bytes: &[u8]) -> Result<(), String> {
    put_len(out, bytes.len())?;
    out.put_slice(bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(value: i128, precision: u8, scale: i8) -> i128 {
        let mut buf = BytesMut::new();
        encode_numeric(value, scale, &mut buf);
        let len = i32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
        assert_eq!(len, buf.len() - 4);
        decode_numeric(&buf[4..], precision, scale).unwrap()
    }

    /// The wire form PostgreSQL sends for `'12345.6789'::numeric(9,4)`.
    #[test]
    fn numeric_matches_postgres_wire_format() {
        let mut buf = BytesMut::new();
        encode_numeric(123_456_789, 4, &mut buf);
        let expected: &[u8] = &[
            0, 0, 0, 14, // length
            0, 3, 0, 1, 0, 0, 0, 4, // ndigits 3, weight 1, positive, dscale 4
            0, 1, 0x09, 0x29, 0x1a, 0x85, // 1, 2345, 6789
        ];
        assert_eq!(&buf[..], expected);
        assert_eq!(decode_numeric(&expected[4..], 9, 4), Ok(123_456_789));
        // 0.0001 is one digit with weight -1.
        let mut buf = BytesMut::new();
        encode_numeric(1, 4, &mut buf);
        assert_eq!(&buf[4..], &[0, 1, 0xff, 0xff, 0, 0, 0, 4, 0, 1]);
    }

    #[test]
    fn numeric_round_trips_exactly() {
        let max = POW10[38] - 1;
        for (value, precision, scale) in [
            (0, 10, 2),
            (-1, 10, 2),
            (123_456_789, 9, 4),
            (-123_456_789, 9, 4),
            (1, 5, 4),
            (100_000_000, 20, 0),
            (max, 38, 0),
            (-max, 38, 10),
            (max, 38, 38),
            (5, 3, 1),
            (123, 5, 3),
            (12, 4, -2),
        ] {
            assert_eq!(
                round_trip(value, precision, scale),
                value,
                "{value} ({precision},{scale})"
            );
        }
    }

    #[test]
    fn numeric_decode_errors_and_rounding() {
        // NaN and infinity
        assert_eq!(
            decode_numeric(&[0, 0, 0, 0, 0xC0, 0, 0, 0], 38, 10),
            Err(NumericError::NaN)
        );
        assert_eq!(
            decode_numeric(&[0, 0, 0, 0, 0xD0, 0, 0, 0], 38, 10),
            Err(NumericError::Infinite)
        );
        // 0.00005 at scale 4 rounds away from zero, as a cast to numeric(p,4) would.
        let half: &[u8] = &[0, 1, 0xff, 0xfe, 0x40, 0, 0, 5, 0x13, 0x88];
        assert_eq!(decode_numeric(half, 10, 4), Ok(-1));
        // 10^8 does not fit precision 5.
        let big: &[u8] = &[0, 1, 0, 2, 0, 0, 0, 0, 0, 1];
        assert_eq!(decode_numeric(big, 5, 0), Err(NumericError::Overflow));
        assert_eq!(decode_numeric(big, 9, 0), Ok(100_000_000));
        assert_eq!(decode_numeric(&[0, 1], 9, 0), Err(NumericError::Malformed));
    }
}
