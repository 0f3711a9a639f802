//! The SQL engine: a warehouse table is validated where it lives. Every count and statistic
//! the suite needs comes from one aggregate query (`COUNT(*) FILTER (WHERE …)` per check);
//! only checks that failed ask for their first unexpected rows, and the few checks SQL cannot
//! express the same way (row order, dateutil, several-column uniqueness) read just their
//! columns through the in-memory engine — so both engines give the same results.
//!
//! Values from suites are written as SQL literals of the database's dialect
//! ([`sluice_core::sql`]), never spliced; identifiers are always quoted.

use arrow::array::new_empty_array;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde_json::{Map, Value as Json};
use std::convert::Infallible;
use std::future::Future;

use crate::QualityError;
use crate::expect::{Check, Ignore, Kind, Level, MapTest, PairTest, Stat};
use crate::result::{MapObservation, Observation, StatObservation, Unexpected, order_json};
use crate::scan::{self, domain_problem, row_test, stat_problem, type_names};
use crate::value::{Column, Literal, parse_time};
use sluice_core::sql;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    DuckDb,
    Postgres,
}

/// A database that answers queries with Arrow batches; its failures are
/// [`QualityError::Database`] (`QualityError::database(e)`).
pub trait Database: Send {
    fn dialect(&self) -> Dialect;
    fn query(
        &mut self,
        sql: String,
    ) -> impl Future<Output = Result<(SchemaRef, Vec<RecordBatch>), QualityError>> + Send;
}

impl Dialect {
    /// The rules its SQL text follows.
    pub fn sql(self) -> sql::Dialect {
        match self {
            Dialect::DuckDb => sql::Dialect::DuckDb,
            Dialect::Postgres => sql::Dialect::Postgres,
        }
    }
}

/// How a column of this type is read (the same shapes the in-memory engine uses).
fn shape(dt: &DataType) -> Column {
    Column::new(&new_empty_array(dt))
}

fn timestamp_literal(micros: i64) -> Option<String> {
    let t = chrono::DateTime::from_timestamp_micros(micros)?.naive_utc();
    Some(format!("TIMESTAMP '{}'", t.format("%Y-%m-%d %H:%M:%S%.6f")))
}

/// A suite value as a literal comparable with a column of type `dt`; `None` when it cannot
/// equal any value of that column (text the database's text cannot hold, too).
fn literal(dialect: Dialect, v: &Literal, dt: &DataType) -> Option<String> {
    match (v, shape(dt)) {
        (Literal::Number(n), Column::Int(_) | Column::Float(_)) if n.is_finite() => {
            Some(format!("{n:?}").trim_end_matches(".0").to_string())
        }
        (Literal::Text(s), Column::Text(_)) => dialect.sql().text(s).ok(),
        (Literal::Text(s), Column::Time { .. }) => parse_time(s).and_then(timestamp_literal),
        (Literal::Time(t), Column::Time { .. }) => timestamp_literal(*t),
        (Literal::Bool(b), Column::Bool(_)) => Some(if *b { "TRUE" } else { "FALSE" }.into()),
        (Literal::Number(n), Column::Bool(_)) if *n == 0.0 || *n == 1.0 => {
            Some(if *n == 1.0 { "TRUE" } else { "FALSE" }.into())
        }
        _ => None,
    }
}

struct Sql<'a> {
    dialect: Dialect,
    relation: &'a str,
    schema: &'a Schema,
}

impl Sql<'_> {
    /// A column name, quoted.
    fn ident(&self, name: &str) -> String {
        self.dialect.sql().quote_ident(name)
    }

    /// A bound as a literal; numbers bound a length as numbers whatever the column's type.
    fn bound(&self, v: &Literal, dt: &DataType, is_length: bool) -> Option<String> {
        if is_length {
            literal(self.dialect, v, &DataType::Int64)
        } else {
            literal(self.dialect, v, dt)
        }
    }

    fn dtype(&self, column: &str) -> &DataType {
        self.schema
            .field_with_name(column)
            .map(|f| f.data_type())
            .unwrap_or(&DataType::Null)
    }

    /// A missing value: NULL, and NaN for real numbers.
    fn missing(&self, column: &str) -> String {
        let c = self.ident(column);
        match (self.dtype(column), self.dialect) {
            (DataType::Float16 | DataType::Float32 | DataType::Float64, Dialect::DuckDb) => {
                format!("({c} IS NULL OR isnan({c}))")
            }
            (DataType::Float16 | DataType::Float32 | DataType::Float64, Dialect::Postgres) => {
                format!("({c} IS NULL OR {c} = 'NaN'::float8)")
            }
            (DataType::Decimal128(..) | DataType::Decimal256(..), Dialect::Postgres) => {
                format!("({c} IS NULL OR {c} = 'NaN'::numeric)")
            }
            _ => format!("{c} IS NULL"),
        }
    }

    fn condition(&self, check: &Check) -> String {
        match &check.condition {
            None => "TRUE".into(),
            Some(c) => c.sql(&|name| self.ident(name), &|name, v| {
                literal(self.dialect, v, self.dtype(name))
            }),
        }
    }

    fn regex(&self, column: &str, pattern: &str) -> Option<String> {
        let c = self.ident(column);
        let p = self.dialect.sql().text(pattern).ok()?;
        Some(match self.dialect {
            Dialect::DuckDb => format!("regexp_matches(CAST({c} AS VARCHAR), {p})"),
            Dialect::Postgres => format!("(CAST({c} AS TEXT) ~ {p})"),
        })
    }

    fn double(&self, column: &str) -> String {
        match self.dialect {
            Dialect::DuckDb => format!("CAST({} AS DOUBLE)", self.ident(column)),
            // PostgreSQL casts a boolean to a number only through an integer (true is 1, as
            // in pandas).
            Dialect::Postgres if matches!(self.dtype(column), DataType::Boolean) => {
                format!(
                    "CAST(CAST({} AS INTEGER) AS DOUBLE PRECISION)",
                    self.ident(column)
                )
            }
            Dialect::Postgres => format!("CAST({} AS DOUBLE PRECISION)", self.ident(column)),
        }
    }

    /// The predicate that makes a present value unexpected; `None` when SQL cannot say it the
    /// way the in-memory engine does (the check then runs there).
    fn unexpected(&self, column: &str, test: &MapTest) -> Option<String> {
        let c = self.ident(column);
        let dt = self.dtype(column);
        let bounds = |b: &crate::expect::Bounds, value: &str| -> Option<String> {
            let mut parts = Vec::new();
            if let Some(min) = &b.min {
                let op = if b.strict_min { ">" } else { ">=" };
                parts.push(format!("{value} {op} {}", self.bound(min, dt, value != c)?));
            }
            if let Some(max) = &b.max {
                let op = if b.strict_max { "<" } else { "<=" };
                parts.push(format!("{value} {op} {}", self.bound(max, dt, value != c)?));
            }
            Some(format!("NOT ({})", parts.join(" AND ")))
        };
        match test {
            MapTest::Between(b) => bounds(b, &c),
            MapTest::InSet(set) | MapTest::NotInSet(set) => {
                let items: Vec<String> = set
                    .iter()
                    .filter_map(|v| literal(self.dialect, v, dt))
                    .collect();
                let member = if items.is_empty() {
                    "FALSE".to_string()
                } else {
                    format!("{c} IN ({})", items.join(", "))
                };
                Some(if matches!(test, MapTest::InSet(_)) {
                    format!("NOT ({member})")
                } else {
                    member
                })
            }
            MapTest::Regex(re) => Some(format!("NOT {}", self.regex(column, re.as_str())?)),
            MapTest::NotRegex(re) => self.regex(column, re.as_str()),
            MapTest::RegexList { list, any } => {
                let each: Option<Vec<String>> = list
                    .iter()
                    .map(|re| self.regex(column, re.as_str()))
                    .collect();
                let joiner = if *any { " OR " } else { " AND " };
                Some(format!("NOT ({})", each?.join(joiner)))
            }
            MapTest::NotRegexList(list) => {
                let each: Option<Vec<String>> = list
                    .iter()
                    .map(|re| self.regex(column, re.as_str()))
                    .collect();
                Some(format!("({})", each?.join(" OR ")))
            }
            MapTest::LengthBetween(b) => bounds(b, &format!("length({c})")),
            MapTest::Strftime(format) if self.dialect == Dialect::DuckDb => Some(format!(
                "try_strptime({c}, {}) IS NULL",
                self.dialect.sql().text(format).ok()?
            )),
            MapTest::Json if self.dialect == Dialect::DuckDb => Some(match shape(dt) {
                Column::Text(_) => format!("NOT json_valid({c})"),
                _ => "TRUE".into(),
            }),
            _ => None,
        }
    }

    /// Present rows whose value occurs more than once among the present rows.
    fn duplicated(&self, column: &str, present: &str) -> String {
        let (c, relation) = (self.ident(column), self.relation);
        format!(
            "{present} AND {c} IN (SELECT {c} FROM {relation} WHERE {present} GROUP BY {c} HAVING COUNT(*) > 1)"
        )
    }

    /// Present rows whose z-score (against the present rows) reaches `threshold`.
    fn z_score_reaches(
        &self,
        column: &str,
        present: &str,
        threshold: f64,
        double_sided: bool,
    ) -> String {
        let (x, relation) = (self.double(column), self.relation);
        let z = format!(
            "({x} - (SELECT AVG({x}) FROM {relation} WHERE {present})) / (SELECT STDDEV_SAMP({x}) FROM {relation} WHERE {present})"
        );
        let t = literal(
            self.dialect,
            &Literal::Number(threshold),
            &DataType::Float64,
        )
        .unwrap_or_else(|| "'Infinity'".into());
        let z = if double_sided { format!("ABS({z})") } else { z };
        format!("{present} AND {z} >= {t}")
    }

    /// The predicate that a row's two values meet the pair test; NULL counts as not met.
    fn pair_holds(&self, a: &str, b: &str, test: &PairTest) -> String {
        let (ma, mb) = (self.missing(a), self.missing(b));
        let (qa, qb) = (self.ident(a), self.ident(b));
        let both = format!("NOT {ma} AND NOT {mb}");
        match test {
            PairTest::Equal => format!("({both} AND {qa} = {qb})"),
            PairTest::Greater { or_equal } => {
                let op = if *or_equal { ">=" } else { ">" };
                format!("({both} AND {qa} {op} {qb})")
            }
            PairTest::InSet(pairs) => {
                let side = |q: &str, m: &str, v: &Literal, dt: &DataType| match v {
                    Literal::Null => Some(m.to_string()),
                    _ => literal(self.dialect, v, dt).map(|l| format!("{q} = {l}")),
                };
                let alternatives: Vec<String> = pairs
                    .iter()
                    .filter_map(|(x, y)| {
                        Some(format!(
                            "({} AND {})",
                            side(&qa, &ma, x, self.dtype(a))?,
                            side(&qb, &mb, y, self.dtype(b))?
                        ))
                    })
                    .collect();
                if alternatives.is_empty() {
                    "FALSE".into()
                } else {
                    format!("({})", alternatives.join(" OR "))
                }
            }
        }
    }

    /// The aggregate a statistic reads over the present rows, if the SQL engine measures it;
    /// only what this statistic needs, and instants have a min and a max only.
    fn measure(&self, column: &str, stat: &Stat, present: &str) -> Option<(Measure, String)> {
        let probe = shape(self.dtype(column));
        let agg = |f: String| format!("{f} FILTER (WHERE {present})");
        let c = self.ident(column);
        let x = self.double(column);
        let integer = matches!(probe, Column::Int(_));
        let numeric = !matches!(probe, Column::Time { .. });
        Some(match stat {
            _ if stat.needs_counts() => (Measure::Distinct, agg(format!("COUNT(DISTINCT {c})"))),
            Stat::Min(_) => (Measure::Min, agg(format!("MIN({c})"))),
            Stat::Max(_) => (Measure::Max, agg(format!("MAX({c})"))),
            Stat::Mean(_) if numeric => (Measure::Mean, agg(format!("AVG({x})"))),
            Stat::Stdev(_) if numeric => (Measure::Stdev, self.stdev(column, present)),
            Stat::Sum(_) if numeric && integer => (
                Measure::Sum,
                format!("CAST({} AS BIGINT)", agg(format!("SUM({c})"))),
            ),
            Stat::Sum(_) if numeric => (Measure::Sum, agg(format!("SUM({x})"))),
            Stat::Median(_) if numeric => (
                Measure::Median,
                match self.dialect {
                    Dialect::DuckDb => agg(format!("quantile_cont({x}, 0.5)")),
                    Dialect::Postgres => {
                        agg(format!("percentile_cont(0.5) WITHIN GROUP (ORDER BY {x})"))
                    }
                },
            ),
            _ => return None,
        })
    }

    /// The sample standard deviation of the present rows.
    fn stdev(&self, column: &str, present: &str) -> String {
        let agg = |f: String| format!("{f} FILTER (WHERE {present})");
        let (c, x, relation) = (self.ident(column), self.double(column), self.relation);
        match self.dialect {
            // PostgreSQL's float8 algorithm rounds differently from pandas';
            // pandas' two passes (the mean, then squared deviations) agree.
            Dialect::Postgres => format!(
                "SQRT({} / NULLIF({} - 1, 0))",
                agg(format!(
                    "SUM(POWER({x} - (SELECT AVG({x}) FROM {relation} WHERE {present}), 2))"
                )),
                agg(format!("COUNT({c})"))
            ),
            Dialect::DuckDb => agg(format!("STDDEV_SAMP({x})")),
        }
    }
}

/// What a check still needs after the aggregate query.
enum Need {
    Done(Result<Observation, QualityError>),
    /// The rows the row condition selects (row-count expectations).
    Table {
        rows: usize,
    },
    Rows {
        element: usize,
        missing: Option<usize>,
        unexpected: usize,
        rows_where: String,
    },
    /// Unexpected rows that depend on the whole column (duplicates, z-scores): counted by a
    /// query of their own.
    Counted {
        element: usize,
        missing: usize,
        unexpected_where: String,
    },
    Stat {
        element: usize,
        missing: usize,
        measures: Vec<(Measure, usize)>,
        present: String,
    },
    Fallback,
}

#[derive(Debug, Clone, Copy)]
enum Measure {
    Min,
    Max,
    Mean,
    Sum,
    Stdev,
    Median,
    Distinct,
}

/// The one aggregate query being planned: each count or measure a check needs is one of its
/// columns, known by its position.
#[derive(Default)]
struct Select {
    exprs: Vec<String>,
}

impl Select {
    fn add(&mut self, expr: String) -> usize {
        self.exprs.push(expr);
        self.exprs.len() - 1
    }

    /// The rows the check's row condition `w` selects that also meet `filter`.
    fn count(&mut self, w: &str, filter: &str) -> usize {
        self.add(format!("COUNT(*) FILTER (WHERE {w} AND {filter})"))
    }
}

/// The aggregate query's one row (none when no check needed it).
struct Aggregates {
    row: Option<RecordBatch>,
}

impl Aggregates {
    fn cell(&self, i: usize) -> Column {
        Column::new(
            self.row
                .as_ref()
                .expect("the aggregate query ran")
                .column(i),
        )
    }

    fn int(&self, i: usize) -> u64 {
        self.cell(i).number(0).unwrap_or(0.0) as u64
    }
}

/// Measures every check against `relation` (a quoted table name). `Err` when the relation
/// cannot be read at all.
pub async fn run<D: Database>(
    checks: &[Check],
    relation: &str,
    db: &mut D,
) -> Result<Vec<Result<Observation, QualityError>>, QualityError> {
    let (schema, _) = db
        .query(format!("SELECT * FROM {relation} LIMIT 0"))
        .await?;
    let sql = Sql {
        dialect: db.dialect(),
        relation,
        schema: &schema,
    };
    let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut select = Select::default();
    let needs: Vec<Need> = checks
        .iter()
        .map(|check| plan(&sql, &mut select, check, &columns))
        .collect();
    let row = aggregate(db, relation, &select).await?;

    let mut out = Vec::with_capacity(checks.len());
    let mut fallback = Vec::new();
    for (i, (check, need)) in checks.iter().zip(needs).enumerate() {
        if matches!(need, Need::Fallback) {
            fallback.push(i);
        }
        out.push(answer(db, &sql, check, need, &row, &columns).await?);
    }

    if !fallback.is_empty() {
        let chosen: Vec<Check> = fallback.iter().map(|&i| checks[i].clone()).collect();
        let observed = in_memory(db, &sql, &chosen).await?;
        for (i, o) in fallback.into_iter().zip(observed) {
            out[i] = o.map(without_rows);
        }
    }
    Ok(out)
}

/// What `check` needs, its counts and measures added to the aggregate query.
fn plan(sql: &Sql<'_>, select: &mut Select, check: &Check, columns: &[String]) -> Need {
    if let Some(problem) = domain_problem(check, sql.schema) {
        return Need::Done(Err(problem));
    }
    let w = sql.condition(check);
    match &check.kind {
        Kind::RowCount(_) => Need::Table {
            rows: select.count(&w, "TRUE"),
        },
        Kind::Map { column, test, .. } => plan_map(sql, select, &w, column, test),
        Kind::Pair {
            a, b, test, ignore, ..
        } => plan_pair(sql, select, &w, [a, b], test, *ignore),
        Kind::Multi { .. } => Need::Fallback,
        Kind::Stat { column, stat } => plan_stat(sql, select, check, &w, column, stat),
        Kind::Invalid(e) => Need::Done(Err(e.clone())),
        _ => Need::Done(Ok(Observation::Table {
            rows: 0,
            columns: columns.to_vec(),
        })),
    }
}

/// A column map check over the rows `w` selects.
fn plan_map(sql: &Sql<'_>, select: &mut Select, w: &str, column: &str, test: &MapTest) -> Need {
    if let Err(e) = row_test(test, &shape(sql.dtype(column))) {
        return Need::Done(Err(e));
    }
    let missing = sql.missing(column);
    let present = format!("{w} AND NOT {missing}");
    match test {
        MapTest::NotNull => Need::Rows {
            element: select.count(w, "TRUE"),
            missing: None,
            unexpected: select.count(w, &missing),
            rows_where: format!("{w} AND {missing}"),
        },
        MapTest::Null => Need::Rows {
            element: select.count(w, "TRUE"),
            missing: None,
            unexpected: select.count(w, &format!("NOT {missing}")),
            rows_where: present,
        },
        MapTest::Unique => Need::Counted {
            element: select.count(w, "TRUE"),
            missing: select.count(w, &missing),
            unexpected_where: sql.duplicated(column, &present),
        },
        MapTest::ZScore {
            threshold,
            double_sided,
        } => Need::Counted {
            element: select.count(w, "TRUE"),
            missing: select.count(w, &missing),
            unexpected_where: sql.z_score_reaches(column, &present, *threshold, *double_sided),
        },
        _ => match sql.unexpected(column, test) {
            Some(bad) => Need::Rows {
                element: select.count(w, "TRUE"),
                missing: Some(select.count(w, &missing)),
                unexpected: select.count(w, &format!("NOT {missing} AND {bad}")),
                rows_where: format!("{present} AND {bad}"),
            },
            None => Need::Fallback,
        },
    }
}

/// A column pair check over the rows `w` selects.
fn plan_pair(
    sql: &Sql<'_>,
    select: &mut Select,
    w: &str,
    [a, b]: [&str; 2],
    test: &PairTest,
    ignore: Ignore,
) -> Need {
    let (ma, mb) = (sql.missing(a), sql.missing(b));
    let ignored = match ignore {
        Ignore::BothMissing | Ignore::AllMissing => format!("({ma} AND {mb})"),
        Ignore::EitherMissing | Ignore::AnyMissing => format!("({ma} OR {mb})"),
        Ignore::Never => "FALSE".into(),
    };
    let ok = sql.pair_holds(a, b, test);
    let bad = format!("NOT {ignored} AND NOT COALESCE({ok}, FALSE)");
    Need::Rows {
        element: select.count(w, "TRUE"),
        missing: Some(select.count(w, &ignored)),
        unexpected: select.count(w, &bad),
        rows_where: format!("{w} AND {bad}"),
    }
}

/// A column statistic over the rows `w` selects (a column's type needs no query).
fn plan_stat(
    sql: &Sql<'_>,
    select: &mut Select,
    check: &Check,
    w: &str,
    column: &str,
    stat: &Stat,
) -> Need {
    if let Some(problem) = stat_problem(check, &shape(sql.dtype(column))) {
        return Need::Done(Err(problem));
    }
    if let Stat::Type(_) = stat {
        return Need::Done(Ok(Observation::Stat(Box::new(StatObservation {
            type_names: Some(type_names(sql.dtype(column))),
            ..StatObservation::default()
        }))));
    }
    let missing = sql.missing(column);
    let present = format!("{w} AND NOT {missing}");
    let measures = sql
        .measure(column, stat, &present)
        .map(|(m, expr)| (m, select.add(expr)))
        .into_iter()
        .collect();
    Need::Stat {
        element: select.add(format!("COUNT(*) FILTER (WHERE {w})")),
        missing: select.add(format!("COUNT(*) FILTER (WHERE {w} AND {missing})")),
        measures,
        present,
    }
}

/// Runs the aggregate query, if any check needs it.
async fn aggregate<D: Database>(
    db: &mut D,
    relation: &str,
    select: &Select,
) -> Result<Aggregates, QualityError> {
    let row = if select.exprs.is_empty() {
        None
    } else {
        let (_, batches) = db
            .query(format!(
                "SELECT {} FROM {relation}",
                select.exprs.join(",\n  ")
            ))
            .await?;
        batches.into_iter().find(|b| b.num_rows() > 0)
    };
    Ok(Aggregates { row })
}

/// A check's observation from its need: read from the aggregate row, plus the queries for
/// its unexpected rows or its further statistics. The outer `Err` is a failed query that
/// ends the run; a check left to the in-memory engine gets a placeholder here.
async fn answer<D: Database>(
    db: &mut D,
    sql: &Sql<'_>,
    check: &Check,
    need: Need,
    row: &Aggregates,
    columns: &[String],
) -> Result<Result<Observation, QualityError>, QualityError> {
    Ok(match need {
        Need::Done(o) => o,
        Need::Fallback => Err(QualityError::Internal(
            "not measured by the in-memory engine".into(),
        )),
        Need::Table { rows } => Ok(Observation::Table {
            rows: row.int(rows),
            columns: columns.to_vec(),
        }),
        Need::Rows {
            element,
            missing,
            unexpected,
            rows_where,
        } => {
            let mut o = MapObservation {
                element_count: row.int(element),
                missing_count: missing.map_or(0, |i| row.int(i)),
                unexpected_count: row.int(unexpected),
                unexpected: Vec::new(),
            };
            if o.unexpected_count > 0 {
                o.unexpected = unexpected_rows(db, sql, check, &rows_where).await?;
            }
            Ok(Observation::Map(o))
        }
        Need::Counted {
            element,
            missing,
            unexpected_where,
        } => {
            let (_, batches) = db
                .query(format!(
                    "SELECT CAST(COUNT(*) AS BIGINT) FROM {} WHERE {unexpected_where}",
                    sql.relation
                ))
                .await?;
            let count = first_number(&batches) as u64;
            let mut o = MapObservation {
                element_count: row.int(element),
                missing_count: row.int(missing),
                unexpected_count: count,
                unexpected: Vec::new(),
            };
            if count > 0 {
                o.unexpected = unexpected_rows(db, sql, check, &unexpected_where).await?;
            }
            Ok(Observation::Map(o))
        }
        Need::Stat {
            element,
            missing,
            measures,
            present,
        } => {
            let measured: Vec<(Measure, Column)> =
                measures.iter().map(|&(m, i)| (m, row.cell(i))).collect();
            stat(
                db,
                sql,
                check,
                row.int(element),
                row.int(missing),
                &measured,
                &present,
            )
            .await
            .map(|o| Observation::Stat(Box::new(o)))
        }
    })
}

/// The checks SQL cannot express the in-memory engine's way, run by that engine over just
/// the columns they read.
async fn in_memory<D: Database>(
    db: &mut D,
    sql: &Sql<'_>,
    chosen: &[Check],
) -> Result<Vec<Result<Observation, QualityError>>, QualityError> {
    let mut wanted: Vec<String> = Vec::new();
    for check in chosen {
        let mut cols = check.columns();
        if let Some(c) = &check.condition {
            c.columns(&mut cols);
        }
        cols.extend(check.format.index_columns.iter().cloned());
        for c in cols {
            if !wanted.contains(&c) {
                wanted.push(c);
            }
        }
    }
    let list: Vec<String> = wanted.iter().map(|c| sql.ident(c)).collect();
    let (schema, batches) = db
        .query(format!("SELECT {} FROM {}", list.join(", "), sql.relation))
        .await?;
    let Ok(observed) = scan::run(
        chosen,
        &schema,
        batches.into_iter().map(Ok::<_, Infallible>),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    Ok(observed)
}

/// Tables have no row numbers; the SQL engine reports rows by their index columns only.
fn without_rows(o: Observation) -> Observation {
    match o {
        Observation::Map(mut m) => {
            for u in &mut m.unexpected {
                u.row = None;
            }
            Observation::Map(m)
        }
        other => other,
    }
}

fn first_number(batches: &[RecordBatch]) -> f64 {
    batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .and_then(|b| Column::new(b.column(0)).number(0))
        .unwrap_or(0.0)
}

/// The first unexpected rows (as many as the result format shows) with their index columns.
async fn unexpected_rows<D: Database>(
    db: &mut D,
    sql: &Sql<'_>,
    check: &Check,
    filter: &str,
) -> Result<Vec<Unexpected>, QualityError> {
    let keep = check.format.keep();
    if keep == 0 || check.format.level == Level::BooleanOnly {
        return Ok(Vec::new());
    }
    let domain = check.columns();
    let mut wanted = domain.clone();
    for c in &check.format.index_columns {
        if !wanted.contains(c) {
            wanted.push(c.clone());
        }
    }
    let list: Vec<String> = wanted.iter().map(|c| sql.ident(c)).collect();
    let limit = if keep == usize::MAX {
        String::new()
    } else {
        format!(" LIMIT {keep}")
    };
    let (_, batches) = db
        .query(format!(
            "SELECT {} FROM {} WHERE {filter}{limit}",
            list.join(", "),
            sql.relation
        ))
        .await?;
    let mut out = Vec::new();
    for batch in batches {
        let cols: Vec<Column> = batch.columns().iter().map(Column::new).collect();
        for r in 0..batch.num_rows() {
            let value = if domain.len() == 1 {
                cols[0].json(r)
            } else {
                Json::Array(cols[..domain.len()].iter().map(|c| c.json(r)).collect())
            };
            let index = (!check.format.index_columns.is_empty()).then(|| {
                wanted
                    .iter()
                    .zip(&cols)
                    .map(|(n, c)| (n.clone(), c.json(r)))
                    .collect::<Map<String, Json>>()
            });
            out.push(Unexpected {
                row: None,
                value,
                index,
            });
        }
    }
    Ok(out)
}

async fn stat<D: Database>(
    db: &mut D,
    sql: &Sql<'_>,
    check: &Check,
    element: u64,
    missing: u64,
    measured: &[(Measure, Column)],
    present: &str,
) -> Result<StatObservation, QualityError> {
    let Kind::Stat { column, stat } = &check.kind else {
        unreachable!("stat needs come from stat checks")
    };
    let mut o = StatObservation {
        element_count: element,
        missing_count: missing,
        ..StatObservation::default()
    };
    let nonmissing = element - missing;
    for (measure, c) in measured {
        let json = c.json(0);
        if json.is_null() {
            continue;
        }
        match measure {
            Measure::Min => o.min = Some(json),
            Measure::Max => o.max = Some(json),
            Measure::Mean => o.mean = c.number(0),
            Measure::Sum => o.sum = Some(json),
            Measure::Stdev => o.stdev = c.number(0),
            Measure::Median => o.median = c.number(0),
            Measure::Distinct => o.distinct = c.number(0).map(|n| n as u64),
        }
    }
    let q = sql.ident(column);
    if let Stat::Quantiles { quantiles, .. } = stat
        && nonmissing > 0
    {
        let mut values = Vec::new();
        for quantile in quantiles {
            let k = scan::nearest_rank(nonmissing as usize, *quantile);
            let (_, batches) = db
                .query(format!(
                    "SELECT {q} FROM {} WHERE {present} ORDER BY {q} LIMIT 1 OFFSET {k}",
                    sql.relation
                ))
                .await?;
            let batch = batches.into_iter().find(|b| b.num_rows() > 0);
            values.push(batch.map_or(Json::Null, |b| Column::new(b.column(0)).json(0)));
        }
        o.quantiles = Some(values);
    }
    if matches!(
        stat,
        Stat::MostCommon { .. }
            | Stat::DistinctInSet(_)
            | Stat::DistinctContain(_)
            | Stat::DistinctEqual(_)
    ) {
        let (_, batches) = db
            .query(format!(
                "SELECT {q}, CAST(COUNT(*) AS BIGINT) FROM {} WHERE {present} GROUP BY {q}",
                sql.relation
            ))
            .await?;
        let mut counts = Vec::new();
        for batch in batches {
            let (values, n) = (Column::new(batch.column(0)), Column::new(batch.column(1)));
            for r in 0..batch.num_rows() {
                counts.push((values.json(r), n.number(r).unwrap_or(0.0) as u64));
            }
        }
        counts.sort_by(|a, b| order_json(&a.0, &b.0));
        o.distinct = Some(counts.len() as u64);
        o.counts = Some(counts);
    }
    Ok(o)
}
