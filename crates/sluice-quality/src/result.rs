//! What an engine observed, and the verdict in Great Expectations' result shape.
//!
//! Engines only measure ([`Observation`]); judging is done here, once, so the in-memory and
//! the SQL engines cannot disagree about what a measurement means.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde_json::{Map, Value as Json, json};

use crate::QualityError;
use crate::expect::{Bounds, Check, Ignore, Kind, Level, Stat};
use crate::value::{Literal, parse_time};

/// What an engine measured for one check.
#[derive(Debug, Clone)]
pub enum Observation {
    /// Rows (those the row condition selects) and the table's column names.
    Table {
        rows: u64,
        columns: Vec<String>,
    },
    Map(MapObservation),
    Stat(Box<StatObservation>),
}

#[derive(Debug, Clone, Default)]
pub struct MapObservation {
    /// Rows looked at (after the row condition).
    pub element_count: u64,
    /// Rows left out for missing values (nulls; for several columns, per `ignore_row_if`).
    pub missing_count: u64,
    pub unexpected_count: u64,
    /// The first unexpected rows in row order, as many as the result format shows.
    pub unexpected: Vec<Unexpected>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Unexpected {
    /// Row number in the data, from 0; `None` where the engine has no row order (SQL).
    pub row: Option<u64>,
    pub value: Json,
    /// The domain's and the index columns' values, for `unexpected_index_list`.
    pub index: Option<Map<String, Json>>,
}

#[derive(Debug, Clone, Default)]
pub struct StatObservation {
    pub element_count: u64,
    pub missing_count: u64,
    pub min: Option<Json>,
    pub max: Option<Json>,
    pub mean: Option<f64>,
    pub sum: Option<Json>,
    pub stdev: Option<f64>,
    pub median: Option<f64>,
    pub quantiles: Option<Vec<Json>>,
    /// Distinct non-missing values with their counts, sorted by value.
    pub counts: Option<Vec<(Json, u64)>>,
    pub distinct: Option<u64>,
    /// The column's type as the engine names it, and the names it answers to.
    pub type_names: Option<(String, Vec<String>)>,
}

/// The verdict on one check, as Great Expectations' `ExpectationValidationResult`.
pub fn judge(check: &Check, observed: Result<Observation, QualityError>) -> Json {
    let outcome = observed.and_then(|o| verdict(check, o));
    let config = json!({
        "expectation_type": check.name,
        "type": check.name,
        "kwargs": Json::Object(check.kwargs.clone()),
        "meta": if check.meta.is_null() { json!({}) } else { check.meta.clone() },
    });
    match outcome {
        Ok((success, result)) => json!({
            "success": success,
            "expectation_config": config,
            "result": if check.format.level == Level::BooleanOnly { json!({}) } else { Json::Object(result) },
            "meta": {},
            "exception_info": {"raised_exception": false, "exception_traceback": null, "exception_message": null},
        }),
        Err(error) => json!({
            "success": false,
            "expectation_config": config,
            "result": {},
            "meta": {},
            "exception_info": {
                "raised_exception": true,
                "exception_traceback": format!("{}: {error}", check.name),
                "exception_message": error.to_string(),
            },
        }),
    }
}

fn verdict(
    check: &Check,
    observed: Observation,
) -> Result<(bool, Map<String, Json>), QualityError> {
    let mut result = Map::new();
    let success = match (&check.kind, observed) {
        (Kind::Invalid(error), _) => return Err(error.clone()),
        (Kind::RowCount(b), Observation::Table { rows, .. }) => {
            result.insert("observed_value".into(), rows.into());
            within(&Literal::Number(rows as f64), b)
        }
        (Kind::ColumnCount(b), Observation::Table { columns, .. }) => {
            result.insert("observed_value".into(), columns.len().into());
            within(&Literal::Number(columns.len() as f64), b)
        }
        (Kind::ColumnsOrdered(None), Observation::Table { columns, .. }) => {
            result.insert("observed_value".into(), json!(columns));
            true
        }
        (Kind::ColumnsOrdered(Some(want)), Observation::Table { columns, .. }) => {
            result.insert("observed_value".into(), json!(columns));
            let found: Vec<Json> = columns.iter().map(|c| json!(c)).collect();
            let ok = &found == want;
            if !ok {
                let mismatched: Vec<Json> = (0..want.len().max(found.len()))
                    .filter(|&i| want.get(i) != found.get(i))
                    .map(|i| {
                        json!({"Expected Column Position": i, "Expected": want.get(i), "Found": found.get(i)})
                    })
                    .collect();
                result.insert("details".into(), json!({"mismatched": mismatched}));
            }
            ok
        }
        (Kind::ColumnsSet { set, exact }, Observation::Table { columns, .. }) => {
            let set = set.as_deref().unwrap_or_default();
            let unexpected: Vec<&String> = columns.iter().filter(|c| !set.contains(c)).collect();
            let missing: Vec<&String> = set.iter().filter(|c| !columns.contains(c)).collect();
            let mut observed = columns.clone();
            observed.sort();
            result.insert("observed_value".into(), json!(observed));
            let ok = missing.is_empty() && (!exact || unexpected.is_empty());
            if !unexpected.is_empty() || !missing.is_empty() {
                let mut mismatched = Map::new();
                if !unexpected.is_empty() {
                    mismatched.insert("unexpected".into(), json!(unexpected));
                }
                if !missing.is_empty() {
                    mismatched.insert("missing".into(), json!(missing));
                }
                result.insert("details".into(), json!({"mismatched": mismatched}));
            }
            ok
        }
        (Kind::ColumnExists { column, index }, Observation::Table { columns, .. }) => match index {
            Some(i) => columns.get(*i) == Some(column),
            None => columns.contains(column),
        },
        (Kind::Map { test, mostly, .. }, Observation::Map(o)) => {
            map_result(check, &o, *mostly, !test.counts_nulls(), &mut result)
        }
        (Kind::Pair { mostly, .. } | Kind::Multi { mostly, .. }, Observation::Map(o)) => {
            map_result(check, &o, *mostly, true, &mut result)
        }
        (Kind::Stat { stat, .. }, Observation::Stat(o)) => stat_result(stat, &o, &mut result)?,
        (_, other) => {
            return Err(QualityError::Internal(format!(
                "{} got {other:?}",
                check.name
            )));
        }
    };
    Ok((success, result))
}

fn percent(part: u64, whole: u64) -> Json {
    if whole == 0 {
        Json::Null
    } else {
        json!(part as f64 / whole as f64 * 100.0)
    }
}

/// GE's `_format_map_output`.
fn map_result(
    check: &Check,
    o: &MapObservation,
    mostly: f64,
    with_missing: bool,
    result: &mut Map<String, Json>,
) -> bool {
    let nonmissing = if with_missing {
        o.element_count - o.missing_count
    } else {
        o.element_count
    };
    let success = nonmissing == 0
        || (nonmissing - o.unexpected_count) as f64 / nonmissing as f64 >= mostly - 1e-12;
    let format = &check.format;
    let values: Vec<Json> = o.unexpected.iter().map(|u| u.value.clone()).collect();
    let partial = &values[..values.len().min(format.partial_count)];
    result.insert("element_count".into(), o.element_count.into());
    result.insert("unexpected_count".into(), o.unexpected_count.into());
    result.insert(
        "unexpected_percent".into(),
        percent(o.unexpected_count, nonmissing),
    );
    result.insert("partial_unexpected_list".into(), json!(partial));
    if with_missing {
        result.insert("missing_count".into(), o.missing_count.into());
        result.insert(
            "missing_percent".into(),
            percent(o.missing_count, o.element_count),
        );
        result.insert(
            "unexpected_percent_total".into(),
            percent(o.unexpected_count, o.element_count),
        );
        result.insert(
            "unexpected_percent_nonmissing".into(),
            percent(o.unexpected_count, nonmissing),
        );
    }
    if format.level <= Level::Basic {
        return success;
    }
    let index: Vec<Json> = o
        .unexpected
        .iter()
        .filter_map(|u| match (&u.index, u.row) {
            (Some(cols), _) => Some(Json::Object(cols.clone())),
            (None, Some(row)) => Some(row.into()),
            (None, None) => None,
        })
        .collect();
    let has_index = index.len() == o.unexpected.len();
    if has_index {
        result.insert(
            "partial_unexpected_index_list".into(),
            json!(index[..index.len().min(format.partial_count)]),
        );
    }
    result.insert(
        "partial_unexpected_counts".into(),
        json!(value_counts(partial)),
    );
    if format.level == Level::Complete {
        result.insert("unexpected_list".into(), json!(values));
        if has_index {
            result.insert("unexpected_index_list".into(), json!(index));
        }
    }
    success
}

/// `[{value, count}]`, most frequent first, ties in value order.
fn value_counts(values: &[Json]) -> Vec<Json> {
    let mut counts: HashMap<String, (Json, u64)> = HashMap::new();
    for v in values {
        counts.entry(v.to_string()).or_insert((v.clone(), 0)).1 += 1;
    }
    let mut counts: Vec<(Json, u64)> = counts.into_values().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| order_json(&a.0, &b.0)));
    counts
        .into_iter()
        .map(|(value, count)| json!({"value": value, "count": count}))
        .collect()
}

/// A total order over JSON values: nulls, then booleans, numbers, text.
pub fn order_json(a: &Json, b: &Json) -> Ordering {
    fn rank(v: &Json) -> u8 {
        match v {
            Json::Null => 0,
            Json::Bool(_) => 1,
            Json::Number(_) => 2,
            Json::String(_) => 3,
            _ => 4,
        }
    }
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Json::String(x), Json::String(y)) => x.cmp(y),
        (Json::Bool(x), Json::Bool(y)) => x.cmp(y),
        _ => rank(a)
            .cmp(&rank(b))
            .then_with(|| a.to_string().cmp(&b.to_string())),
    }
}

/// Whether `value` lies within the bounds; numbers compare as numbers, instants as instants.
pub fn within(value: &Literal, b: &Bounds) -> bool {
    let above = b
        .min
        .as_ref()
        .is_none_or(|min| match cmp_literal(value, min) {
            Some(o) => o.is_gt() || (!b.strict_min && o.is_eq()),
            None => false,
        });
    let below = b
        .max
        .as_ref()
        .is_none_or(|max| match cmp_literal(value, max) {
            Some(o) => o.is_lt() || (!b.strict_max && o.is_eq()),
            None => false,
        });
    above && below
}

pub fn cmp_literal(a: &Literal, b: &Literal) -> Option<Ordering> {
    match (a, b) {
        (Literal::Number(x), Literal::Number(y)) => x.partial_cmp(y),
        (Literal::Text(x), Literal::Text(y)) => match (parse_time(x), parse_time(y)) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => Some(x.cmp(y)),
        },
        (Literal::Time(x), Literal::Time(y)) => Some(x.cmp(y)),
        (Literal::Time(x), Literal::Text(y)) => parse_time(y).map(|y| x.cmp(&y)),
        (Literal::Text(x), Literal::Time(y)) => parse_time(x).map(|x| x.cmp(y)),
        (Literal::Bool(x), Literal::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn observed_within(
    observed: &Option<Json>,
    b: &Bounds,
    result: &mut Map<String, Json>,
) -> Result<bool, QualityError> {
    let value = observed.clone().unwrap_or(Json::Null);
    result.insert("observed_value".into(), value.clone());
    if value.is_null() {
        return Ok(false);
    }
    let observed = Literal::from_json(&value);
    for bound in [&b.min, &b.max].into_iter().flatten() {
        if cmp_literal(&observed, bound).is_none() {
            return Err(QualityError::data(format!(
                "invalid datetime format: the bound {bound:?} cannot be compared with the observed value {value}"
            )));
        }
    }
    Ok(within(&observed, b))
}

fn number(v: Option<f64>) -> Option<Json> {
    v.map(crate::value::float_json)
}

fn stat_result(
    stat: &Stat,
    o: &StatObservation,
    result: &mut Map<String, Json>,
) -> Result<bool, QualityError> {
    let counts = || o.counts.clone().unwrap_or_default();
    let nonmissing = o.element_count - o.missing_count;
    let with_counts = |result: &mut Map<String, Json>| {
        result.insert("element_count".into(), o.element_count.into());
        result.insert("missing_count".into(), o.missing_count.into());
        result.insert(
            "missing_percent".into(),
            percent(o.missing_count, o.element_count),
        );
    };
    Ok(match stat {
        Stat::Min(b) => observed_within(&o.min, b, result)?,
        Stat::Max(b) => observed_within(&o.max, b, result)?,
        Stat::Mean(b) => observed_within(&number(o.mean), b, result)?,
        Stat::Median(b) => observed_within(&number(o.median), b, result)?,
        Stat::Sum(b) => observed_within(&o.sum, b, result)?,
        Stat::Stdev(b) => observed_within(&number(o.stdev), b, result)?,
        Stat::UniqueCount(b) => observed_within(&o.distinct.map(Json::from), b, result)?,
        Stat::UniqueProportion(b) => {
            let p = o
                .distinct
                .filter(|_| nonmissing > 0)
                .map(|d| d as f64 / nonmissing as f64);
            observed_within(&number(p), b, result)?
        }
        Stat::Quantiles { quantiles, ranges } => {
            let values = o.quantiles.clone().unwrap_or_default();
            let details: Vec<bool> = values
                .iter()
                .zip(ranges)
                .map(|(v, (lo, hi))| {
                    let v = v.as_f64().unwrap_or(f64::NAN);
                    lo.is_none_or(|lo| v >= lo) && hi.is_none_or(|hi| v <= hi)
                })
                .collect();
            result.insert(
                "observed_value".into(),
                json!({"quantiles": quantiles, "values": values}),
            );
            result.insert("details".into(), json!({"success_details": details}));
            !values.is_empty() && details.iter().all(|&ok| ok)
        }
        Stat::MostCommon { set, ties_okay } => {
            let counts = counts();
            let top = counts.iter().map(|(_, c)| *c).max().unwrap_or(0);
            let modes: Vec<Json> = counts
                .iter()
                .filter(|(_, c)| *c == top)
                .map(|(v, _)| v.clone())
                .collect();
            result.insert("observed_value".into(), json!(modes));
            with_counts(result);
            let in_set = |v: &Json| set.iter().any(|s| same(v, s));
            if *ties_okay {
                !modes.is_empty() && modes.iter().any(in_set)
            } else {
                modes.len() == 1 && in_set(&modes[0])
            }
        }
        Stat::DistinctInSet(_) | Stat::DistinctContain(_) | Stat::DistinctEqual(_) => {
            let counts = counts();
            let observed: Vec<Json> = counts.iter().map(|(v, _)| v.clone()).collect();
            result.insert("observed_value".into(), json!(observed));
            result.insert(
                "details".into(),
                json!({"value_counts": counts.iter().map(|(v, c)| json!({"value": v, "count": c})).collect::<Vec<_>>()}),
            );
            with_counts(result);
            let all_in = |set: &[Literal]| observed.iter().all(|v| set.iter().any(|s| same(v, s)));
            let contains =
                |set: &[Literal]| set.iter().all(|s| observed.iter().any(|v| same(v, s)));
            match stat {
                Stat::DistinctInSet(None) => true,
                Stat::DistinctInSet(Some(set)) => all_in(set),
                Stat::DistinctContain(set) => contains(set),
                Stat::DistinctEqual(set) => all_in(set) && contains(set),
                _ => unreachable!("matched above"),
            }
        }
        Stat::Type(names) => {
            let (observed, aliases) = o.type_names.clone().unwrap_or_default();
            result.insert("observed_value".into(), observed.into());
            names.is_empty()
                || names
                    .iter()
                    .any(|n| aliases.iter().any(|a| a.eq_ignore_ascii_case(n.trim())))
        }
    })
}

/// Whether an observed value equals a value from the suite (1 == 1.0; instants by value).
pub fn same(v: &Json, s: &Literal) -> bool {
    cmp_literal(&Literal::from_json(v), s).is_some_and(Ordering::is_eq)
}

/// Reads `ignore_row_if` for a row of several columns, given which are missing.
pub fn ignored(ignore: Ignore, missing: &[bool]) -> bool {
    match ignore {
        Ignore::BothMissing | Ignore::AllMissing => missing.iter().all(|&m| m),
        Ignore::EitherMissing | Ignore::AnyMissing => missing.iter().any(|&m| m),
        Ignore::Never => false,
    }
}

/// A whole validation: the suite's verdict and every expectation's result.
pub fn validation(suite: &str, results: Vec<Json>, data: &str) -> Json {
    let evaluated = results.len();
    let successful = results
        .iter()
        .filter(|r| r["success"] == json!(true))
        .count();
    json!({
        "success": successful == evaluated,
        "statistics": {
            "evaluated_expectations": evaluated,
            "successful_expectations": successful,
            "unsuccessful_expectations": evaluated - successful,
            "success_percent": if evaluated == 0 { json!(null) } else { json!(successful as f64 / evaluated as f64 * 100.0) },
        },
        "results": results,
        "suite_name": suite,
        "meta": {"expectation_suite_name": suite, "active_batch_definition": {"data_asset_name": data}},
    })
}
