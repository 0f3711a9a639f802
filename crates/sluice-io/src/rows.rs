//! Text and JSON records → Arrow, one record at a time, so that a record that cannot be cast
//! is rejected alone (to the dead-letter store) instead of failing its whole batch.
//!
//! Types are declared (`schema: {amount: "decimal(10,2)"}`) or inferred from a sample of the
//! first records; a later record that does not fit the inferred type is a bad record.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder,
    Int16Builder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::compute::kernels::cast_utils::parse_decimal;
use arrow::datatypes::{DataType, Decimal128Type, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde_json::{Map, Value};

use crate::IoError;

/// Records looked at to infer column types.
pub const INFER_ROWS: usize = 1_000;

const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");

/// A type name as written in pipeline files → its Arrow type.
pub fn parse_type(name: &str) -> Result<DataType, String> {
    let n = name.trim().to_ascii_lowercase();
    Ok(match n.as_str() {
        "bool" | "boolean" => DataType::Boolean,
        "int16" | "smallint" => DataType::Int16,
        "int32" | "int" | "integer" => DataType::Int32,
        "int64" | "bigint" | "long" => DataType::Int64,
        "float32" | "float" | "real" => DataType::Float32,
        "float64" | "double" => DataType::Float64,
        "string" | "text" | "varchar" | "utf8" => DataType::Utf8,
        "date" => DataType::Date32,
        "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "timestamptz" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        _ => {
            if let Some(args) = n.strip_prefix("decimal(").and_then(|r| r.strip_suffix(')')) {
                let (p, s) = args.split_once(',').unwrap_or((args, "0"));
                let p: u8 = p.trim().parse().map_err(|_| bad_type(name))?;
                let s: i8 = s.trim().parse().map_err(|_| bad_type(name))?;
                if !(1..=38).contains(&p) || s < 0 || s as u8 > p {
                    return Err(format!(
                        "`{name}`: a decimal needs 1 ≤ precision ≤ 38 and 0 ≤ scale ≤ precision"
                    ));
                }
                DataType::Decimal128(p, s)
            } else {
                return Err(bad_type(name));
            }
        }
    })
}

fn bad_type(name: &str) -> String {
    format!(
        "unknown type `{name}`; use boolean, int16, int32, int64, float32, float64, decimal(p,s), string, date, timestamp or timestamptz"
    )
}

/// A type as people read it in messages (the names `parse_type` accepts).
pub fn type_name(dt: &DataType) -> String {
    match dt {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "int8".into(),
        DataType::Int16 => "int16".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::Float32 => "float32".into(),
        DataType::Float64 => "float64".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(_, None) => "timestamp".into(),
        DataType::Timestamp(_, Some(_)) => "timestamptz".into(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        other => other.to_string().to_ascii_lowercase(),
    }
}

/// One parsed value, held until the whole record has parsed.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Days(i32),
    Micros(i64),
    Decimal(i128),
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" => Some(true),
        "false" | "f" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}

fn parse_date(s: &str) -> Option<i32> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .map(|d| (d - EPOCH).num_days() as i32)
}

/// Naive date-times (`2024-01-01 10:00:00[.ffffff]`, `T` allowed) and RFC 3339 instants, as
/// microseconds since the epoch (UTC for instants).
fn parse_timestamp(s: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    None
}

fn parse_text(dt: &DataType, raw: &str) -> Result<Cell, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(Cell::Null);
    }
    let fail = || format!("`{raw}` is not a {}", type_name(dt));
    Ok(match dt {
        DataType::Utf8 => Cell::Text(raw.to_string()),
        DataType::Boolean => Cell::Bool(parse_bool(s).ok_or_else(fail)?),
        DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            let v: i64 = s.parse().map_err(|_| fail())?;
            check_int_range(dt, v)
                .ok_or_else(|| format!("{v} is out of range for {}", type_name(dt)))?;
            Cell::Int(v)
        }
        DataType::Float32 | DataType::Float64 => Cell::Float(s.parse().map_err(|_| fail())?),
        DataType::Date32 => Cell::Days(parse_date(s).ok_or_else(fail)?),
        DataType::Timestamp(..) => Cell::Micros(parse_timestamp(s).ok_or_else(fail)?),
        DataType::Decimal128(p, sc) => {
            Cell::Decimal(parse_decimal::<Decimal128Type>(s, *p, *sc).map_err(|_| fail())?)
        }
        other => return Err(format!("type {other} is not supported here")),
    })
}

fn check_int_range(dt: &DataType, v: i64) -> Option<()> {
    let ok = match dt {
        DataType::Int16 => i16::try_from(v).is_ok(),
        DataType::Int32 => i32::try_from(v).is_ok(),
        _ => true,
    };
    ok.then_some(())
}

fn parse_json(dt: &DataType, v: &Value) -> Result<Cell, String> {
    match (dt, v) {
        (_, Value::Null) => Ok(Cell::Null),
        (DataType::Utf8, Value::String(s)) => Ok(Cell::Text(s.clone())),
        // Nested values are kept as their JSON text.
        (DataType::Utf8, other) => Ok(Cell::Text(other.to_string())),
        (DataType::Boolean, Value::Bool(b)) => Ok(Cell::Bool(*b)),
        (DataType::Int16 | DataType::Int32 | DataType::Int64, Value::Number(n)) => {
            let v = n
                .as_i64()
                .ok_or_else(|| format!("{n} is not a whole number"))?;
            check_int_range(dt, v)
                .ok_or_else(|| format!("{v} is out of range for {}", type_name(dt)))?;
            Ok(Cell::Int(v))
        }
        (DataType::Float32 | DataType::Float64, Value::Number(n)) => Ok(Cell::Float(
            n.as_f64().ok_or_else(|| format!("{n} is not a number"))?,
        )),
        (DataType::Decimal128(..), Value::Number(n)) => parse_text(dt, &n.to_string()),
        (_, Value::String(s)) if !matches!(dt, DataType::Utf8) => parse_text(dt, s),
        (_, other) => Err(format!("{other} is not a {}", type_name(dt))),
    }
}

/// The narrowest type a text value fits.
fn classify_text(s: &str) -> Option<DataType> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    Some(if s.parse::<i64>().is_ok() {
        DataType::Int64
    } else if s.parse::<f64>().is_ok() && s.chars().any(|c| c.is_ascii_digit()) {
        DataType::Float64
    } else if matches!(s.to_ascii_lowercase().as_str(), "true" | "false") {
        DataType::Boolean
    } else if parse_date(s).is_some() {
        DataType::Date32
    } else if parse_timestamp(s).is_some() {
        DataType::Timestamp(TimeUnit::Microsecond, None)
    } else {
        DataType::Utf8
    })
}

fn classify_json(v: &Value) -> Option<DataType> {
    match v {
        Value::Null => None,
        Value::Bool(_) => Some(DataType::Boolean),
        Value::Number(n) if n.is_i64() => Some(DataType::Int64),
        Value::Number(_) => Some(DataType::Float64),
        Value::String(s) => Some(match classify_text(s) {
            Some(t @ (DataType::Date32 | DataType::Timestamp(..))) => t,
            _ => DataType::Utf8,
        }),
        _ => Some(DataType::Utf8),
    }
}

/// The common type of two observed types.
fn unify(a: Option<DataType>, b: Option<DataType>) -> Option<DataType> {
    match (a, b) {
        (None, t) | (t, None) => t,
        (Some(a), Some(b)) if a == b => Some(a),
        (Some(DataType::Int64), Some(DataType::Float64))
        | (Some(DataType::Float64), Some(DataType::Int64)) => Some(DataType::Float64),
        (Some(DataType::Date32), Some(t @ DataType::Timestamp(..)))
        | (Some(t @ DataType::Timestamp(..)), Some(DataType::Date32)) => Some(t),
        _ => Some(DataType::Utf8),
    }
}

/// Column types of text records (CSV), from a sample; columns never seen filled are strings.
pub fn infer_text(headers: &[String], sample: &[Vec<String>]) -> Schema {
    let mut types: Vec<Option<DataType>> = vec![None; headers.len()];
    for record in sample {
        for (i, v) in record.iter().enumerate().take(headers.len()) {
            types[i] = unify(types[i].take(), classify_text(v));
        }
    }
    Schema::new(
        headers
            .iter()
            .zip(types)
            .map(|(h, t)| Field::new(h, t.unwrap_or(DataType::Utf8), true))
            .collect::<Vec<_>>(),
    )
}

/// Column types of JSON records, in the order keys are first seen.
pub fn infer_json<'a>(sample: impl IntoIterator<Item = &'a Map<String, Value>>) -> Schema {
    let mut names: Vec<String> = Vec::new();
    let mut types: Vec<Option<DataType>> = Vec::new();
    for record in sample {
        for (k, v) in record {
            let i = match names.iter().position(|n| n == k) {
                Some(i) => i,
                None => {
                    names.push(k.clone());
                    types.push(None);
                    names.len() - 1
                }
            };
            types[i] = unify(types[i].take(), classify_json(v));
        }
    }
    Schema::new(
        names
            .into_iter()
            .zip(types)
            .map(|(n, t)| Field::new(n, t.unwrap_or(DataType::Utf8), true))
            .collect::<Vec<_>>(),
    )
}

enum Column {
    Bool(BooleanBuilder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Text(StringBuilder),
    Date(Date32Builder),
    Ts(TimestampMicrosecondBuilder, Option<Arc<str>>),
    Dec(Decimal128Builder, u8, i8),
}

impl Column {
    fn new(dt: &DataType) -> Result<Column, String> {
        Ok(match dt {
            DataType::Boolean => Column::Bool(BooleanBuilder::new()),
            DataType::Int16 => Column::I16(Int16Builder::new()),
            DataType::Int32 => Column::I32(Int32Builder::new()),
            DataType::Int64 => Column::I64(Int64Builder::new()),
            DataType::Float32 => Column::F32(Float32Builder::new()),
            DataType::Float64 => Column::F64(Float64Builder::new()),
            DataType::Utf8 => Column::Text(StringBuilder::new()),
            DataType::Date32 => Column::Date(Date32Builder::new()),
            DataType::Timestamp(TimeUnit::Microsecond, tz) => {
                Column::Ts(TimestampMicrosecondBuilder::new(), tz.clone())
            }
            DataType::Decimal128(p, s) => Column::Dec(Decimal128Builder::new(), *p, *s),
            other => {
                return Err(format!(
                    "type {other} cannot be read from text or JSON records"
                ));
            }
        })
    }

    fn append(&mut self, cell: Cell) {
        match (self, cell) {
            (Column::Bool(b), Cell::Bool(v)) => b.append_value(v),
            (Column::I16(b), Cell::Int(v)) => b.append_value(v as i16),
            (Column::I32(b), Cell::Int(v)) => b.append_value(v as i32),
            (Column::I64(b), Cell::Int(v)) => b.append_value(v),
            (Column::F32(b), Cell::Float(v)) => b.append_value(v as f32),
            (Column::F64(b), Cell::Float(v)) => b.append_value(v),
            (Column::Text(b), Cell::Text(v)) => b.append_value(v),
            (Column::Date(b), Cell::Days(v)) => b.append_value(v),
            (Column::Ts(b, _), Cell::Micros(v)) => b.append_value(v),
            (Column::Dec(b, ..), Cell::Decimal(v)) => b.append_value(v),
            (column, _) => column.append_null(),
        }
    }

    fn append_null(&mut self) {
        match self {
            Column::Bool(b) => b.append_null(),
            Column::I16(b) => b.append_null(),
            Column::I32(b) => b.append_null(),
            Column::I64(b) => b.append_null(),
            Column::F32(b) => b.append_null(),
            Column::F64(b) => b.append_null(),
            Column::Text(b) => b.append_null(),
            Column::Date(b) => b.append_null(),
            Column::Ts(b, _) => b.append_null(),
            Column::Dec(b, ..) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Bool(b) => Arc::new(b.finish()),
            Column::I16(b) => Arc::new(b.finish()),
            Column::I32(b) => Arc::new(b.finish()),
            Column::I64(b) => Arc::new(b.finish()),
            Column::F32(b) => Arc::new(b.finish()),
            Column::F64(b) => Arc::new(b.finish()),
            Column::Text(b) => Arc::new(b.finish()),
            Column::Date(b) => Arc::new(b.finish()),
            Column::Ts(b, tz) => Arc::new(b.finish().with_timezone_opt(tz.clone())),
            Column::Dec(b, p, s) => Arc::new(
                b.finish()
                    .with_precision_and_scale(*p, *s)
                    .expect("checked when the type was parsed"),
            ),
        }
    }
}

/// Builds record batches of one schema from records, rejecting a record whole when one of
/// its values does not fit.
pub struct RowBuilder {
    schema: SchemaRef,
    columns: Vec<Column>,
    cells: Vec<Cell>,
    rows: usize,
}

impl RowBuilder {
    pub fn new(schema: SchemaRef) -> Result<RowBuilder, IoError> {
        let columns = schema
            .fields()
            .iter()
            .map(|f| {
                Column::new(f.data_type())
                    .map_err(|e| IoError::invalid(format!("column `{}`: {e}", f.name())))
            })
            .collect::<Result<_, _>>()?;
        Ok(RowBuilder {
            schema,
            columns,
            cells: Vec::new(),
            rows: 0,
        })
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends a text record whose values are in schema order. On error nothing is appended.
    pub fn push_text<'a>(
        &mut self,
        values: impl ExactSizeIterator<Item = &'a str>,
    ) -> Result<(), String> {
        let n = self.schema.fields().len();
        if values.len() != n {
            return Err(format!("expected {n} fields, found {}", values.len()));
        }
        self.cells.clear();
        for (field, v) in self.schema.fields().iter().zip(values) {
            let cell = parse_text(field.data_type(), v)
                .map_err(|e| format!("column `{}`: {e}", field.name()))?;
            check_nullable(field, &cell)?;
            self.cells.push(cell);
        }
        self.commit();
        Ok(())
    }

    /// Appends a JSON object; keys the schema does not know are ignored, missing keys are null.
    pub fn push_json(&mut self, record: &Map<String, Value>) -> Result<(), String> {
        self.cells.clear();
        for field in self.schema.fields() {
            let cell = match record.get(field.name()) {
                Some(v) => parse_json(field.data_type(), v)
                    .map_err(|e| format!("column `{}`: {e}", field.name()))?,
                None => Cell::Null,
            };
            check_nullable(field, &cell)?;
            self.cells.push(cell);
        }
        self.commit();
        Ok(())
    }

    fn commit(&mut self) {
        for (column, cell) in self.columns.iter_mut().zip(self.cells.drain(..)) {
            column.append(cell);
        }
        self.rows += 1;
    }

    /// The records appended so far, as one batch; the builder starts empty again.
    pub fn finish(&mut self) -> Result<RecordBatch, IoError> {
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(Column::finish).collect();
        self.rows = 0;
        Ok(RecordBatch::try_new(self.schema.clone(), arrays)?)
    }
}

fn check_nullable(field: &Field, cell: &Cell) -> Result<(), String> {
    if *cell == Cell::Null && !field.is_nullable() {
        return Err(format!("column `{}`: a value is required", field.name()));
    }
    Ok(())
}

/// JSON records arriving page by page (an HTTP API) as record batches. Types are declared or
/// inferred from the first page; a record that does not fit is a bad record numbered by its
/// position in the whole read.
pub async fn batches_from_pages(
    mut pages: futures::stream::BoxStream<'static, Result<Vec<Value>, IoError>>,
    schema: Option<SchemaRef>,
    bad: Arc<crate::bad::BadRecords>,
    source: String,
) -> Result<(SchemaRef, crate::BatchStream), IoError> {
    use futures::StreamExt;
    let first = pages.next().await.transpose()?.unwrap_or_default();
    let schema = match schema {
        Some(s) => s,
        None => Arc::new(infer_json(
            first.iter().take(INFER_ROWS).filter_map(Value::as_object),
        )),
    };
    let mut builder = RowBuilder::new(schema.clone())?;
    let mut seen = 0u64;
    let mut convert = move |page: Vec<Value>| -> Result<RecordBatch, IoError> {
        for record in page {
            seen += 1;
            let result = match &record {
                Value::Object(map) => builder.push_json(map),
                other => Err(format!("expected a JSON object, found {other}")),
            };
            if let Err(reason) = result {
                bad.record(sluice_core::DeadLetter {
                    source: source.clone(),
                    line: None,
                    row: Some(seen),
                    reason,
                    record: record.to_string(),
                })?;
            }
        }
        bad.flush()?;
        builder.finish()
    };
    let first_batch = convert(first);
    let rest = pages.map(move |page| convert(page?));
    let stream = futures::stream::once(async move { first_batch })
        .chain(rest)
        .filter(|b| futures::future::ready(!matches!(b, Ok(b) if b.num_rows() == 0)));
    Ok((schema, stream.boxed()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Date32Type, Int64Type};

    #[test]
    fn infers_the_narrowest_common_types() {
        let headers: Vec<String> = ["id", "amount", "day", "at", "name", "flag", "empty"]
            .map(String::from)
            .to_vec();
        let sample = vec![
            [
                "1",
                "2",
                "2024-01-01",
                "2024-01-01 10:00:00",
                "a",
                "true",
                "",
            ]
            .map(String::from)
            .to_vec(),
            [
                "2",
                "2.5",
                "2024-01-02",
                "2024-01-01T10:00:00",
                "7",
                "false",
                "",
            ]
            .map(String::from)
            .to_vec(),
        ];
        let schema = infer_text(&headers, &sample);
        let types: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| type_name(f.data_type()))
            .collect();
        assert_eq!(
            types,
            [
                "int64",
                "float64",
                "date",
                "timestamp",
                "string",
                "boolean",
                "string"
            ]
        );
    }

    #[test]
    fn a_bad_value_rejects_its_whole_record() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("day", DataType::Date32, true),
            Field::new("amount", parse_type("decimal(10,2)").unwrap(), true),
        ]));
        let mut rows = RowBuilder::new(schema).unwrap();
        rows.push_text(["1", "2024-01-02", "12.50"].into_iter())
            .unwrap();
        let err = rows
            .push_text(["2", "2024-13-01", "1"].into_iter())
            .unwrap_err();
        assert_eq!(err, "column `day`: `2024-13-01` is not a date");
        let err = rows
            .push_text(["", "2024-01-01", "1"].into_iter())
            .unwrap_err();
        assert_eq!(err, "column `id`: a value is required");
        assert_eq!(
            rows.push_text(["3"].into_iter()).unwrap_err(),
            "expected 3 fields, found 1"
        );
        let mut json = Map::new();
        json.insert("id".into(), Value::from(4));
        json.insert("amount".into(), Value::from(3.25));
        rows.push_json(&json).unwrap();
        let batch = rows.finish().unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(
            batch.column(0).as_primitive::<Int64Type>().values(),
            &[1, 4]
        );
        assert_eq!(batch.column(1).as_primitive::<Date32Type>().value(0), 19724);
        assert!(batch.column(1).is_null(1));
        assert_eq!(
            arrow::util::display::array_value_to_string(batch.column(2), 1).unwrap(),
            "3.25"
        );
    }

    #[test]
    fn type_names_round_trip() {
        for name in [
            "boolean",
            "int16",
            "int32",
            "int64",
            "float64",
            "decimal(12,3)",
            "string",
            "date",
            "timestamp",
            "timestamptz",
        ] {
            assert_eq!(type_name(&parse_type(name).unwrap()), name);
        }
        assert!(parse_type("decimal(40,2)").is_err());
        assert!(
            parse_type("money")
                .unwrap_err()
                .contains("unknown type `money`")
        );
    }
}
