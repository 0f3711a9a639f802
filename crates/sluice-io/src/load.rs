//! Loading into PostgreSQL, and what every sink shares: load modes, column projection and the
//! incremental high-water mark.
//!
//! A PostgreSQL load is one transaction: schema changes (DDL is transactional there), the
//! mode's delete, and one binary COPY. Readers see the old rows until it commits, and a load
//! that fails leaves the table exactly as it was.

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use futures::StreamExt;

use sluice_core::sql::Dialect;

use crate::postgres::{self, pg_error};
use crate::schema::Plan;
use crate::{BatchStream, IoError};

/// Loads here go to PostgreSQL.
const PG: Dialect = Dialect::Postgres;

#[derive(Debug, Clone, PartialEq)]
pub enum LoadMode {
    Append,
    /// Every row is replaced, atomically.
    Replace,
    /// Rows whose `column` holds one of `values` are replaced.
    ReplacePartition {
        column: String,
        values: Vec<String>,
    },
    /// Upsert: rows with the same `keys` are replaced, others appended.
    Merge {
        keys: Vec<String>,
    },
}

impl LoadMode {
    pub const NAMES: &'static [&'static str] = &["append", "replace", "replace_partition", "merge"];
}

/// Keeps only `columns` (in that order) of every batch.
pub fn project(
    schema: &SchemaRef,
    columns: &[String],
    stream: BatchStream,
) -> Result<(SchemaRef, BatchStream), IoError> {
    let indices: Vec<usize> = columns
        .iter()
        .map(|c| schema.index_of(c))
        .collect::<Result<_, _>>()?;
    if indices.iter().copied().eq(0..schema.fields().len()) {
        return Ok((schema.clone(), stream));
    }
    let projected = Arc::new(schema.project(&indices)?);
    let out = projected.clone();
    let stream = stream.map(move |b| Ok(b?.project(&indices)?));
    Ok((out, stream.boxed()))
}

/// Loads `stream` (holding exactly `plan.insert` columns) into `schema.table` of a PostgreSQL
/// database.
pub async fn load_postgres(
    uri: &str,
    schema: &str,
    table: &str,
    plan: &Plan,
    mode: &LoadMode,
    stream: BatchStream,
) -> Result<u64, IoError> {
    let mut client = postgres::connect(uri).await?;
    let tx = client
        .transaction()
        .await
        .map_err(|e| pg_error("BEGIN", e))?;
    let target = format!("{}.{}", PG.quote_ident(schema), PG.quote_ident(table));
    let mut ddl = vec![format!(
        "CREATE SCHEMA IF NOT EXISTS {}",
        PG.quote_ident(schema)
    )];
    if let Some(columns) = &plan.create {
        ddl.push(format!("CREATE TABLE {target} ({})", column_defs(columns)?));
    }
    for f in &plan.add {
        ddl.push(format!(
            "ALTER TABLE {target} ADD COLUMN {} {}",
            PG.quote_ident(f.name()),
            postgres::pg_type(f.data_type())?
        ));
    }
    for (column, _, to) in &plan.widen {
        let ty = postgres::pg_type(to)?;
        ddl.push(format!(
            "ALTER TABLE {target} ALTER COLUMN {0} TYPE {ty} USING {0}::{ty}",
            PG.quote_ident(column)
        ));
    }
    for statement in &ddl {
        tx.batch_execute(statement)
            .await
            .map_err(|e| pg_error(statement, e))?;
    }
    let rows = match mode {
        LoadMode::Append => postgres::copy_in(&tx, schema, table, &plan.insert, stream).await?,
        LoadMode::Replace => {
            // TRUNCATE inside the transaction: readers wait for the commit and then see the
            // new rows; nobody sees an empty table.
            let sql = format!("TRUNCATE {target}");
            tx.batch_execute(&sql)
                .await
                .map_err(|e| pg_error(&sql, e))?;
            postgres::copy_in(&tx, schema, table, &plan.insert, stream).await?
        }
        LoadMode::ReplacePartition { column, values } => {
            let sql = format!(
                "DELETE FROM {target} WHERE {col} = ANY(CAST($1::text[] AS {ty}[]))",
                col = PG.quote_ident(column),
                ty = column_type(&tx, schema, table, column).await?
            );
            tx.execute(&sql, &[values])
                .await
                .map_err(|e| pg_error(&sql, e))?;
            postgres::copy_in(&tx, schema, table, &plan.insert, stream).await?
        }
        LoadMode::Merge { keys } => {
            // Rows land in a staging table created inside the transaction (so nobody else ever
            // sees it), then replace their matches in one statement each.
            let staging = format!("__sluice_merge_{}", std::process::id());
            let staged = format!("{}.{}", PG.quote_ident(schema), PG.quote_ident(&staging));
            let sql = format!("CREATE TABLE {staged} (LIKE {target})");
            tx.batch_execute(&sql)
                .await
                .map_err(|e| pg_error(&sql, e))?;
            let rows = postgres::copy_in(&tx, schema, &staging, &plan.insert, stream).await?;
            let matches = keys
                .iter()
                .map(|k| format!("t.{0} IS NOT DISTINCT FROM s.{0}", PG.quote_ident(k)))
                .collect::<Vec<_>>()
                .join(" AND ");
            let columns = plan
                .insert
                .iter()
                .map(|c| PG.quote_ident(c))
                .collect::<Vec<_>>()
                .join(", ");
            for sql in [
                format!("DELETE FROM {target} AS t USING {staged} AS s WHERE {matches}"),
                format!("INSERT INTO {target} ({columns}) SELECT {columns} FROM {staged}"),
                format!("DROP TABLE {staged}"),
            ] {
                tx.batch_execute(&sql)
                    .await
                    .map_err(|e| pg_error(&sql, e))?;
            }
            rows
        }
    };
    tx.commit().await.map_err(|e| pg_error("COMMIT", e))?;
    Ok(rows)
}

fn column_defs(columns: &[Field]) -> Result<String, IoError> {
    Ok(columns
        .iter()
        .map(|f| {
            Ok(format!(
                "{} {}",
                PG.quote_ident(f.name()),
                postgres::pg_type(f.data_type())?
            ))
        })
        .collect::<Result<Vec<_>, IoError>>()?
        .join(", "))
}

async fn column_type(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
    table: &str,
    column: &str,
) -> Result<String, IoError> {
    let sql = "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
               JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = $1 AND c.relname = $2 AND a.attname = $3 AND a.attnum > 0 AND NOT a.attisdropped";
    let row = tx
        .query_opt(sql, &[&schema, &table, &column])
        .await
        .map_err(|e| pg_error("reading the partition column's type", e))?;
    row.map(|r| r.get::<_, String>(0)).ok_or_else(|| {
        IoError::invalid(format!(
            "the partition column `{column}` is not a column of {schema}.{table}"
        ))
    })
}

/// The largest value of one column over a stream of batches: the next high-water mark.
#[derive(Debug)]
pub struct HighWater {
    column: String,
    best: Option<(Key, String)>,
}

#[derive(Debug, PartialEq, PartialOrd)]
enum Key {
    Int(i64),
    Float(f64),
    Decimal(i128),
    Text(String),
}

impl HighWater {
    /// Checks that `column` exists in `schema` and is of a type with an order.
    pub fn new(column: &str, schema: &Schema) -> Result<HighWater, IoError> {
        let field = schema.field_with_name(column).map_err(|_| {
            IoError::invalid(format!(
                "the incremental column `{column}` is not in the extracted columns ({})",
                crate::files::describe(schema)
            ))
        })?;
        match field.data_type() {
            DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Float32
            | DataType::Float64
            | DataType::Date32
            | DataType::Timestamp(..)
            | DataType::Utf8
            | DataType::Decimal128(..) => {}
            other => {
                return Err(IoError::invalid(format!(
                    "the incremental column `{column}` has type {other}, which cannot be a high-water mark; use a timestamp, date, number or text column"
                )));
            }
        }
        Ok(HighWater {
            column: column.to_string(),
            best: None,
        })
    }

    pub fn observe(&mut self, batch: &RecordBatch) -> Result<(), IoError> {
        use arrow::compute::{cast, max, max_string};
        use arrow::datatypes::{Date32Type, Decimal128Type, DecimalType, Float64Type, Int64Type};
        let Some(array) = batch.column_by_name(&self.column) else {
            return Ok(());
        };
        let found = match array.data_type() {
            DataType::Utf8 => max_string(array.as_string::<i32>())
                .map(|v| (Key::Text(v.to_string()), v.to_string())),
            DataType::Float32 | DataType::Float64 => {
                let values = cast(array, &DataType::Float64)?;
                max(values.as_primitive::<Float64Type>()).map(|v| (Key::Float(v), v.to_string()))
            }
            DataType::Date32 => max(array.as_primitive::<Date32Type>()).map(|days| {
                let date = chrono::DateTime::from_timestamp(i64::from(days) * 86_400, 0)
                    .unwrap_or_default();
                (
                    Key::Int(i64::from(days)),
                    date.format("%Y-%m-%d").to_string(),
                )
            }),
            DataType::Decimal128(_, scale) => {
                let scale = *scale;
                max(array.as_primitive::<Decimal128Type>()).map(|v| {
                    (
                        Key::Decimal(v),
                        Decimal128Type::format_decimal(v, 38, scale),
                    )
                })
            }
            DataType::Timestamp(unit, tz) => {
                let raw = cast(array, &DataType::Int64)?;
                let per_micro = match unit {
                    TimeUnit::Second => -1_000_000,
                    TimeUnit::Millisecond => -1_000,
                    TimeUnit::Microsecond => 1,
                    TimeUnit::Nanosecond => 1_000,
                };
                max(raw.as_primitive::<Int64Type>()).map(|v| {
                    let micros = if per_micro < 0 {
                        v * -per_micro
                    } else {
                        v / per_micro
                    };
                    let t = chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default();
                    let text = t.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
                    (
                        Key::Int(micros),
                        if tz.is_some() {
                            format!("{text}+00:00")
                        } else {
                            text
                        },
                    )
                })
            }
            _ => {
                let values = cast(array, &DataType::Int64)?;
                max(values.as_primitive::<Int64Type>()).map(|v| (Key::Int(v), v.to_string()))
            }
        };
        if let Some((key, shown)) = found
            && self.best.as_ref().is_none_or(|(b, _)| key > *b)
        {
            self.best = Some((key, shown));
        }
        Ok(())
    }

    /// The mark as text, in a form SQL compares correctly against the column.
    pub fn value(&self) -> Option<&str> {
        self.best.as_ref().map(|(_, s)| s.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray};

    #[test]
    fn high_water_marks_of_each_type() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![Some(3), None, Some(9), Some(2)])),
                Arc::new(TimestampMicrosecondArray::from(vec![
                    Some(1_704_103_200_000_000),
                    Some(1_704_103_200_500_000),
                    None,
                    Some(0),
                ])),
                Arc::new(StringArray::from(vec!["b", "c", "a", "bb"])),
            ],
        )
        .unwrap();
        for (column, want) in [
            ("id", "9"),
            ("at", "2024-01-01 10:00:00.500000"),
            ("name", "c"),
        ] {
            let mut hw = HighWater::new(column, &schema).unwrap();
            hw.observe(&batch).unwrap();
            assert_eq!(hw.value(), Some(want), "{column}");
        }
        assert!(
            HighWater::new("missing", &schema)
                .unwrap_err()
                .to_string()
                .contains("not in the extracted columns (id int64, at timestamp, name string)")
        );
    }
}
