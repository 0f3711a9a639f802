//! Column values as the checks see them: every Arrow type is read through one of five shapes
//! (whole numbers, real numbers, text, booleans, instants), so each check is written once per
//! shape instead of once per Arrow type.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};
use serde_json::Value as Json;

/// One column of one batch, in the shape the checks read.
pub enum Column {
    Int(Int64Array),
    Float(Float64Array),
    Text(StringArray),
    Bool(BooleanArray),
    /// Dates and timestamps, as microseconds since the epoch (UTC or naive). `date` keeps
    /// whether the source was a date, for how values are printed.
    Time {
        values: TimestampMicrosecondArray,
        date: bool,
    },
    /// A type no check reads value by value (lists, structs, binary): only nulls count.
    Other(ArrayRef),
}

impl Column {
    pub fn new(array: &ArrayRef) -> Column {
        let to = |t: &DataType| cast(array, t).expect("a supported cast");
        match array.data_type() {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => Column::Int(to(&DataType::Int64).as_primitive().clone()),
            DataType::UInt64
            | DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..) => {
                Column::Float(to(&DataType::Float64).as_primitive().clone())
            }
            DataType::Utf8 => Column::Text(array.as_string::<i32>().clone()),
            DataType::LargeUtf8 | DataType::Utf8View => {
                Column::Text(to(&DataType::Utf8).as_string::<i32>().clone())
            }
            DataType::Boolean => Column::Bool(array.as_boolean().clone()),
            DataType::Date32 | DataType::Date64 => Column::Time {
                values: to(&DataType::Timestamp(TimeUnit::Microsecond, None))
                    .as_primitive()
                    .clone(),
                date: true,
            },
            DataType::Timestamp(_, tz) => Column::Time {
                values: to(&DataType::Timestamp(TimeUnit::Microsecond, tz.clone()))
                    .as_primitive()
                    .clone(),
                date: false,
            },
            _ => Column::Other(Arc::clone(array)),
        }
    }

    pub fn len(&self) -> usize {
        self.array().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn array(&self) -> &dyn Array {
        match self {
            Column::Int(a) => a,
            Column::Float(a) => a,
            Column::Text(a) => a,
            Column::Bool(a) => a,
            Column::Time { values, .. } => values,
            Column::Other(a) => a.as_ref(),
        }
    }

    /// Missing values: nulls, and NaN in real numbers (as pandas counts them).
    pub fn is_missing(&self, row: usize) -> bool {
        match self {
            Column::Float(a) => a.is_null(row) || a.value(row).is_nan(),
            _ => self.array().is_null(row),
        }
    }

    /// The value as Great Expectations prints it in results.
    pub fn json(&self, row: usize) -> Json {
        if self.array().is_null(row) {
            return Json::Null;
        }
        match self {
            Column::Int(a) => a.value(row).into(),
            Column::Float(a) => float_json(a.value(row)),
            Column::Text(a) => a.value(row).into(),
            Column::Bool(a) => a.value(row).into(),
            Column::Time { values, date } => time_json(values.value(row), *date),
            Column::Other(a) => {
                arrow::util::display::array_value_to_string(a, row).map_or(Json::Null, Json::from)
            }
        }
    }

    /// The value as a number, for statistics; `None` for missing or non-numeric values.
    pub fn number(&self, row: usize) -> Option<f64> {
        if self.is_missing(row) {
            return None;
        }
        match self {
            Column::Int(a) => Some(a.value(row) as f64),
            Column::Float(a) => Some(a.value(row)),
            Column::Bool(a) => Some(f64::from(u8::from(a.value(row)))),
            Column::Time { values, .. } => Some(values.value(row) as f64),
            Column::Text(_) | Column::Other(_) => None,
        }
    }
}

/// Whole floats print without a fraction only when they came from integers; here a float
/// stays a float (1.0), NaN and infinities become strings as Python's JSON encoder would not
/// allow them in strict JSON.
pub fn float_json(v: f64) -> Json {
    serde_json::Number::from_f64(v).map_or_else(|| Json::String(v.to_string()), Json::Number)
}

pub fn time_json(micros: i64, date: bool) -> Json {
    let Some(t) = DateTime::from_timestamp_micros(micros) else {
        return micros.into();
    };
    let t = t.naive_utc();
    if date && t.time() == NaiveTime::MIN {
        t.date().format("%Y-%m-%d").to_string().into()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.f").to_string().into()
    }
}

/// Reads a date or timestamp written in a suite (ISO 8601 and the common variants), as
/// microseconds since the epoch.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_micros());
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%.f%z"] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Some(t.timestamp_micros());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_time(NaiveTime::MIN).and_utc().timestamp_micros())
}

/// A value from a suite (a bound, a member of a set), read for comparison with a column.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Number(f64),
    Text(String),
    Bool(bool),
    Time(i64),
    Null,
}

impl Literal {
    pub fn from_json(v: &Json) -> Literal {
        match v {
            Json::Null => Literal::Null,
            Json::Bool(b) => Literal::Bool(*b),
            Json::Number(n) => Literal::Number(n.as_f64().unwrap_or(f64::NAN)),
            Json::String(s) => match s.as_str() {
                "NaN" => Literal::Number(f64::NAN),
                "Infinity" => Literal::Number(f64::INFINITY),
                "-Infinity" => Literal::Number(f64::NEG_INFINITY),
                _ => Literal::Text(s.clone()),
            },
            other => Literal::Text(other.to_string()),
        }
    }

    /// This value read the way a column of `column`'s shape compares it: text becomes an
    /// instant for date columns.
    pub fn for_column(&self, column: &Column) -> Literal {
        match (self, column) {
            (Literal::Text(s), Column::Time { .. }) => {
                parse_time(s).map_or_else(|| self.clone(), Literal::Time)
            }
            _ => self.clone(),
        }
    }
}
