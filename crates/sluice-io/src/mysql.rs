//! MySQL and MariaDB source: the rows of a query as a stream of Arrow record batches.
//!
//! Rows come through the binary (prepared statement) protocol: it carries FLOAT and DOUBLE values
//! bit for bit, where the text protocol prints FLOAT with six significant digits and so loses
//! precision. A consequence is that the query must be a single statement without `?` placeholders.
//!
//! Types follow the column metadata of the result, see [`extract`].

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{NaiveDate, NaiveTime};
use futures::StreamExt;
use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::{Query, Queryable, WithParams};
use mysql_async::{BinaryProtocol, Column, Conn, ResultSetStream, Row, Value};
use sluice_connect::MySqlTarget;
use sluice_core::Redactor;

use crate::{BatchStream, IoError};

const SYSTEM: &str = "MySQL";

/// The `binary` character set: a string column with it holds bytes, not text.
const BINARY_CHARSET: u16 = 63;

/// Decimal128 holds at most 38 digits; MySQL DECIMAL has up to 65.
const MAX_DECIMAL128_PRECISION: u8 = 38;

const CAST_HINT: &str = "cast it in the query, e.g. CAST(col AS CHAR)";

/// Connects with the URI's TLS parameters (`ssl-mode`, `ssl-ca`, …) and sets the session time
/// zone to UTC. Errors never contain the password.
pub async fn connect(uri: &str) -> Result<(Conn, MySqlTarget), IoError> {
    let target = MySqlTarget::parse(uri).map_err(|e| IoError::from_connect(SYSTEM, e))?;
    let mut conn = target
        .connect()
        .await
        .map_err(|e| IoError::from_connect(SYSTEM, e))?;
    conn.query_drop("SET time_zone = '+00:00'")
        .await
        .map_err(|e| mysql_error(target.redactor(), "setting the session time zone", e))?;
    Ok((conn, target))
}

/// Closes a connection politely (the server logs an aborted connection otherwise).
pub async fn disconnect(conn: Conn) -> Result<(), IoError> {
    conn.disconnect()
        .await
        .map_err(|e| IoError::remote(SYSTEM, format!("closing the connection: {e}")))
}

/// Runs `query` on the MySQL or MariaDB server at `uri` (`mysql://user:pass@host:port/db`) and
/// returns the schema of its result together with a stream of batches of about `batch_rows` rows.
///
/// The session time zone is set to `+00:00`, so TIMESTAMP values are read as UTC whatever the
/// server's or the user's default time zone is.
///
/// Types come from the result's column metadata:
///
/// | MySQL | Arrow |
/// |---|---|
/// | TINYINT(1) | Boolean (only 0 and 1; other values are an error) |
/// | TINYINT / SMALLINT / MEDIUMINT / INT / BIGINT | Int8 / Int16 / Int32 / Int32 / Int64 |
/// | the same UNSIGNED, but BIGINT | Int16 / Int32 / Int32 / Int64 (the next wider signed type) |
/// | BIGINT UNSIGNED | Decimal128(20, 0) |
/// | FLOAT / DOUBLE | Float32 / Float64 |
/// | DECIMAL(p, s) | Decimal128(p, s); p above 38 becomes 38, and values with more digits are an error |
/// | CHAR, VARCHAR, TEXT, ENUM, SET, JSON | Utf8 |
/// | BINARY, VARBINARY, BLOB (binary character set) | Binary |
/// | DATE | Date32 |
/// | DATETIME | Timestamp(Microsecond, None) |
/// | TIMESTAMP | Timestamp(Microsecond, "UTC") |
/// | TIME | Utf8 as MySQL prints it, e.g. `12:34:56` or `-838:59:59` |
/// | YEAR | Int16 |
/// | BIT(n) | Int64 |
///
/// Zero dates (`0000-00-00`, which MySQL accepts outside strict modes) become NULL: they name no
/// day. Dates with only a zero month or day (`2024-00-00`) are an error instead, because they
/// still carry a year that NULL would lose. Other types (GEOMETRY, a bare NULL literal, ...) are
/// an error that names the column; a cast in the query makes them readable.
///
/// One batch is built at a time, and the next rows are read from the server only when the stream
/// is polled. Dropping the stream before its end asks the server to stop the query (`KILL QUERY`),
/// so that an abandoned extract of a large table does not keep the server busy.
pub async fn extract(
    uri: &str,
    query: &str,
    batch_rows: usize,
) -> Result<(SchemaRef, BatchStream), IoError> {
    let (conn, target) = connect(uri).await?;
    let redact = target.redactor().clone();
    let cancel = Cancel {
        target,
        connection_id: conn.id(),
    };

    let rows = query
        .to_owned()
        .with(())
        .run(conn)
        .await
        .map_err(|e| mysql_error(&redact, "running the query", e))?
        .stream_and_drop::<Row>()
        .await
        .map_err(|e| mysql_error(&redact, "running the query", e))?;
    let Some(rows) = rows.filter(|rows| !rows.columns_ref().is_empty()) else {
        return Err(IoError::invalid(
            "the MySQL query returned no result set; extract needs a statement that returns rows, such as SELECT",
        ));
    };

    let columns = rows
        .columns_ref()
        .iter()
        .map(|column| ColumnReader::new(column, batch_rows))
        .collect::<Result<Vec<_>, _>>()?;
    let schema = Arc::new(Schema::new(
        columns.iter().map(|c| c.field.clone()).collect::<Vec<_>>(),
    ));

    let reader = Reader {
        rows,
        columns,
        schema: schema.clone(),
        batch_rows: batch_rows.max(1),
        rows_read: 0,
        finished: false,
        cancel: Some(cancel),
        redact,
    };
    let stream = futures::stream::try_unfold(reader, |mut reader| async move {
        Ok(reader.next_batch().await?.map(|batch| (batch, reader)))
    });
    Ok((schema, stream.boxed()))
}

struct Reader {
    rows: ResultSetStream<'static, 'static, 'static, Row, BinaryProtocol>,
    columns: Vec<ColumnReader>,
    schema: SchemaRef,
    batch_rows: usize,
    rows_read: u64,
    finished: bool,
    cancel: Option<Cancel>,
    redact: Redactor,
}

impl Reader {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>, IoError> {
        let mut rows = 0;
        while rows < self.batch_rows && !self.finished {
            match self.rows.next().await {
                Some(Ok(row)) => {
                    self.rows_read += 1;
                    rows += 1;
                    self.append(row)?;
                }
                Some(Err(e)) => {
                    // The driver has given up on the result, so there is no query left to kill.
                    self.finished = true;
                    let context = format!("reading row {}", self.rows_read + 1);
                    return Err(mysql_error(&self.redact, &context, e));
                }
                None => self.finished = true,
            }
        }
        if rows == 0 {
            return Ok(None);
        }
        let arrays = self.columns.iter_mut().map(ColumnReader::finish).collect();
        Ok(Some(RecordBatch::try_new(self.schema.clone(), arrays)?))
    }

    fn append(&mut self, row: Row) -> Result<(), IoError> {
        for (column, value) in self.columns.iter_mut().zip(row.unwrap_raw()) {
            column.builder.append(value).map_err(|reason| {
                IoError::invalid(format!(
                    "MySQL column `{}`, row {}: {reason}",
                    column.field.name(),
                    self.rows_read
                ))
            })?;
        }
        Ok(())
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if !self.finished
            && let Some(cancel) = self.cancel.take()
        {
            cancel.fire();
        }
    }
}

/// What is needed to stop the query of an abandoned stream from a second connection.
///
/// Dropping the driver's result makes it read and discard every remaining row before it closes
/// the connection, which for a large table means the server sends the whole table for nothing.
struct Cancel {
    target: MySqlTarget,
    connection_id: u32,
}

impl Cancel {
    fn fire(self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            // Best effort: should this fail, the driver's draining still ends the query, later.
            if let Ok(mut conn) = self.target.connect().await {
                let _ = conn
                    .query_drop(format!("KILL QUERY {}", self.connection_id))
                    .await;
                let _ = conn.disconnect().await;
            }
        });
    }
}

struct ColumnReader {
    field: Field,
    builder: Builder,
}

impl ColumnReader {
    fn new(column: &Column, capacity: usize) -> Result<ColumnReader, IoError> {
        let name = column.name_str().into_owned();
        let flags = column.flags();
        let unsigned = flags.contains(ColumnFlags::UNSIGNED_FLAG);
        let text = column.character_set() != BINARY_CHARSET;
        // A huge batch_rows must not reserve memory for rows that may never come.
        let capacity = capacity.clamp(1, crate::BATCH_ROWS);

        use ColumnType::*;
        let builder = match column.column_type() {
            MYSQL_TYPE_TINY if column.column_length() == 1 => {
                Builder::Bool(BooleanBuilder::with_capacity(capacity))
            }
            MYSQL_TYPE_TINY if unsigned => Builder::Int16(Int16Builder::with_capacity(capacity)),
            MYSQL_TYPE_TINY => Builder::Int8(Int8Builder::with_capacity(capacity)),
            MYSQL_TYPE_SHORT if unsigned => Builder::Int32(Int32Builder::with_capacity(capacity)),
            MYSQL_TYPE_SHORT | MYSQL_TYPE_YEAR => {
                Builder::Int16(Int16Builder::with_capacity(capacity))
            }
            MYSQL_TYPE_INT24 => Builder::Int32(Int32Builder::with_capacity(capacity)),
            MYSQL_TYPE_LONG if unsigned => Builder::Int64(Int64Builder::with_capacity(capacity)),
            MYSQL_TYPE_LONG => Builder::Int32(Int32Builder::with_capacity(capacity)),
            MYSQL_TYPE_LONGLONG if unsigned => Builder::UnsignedBigint(
                Decimal128Builder::with_capacity(capacity)
                    .with_precision_and_scale(20, 0)
                    .expect("20 digits fit Decimal128"),
            ),
            MYSQL_TYPE_LONGLONG => Builder::Int64(Int64Builder::with_capacity(capacity)),
            MYSQL_TYPE_FLOAT => Builder::Float32(Float32Builder::with_capacity(capacity)),
            MYSQL_TYPE_DOUBLE => Builder::Float64(Float64Builder::with_capacity(capacity)),
            MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => {
                let (precision, scale) = decimal_precision_and_scale(column)?;
                Builder::Decimal {
                    builder: Decimal128Builder::with_capacity(capacity)
                        .with_precision_and_scale(precision, scale as i8)?,
                    precision,
                    scale,
                }
            }
            MYSQL_TYPE_VARCHAR
            | MYSQL_TYPE_VAR_STRING
            | MYSQL_TYPE_STRING
            | MYSQL_TYPE_BLOB
            | MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB
                if !text =>
            {
                Builder::Binary(BinaryBuilder::with_capacity(capacity, 0))
            }
            MYSQL_TYPE_VARCHAR
            | MYSQL_TYPE_VAR_STRING
            | MYSQL_TYPE_STRING
            | MYSQL_TYPE_BLOB
            | MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB
            | MYSQL_TYPE_ENUM
            | MYSQL_TYPE_SET
            | MYSQL_TYPE_JSON => Builder::Utf8(StringBuilder::with_capacity(capacity, 0)),
            MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => {
                Builder::Date(Date32Builder::with_capacity(capacity))
            }
            MYSQL_TYPE_DATETIME => Builder::Timestamp {
                builder: TimestampMicrosecondBuilder::with_capacity(capacity),
                utc: false,
            },
            MYSQL_TYPE_TIMESTAMP => Builder::Timestamp {
                builder: TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"),
                utc: true,
            },
            MYSQL_TYPE_TIME => Builder::Time {
                builder: StringBuilder::with_capacity(capacity, 0),
                decimals: column.decimals(),
            },
            MYSQL_TYPE_BIT => Builder::Bit(Int64Builder::with_capacity(capacity)),
            other => {
                return Err(IoError::invalid(format!(
                    "MySQL column `{name}` has type {}, which has no Arrow counterpart here; {CAST_HINT}",
                    type_name(other)
                )));
            }
        };

        let data_type = builder.data_type();
        // A zero date reads as NULL even in a NOT NULL column.
        let nullable = !flags.contains(ColumnFlags::NOT_NULL_FLAG)
            || matches!(data_type, DataType::Date32 | DataType::Timestamp(..));
        Ok(ColumnReader {
            field: Field::new(name, data_type, nullable),
            builder,
        })
    }

    fn finish(&mut self) -> ArrayRef {
        self.builder.finish()
    }
}

/// `MYSQL_TYPE_GEOMETRY` → `GEOMETRY`, as users know the types from SQL.
fn type_name(column_type: ColumnType) -> String {
    let debug = format!("{column_type:?}");
    debug
        .strip_prefix("MYSQL_TYPE_")
        .unwrap_or(&debug)
        .to_owned()
}

/// MySQL reports a DECIMAL's display length, which counts a sign (unless UNSIGNED) and a decimal
/// point (when there is a fraction) besides the digits; this reverses the server's
/// `my_decimal_precision_to_length_no_truncation`.
fn decimal_precision_and_scale(column: &Column) -> Result<(u8, u8), IoError> {
    let scale = column.decimals();
    if scale > MAX_DECIMAL128_PRECISION {
        return Err(IoError::invalid(format!(
            "MySQL column `{}` has {scale} decimal places, more than the 38 Decimal128 holds; {CAST_HINT}",
            column.name_str()
        )));
    }
    let length = column.column_length();
    let point = u32::from(scale > 0);
    let sign = u32::from(!column.flags().contains(ColumnFlags::UNSIGNED_FLAG) && length > 0);
    let precision = length.saturating_sub(point + sign);
    // Above 38 digits keep Decimal128: sums and averages of small decimals get MySQL precisions
    // of up to 65 while their values mostly fit; the rare value that does not is an error.
    let precision = precision.clamp(u32::from(scale.max(1)), u32::from(MAX_DECIMAL128_PRECISION));
    Ok((precision as u8, scale))
}

enum Builder {
    Bool(BooleanBuilder),
    Int8(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    UnsignedBigint(Decimal128Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal {
        builder: Decimal128Builder,
        precision: u8,
        scale: u8,
    },
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
    Date(Date32Builder),
    /// `utc`: TIMESTAMP (an instant, read in the UTC session) rather than DATETIME (wall clock).
    Timestamp {
        builder: TimestampMicrosecondBuilder,
        utc: bool,
    },
    Time {
        builder: StringBuilder,
        decimals: u8,
    },
    Bit(Int64Builder),
}

impl Builder {
    fn data_type(&self) -> DataType {
        match self {
            Builder::Bool(_) => DataType::Boolean,
            Builder::Int8(_) => DataType::Int8,
            Builder::Int16(_) => DataType::Int16,
            Builder::Int32(_) => DataType::Int32,
            Builder::Int64(_) | Builder::Bit(_) => DataType::Int64,
            Builder::UnsignedBigint(_) => DataType::Decimal128(20, 0),
            Builder::Float32(_) => DataType::Float32,
            Builder::Float64(_) => DataType::Float64,
            Builder::Decimal {
                precision, scale, ..
            } => DataType::Decimal128(*precision, *scale as i8),
            Builder::Utf8(_) | Builder::Time { .. } => DataType::Utf8,
            Builder::Binary(_) => DataType::Binary,
            Builder::Date(_) => DataType::Date32,
            Builder::Timestamp { utc, .. } => {
                DataType::Timestamp(TimeUnit::Microsecond, utc.then(|| "UTC".into()))
            }
        }
    }

    /// Appends one value; the error is the reason only, the caller adds column and row.
    fn append(&mut self, value: Option<Value>) -> Result<(), String> {
        let value = match value {
            None | Some(Value::NULL) => {
                self.append_null();
                return Ok(());
            }
            Some(value) => value,
        };
        match self {
            Builder::Bool(b) => match integer(&value)? {
                0 => b.append_value(false),
                1 => b.append_value(true),
                other => {
                    return Err(format!(
                        "{other} in a TINYINT(1) column is not a boolean (0 or 1); cast it in the query, e.g. CAST(col AS SIGNED)"
                    ));
                }
            },
            Builder::Int8(b) => b.append_value(fit(integer(&value)?, "Int8")?),
            Builder::Int16(b) => b.append_value(fit(integer(&value)?, "Int16")?),
            Builder::Int32(b) => b.append_value(fit(integer(&value)?, "Int32")?),
            Builder::Int64(b) => b.append_value(fit(integer(&value)?, "Int64")?),
            Builder::UnsignedBigint(b) => b.append_value(integer(&value)?),
            Builder::Float32(b) => b.append_value(match value {
                Value::Float(f) => f,
                other => float(&other)? as f32,
            }),
            Builder::Float64(b) => b.append_value(float(&value)?),
            Builder::Decimal {
                builder,
                precision,
                scale,
            } => builder.append_value(decimal(bytes(&value)?, *precision, *scale)?),
            Builder::Utf8(b) => b.append_value(utf8(bytes(&value)?)?),
            Builder::Binary(b) => b.append_value(bytes(&value)?),
            Builder::Date(b) => match date_time(&value)? {
                Some((date, _)) => {
                    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
                    b.append_value((date - epoch).num_days() as i32)
                }
                None => b.append_null(),
            },
            Builder::Timestamp { builder, .. } => match date_time(&value)? {
                Some((date, time)) => {
                    builder.append_value(date.and_time(time).and_utc().timestamp_micros())
                }
                None => builder.append_null(),
            },
            Builder::Time { builder, decimals } => match value {
                Value::Time(negative, days, hours, minutes, seconds, micros) => builder
                    .append_value(format_time(
                        negative, days, hours, minutes, seconds, micros, *decimals,
                    )),
                other => builder.append_value(utf8(bytes(&other)?)?),
            },
            Builder::Bit(b) => b.append_value(bit(bytes(&value)?)?),
        }
        Ok(())
    }

    fn append_null(&mut self) {
        match self {
            Builder::Bool(b) => b.append_null(),
            Builder::Int8(b) => b.append_null(),
            Builder::Int16(b) => b.append_null(),
            Builder::Int32(b) => b.append_null(),
            Builder::Int64(b) | Builder::Bit(b) => b.append_null(),
            Builder::UnsignedBigint(b) | Builder::Decimal { builder: b, .. } => b.append_null(),
            Builder::Float32(b) => b.append_null(),
            Builder::Float64(b) => b.append_null(),
            Builder::Utf8(b) | Builder::Time { builder: b, .. } => b.append_null(),
            Builder::Binary(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::Timestamp { builder, .. } => builder.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Int8(b) => Arc::new(b.finish()),
            Builder::Int16(b) => Arc::new(b.finish()),
            Builder::Int32(b) => Arc::new(b.finish()),
            Builder::Int64(b) | Builder::Bit(b) => Arc::new(b.finish()),
            Builder::UnsignedBigint(b) | Builder::Decimal { builder: b, .. } => {
                Arc::new(b.finish())
            }
            Builder::Float32(b) => Arc::new(b.finish()),
            Builder::Float64(b) => Arc::new(b.finish()),
            Builder::Utf8(b) | Builder::Time { builder: b, .. } => Arc::new(b.finish()),
            Builder::Binary(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Timestamp { builder, .. } => Arc::new(builder.finish()),
        }
    }
}

/// The binary protocol sends integers as integers; text is accepted too, as the server may send
/// some computed columns that way.
fn integer(value: &Value) -> Result<i128, String> {
    match value {
        Value::Int(i) => Ok(i128::from(*i)),
        Value::UInt(u) => Ok(i128::from(*u)),
        Value::Bytes(b) => {
            let text = utf8(b)?;
            text.trim()
                .parse()
                .map_err(|_| format!("`{}` is not an integer", shorten(text)))
        }
        other => Err(unexpected(other)),
    }
}

fn fit<T: TryFrom<i128>>(value: i128, arrow_type: &str) -> Result<T, String> {
    T::try_from(value).map_err(|_| format!("{value} does not fit {arrow_type}"))
}

fn float(value: &Value) -> Result<f64, String> {
    match value {
        Value::Float(f) => Ok(f64::from(*f)),
        Value::Double(d) => Ok(*d),
        Value::Int(i) => Ok(*i as f64),
        Value::UInt(u) => Ok(*u as f64),
        Value::Bytes(b) => {
            let text = utf8(b)?;
            text.trim()
                .parse()
                .map_err(|_| format!("`{}` is not a number", shorten(text)))
        }
        other => Err(unexpected(other)),
    }
}

fn bytes(value: &Value) -> Result<&[u8], String> {
    match value {
        Value::Bytes(b) => Ok(b),
        other => Err(unexpected(other)),
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| format!("the text is not valid UTF-8 ({e})"))
}

fn unexpected(value: &Value) -> String {
    format!("the server sent {value:?}, which does not match the column's type")
}

/// Keeps error messages readable when a value is a long text.
fn shorten(text: &str) -> String {
    const MAX: usize = 80;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

/// Exact decimal text to the unscaled integer of Decimal128(precision, scale).
fn decimal(text: &[u8], precision: u8, scale: u8) -> Result<i128, String> {
    let text = utf8(text)?;
    let too_large = || {
        format!(
            "{} does not fit Decimal128({precision}, {scale}); {CAST_HINT}",
            shorten(text)
        )
    };
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if (whole.is_empty() && fraction.is_empty())
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(format!("`{}` is not a decimal number", shorten(text)));
    }
    let scale_digits = usize::from(scale);
    let (kept, dropped) = fraction.split_at(fraction.len().min(scale_digits));
    if dropped.bytes().any(|b| b != b'0') {
        return Err(format!(
            "{} has more than {scale} decimal places",
            shorten(text)
        ));
    }
    let padding = std::iter::repeat_n(b'0', scale_digits - kept.len());
    let mut unscaled: i128 = 0;
    for digit in whole.bytes().chain(kept.bytes()).chain(padding) {
        unscaled = unscaled
            .checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(digit - b'0')))
            .ok_or_else(too_large)?;
    }
    if unscaled >= 10i128.pow(u32::from(precision)) {
        return Err(too_large());
    }
    Ok(if negative { -unscaled } else { unscaled })
}

/// `None` for the zero date, see [`extract`].
fn date_time(value: &Value) -> Result<Option<(NaiveDate, NaiveTime)>, String> {
    let Value::Date(year, month, day, hour, minute, second, micros) = *value else {
        return Err(unexpected(value));
    };
    if year == 0 && month == 0 && day == 0 {
        return Ok(None);
    }
    let date = NaiveDate::from_ymd_opt(i32::from(year), u32::from(month), u32::from(day))
        .ok_or_else(|| {
            format!("{year:04}-{month:02}-{day:02} is not a calendar date; {CAST_HINT}")
        })?;
    let time = NaiveTime::from_hms_micro_opt(
        u32::from(hour),
        u32::from(minute),
        u32::from(second),
        micros,
    )
    .ok_or_else(|| format!("{hour:02}:{minute:02}:{second:02}.{micros:06} is not a time of day"))?;
    Ok(Some((date, time)))
}

/// The text MySQL itself shows for a TIME, which can exceed a day and be negative.
fn format_time(
    negative: bool,
    days: u32,
    hours: u8,
    minutes: u8,
    seconds: u8,
    micros: u32,
    decimals: u8,
) -> String {
    let hours = u64::from(days) * 24 + u64::from(hours);
    let sign = if negative { "-" } else { "" };
    let mut text = format!("{sign}{hours:02}:{minutes:02}:{seconds:02}");
    // Above 6 the server means "not fixed" (computed columns): show microseconds when there are any.
    let digits = match decimals {
        0..=6 => usize::from(decimals),
        _ if micros != 0 => 6,
        _ => 0,
    };
    if digits > 0 {
        text.push('.');
        text.push_str(&format!("{micros:06}")[..digits]);
    }
    text
}

/// BIT(n) arrives as big-endian bytes.
fn bit(bytes: &[u8]) -> Result<i64, String> {
    if bytes.len() > 8 {
        return Err(format!(
            "a BIT value of {} bytes does not fit Int64",
            bytes.len()
        ));
    }
    let value = bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    i64::try_from(value).map_err(|_| format!("BIT value {value:#x} does not fit Int64"))
}

/// Whatever the driver or server put in the message, the password stays out of it.
fn mysql_error(redact: &Redactor, context: &str, error: mysql_async::Error) -> IoError {
    use mysql_async::{DriverError, Error};
    match error {
        Error::Server(e) => IoError::remote(
            SYSTEM,
            redact.redact(&format!(
                "{context}: error {} ({}): {}",
                e.code, e.state, e.message
            )),
        ),
        Error::Driver(DriverError::StmtParamsMismatch { required, .. }) => {
            IoError::invalid(format!(
                "the MySQL query has {required} `?` placeholder(s), but extract passes no parameters"
            ))
        }
        // The driver's own text says "Input/output error" twice.
        Error::Io(mysql_async::IoError::Io(e)) => {
            IoError::remote(SYSTEM, redact.redact(&format!("{context}: {e}")))
        }
        Error::Url(e) => IoError::invalid(redact.redact(&format!("MySQL URI is not valid: {e}"))),
        other => IoError::remote(SYSTEM, redact.redact(&format!("{context}: {other}"))),
    }
}
