//! The in-memory engine: every check of a suite measured in one pass over Arrow batches,
//! batch by batch, on as many threads as there are cores.
//!
//! Each worker keeps its own accumulators and receives whole batches with their first row's
//! number; accumulators merge at the end, so results do not depend on which worker saw which
//! batch. Checks that need the whole column (uniqueness, order, z-scores, medians) keep the
//! least state that answers them.

use std::collections::HashMap;
use std::sync::mpsc;

use arrow::datatypes::{DataType, Schema};
use arrow::record_batch::RecordBatch;
use serde_json::{Map, Value as Json};

use crate::QualityError;
use crate::condition::compare;
use crate::expect::{Check, Ignore, Kind, MapTest, MultiTest, PairTest, Stat};
use crate::result::{
    MapObservation, Observation, StatObservation, Unexpected, cmp_literal, ignored, order_json,
    same, within,
};
use crate::value::{Column, Literal, float_json, time_json};

/// A row's fate for one row-wise check.
pub const SKIPPED: u8 = 0;
pub const MISSING: u8 = 1;
pub const EXPECTED: u8 = 2;
pub const UNEXPECTED: u8 = 3;

/// Measures every check over `batches`. `Err` from the source stops the scan and is returned.
pub fn run<E: Send>(
    checks: &[Check],
    schema: &Schema,
    batches: impl Iterator<Item = Result<RecordBatch, E>>,
    threads: usize,
) -> Result<Vec<Result<Observation, QualityError>>, E> {
    let threads = threads.max(1);
    let problems: Vec<Option<QualityError>> =
        checks.iter().map(|c| domain_problem(c, schema)).collect();
    let merged = std::thread::scope(|scope| {
        let mut senders = Vec::new();
        let mut workers = Vec::new();
        for _ in 0..threads {
            let (tx, rx) = mpsc::sync_channel::<(u64, RecordBatch)>(2);
            senders.push(tx);
            let problems = &problems;
            workers.push(scope.spawn(move || {
                let mut accs: Vec<Acc> = checks
                    .iter()
                    .zip(problems)
                    .map(|(c, p)| Acc::new(c, p.is_some()))
                    .collect();
                for (offset, batch) in rx {
                    for (acc, check) in accs.iter_mut().zip(checks) {
                        acc.add(check, &batch, offset);
                    }
                }
                accs
            }));
        }
        let mut offset = 0u64;
        let mut failure = None;
        for (i, batch) in batches.enumerate() {
            match batch {
                Ok(batch) => {
                    let rows = batch.num_rows() as u64;
                    if rows > 0 && senders[i % threads].send((offset, batch)).is_err() {
                        break;
                    }
                    offset += rows;
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        drop(senders);
        let mut all = workers
            .into_iter()
            .map(|w| w.join().expect("a scan worker panicked"));
        let mut first = all.next().expect("at least one worker");
        for other in all {
            for (a, b) in first.iter_mut().zip(other) {
                a.merge(b);
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(first),
        }
    })?;
    let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    Ok(merged
        .into_iter()
        .zip(checks)
        .zip(problems)
        .map(|((acc, check), problem)| match problem {
            Some(p) => Err(p),
            None => acc.finish(check, &columns, schema),
        })
        .collect())
}

/// Why a check cannot run against data of this schema, said the way GE says it.
pub(crate) fn domain_problem(check: &Check, schema: &Schema) -> Option<QualityError> {
    if let Kind::Invalid(error) = &check.kind {
        return Some(error.clone());
    }
    let mut needed = check.columns();
    if let Some(c) = &check.condition {
        c.columns(&mut needed);
    }
    needed.extend(check.format.index_columns.iter().cloned());
    let missing: Vec<&String> = needed
        .iter()
        .filter(|c| schema.column_with_name(c).is_none())
        .collect();
    (!missing.is_empty()).then(|| {
        let have: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        QualityError::data(format!(
            "The column {} does not exist in the data (its columns: {})",
            missing
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(", "),
            have.join(", ")
        ))
    })
}

/// A value as a hash key: numbers by value (1 and 1.0 are one value), text, instants.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Key {
    Null,
    Bool(bool),
    Int(i64),
    Float(u64),
    Text(String),
    Time(i64),
}

impl Key {
    fn of(column: &Column, row: usize) -> Key {
        if column.is_missing(row) {
            return Key::Null;
        }
        match column {
            Column::Int(a) => Key::Int(a.value(row)),
            Column::Float(a) => {
                let v = a.value(row);
                if v.fract() == 0.0 && v.abs() < 9.0e15 {
                    Key::Int(v as i64)
                } else {
                    Key::Float(v.to_bits())
                }
            }
            Column::Text(a) => Key::Text(a.value(row).to_string()),
            Column::Bool(a) => Key::Bool(a.value(row)),
            Column::Time { values, .. } => Key::Time(values.value(row)),
            Column::Other(_) => Key::Text(column.json(row).to_string()),
        }
    }

    fn json(&self, float: bool, date: bool) -> Json {
        match self {
            Key::Null => Json::Null,
            Key::Bool(b) => (*b).into(),
            Key::Int(i) if float => float_json(*i as f64),
            Key::Int(i) => (*i).into(),
            Key::Float(bits) => float_json(f64::from_bits(*bits)),
            Key::Text(s) => s.clone().into(),
            Key::Time(t) => time_json(*t, date),
        }
    }
}

/// Where a value was first seen and where again, for uniqueness.
#[derive(Debug, Default)]
struct Seen {
    count: u64,
    first: Option<Unexpected>,
    later: Vec<Unexpected>,
}

/// The first and last values of one batch, to check order across batch boundaries.
#[derive(Debug)]
struct Edge {
    offset: u64,
    first: Option<(f64, Unexpected)>,
    last: Option<f64>,
}

/// Uniqueness of whole numbers, compactly: a bitmap of the values seen (a few bytes per value
/// for ids, which are dense) and the repeats. Used unless every unexpected row must be listed.
#[derive(Debug, Default)]
struct IntSeen {
    seen: roaring::RoaringTreemap,
    /// Value → occurrences beyond the first.
    repeats: HashMap<i64, u64>,
    /// The first repeated occurrences, in row order.
    examples: Vec<Unexpected>,
}

/// Order-preserving map of i64 onto u64 for the bitmap.
fn bitmap_key(v: i64) -> u64 {
    (v as u64) ^ (1 << 63)
}

fn bitmap_value(k: u64) -> i64 {
    (k ^ (1 << 63)) as i64
}

#[derive(Debug)]
enum Extra {
    None,
    Unique(HashMap<Key, Seen>),
    UniqueInts(Box<IntSeen>),
    Compound(HashMap<Vec<Key>, Seen>),
    Order(Vec<Edge>),
    Scores(Vec<(f64, Unexpected)>),
}

#[derive(Debug)]
struct MapAcc {
    obs: MapObservation,
    keep: usize,
    extra: Extra,
}

impl MapAcc {
    fn push(&mut self, u: Unexpected) {
        self.obs.unexpected_count += 1;
        if self.obs.unexpected.len() < self.keep {
            self.obs.unexpected.push(u);
        }
    }
}

#[derive(Debug, Default)]
struct StatAcc {
    element: u64,
    missing: u64,
    count: u64,
    mean: f64,
    m2: f64,
    int_sum: Option<i128>,
    float_sum: f64,
    min: Option<(f64, Json)>,
    max: Option<(f64, Json)>,
    values: Option<Vec<f64>>,
    counts: Option<HashMap<Key, u64>>,
    integer: bool,
    date: bool,
    time: bool,
}

#[derive(Debug)]
enum Acc {
    Rows(u64),
    Map(MapAcc),
    Stat(Box<StatAcc>),
    Failed(QualityError),
    Idle,
}

impl Acc {
    fn new(check: &Check, unusable: bool) -> Acc {
        if unusable {
            return Acc::Idle;
        }
        let keep = check.format.keep();
        let map = |extra| {
            Acc::Map(MapAcc {
                obs: MapObservation::default(),
                keep,
                extra,
            })
        };
        match &check.kind {
            Kind::RowCount(_) => Acc::Rows(0),
            Kind::Map { test, .. } => map(match test {
                MapTest::Unique => Extra::Unique(HashMap::new()),
                MapTest::Increasing { .. } | MapTest::Decreasing { .. } => Extra::Order(Vec::new()),
                MapTest::ZScore { .. } => Extra::Scores(Vec::new()),
                _ => Extra::None,
            }),
            Kind::Pair { .. } => map(Extra::None),
            Kind::Multi { test, .. } => map(match test {
                MultiTest::CompoundUnique => Extra::Compound(HashMap::new()),
                _ => Extra::None,
            }),
            Kind::Stat { stat, .. } => Acc::Stat(Box::new(StatAcc {
                values: stat.needs_values().then(Vec::new),
                counts: stat.needs_counts().then(HashMap::new),
                integer: true,
                ..StatAcc::default()
            })),
            _ => Acc::Idle,
        }
    }

    fn add(&mut self, check: &Check, batch: &RecordBatch, offset: u64) {
        if matches!(self, Acc::Idle | Acc::Failed(_)) {
            return;
        }
        let selected = match &check.condition {
            Some(c) => match c.select(batch) {
                Ok(s) => Some(s),
                Err(e) => return *self = Acc::Failed(e),
            },
            None => None,
        };
        let result = match self {
            Acc::Rows(n) => {
                *n += selected
                    .as_ref()
                    .map_or(batch.num_rows(), |s| s.iter().filter(|&&x| x).count())
                    as u64;
                Ok(())
            }
            Acc::Map(acc) => add_map(acc, check, batch, offset, selected.as_deref()),
            Acc::Stat(acc) => add_stat(acc, check, batch, selected.as_deref()),
            Acc::Failed(_) | Acc::Idle => Ok(()),
        };
        if let Err(e) = result {
            *self = Acc::Failed(e);
        }
    }

    fn merge(&mut self, other: Acc) {
        match (&mut *self, other) {
            (Acc::Failed(_), _) => {}
            (_, Acc::Failed(e)) => *self = Acc::Failed(e),
            (Acc::Rows(a), Acc::Rows(b)) => *a += b,
            (Acc::Map(a), Acc::Map(b)) => merge_map(a, b),
            (Acc::Stat(a), Acc::Stat(b)) => merge_stat(a, *b),
            _ => {}
        }
    }

    fn finish(
        self,
        check: &Check,
        columns: &[String],
        schema: &Schema,
    ) -> Result<Observation, QualityError> {
        match self {
            Acc::Failed(e) => Err(e),
            Acc::Rows(rows) => Ok(Observation::Table {
                rows,
                columns: columns.to_vec(),
            }),
            Acc::Idle => Ok(Observation::Table {
                rows: 0,
                columns: columns.to_vec(),
            }),
            Acc::Map(acc) => Ok(Observation::Map(finish_map(acc, check))),
            Acc::Stat(acc) => {
                finish_stat(*acc, check, schema).map(|o| Observation::Stat(Box::new(o)))
            }
        }
    }
}

fn unexpected(col: &Column, check: &Check, batch: &RecordBatch, r: usize, row: u64) -> Unexpected {
    Unexpected {
        row: Some(row),
        value: col.json(r),
        index: index_of(check, batch, r),
    }
}

/// The values of the domain and index columns at `row`, for `unexpected_index_list`.
fn index_of(check: &Check, batch: &RecordBatch, row: usize) -> Option<Map<String, Json>> {
    if check.format.index_columns.is_empty() {
        return None;
    }
    let mut out = Map::new();
    for name in check.columns().iter().chain(&check.format.index_columns) {
        if let Some(array) = batch.column_by_name(name) {
            out.insert(name.clone(), Column::new(array).json(row));
        }
    }
    Some(out)
}

fn column(batch: &RecordBatch, name: &str) -> Column {
    Column::new(batch.column_by_name(name).expect("checked before the scan"))
}

/// Per row of `batch`: SKIPPED, MISSING, EXPECTED or UNEXPECTED for a stateless row-wise test.
/// Stateful tests (uniqueness, order, z-scores) report EXPECTED here; the accumulator decides.
pub fn map_states(
    test: &MapTest,
    col: &Column,
    selected: Option<&[bool]>,
) -> Result<Vec<u8>, QualityError> {
    let n = col.len();
    let rows = (0..n).filter(|&r| selected.is_none_or(|s| s[r]));
    let mut states = vec![SKIPPED; n];
    let unexpected = row_test(test, col)?;
    for r in rows {
        states[r] = match test {
            MapTest::NotNull => {
                if col.is_missing(r) {
                    UNEXPECTED
                } else {
                    EXPECTED
                }
            }
            MapTest::Null => {
                if col.is_missing(r) {
                    EXPECTED
                } else {
                    UNEXPECTED
                }
            }
            _ if col.is_missing(r) => MISSING,
            _ => {
                if unexpected(r) {
                    UNEXPECTED
                } else {
                    EXPECTED
                }
            }
        };
    }
    Ok(states)
}

type RowTest<'a> = Box<dyn Fn(usize) -> bool + 'a>;

const MIXED_TYPES: &str =
    "TypeError: Column values, min_value, and max_value must either be None or of the same type.";

/// The "is this non-missing value unexpected" function for one column of one batch.
pub(crate) fn row_test<'a>(
    test: &'a MapTest,
    col: &'a Column,
) -> Result<RowTest<'a>, QualityError> {
    let text = |what: &str| match col {
        Column::Text(a) => Ok(a),
        _ => Err(QualityError::data(format!(
            "Values passed to {what} must be of type string."
        ))),
    };
    Ok(match test {
        MapTest::NotNull
        | MapTest::Null
        | MapTest::Unique
        | MapTest::Increasing { .. }
        | MapTest::Decreasing { .. }
        | MapTest::ZScore { .. } => Box::new(|_| false),
        MapTest::Between(b) => {
            let lo = b.min.as_ref().map(|v| v.for_column(col));
            let hi = b.max.as_ref().map(|v| v.for_column(col));
            for bound in [&lo, &hi].into_iter().flatten() {
                let fits = matches!(
                    (col, bound),
                    (Column::Int(_) | Column::Float(_), Literal::Number(_))
                        | (Column::Text(_), Literal::Text(_))
                        | (Column::Time { .. }, Literal::Time(_))
                        | (Column::Bool(_), Literal::Bool(_) | Literal::Number(_))
                );
                if !fits {
                    return Err(QualityError::data(MIXED_TYPES));
                }
            }
            let (smin, smax) = (b.strict_min, b.strict_max);
            match (col, &lo, &hi) {
                // The common case, without a comparison per bound per row through enums.
                (Column::Float(a), lo, hi) => {
                    let lo = lo.as_ref().map(number);
                    let hi = hi.as_ref().map(number);
                    let a = a.clone();
                    Box::new(move |r| !in_range(a.value(r), lo, hi, smin, smax))
                }
                (Column::Int(a), lo, hi) => {
                    let lo = lo.as_ref().map(number);
                    let hi = hi.as_ref().map(number);
                    Box::new(move |r| !in_range(a.value(r) as f64, lo, hi, smin, smax))
                }
                _ => Box::new(move |r| {
                    let above = lo.as_ref().is_none_or(|v| {
                        compare(col, r, v).is_some_and(|o| o.is_gt() || (!smin && o.is_eq()))
                    });
                    let below = hi.as_ref().is_none_or(|v| {
                        compare(col, r, v).is_some_and(|o| o.is_lt() || (!smax && o.is_eq()))
                    });
                    !(above && below)
                }),
            }
        }
        MapTest::InSet(set) | MapTest::NotInSet(set) => {
            let want_in = matches!(test, MapTest::InSet(_));
            let member = set_test(set, col);
            Box::new(move |r| member(r) != want_in)
        }
        MapTest::Regex(re) => {
            let a = stringish(col);
            Box::new(move |r| !re.is_match(&a(r)))
        }
        MapTest::NotRegex(re) => {
            let a = stringish(col);
            Box::new(move |r| re.is_match(&a(r)))
        }
        MapTest::RegexList { list, any } => {
            let a = stringish(col);
            let any = *any;
            Box::new(move |r| {
                let v = a(r);
                if any {
                    !list.iter().any(|re| re.is_match(&v))
                } else {
                    !list.iter().all(|re| re.is_match(&v))
                }
            })
        }
        MapTest::NotRegexList(list) => {
            let a = stringish(col);
            Box::new(move |r| {
                let v = a(r);
                list.iter().any(|re| re.is_match(&v))
            })
        }
        MapTest::LengthBetween(b) => {
            let a = match col {
                Column::Text(a) => a,
                _ => {
                    return Err(QualityError::data(format!(
                        "object of type '{}' has no len()",
                        python_type(col)
                    )));
                }
            };
            let b = b.clone();
            Box::new(move |r| !within(&Literal::Number(a.value(r).chars().count() as f64), &b))
        }
        MapTest::Strftime(format) => {
            let a = text("expect_column_values_to_match_strftime_format")?;
            Box::new(move |r| !strftime_matches(a.value(r), format))
        }
        // Python's json.loads refuses anything but text, so other values are unexpected.
        MapTest::Json => match col {
            Column::Text(a) => Box::new(move |r| {
                serde_json::from_str::<serde::de::IgnoredAny>(a.value(r)).is_err()
            }),
            _ => Box::new(|_| true),
        },
        MapTest::Dateutil => {
            let a = text("expect_column_values_to_be_dateutil_parseable")?;
            Box::new(move |r| !crate::dates::dateutil_parseable(a.value(r)))
        }
    })
}

fn number(v: &Literal) -> f64 {
    match v {
        Literal::Number(n) => *n,
        Literal::Bool(b) => f64::from(u8::from(*b)),
        _ => f64::NAN,
    }
}

#[inline]
fn in_range(v: f64, lo: Option<f64>, hi: Option<f64>, smin: bool, smax: bool) -> bool {
    lo.is_none_or(|lo| if smin { v > lo } else { v >= lo })
        && hi.is_none_or(|hi| if smax { v < hi } else { v <= hi })
}

/// Python's type name for a column's values, for GE's error messages.
fn python_type(col: &Column) -> &'static str {
    match col {
        Column::Int(_) => "int",
        Column::Float(_) => "float",
        Column::Text(_) => "str",
        Column::Bool(_) => "bool",
        Column::Time { .. } => "Timestamp",
        Column::Other(_) => "object",
    }
}

/// Values as text for the regex checks (GE applies them to the string form of any value).
fn stringish<'a>(col: &'a Column) -> Box<dyn Fn(usize) -> std::borrow::Cow<'a, str> + 'a> {
    match col {
        Column::Text(a) => Box::new(move |r| std::borrow::Cow::Borrowed(a.value(r))),
        other => Box::new(move |r| match other.json(r) {
            Json::String(s) => std::borrow::Cow::Owned(s),
            v => std::borrow::Cow::Owned(v.to_string()),
        }),
    }
}

/// Membership in a value set, hashed for text and whole numbers.
fn set_test<'a>(set: &'a [Literal], col: &'a Column) -> RowTest<'a> {
    match col {
        Column::Text(a) => {
            let members: std::collections::HashSet<&str> = set
                .iter()
                .filter_map(|v| match v {
                    Literal::Text(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect();
            Box::new(move |r| members.contains(a.value(r)))
        }
        Column::Int(a) => {
            let members: std::collections::HashSet<i64> = set
                .iter()
                .filter_map(|v| match v {
                    Literal::Number(n) if n.fract() == 0.0 => Some(*n as i64),
                    Literal::Bool(b) => Some(i64::from(*b)),
                    _ => None,
                })
                .collect();
            Box::new(move |r| members.contains(&a.value(r)))
        }
        _ => {
            let set: Vec<Literal> = set.iter().map(|v| v.for_column(col)).collect();
            Box::new(move |r| {
                set.iter()
                    .any(|v| compare(col, r, v).is_some_and(|o| o.is_eq()))
            })
        }
    }
}

fn strftime_matches(value: &str, format: &str) -> bool {
    let mut parsed = chrono::format::Parsed::new();
    chrono::format::parse(
        &mut parsed,
        value,
        chrono::format::StrftimeItems::new(format),
    )
    .is_ok()
}

fn add_map(
    acc: &mut MapAcc,
    check: &Check,
    batch: &RecordBatch,
    offset: u64,
    selected: Option<&[bool]>,
) -> Result<(), QualityError> {
    let at = BatchRows {
        batch,
        offset,
        selected,
    };
    match &check.kind {
        Kind::Map {
            column: name, test, ..
        } => add_values(acc, check, name, test, &at),
        Kind::Pair {
            a, b, test, ignore, ..
        } => {
            add_pairs(acc, check, [a.as_str(), b.as_str()], test, *ignore, &at);
            Ok(())
        }
        Kind::Multi {
            columns,
            test,
            ignore,
            ..
        } => {
            add_records(acc, check, columns, test, *ignore, &at);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The rows of one batch a map check reads: where the batch starts and which rows the row
/// condition selects.
struct BatchRows<'a> {
    batch: &'a RecordBatch,
    offset: u64,
    selected: Option<&'a [bool]>,
}

impl BatchRows<'_> {
    fn skipped(&self, r: usize) -> bool {
        self.selected.is_some_and(|s| !s[r])
    }
}

/// Whole-number uniqueness is kept compactly ([`IntSeen`]) unless every unexpected row, or
/// its index columns, must be listed; decided on the first batch.
fn compact_unique_ints(acc: &mut MapAcc, check: &Check, col: &Column) {
    if let (Extra::Unique(seen), Column::Int(_)) = (&acc.extra, col)
        && seen.is_empty()
        && check.format.level != crate::expect::Level::Complete
        && check.format.index_columns.is_empty()
    {
        acc.extra = Extra::UniqueInts(Box::default());
    }
}

/// A column map check over one batch: the row-wise tests' states, and the stateful tests'
/// (uniqueness, order, z-scores) accumulators.
fn add_values(
    acc: &mut MapAcc,
    check: &Check,
    name: &str,
    test: &MapTest,
    at: &BatchRows<'_>,
) -> Result<(), QualityError> {
    let BatchRows { batch, offset, .. } = *at;
    let col = column(batch, name);
    let states = map_states(test, &col, at.selected)?;
    let date = matches!(col, Column::Time { date: true, .. });
    let float = matches!(col, Column::Float(_));
    let mut edge = Edge {
        offset,
        first: None,
        last: None,
    };
    compact_unique_ints(acc, check, &col);
    for (r, &state) in states.iter().enumerate() {
        if state == SKIPPED {
            continue;
        }
        acc.obs.element_count += 1;
        if state == MISSING {
            acc.obs.missing_count += 1;
            continue;
        }
        let row = offset + r as u64;
        match (&mut acc.extra, test) {
            (Extra::UniqueInts(ints), _) => {
                let Column::Int(a) = &col else {
                    return Err(QualityError::data(format!(
                        "{}: the column changed type between batches",
                        check.name
                    )));
                };
                let v = a.value(r);
                if !ints.seen.insert(bitmap_key(v)) {
                    *ints.repeats.entry(v).or_default() += 1;
                    if ints.examples.len() < acc.keep {
                        ints.examples.push(unexpected(&col, check, batch, r, row));
                    }
                }
            }
            (Extra::Unique(seen), _) => {
                note(seen, Key::of(&col, r), row, || {
                    (
                        Key::of(&col, r).json(float, date),
                        index_of(check, batch, r),
                    )
                });
            }
            (
                Extra::Order(_),
                MapTest::Increasing { strictly } | MapTest::Decreasing { strictly },
            ) => {
                let v = col.number(r).ok_or_else(|| {
                    QualityError::data(format!("{}: values must be numbers or dates", check.name))
                })?;
                let increasing = matches!(test, MapTest::Increasing { .. });
                match edge.last {
                    None => {
                        edge.first = Some((v, unexpected(&col, check, batch, r, row)));
                    }
                    Some(prev) => {
                        if !ordered(prev, v, increasing, *strictly) {
                            acc.push(unexpected(&col, check, batch, r, row));
                        }
                    }
                }
                edge.last = Some(v);
            }
            (Extra::Scores(values), _) => {
                let v = col.number(r).ok_or_else(|| {
                    QualityError::data(format!("{}: the column must be numeric", check.name))
                })?;
                values.push((v, unexpected(&col, check, batch, r, row)));
            }
            _ if state == UNEXPECTED => acc.push(unexpected(&col, check, batch, r, row)),
            _ => {}
        }
    }
    if let Extra::Order(edges) = &mut acc.extra {
        edges.push(edge);
    }
    Ok(())
}

/// A column pair check over one batch.
fn add_pairs(
    acc: &mut MapAcc,
    check: &Check,
    [a, b]: [&str; 2],
    test: &PairTest,
    ignore: Ignore,
    at: &BatchRows<'_>,
) {
    let batch = at.batch;
    let (ca, cb) = (column(batch, a), column(batch, b));
    for r in 0..batch.num_rows() {
        if at.skipped(r) {
            continue;
        }
        acc.obs.element_count += 1;
        let missing = [ca.is_missing(r), cb.is_missing(r)];
        if ignored(ignore, &missing) {
            acc.obs.missing_count += 1;
            continue;
        }
        let ok = pair_ok(test, &ca, &cb, r);
        if !ok {
            acc.push(Unexpected {
                row: Some(at.offset + r as u64),
                value: Json::Array(vec![ca.json(r), cb.json(r)]),
                index: index_of(check, batch, r),
            });
        }
    }
}

/// A multi-column check over one batch: each selected row's values as one record.
fn add_records(
    acc: &mut MapAcc,
    check: &Check,
    columns: &[String],
    test: &MultiTest,
    ignore: Ignore,
    at: &BatchRows<'_>,
) {
    let batch = at.batch;
    let cols: Vec<Column> = columns.iter().map(|c| column(batch, c)).collect();
    for r in 0..batch.num_rows() {
        if at.skipped(r) {
            continue;
        }
        acc.obs.element_count += 1;
        let missing: Vec<bool> = cols.iter().map(|c| c.is_missing(r)).collect();
        if ignored(ignore, &missing) {
            acc.obs.missing_count += 1;
            continue;
        }
        let row = at.offset + r as u64;
        let record = || -> Json {
            Json::Object(
                columns
                    .iter()
                    .zip(&cols)
                    .map(|(n, c)| (n.clone(), c.json(r)))
                    .collect(),
            )
        };
        let ok = match test {
            MultiTest::CompoundUnique => {
                let Extra::Compound(seen) = &mut acc.extra else {
                    unreachable!("compound uniqueness keeps a map")
                };
                let key: Vec<Key> = cols.iter().map(|c| Key::of(c, r)).collect();
                note(seen, key, row, || (record(), index_of(check, batch, r)));
                true
            }
            other => record_ok(other, &cols, r),
        };
        if !ok {
            acc.push(Unexpected {
                row: Some(row),
                value: record(),
                index: index_of(check, batch, r),
            });
        }
    }
}

/// Whether row `r` of two columns meets a pair expectation (ignored rows aside).
fn pair_ok(test: &PairTest, ca: &Column, cb: &Column, r: usize) -> bool {
    match test {
        PairTest::Equal => {
            !ca.is_missing(r)
                && !cb.is_missing(r)
                && cells_cmp(ca, cb, r).is_some_and(|o| o.is_eq())
        }
        PairTest::Greater { or_equal } => {
            cells_cmp(ca, cb, r).is_some_and(|o| o.is_gt() || (*or_equal && o.is_eq()))
        }
        PairTest::InSet(pairs) => {
            let (va, vb) = (ca.json(r), cb.json(r));
            pairs
                .iter()
                .any(|(x, y)| same_or_null(&va, x) && same_or_null(&vb, y))
        }
    }
}

/// Whether row `r` meets a several-column expectation that looks at one row at a time.
fn record_ok(test: &MultiTest, cols: &[Column], r: usize) -> bool {
    match test {
        MultiTest::CompoundUnique => true,
        MultiTest::UniqueWithinRecord => {
            let keys: Vec<Key> = cols
                .iter()
                .filter(|c| !c.is_missing(r))
                .map(|c| Key::of(c, r))
                .collect();
            let mut sorted = keys.clone();
            sorted.sort();
            sorted.dedup();
            sorted.len() == keys.len()
        }
        MultiTest::SumEqual(total) => {
            let sum: f64 = cols.iter().filter_map(|c| c.number(r)).sum();
            (sum - total).abs() <= 1e-9 * total.abs().max(1.0)
        }
    }
}

fn same_or_null(v: &Json, want: &Literal) -> bool {
    match want {
        Literal::Null => v.is_null(),
        _ => same(v, want),
    }
}

fn ordered(prev: f64, v: f64, increasing: bool, strictly: bool) -> bool {
    match (increasing, strictly) {
        (true, true) => v > prev,
        (true, false) => v >= prev,
        (false, true) => v < prev,
        (false, false) => v <= prev,
    }
}

/// Compares the values of two columns in one row.
fn cells_cmp(a: &Column, b: &Column, r: usize) -> Option<std::cmp::Ordering> {
    if a.is_missing(r) || b.is_missing(r) {
        return None;
    }
    match (a, b) {
        (Column::Text(x), Column::Text(y)) => Some(x.value(r).cmp(y.value(r))),
        (Column::Time { values: x, .. }, Column::Time { values: y, .. }) => {
            Some(x.value(r).cmp(&y.value(r)))
        }
        _ => match (a.number(r), b.number(r)) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => cmp_literal(
                &Literal::from_json(&a.json(r)),
                &Literal::from_json(&b.json(r)),
            ),
        },
    }
}

fn note<K: std::hash::Hash + Eq>(
    seen: &mut HashMap<K, Seen>,
    key: K,
    row: u64,
    describe: impl FnOnce() -> (Json, Option<Map<String, Json>>),
) {
    let entry = seen.entry(key).or_default();
    entry.count += 1;
    let (value, index) = describe();
    let at = Unexpected {
        row: Some(row),
        value,
        index,
    };
    if entry.first.is_none() {
        entry.first = Some(at);
    } else {
        entry.later.push(at);
    }
}

fn merge_seen<K: std::hash::Hash + Eq>(into: &mut HashMap<K, Seen>, from: HashMap<K, Seen>) {
    for (key, mut other) in from {
        match into.entry(key) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(other);
            }
            std::collections::hash_map::Entry::Occupied(mut o) => {
                let mine = o.get_mut();
                mine.count += other.count;
                if other.first.as_ref().map(|u| u.row) < mine.first.as_ref().map(|u| u.row) {
                    std::mem::swap(&mut mine.first, &mut other.first);
                }
                mine.later.extend(other.first);
                mine.later.append(&mut other.later);
            }
        }
    }
}

fn merge_map(a: &mut MapAcc, b: MapAcc) {
    a.obs.element_count += b.obs.element_count;
    a.obs.missing_count += b.obs.missing_count;
    a.obs.unexpected_count += b.obs.unexpected_count;
    a.obs.unexpected.extend(b.obs.unexpected);
    a.obs.unexpected.sort_by_key(|u| u.row);
    a.obs.unexpected.truncate(a.keep);
    // A worker that saw no batch still has the map it started with.
    if matches!(&a.extra, Extra::Unique(m) if m.is_empty())
        && matches!(b.extra, Extra::UniqueInts(_))
    {
        a.extra = Extra::None;
    }
    match (&mut a.extra, b.extra) {
        (x @ Extra::None, y @ Extra::UniqueInts(_)) => *x = y,
        (Extra::Unique(x), Extra::Unique(y)) => merge_seen(x, y),
        (Extra::UniqueInts(x), Extra::UniqueInts(y)) => {
            // A value both workers saw is repeated once more than either knew.
            for k in &x.seen & &y.seen {
                let v = bitmap_value(k);
                *x.repeats.entry(v).or_default() += 1;
                if x.examples.len() < a.keep {
                    x.examples.push(Unexpected {
                        row: None,
                        value: v.into(),
                        index: None,
                    });
                }
            }
            let y = *y;
            x.seen |= y.seen;
            for (v, n) in y.repeats {
                *x.repeats.entry(v).or_default() += n;
            }
            x.examples.extend(y.examples);
            x.examples.sort_by_key(|u| u.row);
            x.examples.truncate(a.keep);
        }
        (Extra::Compound(x), Extra::Compound(y)) => merge_seen(x, y),
        (Extra::Order(x), Extra::Order(y)) => x.extend(y),
        (Extra::Scores(x), Extra::Scores(y)) => x.extend(y),
        _ => {}
    }
}

fn duplicates<K>(acc: &mut MapAcc, seen: HashMap<K, Seen>) {
    for (_, s) in seen {
        if s.count > 1 {
            for u in s.first.into_iter().chain(s.later) {
                acc.push(u);
            }
        }
    }
}

fn finish_map(mut acc: MapAcc, check: &Check) -> MapObservation {
    match std::mem::replace(&mut acc.extra, Extra::None) {
        Extra::Unique(seen) => {
            // Every duplicate is pushed; keep the earliest rows.
            acc.keep = usize::MAX;
            duplicates(&mut acc, seen);
        }
        Extra::Compound(seen) => {
            acc.keep = usize::MAX;
            duplicates(&mut acc, seen);
        }
        Extra::UniqueInts(ints) => {
            acc.obs.unexpected_count += ints.repeats.values().map(|n| n + 1).sum::<u64>();
            // The first occurrence of a value is not kept; list it beside its first repeat.
            let mut listed = std::collections::HashSet::new();
            for u in ints.examples {
                if listed.insert(u.value.to_string()) {
                    acc.obs.unexpected.push(Unexpected {
                        row: None,
                        ..u.clone()
                    });
                }
                acc.obs.unexpected.push(u);
            }
            acc.obs.unexpected.truncate(check.format.keep());
            return acc.obs;
        }
        Extra::Order(mut edges) => {
            edges.sort_by_key(|e| e.offset);
            let (increasing, strictly) = match &check.kind {
                Kind::Map {
                    test: MapTest::Increasing { strictly },
                    ..
                } => (true, *strictly),
                Kind::Map {
                    test: MapTest::Decreasing { strictly },
                    ..
                } => (false, *strictly),
                _ => (true, false),
            };
            let mut prev: Option<f64> = None;
            acc.keep = usize::MAX;
            for edge in edges {
                if let (Some(p), Some((v, u))) = (prev, edge.first)
                    && !ordered(p, v, increasing, strictly)
                {
                    acc.push(u);
                }
                if edge.last.is_some() {
                    prev = edge.last;
                }
            }
        }
        Extra::Scores(values) => {
            let (threshold, double_sided) = match &check.kind {
                Kind::Map {
                    test:
                        MapTest::ZScore {
                            threshold,
                            double_sided,
                        },
                    ..
                } => (*threshold, *double_sided),
                _ => (f64::INFINITY, true),
            };
            let n = values.len() as f64;
            let mean = values.iter().map(|v| v.0).sum::<f64>() / n;
            let var = values.iter().map(|v| (v.0 - mean).powi(2)).sum::<f64>() / (n - 1.0);
            let std = var.sqrt();
            acc.keep = usize::MAX;
            for (v, u) in values {
                let z = (v - mean) / std;
                let bad = if double_sided {
                    z.abs() >= threshold
                } else {
                    z >= threshold
                };
                if bad {
                    acc.push(u);
                }
            }
        }
        Extra::None => {}
    }
    acc.obs.unexpected.sort_by_key(|u| u.row);
    acc.obs.unexpected.truncate(check.format.keep());
    acc.obs
}

fn add_stat(
    acc: &mut StatAcc,
    check: &Check,
    batch: &RecordBatch,
    selected: Option<&[bool]>,
) -> Result<(), QualityError> {
    let Kind::Stat { column: name, stat } = &check.kind else {
        return Ok(());
    };
    let col = column(batch, name);
    if matches!(stat, Stat::Type(_)) {
        return Ok(());
    }
    acc.integer &= matches!(col, Column::Int(_) | Column::Bool(_));
    acc.date = matches!(col, Column::Time { date: true, .. });
    acc.time = matches!(col, Column::Time { .. });
    if let Some(problem) = stat_problem(check, &col) {
        return Err(problem);
    }
    let needs_number = needs_number(stat);
    for r in 0..col.len() {
        if selected.is_some_and(|s| !s[r]) {
            continue;
        }
        acc.element += 1;
        if col.is_missing(r) {
            acc.missing += 1;
            continue;
        }
        if let Some(counts) = &mut acc.counts {
            *counts.entry(Key::of(&col, r)).or_default() += 1;
        }
        if !needs_number {
            continue;
        }
        let Some(v) = col.number(r) else { continue };
        acc.count += 1;
        let delta = v - acc.mean;
        acc.mean += delta / acc.count as f64;
        acc.m2 += delta * (v - acc.mean);
        acc.float_sum += v;
        if let Column::Int(a) = &col {
            acc.int_sum = Some(acc.int_sum.unwrap_or(0) + i128::from(a.value(r)));
        }
        if acc.min.as_ref().is_none_or(|(m, _)| v < *m) {
            acc.min = Some((v, col.json(r)));
        }
        if acc.max.as_ref().is_none_or(|(m, _)| v > *m) {
            acc.max = Some((v, col.json(r)));
        }
        if let Some(values) = &mut acc.values {
            values.push(v);
        }
    }
    Ok(())
}

fn needs_number(stat: &Stat) -> bool {
    matches!(
        stat,
        Stat::Min(_)
            | Stat::Max(_)
            | Stat::Mean(_)
            | Stat::Median(_)
            | Stat::Sum(_)
            | Stat::Stdev(_)
            | Stat::Quantiles { .. }
    )
}

/// Why a statistic cannot be taken of this column (both engines refuse alike).
pub(crate) fn stat_problem(check: &Check, col: &Column) -> Option<QualityError> {
    let Kind::Stat { column, stat } = &check.kind else {
        return None;
    };
    (needs_number(stat) && matches!(col, Column::Text(_) | Column::Other(_))).then(|| {
        QualityError::data(format!(
            "{}: column \"{column}\" is not numeric (its values are {}s)",
            check.name,
            python_type(col)
        ))
    })
}

fn merge_stat(a: &mut StatAcc, b: StatAcc) {
    a.element += b.element;
    a.missing += b.missing;
    if b.count > 0 {
        let n = (a.count + b.count) as f64;
        let delta = b.mean - a.mean;
        a.m2 += b.m2 + delta * delta * a.count as f64 * b.count as f64 / n;
        a.mean += delta * b.count as f64 / n;
        a.count += b.count;
    }
    a.float_sum += b.float_sum;
    a.int_sum = match (a.int_sum, b.int_sum) {
        (Some(x), Some(y)) => Some(x + y),
        (x, y) => x.or(y),
    };
    if let Some(m) = b.min
        && a.min.as_ref().is_none_or(|(x, _)| m.0 < *x)
    {
        a.min = Some(m);
    }
    if let Some(m) = b.max
        && a.max.as_ref().is_none_or(|(x, _)| m.0 > *x)
    {
        a.max = Some(m);
    }
    a.integer &= b.integer;
    a.date |= b.date;
    a.time |= b.time;
    if let (Some(x), Some(y)) = (&mut a.values, b.values) {
        x.extend(y);
    }
    if let (Some(x), Some(y)) = (&mut a.counts, b.counts) {
        for (k, c) in y {
            *x.entry(k).or_default() += c;
        }
    }
}

/// numpy's `quantile(..., method="nearest")`: the value at the rounded position, ties to even.
pub fn nearest_rank(n: usize, q: f64) -> usize {
    let pos = q * (n - 1) as f64;
    let lower = pos.floor();
    let frac = pos - lower;
    let idx = if (frac - 0.5).abs() < 1e-12 {
        if (lower as u64).is_multiple_of(2) {
            lower
        } else {
            lower + 1.0
        }
    } else {
        pos.round()
    };
    (idx as usize).min(n - 1)
}

fn finish_stat(
    acc: StatAcc,
    check: &Check,
    schema: &Schema,
) -> Result<StatObservation, QualityError> {
    let Kind::Stat { column: name, stat } = &check.kind else {
        unreachable!("stat accumulators belong to stat checks")
    };
    let mut o = StatObservation {
        element_count: acc.element,
        missing_count: acc.missing,
        ..StatObservation::default()
    };
    if let Stat::Type(_) = stat {
        // The column was found before the scan (`domain_problem`).
        let field = schema
            .field_with_name(name)
            .map_err(|e| QualityError::Internal(e.to_string()))?;
        o.type_names = Some(type_names(field.data_type()));
        return Ok(o);
    }
    if acc.count > 0 {
        o.min = acc.min.map(|m| m.1);
        o.max = acc.max.map(|m| m.1);
    }
    // Instants have a min and a max; means and sums of them are not statistics GE reports.
    if acc.count > 0 && !acc.time {
        o.mean = Some(acc.mean);
        o.sum = Some(match acc.int_sum {
            Some(s) if acc.integer => {
                i64::try_from(s).map_or_else(|_| float_json(s as f64), Json::from)
            }
            _ => float_json(acc.float_sum),
        });
        o.stdev = (acc.count > 1).then(|| (acc.m2 / (acc.count - 1) as f64).sqrt());
    }
    if let Some(mut values) = acc.values {
        values.sort_by(f64::total_cmp);
        let n = values.len();
        if n > 0 && !acc.time {
            o.median = Some(if n % 2 == 1 {
                values[n / 2]
            } else {
                (values[n / 2 - 1] + values[n / 2]) / 2.0
            });
        }
        if n > 0
            && let Stat::Quantiles { quantiles, .. } = stat
        {
            o.quantiles = Some(
                quantiles
                    .iter()
                    .map(|q| {
                        let v = values[nearest_rank(n, *q)];
                        if acc.time {
                            time_json(v as i64, acc.date)
                        } else if acc.integer {
                            Json::from(v as i64)
                        } else {
                            float_json(v)
                        }
                    })
                    .collect(),
            );
        }
    }
    if let Some(counts) = acc.counts {
        o.distinct = Some(counts.len() as u64);
        let float = !acc.integer && counts.keys().any(|k| matches!(k, Key::Float(_)));
        let mut list: Vec<(Json, u64)> = counts
            .into_iter()
            .map(|(k, c)| (k.json(float, acc.date), c))
            .collect();
        list.sort_by(|a, b| order_json(&a.0, &b.0));
        o.counts = Some(list);
    }
    Ok(o)
}

/// The names a column of this Arrow type answers to in `expect_column_values_to_be_of_type`:
/// numpy/pandas dtypes, Python types, SQL types and Arrow's own names.
pub fn type_names(t: &DataType) -> (String, Vec<String>) {
    let names: &[&str] = match t {
        DataType::Int8 => &["int8", "int", "tinyint", "integer"],
        DataType::Int16 => &["int16", "int", "smallint", "integer"],
        DataType::Int32 => &["int32", "int", "integer", "int4"],
        DataType::Int64 => &["int64", "int", "bigint", "integer", "int8", "long"],
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            &["uint", "int", "integer"]
        }
        DataType::Float16 | DataType::Float32 => &["float32", "float", "real", "float4"],
        DataType::Float64 => &[
            "float64",
            "float",
            "double",
            "double precision",
            "double_precision",
            "float8",
        ],
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => &["decimal", "numeric", "float"],
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            &["str", "string", "object", "varchar", "text", "utf8", "char"]
        }
        DataType::Boolean => &["bool", "boolean"],
        DataType::Date32 | DataType::Date64 => &["date", "datetime64", "datetime64[ns]"],
        DataType::Timestamp(..) => &["datetime64", "datetime64[ns]", "timestamp", "datetime"],
        _ => &[],
    };
    let observed = names
        .first()
        .map_or_else(|| t.to_string(), |n| n.to_string());
    let mut all: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    all.push(t.to_string());
    (observed, all)
}

/// For quarantine: per row of `batch`, the indexes (into `checks`) of the row-wise checks the
/// row breaks. Only checks that judge a row on its own count (not uniqueness, order or
/// z-scores, which depend on other rows).
pub fn row_failures(
    checks: &[Check],
    batch: &RecordBatch,
) -> Result<Vec<Vec<usize>>, QualityError> {
    let mut broken = vec![Vec::new(); batch.num_rows()];
    for (i, check) in checks.iter().enumerate() {
        if !is_row_wise(check) || domain_problem(check, batch.schema_ref()).is_some() {
            continue;
        }
        let selected = match &check.condition {
            Some(c) => Some(c.select(batch)?),
            None => None,
        };
        let rows = (0..batch.num_rows()).filter(|&r| selected.as_ref().is_none_or(|s| s[r]));
        let cols: Vec<Column> = check.columns().iter().map(|c| column(batch, c)).collect();
        let mut bad = |r: usize| broken[r].push(i);
        match &check.kind {
            Kind::Map { test, .. } => {
                let states = map_states(test, &cols[0], selected.as_deref())?;
                for (r, state) in states.into_iter().enumerate() {
                    if state == UNEXPECTED {
                        bad(r);
                    }
                }
            }
            Kind::Pair { test, ignore, .. } => {
                for r in rows {
                    let missing = [cols[0].is_missing(r), cols[1].is_missing(r)];
                    if !ignored(*ignore, &missing) && !pair_ok(test, &cols[0], &cols[1], r) {
                        bad(r);
                    }
                }
            }
            Kind::Multi { test, ignore, .. } => {
                for r in rows {
                    let missing: Vec<bool> = cols.iter().map(|c| c.is_missing(r)).collect();
                    if !ignored(*ignore, &missing) && !record_ok(test, &cols, r) {
                        bad(r);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(broken)
}

/// Whether a check can be settled row by row (and so by quarantining rows).
pub fn is_row_wise(check: &Check) -> bool {
    match &check.kind {
        Kind::Map { test, .. } => !test.is_global(),
        Kind::Pair { .. } => true,
        Kind::Multi { test, .. } => !matches!(test, MultiTest::CompoundUnique),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{Field, Schema};
    use serde_json::json;

    use super::*;
    use crate::expect::{Level, ResultFormat};
    use crate::suite::parse;

    fn checks(level: Level) -> Vec<Check> {
        let text = r#"{"name": "s", "expectations": [{"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}}]}"#;
        let suite = parse("s.json", text, &mut Default::default()).unwrap();
        suite
            .expectations
            .iter()
            .map(|e| Check::new(e, &ResultFormat::new(level), &Default::default()))
            .collect()
    }

    #[test]
    fn uniqueness_of_ids_is_counted_alike_compactly_and_exactly() {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
        let batch = |v: Vec<Option<i64>>| {
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(v))]).unwrap()
        };
        let batches = || {
            vec![
                batch(vec![Some(5), Some(7), None]),
                batch(vec![Some(5), Some(8)]),
                batch(vec![Some(7), Some(9), Some(5)]),
            ]
        };
        for level in [Level::Summary, Level::Complete] {
            for threads in [1, 2, 3] {
                let checks = checks(level);
                let observed = run(
                    &checks,
                    &schema,
                    batches().into_iter().map(Ok::<_, ()>),
                    threads,
                )
                .unwrap();
                let Ok(Observation::Map(o)) = &observed[0] else {
                    panic!("{observed:?}")
                };
                assert_eq!(
                    (o.element_count, o.missing_count, o.unexpected_count),
                    (8, 1, 5)
                );
                // Every listed value is a duplicate; the exact path lists all five rows.
                let values: Vec<Json> = o.unexpected.iter().map(|u| u.value.clone()).collect();
                assert!(
                    values.iter().all(|v| v == &json!(5) || v == &json!(7)),
                    "{values:?}"
                );
                assert!(values.len() >= 4, "{level:?} {threads}: {values:?}");
                if level == Level::Complete {
                    assert_eq!(values.len(), 5);
                }
            }
        }
    }

    #[test]
    fn quarantine_names_the_row_wise_expectations_each_row_breaks() {
        let text = r#"{"name": "s", "expectations": [
          {"type": "expect_column_values_to_be_between", "kwargs": {"column": "a", "min_value": 0, "max_value": 10}},
          {"type": "expect_column_pair_values_a_to_be_greater_than_b", "kwargs": {"column_A": "a", "column_B": "b"}},
          {"type": "expect_multicolumn_sum_to_equal", "kwargs": {"column_list": ["a", "b"], "sum_total": 5}},
          {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "a"}},
          {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "a", "max_value": 0}}]}"#;
        let suite = parse("s.json", text, &mut Default::default()).unwrap();
        let checks: Vec<Check> = suite
            .expectations
            .iter()
            .map(|e| Check::new(e, &ResultFormat::new(Level::Summary), &Default::default()))
            .collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(4), Some(20), Some(2), None])),
                Arc::new(Int64Array::from(vec![Some(1), Some(1), Some(3), Some(5)])),
            ],
        )
        .unwrap();
        let broken = row_failures(&checks, &batch).unwrap();
        // Uniqueness and the mean depend on other rows: never a row's fault. A missing `a`
        // is not greater than anything (GE ignores a pair only when both are missing).
        assert_eq!(broken, vec![vec![], vec![0, 2], vec![1], vec![1]]);
        let row_wise: Vec<bool> = checks.iter().map(is_row_wise).collect();
        assert_eq!(row_wise, [true, true, true, false, false]);
    }
}
