//! Loads into a DuckDB table: schema changes, the mode's delete and the insert all happen in
//! one transaction, so a load that fails for any reason leaves the table exactly as it was,
//! and readers on other connections see the old rows until the new ones are all there.

use std::path::PathBuf;

use duckdb::arrow::datatypes::{DataType, Field, TimeUnit};
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::{Connection, params_from_iter};
use sluice_core::sql::Dialect;

use crate::{WarehouseError, sql_error};

const DUCK: Dialect = Dialect::DuckDb;

/// Where the rows come from.
pub enum Incoming<I: Iterator<Item = Result<RecordBatch, String>>> {
    /// Local Parquet files, scanned by DuckDB itself (its fastest path).
    Parquet(Vec<PathBuf>),
    /// Record batches, appended with DuckDB's Arrow appender.
    Batches(I),
}

pub enum Mode<'a> {
    Append,
    /// Every row is replaced.
    Replace,
    /// Rows whose `column` holds one of `values` are replaced.
    ReplacePartition {
        column: &'a str,
        values: &'a [String],
    },
    /// Rows with the same key columns are replaced, others appended.
    Merge {
        keys: &'a [String],
    },
}

pub struct TableLoad<'a> {
    pub schema: &'a str,
    pub table: &'a str,
    /// Create the table with these columns (it does not exist yet).
    pub create: Option<&'a [Field]>,
    pub add: &'a [Field],
    /// (column, new type)
    pub widen: &'a [(String, DataType)],
    /// The incoming columns to insert, in the incoming order; others are not loaded.
    pub insert: &'a [String],
    /// Every incoming column, in order (what the Parquet files or batches hold).
    pub incoming: &'a [String],
    pub mode: Mode<'a>,
}

/// The DuckDB type of an Arrow type.
pub fn duck_type(dt: &DataType) -> Result<String, WarehouseError> {
    Ok(match dt {
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INTEGER".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 => "UTINYINT".into(),
        DataType::UInt16 => "USMALLINT".into(),
        DataType::UInt32 => "UINTEGER".into(),
        DataType::UInt64 => "UBIGINT".into(),
        DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BLOB".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Timestamp(_, None) => "TIMESTAMP".into(),
        DataType::Timestamp(_, Some(_)) => "TIMESTAMPTZ".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        other => {
            return Err(WarehouseError::Sql(format!(
                "columns of type {other} cannot be loaded into DuckDB; cast it in the extract query"
            )));
        }
    })
}

/// The Arrow type of a DuckDB column type (as `information_schema` spells it).
pub fn arrow_type(duck: &str) -> Option<DataType> {
    let t = duck.to_ascii_uppercase();
    Some(match t.as_str() {
        "BOOLEAN" => DataType::Boolean,
        "TINYINT" => DataType::Int8,
        "SMALLINT" => DataType::Int16,
        "INTEGER" => DataType::Int32,
        "BIGINT" => DataType::Int64,
        "UTINYINT" => DataType::UInt8,
        "USMALLINT" => DataType::UInt16,
        "UINTEGER" => DataType::UInt32,
        "UBIGINT" => DataType::UInt64,
        "FLOAT" | "REAL" => DataType::Float32,
        "DOUBLE" => DataType::Float64,
        "VARCHAR" => DataType::Utf8,
        "BLOB" => DataType::Binary,
        "DATE" => DataType::Date32,
        "TIMESTAMP" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "TIMESTAMP WITH TIME ZONE" | "TIMESTAMPTZ" => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        _ => {
            let args = t.strip_prefix("DECIMAL(")?.strip_suffix(')')?;
            let (p, s) = args.split_once(',')?;
            DataType::Decimal128(p.trim().parse().ok()?, s.trim().parse().ok()?)
        }
    })
}

/// The columns of `schema.table` (`None` when there is no such table). A column of a type
/// Sluice does not map is reported with the Null type, so it counts as a difference.
pub fn table_fields(
    conn: &Connection,
    schema: &str,
    table: &str,
) -> Result<Option<Vec<Field>>, WarehouseError> {
    let mut stmt = conn
        .prepare(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns
             WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        )
        .map_err(sql_error)?;
    let fields: Vec<Field> = stmt
        .query_map([schema, table], |r| {
            let name: String = r.get(0)?;
            let ty: String = r.get(1)?;
            let nullable: String = r.get(2)?;
            Ok(Field::new(
                name,
                arrow_type(&ty).unwrap_or(DataType::Null),
                nullable == "YES",
            ))
        })
        .map_err(sql_error)?
        .collect::<Result<_, _>>()
        .map_err(sql_error)?;
    Ok((!fields.is_empty()).then_some(fields))
}

/// Runs a load in one transaction; returns the rows inserted.
pub fn load_table<I>(
    conn: &mut Connection,
    spec: &TableLoad<'_>,
    incoming: Incoming<I>,
) -> Result<u64, WarehouseError>
where
    I: Iterator<Item = Result<RecordBatch, String>>,
{
    let target = format!(
        "{}.{}",
        DUCK.quote_ident(spec.schema),
        DUCK.quote_ident(spec.table)
    );
    let tx = conn.transaction().map_err(sql_error)?;
    tx.execute_batch(&format!(
        "CREATE SCHEMA IF NOT EXISTS {}",
        DUCK.quote_ident(spec.schema)
    ))
    .map_err(sql_error)?;
    if let Some(columns) = spec.create {
        let defs = columns
            .iter()
            .map(|f| {
                Ok(format!(
                    "{} {}",
                    DUCK.quote_ident(f.name()),
                    duck_type(f.data_type())?
                ))
            })
            .collect::<Result<Vec<_>, WarehouseError>>()?;
        tx.execute_batch(&format!("CREATE TABLE {target} ({})", defs.join(", ")))
            .map_err(sql_error)?;
    }
    for f in spec.add {
        tx.execute_batch(&format!(
            "ALTER TABLE {target} ADD COLUMN {} {}",
            DUCK.quote_ident(f.name()),
            duck_type(f.data_type())?
        ))
        .map_err(sql_error)?;
    }
    for (column, to) in spec.widen {
        tx.execute_batch(&format!(
            "ALTER TABLE {target} ALTER COLUMN {} TYPE {}",
            DUCK.quote_ident(column),
            duck_type(to)?
        ))
        .map_err(sql_error)?;
    }

    // The rows to insert, as a relation: the Parquet scan, or a temporary table the batches are
    // appended to.
    let columns = spec
        .insert
        .iter()
        .map(|c| DUCK.quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let source = match incoming {
        Incoming::Parquet(files) => {
            let list = files
                .iter()
                .map(|f| DUCK.text(&f.to_string_lossy()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| WarehouseError::Sql(e.to_string()))?
                .join(", ");
            format!("read_parquet([{list}])")
        }
        Incoming::Batches(batches) => {
            append_batches(&tx, spec, batches)?;
            "temp.main.__sluice_incoming".to_string()
        }
    };

    match &spec.mode {
        Mode::Append => {}
        Mode::Replace => {
            tx.execute_batch(&format!("DELETE FROM {target}"))
                .map_err(sql_error)?;
        }
        Mode::ReplacePartition { column, values } => {
            let ty: String = tx
                .query_row(
                    "SELECT data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ? AND column_name = ?",
                    [spec.schema, spec.table, column],
                    |r| r.get(0),
                )
                .map_err(|_| {
                    WarehouseError::Sql(format!("the partition column `{column}` is not a column of {}.{}", spec.schema, spec.table))
                })?;
            let marks = vec![format!("CAST(? AS {ty})"); values.len()].join(", ");
            tx.execute(
                &format!(
                    "DELETE FROM {target} WHERE {} IN ({marks})",
                    DUCK.quote_ident(column)
                ),
                params_from_iter(values.iter()),
            )
            .map_err(sql_error)?;
        }
        Mode::Merge { keys } => {
            let matches = keys
                .iter()
                .map(|k| format!("t.{0} IS NOT DISTINCT FROM s.{0}", DUCK.quote_ident(k)))
                .collect::<Vec<_>>()
                .join(" AND ");
            tx.execute_batch(&format!(
                "DELETE FROM {target} AS t WHERE EXISTS (SELECT 1 FROM {source} AS s WHERE {matches})"
            ))
            .map_err(sql_error)?;
        }
    }
    let rows = tx
        .execute(
            &format!("INSERT INTO {target} ({columns}) SELECT {columns} FROM {source}"),
            [],
        )
        .map_err(sql_error)? as u64;
    if source.starts_with("temp.") {
        tx.execute_batch("DROP TABLE temp.main.__sluice_incoming")
            .map_err(sql_error)?;
    }
    tx.commit().map_err(sql_error)?;
    Ok(rows)
}

fn append_batches<I>(
    tx: &duckdb::Transaction<'_>,
    spec: &TableLoad<'_>,
    batches: I,
) -> Result<(), WarehouseError>
where
    I: Iterator<Item = Result<RecordBatch, String>>,
{
    let mut batches = batches.peekable();
    // The temporary table takes the incoming batches' own types; the INSERT casts.
    let first_schema = match batches.peek() {
        Some(Ok(b)) => Some(b.schema()),
        _ => None,
    };
    let defs = match &first_schema {
        Some(schema) => schema
            .fields()
            .iter()
            .map(|f| {
                Ok(format!(
                    "{} {}",
                    DUCK.quote_ident(f.name()),
                    duck_type(f.data_type())?
                ))
            })
            .collect::<Result<Vec<_>, WarehouseError>>()?,
        None => spec
            .incoming
            .iter()
            .map(|c| format!("{} VARCHAR", DUCK.quote_ident(c)))
            .collect(),
    };
    tx.execute_batch(&format!(
        "CREATE TEMP TABLE __sluice_incoming ({})",
        defs.join(", ")
    ))
    .map_err(sql_error)?;
    let mut appender = tx
        .appender_to_catalog_and_db("__sluice_incoming", "temp", "main")
        .map_err(sql_error)?;
    for batch in batches {
        let batch = batch.map_err(WarehouseError::Sql)?;
        appender.append_record_batch(batch).map_err(sql_error)?;
    }
    appender.flush().map_err(sql_error)?;
    Ok(())
}
