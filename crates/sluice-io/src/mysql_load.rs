//! Loading into MySQL and MariaDB.
//!
//! Schema changes come first: MySQL commits implicitly at every DDL statement, so `CREATE
//! TABLE` and `ALTER TABLE` cannot be part of the load's transaction. Then one transaction
//! holds the mode's delete and the rows, which stream from the Arrow batches into `LOAD DATA
//! LOCAL INFILE` (tab-separated text written batch by batch, never a whole file) when the
//! server allows it (`local_infile`), and into multi-row `INSERT`s otherwise. A load that fails
//! rolls its rows back and drops a table it created; columns it added stay (documented).
//!
//! Modes: `append`; `replace` (DELETE, not TRUNCATE, which would commit); `replace_partition`;
//! `merge` on a PRIMARY KEY or UNIQUE index over exactly the keys (`ON DUPLICATE KEY UPDATE`:
//! matched rows are updated in place; LOAD DATA goes through a temporary table for it). Values are written as MySQL reads them in a
//! UTC session: booleans 1/0, dates `YYYY-MM-DD`, timestamps `YYYY-MM-DD HH:MM:SS.ffffff`,
//! decimals exactly, binary as hexadecimal through `UNHEX`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Field, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use bytes::Bytes;
use futures::StreamExt;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use sluice_core::sql::Dialect;

use crate::load::LoadMode;
use crate::schema::Plan;
use crate::{BatchStream, IoError};

const SYSTEM: &str = "MySQL";
const MY: Dialect = Dialect::MySql;

/// A multi-row INSERT is cut at about this many bytes (well under the default 16 MiB
/// `max_allowed_packet` of MariaDB, 64 MiB of MySQL 8).
const INSERT_BYTES: usize = 4 * 1024 * 1024;

fn failed(context: &str, e: mysql_async::Error) -> IoError {
    match e {
        mysql_async::Error::Server(s) => IoError::remote(
            SYSTEM,
            format!("{context}: error {} ({}): {}", s.code, s.state, s.message),
        ),
        other => IoError::remote(SYSTEM, format!("{context}: {other}")),
    }
}

/// The column type a new column of `dt` gets. `key`: the column is part of a merge key, which
/// MySQL can index only with a bounded length.
pub fn mysql_type(dt: &DataType, key: bool) -> Result<String, IoError> {
    let name = match dt {
        DataType::Boolean => "BOOLEAN",
        DataType::Int8 => "TINYINT",
        DataType::Int16 | DataType::UInt8 => "SMALLINT",
        DataType::Int32 | DataType::UInt16 => "INT",
        DataType::Int64 | DataType::UInt32 => "BIGINT",
        DataType::UInt64 => "BIGINT UNSIGNED",
        DataType::Float16 | DataType::Float32 => "FLOAT",
        DataType::Float64 => "DOUBLE",
        DataType::Decimal128(p, s) => return Ok(format!("DECIMAL({p},{s})")),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View if key => "VARCHAR(255)",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "LONGTEXT",
        DataType::Date32 => "DATE",
        DataType::Timestamp(_, _) => "DATETIME(6)",
        DataType::Binary | DataType::LargeBinary if key => "VARBINARY(255)",
        DataType::Binary | DataType::LargeBinary => "LONGBLOB",
        other => {
            return Err(IoError::invalid(format!(
                "Arrow type {other} has no MySQL column type in sluice; cast it first, e.g. to \
                 text"
            )));
        }
    };
    Ok(name.to_string())
}

/// The Arrow type a MySQL column reads as (information_schema's DATA_TYPE and COLUMN_TYPE).
fn arrow_type(data_type: &str, column_type: &str, precision: u64, scale: u64) -> DataType {
    let unsigned = column_type.contains("unsigned");
    match data_type {
        "tinyint" if column_type.starts_with("tinyint(1)") => DataType::Boolean,
        "tinyint" if unsigned => DataType::Int16,
        "tinyint" => DataType::Int8,
        "smallint" if unsigned => DataType::Int32,
        "smallint" => DataType::Int16,
        "mediumint" | "int" if unsigned => DataType::Int64,
        "mediumint" | "int" => DataType::Int32,
        "bigint" if unsigned => DataType::Decimal128(20, 0),
        "bigint" => DataType::Int64,
        "float" => DataType::Float32,
        "double" => DataType::Float64,
        "decimal" => DataType::Decimal128(
            u8::try_from(precision.min(38)).unwrap_or(38),
            i8::try_from(scale.min(38)).unwrap_or(0),
        ),
        "date" => DataType::Date32,
        "datetime" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            DataType::Binary
        }
        _ => DataType::Utf8,
    }
}

/// A row of information_schema.COLUMNS: name, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION,
/// NUMERIC_SCALE, IS_NULLABLE.
type CatalogColumn = (String, String, String, Option<u64>, Option<u64>, String);

/// The columns of `database.table`, or None when it does not exist.
pub async fn table_fields(
    conn: &mut Conn,
    database: &str,
    table: &str,
) -> Result<Option<Vec<Field>>, IoError> {
    let rows: Vec<CatalogColumn> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, \
             IS_NULLABLE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND \
             TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (database, table),
        )
        .await
        .map_err(|e| failed(&format!("reading the columns of {database}.{table}"), e))?;
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        rows.into_iter()
            .map(
                |(name, data_type, column_type, precision, scale, nullable)| {
                    let dt = arrow_type(
                        &data_type.to_ascii_lowercase(),
                        &column_type.to_ascii_lowercase(),
                        precision.unwrap_or(0),
                        scale.unwrap_or(0),
                    );
                    Field::new(name, dt, nullable == "YES")
                },
            )
            .collect(),
    ))
}

/// How rows travel to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// `LOAD DATA LOCAL INFILE` when the server allows it (`local_infile`), else INSERT.
    Best,
    /// Multi-row INSERTs.
    Insert,
}

/// Loads `stream` (holding exactly `plan.insert` columns) into `database.table` on the server
/// at `uri`; returns the rows loaded.
pub async fn load_mysql(
    uri: &str,
    (database, table): (&str, &str),
    plan: &Plan,
    mode: &LoadMode,
    stream: BatchStream,
    transfer: Transfer,
) -> Result<u64, IoError> {
    let (mut conn, target) = crate::mysql::connect(uri).await?;
    let mut created = false;
    let result = load_on(
        &mut conn,
        (database, table),
        (plan, mode, transfer),
        stream,
        &mut created,
    )
    .await;
    let result = match result {
        Ok(rows) => Ok(rows),
        Err(e) => {
            let _ = conn.query_drop("ROLLBACK").await;
            // Only a table this load created: never one another writer made meanwhile.
            if created {
                let name = qualified(database, table);
                let _ = conn
                    .query_drop(format!("DROP TABLE IF EXISTS {name}"))
                    .await;
            }
            Err(e)
        }
    };
    let _ = conn.disconnect().await;
    result.map_err(|e| e.redacted(target.redactor()))
}

fn qualified(database: &str, table: &str) -> String {
    format!("{}.{}", MY.quote_ident(database), MY.quote_ident(table))
}

async fn load_on(
    conn: &mut Conn,
    (database, table): (&str, &str),
    (plan, mode, transfer): (&Plan, &LoadMode, Transfer),
    stream: BatchStream,
    created: &mut bool,
) -> Result<u64, IoError> {
    let target = qualified(database, table);
    let keys: &[String] = match mode {
        LoadMode::Merge { keys } => keys,
        _ => &[],
    };
    apply_schema_changes(conn, (database, &target), plan, keys, created).await?;
    if !keys.is_empty() {
        require_unique_key(conn, (database, table), keys).await?;
    }
    let local_infile: Option<i64> = conn
        .query_first("SELECT @@local_infile")
        .await
        .map_err(|e| failed("reading local_infile", e))?;
    let by_infile = transfer == Transfer::Best && local_infile == Some(1);
    // A merge through LOAD DATA goes via a temporary table (created outside the transaction;
    // temporary tables do not commit implicitly, but keep the order obvious): LOAD DATA's own
    // REPLACE would delete and re-insert rows, resetting other columns and firing cascades.
    let staged = format!(
        "{}.{}",
        MY.quote_ident(database),
        MY.quote_ident(&format!("__sluice_merge_{}", std::process::id()))
    );
    if by_infile && !keys.is_empty() {
        let sql = format!("CREATE TEMPORARY TABLE {staged} LIKE {target}");
        conn.query_drop(&sql).await.map_err(|e| failed(&sql, e))?;
    }
    conn.query_drop("START TRANSACTION")
        .await
        .map_err(|e| failed("START TRANSACTION", e))?;
    if let Some(sql) = mode_delete(&target, mode)? {
        conn.query_drop(&sql).await.map_err(|e| failed(&sql, e))?;
    }
    let columns = &plan.insert;
    let rows = match (by_infile, keys.is_empty()) {
        (true, true) => load_data(conn, &target, columns, stream).await?,
        (true, false) => {
            let rows = load_data(conn, &staged, columns, stream).await?;
            let names: Vec<String> = columns.iter().map(|c| MY.quote_ident(c)).collect();
            let list = names.join(", ");
            let sql = format!(
                "INSERT INTO {target} ({list}) SELECT {list} FROM {staged}{}",
                on_duplicate(&names)
            );
            conn.query_drop(&sql)
                .await
                .map_err(|e| failed("merging the rows", e))?;
            rows
        }
        (false, plain) => insert_rows(conn, &target, columns, plain, stream).await?,
    };
    conn.query_drop("COMMIT")
        .await
        .map_err(|e| failed("COMMIT", e))?;
    if by_infile && !keys.is_empty() {
        let _ = conn
            .query_drop(format!("DROP TEMPORARY TABLE {staged}"))
            .await;
    }
    Ok(rows)
}

/// ` ON DUPLICATE KEY UPDATE c = VALUES(c), …`: a merge updates the matched row in place.
fn on_duplicate(names: &[String]) -> String {
    let updates: Vec<String> = names.iter().map(|n| format!("{n} = VALUES({n})")).collect();
    format!(" ON DUPLICATE KEY UPDATE {}", updates.join(", "))
}

/// The mode's delete, inside the transaction.
fn mode_delete(target: &str, mode: &LoadMode) -> Result<Option<String>, IoError> {
    Ok(match mode {
        LoadMode::Replace => Some(format!("DELETE FROM {target}")),
        LoadMode::ReplacePartition { column, values } => {
            let literals = values
                .iter()
                .map(|v| MY.text(v))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| IoError::invalid(e.to_string()))?;
            let list = MY
                .list(&literals)
                .map_err(|e| IoError::invalid(e.to_string()))?;
            Some(format!(
                "DELETE FROM {target} WHERE {} IN {list}",
                MY.quote_ident(column)
            ))
        }
        LoadMode::Append | LoadMode::Merge { .. } => None,
    })
}

/// Runs the plan's DDL (each statement commits). `created` is set once this load's CREATE
/// TABLE succeeded. The database is created only when it is missing: CREATE DATABASE needs a
/// privilege a loader may not have, even with IF NOT EXISTS.
async fn apply_schema_changes(
    conn: &mut Conn,
    (database, target): (&str, &str),
    plan: &Plan,
    keys: &[String],
    created: &mut bool,
) -> Result<(), IoError> {
    if plan.create.is_some() {
        let exists: Option<String> = conn
            .exec_first(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                (database,),
            )
            .await
            .map_err(|e| failed("looking for the database", e))?;
        if exists.is_none() {
            let sql = format!("CREATE DATABASE IF NOT EXISTS {}", MY.quote_ident(database));
            conn.query_drop(&sql).await.map_err(|e| failed(&sql, e))?;
        }
    }
    for (i, statement) in schema_changes(target, plan, keys)?.iter().enumerate() {
        conn.query_drop(statement)
            .await
            .map_err(|e| failed(statement, e))?;
        if i == 0 && plan.create.is_some() {
            *created = true;
        }
    }
    Ok(())
}

/// CREATE TABLE (first, when the plan creates the table), ADD COLUMN, MODIFY COLUMN.
fn schema_changes(target: &str, plan: &Plan, keys: &[String]) -> Result<Vec<String>, IoError> {
    let mut ddl = Vec::new();
    if let Some(columns) = &plan.create {
        let mut defs = columns
            .iter()
            .map(|f| {
                let key = keys.contains(f.name());
                Ok(format!(
                    "{} {}",
                    MY.quote_ident(f.name()),
                    mysql_type(f.data_type(), key)?
                ))
            })
            .collect::<Result<Vec<_>, IoError>>()?;
        if !keys.is_empty() {
            let key_list: Vec<String> = keys.iter().map(|k| MY.quote_ident(k)).collect();
            defs.push(format!("PRIMARY KEY ({})", key_list.join(", ")));
        }
        ddl.push(format!("CREATE TABLE {target} ({})", defs.join(", ")));
    }
    for f in &plan.add {
        ddl.push(format!(
            "ALTER TABLE {target} ADD COLUMN {} {}",
            MY.quote_ident(f.name()),
            mysql_type(f.data_type(), false)?
        ));
    }
    for (column, _, to) in &plan.widen {
        ddl.push(format!(
            "ALTER TABLE {target} MODIFY COLUMN {} {}",
            MY.quote_ident(column),
            mysql_type(to, keys.contains(column))?
        ));
    }
    Ok(ddl)
}

/// A merge needs the server to find rows by the keys: a PRIMARY KEY or UNIQUE index on them.
async fn require_unique_key(
    conn: &mut Conn,
    (database, table): (&str, &str),
    keys: &[String],
) -> Result<(), IoError> {
    let rows: Vec<(String, String)> = conn
        .exec(
            "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS WHERE \
             TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 ORDER BY INDEX_NAME, \
             SEQ_IN_INDEX",
            (database, table),
        )
        .await
        .map_err(|e| failed("reading the table's unique indexes", e))?;
    // Column names are case-insensitive in MySQL.
    let mut wanted: Vec<String> = keys.iter().map(|k| k.to_lowercase()).collect();
    wanted.sort_unstable();
    let mut indexes: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (index, column) in &rows {
        indexes
            .entry(index)
            .or_default()
            .push(column.to_lowercase());
    }
    let found = indexes.values_mut().any(|columns| {
        columns.sort_unstable();
        *columns == wanted
    });
    if found {
        return Ok(());
    }
    Err(IoError::invalid(format!(
        "merge into {database}.{table} needs a PRIMARY KEY or UNIQUE index on exactly ({}); \
         MySQL finds the rows to replace through it. Add one, e.g. `ALTER TABLE {database}.{table} \
         ADD UNIQUE ({})`",
        keys.join(", "),
        keys.join(", ")
    )))
}

/// One cell as MySQL reads it in text; None is NULL. Binary is hexadecimal (see `UNHEX`).
fn cell(array: &ArrayRef, row: usize) -> Result<Option<String>, IoError> {
    if array.is_null(row) {
        return Ok(None);
    }
    let text = match array.data_type() {
        DataType::Boolean => if array.as_boolean().value(row) {
            "1"
        } else {
            "0"
        }
        .to_string(),
        DataType::Int8 => array.as_primitive::<Int8Type>().value(row).to_string(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(row).to_string(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(row).to_string(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(row).to_string(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(row).to_string(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(row).to_string(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(row).to_string(),
        DataType::Float32 => finite(f64::from(array.as_primitive::<Float32Type>().value(row)))?,
        DataType::Float64 => finite(array.as_primitive::<Float64Type>().value(row))?,
        DataType::Decimal128(_, _) => array.as_primitive::<Decimal128Type>().value_as_string(row),
        DataType::Date32 => array
            .as_primitive::<Date32Type>()
            .value_as_date(row)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default(),
        DataType::Timestamp(unit, _) => {
            let at = match unit {
                TimeUnit::Second => array
                    .as_primitive::<TimestampSecondType>()
                    .value_as_datetime(row),
                TimeUnit::Millisecond => array
                    .as_primitive::<TimestampMillisecondType>()
                    .value_as_datetime(row),
                TimeUnit::Microsecond => array
                    .as_primitive::<TimestampMicrosecondType>()
                    .value_as_datetime(row),
                TimeUnit::Nanosecond => array
                    .as_primitive::<TimestampNanosecondType>()
                    .value_as_datetime(row),
            };
            at.map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
                .unwrap_or_default()
        }
        DataType::Utf8 => array.as_string::<i32>().value(row).to_string(),
        DataType::LargeUtf8 => array.as_string::<i64>().value(row).to_string(),
        DataType::Utf8View => array.as_string_view().value(row).to_string(),
        DataType::Binary => hex(array.as_binary::<i32>().value(row)),
        DataType::LargeBinary => hex(array.as_binary::<i64>().value(row)),
        other => {
            return Err(IoError::invalid(format!(
                "Arrow type {other} cannot be loaded into MySQL by sluice; cast it first"
            )));
        }
    };
    Ok(Some(text))
}

fn finite(v: f64) -> Result<String, IoError> {
    if v.is_finite() {
        Ok(v.to_string())
    } else {
        Err(IoError::invalid(format!(
            "the value {v} cannot be stored in MySQL (no infinity or NaN in FLOAT/DOUBLE)"
        )))
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02X}");
    }
    out
}

fn is_binary(dt: &DataType) -> bool {
    matches!(dt, DataType::Binary | DataType::LargeBinary)
}

/// LOAD DATA's text for one batch: tab-separated, `\N` for NULL, `\` escapes.
fn infile_chunk(batch: &RecordBatch) -> Result<Bytes, IoError> {
    let mut out = Vec::with_capacity(batch.num_rows() * batch.num_columns() * 12);
    for row in 0..batch.num_rows() {
        for (i, column) in batch.columns().iter().enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            match cell(column, row)? {
                None => out.extend_from_slice(b"\\N"),
                Some(text) => {
                    for b in text.bytes() {
                        match b {
                            b'\\' => out.extend_from_slice(b"\\\\"),
                            b'\t' => out.extend_from_slice(b"\\t"),
                            b'\n' => out.extend_from_slice(b"\\n"),
                            b'\r' => out.extend_from_slice(b"\\r"),
                            0 => out.extend_from_slice(b"\\0"),
                            other => out.push(other),
                        }
                    }
                }
            }
        }
        out.push(b'\n');
    }
    Ok(Bytes::from(out))
}

async fn load_data(
    conn: &mut Conn,
    target: &str,
    columns: &[String],
    stream: BatchStream,
) -> Result<u64, IoError> {
    let mut stream = stream.peekable();
    // The column list comes from the first batch's types (binary columns go through UNHEX).
    let Some(first) = std::pin::Pin::new(&mut stream).peek().await else {
        return Ok(0);
    };
    let binary: Vec<bool> = match first {
        Ok(batch) => batch
            .schema()
            .fields()
            .iter()
            .map(|f| is_binary(f.data_type()))
            .collect(),
        Err(e) => return Err(IoError::invalid(e.to_string())),
    };
    let rows = Arc::new(AtomicU64::new(0));
    let error: Arc<std::sync::Mutex<Option<IoError>>> = Arc::default();
    let (counted, failed_with) = (rows.clone(), error.clone());
    let data = stream
        .map(move |batch| {
            let encoded = batch.and_then(|b| {
                counted.fetch_add(b.num_rows() as u64, Ordering::Relaxed);
                infile_chunk(&b)
            });
            encoded.map_err(|e| {
                let message = e.to_string();
                *failed_with.lock().expect("not poisoned") = Some(e);
                std::io::Error::other(message)
            })
        })
        .boxed();
    // The handler must be Sync; the stream is taken out once, when the server asks for it.
    let data = std::sync::Mutex::new(Some(data));
    conn.set_infile_handler(async move {
        data.lock()
            .expect("not poisoned")
            .take()
            .ok_or_else(|| mysql_async::Error::Other("the rows were already sent".into()))
    });
    let mut targets = Vec::with_capacity(columns.len());
    let mut sets = Vec::new();
    for (i, (name, binary)) in columns.iter().zip(&binary).enumerate() {
        if *binary {
            targets.push(format!("@v{i}"));
            sets.push(format!("{} = UNHEX(@v{i})", MY.quote_ident(name)));
        } else {
            targets.push(MY.quote_ident(name));
        }
    }
    let sql = format!(
        "LOAD DATA LOCAL INFILE 'sluice-rows' INTO TABLE {target} CHARACTER SET utf8mb4 \
         FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({}){}",
        targets.join(", "),
        if sets.is_empty() {
            String::new()
        } else {
            format!(" SET {}", sets.join(", "))
        }
    );
    let outcome = conn.query_drop(&sql).await;
    if let Some(e) = error.lock().expect("not poisoned").take() {
        return Err(e);
    }
    outcome.map_err(|e| failed("LOAD DATA LOCAL INFILE", e))?;
    refuse_warnings(conn).await?;
    Ok(rows.load(Ordering::Relaxed))
}

/// Strict mode turns bad values into errors; a server without it warns and truncates: then the
/// load fails (and rolls back) rather than keep changed values.
async fn refuse_warnings(conn: &mut Conn) -> Result<(), IoError> {
    if conn.get_warnings() == 0 {
        return Ok(());
    }
    let warnings: Vec<(String, u32, String)> = conn
        .query("SHOW WARNINGS LIMIT 3")
        .await
        .map_err(|e| failed("SHOW WARNINGS", e))?;
    let text: Vec<String> = warnings.into_iter().map(|(_, _, m)| m).collect();
    Err(IoError::invalid(format!(
        "MySQL changed values while loading (its sql_mode is not strict): {}; enable \
         STRICT_TRANS_TABLES or fix the data",
        text.join("; ")
    )))
}

/// A literal for a cell in an INSERT.
fn literal(array: &ArrayRef, row: usize) -> Result<String, IoError> {
    let Some(text) = cell(array, row)? else {
        return Ok("NULL".into());
    };
    Ok(match array.data_type() {
        DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal128(_, _) => text,
        dt if is_binary(dt) => format!("X'{text}'"),
        _ => MY
            .text(&text)
            .map_err(|e| IoError::invalid(e.to_string()))?,
    })
}

async fn insert_rows(
    conn: &mut Conn,
    target: &str,
    columns: &[String],
    plain: bool,
    mut stream: BatchStream,
) -> Result<u64, IoError> {
    let names: Vec<String> = columns.iter().map(|c| MY.quote_ident(c)).collect();
    let head = format!("INSERT INTO {target} ({}) VALUES ", names.join(", "));
    let tail = if plain {
        String::new()
    } else {
        on_duplicate(&names)
    };
    let mut rows = 0u64;
    let mut sql = String::new();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        for row in 0..batch.num_rows() {
            sql.push_str(if sql.is_empty() { &head } else { ", " });
            sql.push('(');
            for (i, column) in batch.columns().iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&literal(column, row)?);
            }
            sql.push(')');
            rows += 1;
            if sql.len() >= INSERT_BYTES {
                sql.push_str(&tail);
                conn.query_drop(&sql)
                    .await
                    .map_err(|e| failed("INSERT", e))?;
                refuse_warnings(conn).await?;
                sql.clear();
            }
        }
    }
    if !sql.is_empty() {
        sql.push_str(&tail);
        conn.query_drop(&sql)
            .await
            .map_err(|e| failed("INSERT", e))?;
        refuse_warnings(conn).await?;
    }
    Ok(rows)
}
