//! Expectations made ready to evaluate: each suite entry's arguments read into a [`Check`]
//! once, before any data is touched, so an argument Great Expectations would refuse is
//! reported as that expectation's exception and the others still run.

use serde_json::{Map, Value as Json};

use crate::QualityError;
use crate::condition::{self, Condition};
use crate::parameters::Parameters;
use crate::suite::ExpectationConfig;
use crate::value::Literal;

/// How much of each result is reported (Great Expectations' `result_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    BooleanOnly,
    Basic,
    Summary,
    Complete,
}

impl Level {
    pub fn parse(text: &str) -> Option<Level> {
        Some(match text.to_ascii_uppercase().as_str() {
            "BOOLEAN_ONLY" => Level::BooleanOnly,
            "BASIC" => Level::Basic,
            "SUMMARY" => Level::Summary,
            "COMPLETE" => Level::Complete,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct ResultFormat {
    pub level: Level,
    /// How many unexpected values the partial lists show (GE's default: 20).
    pub partial_count: usize,
    /// Columns whose values identify an unexpected row in `unexpected_index_list`.
    pub index_columns: Vec<String>,
}

impl ResultFormat {
    pub fn new(level: Level) -> ResultFormat {
        ResultFormat {
            level,
            partial_count: 20,
            index_columns: Vec::new(),
        }
    }

    fn read(v: &Json, default: &ResultFormat) -> ResultFormat {
        match v {
            Json::String(s) => Level::parse(s).map_or_else(|| default.clone(), ResultFormat::new),
            Json::Object(m) => {
                let mut f = m
                    .get("result_format")
                    .and_then(Json::as_str)
                    .and_then(Level::parse)
                    .map_or_else(|| default.clone(), ResultFormat::new);
                if let Some(n) = m.get("partial_unexpected_count").and_then(Json::as_u64) {
                    f.partial_count = n as usize;
                }
                if let Some(cols) = m
                    .get("unexpected_index_column_names")
                    .and_then(Json::as_array)
                {
                    f.index_columns = cols
                        .iter()
                        .filter_map(|c| c.as_str().map(String::from))
                        .collect();
                }
                f
            }
            _ => default.clone(),
        }
    }

    /// How many unexpected rows an engine must keep for this format.
    pub fn keep(&self) -> usize {
        match self.level {
            Level::BooleanOnly => 0,
            Level::Basic | Level::Summary => self.partial_count,
            Level::Complete => usize::MAX,
        }
    }
}

/// Inclusive bounds unless strict; either side may be open.
#[derive(Debug, Clone, Default)]
pub struct Bounds {
    pub min: Option<Literal>,
    pub max: Option<Literal>,
    pub strict_min: bool,
    pub strict_max: bool,
}

/// One expectation, ready for an engine.
#[derive(Debug, Clone)]
pub struct Check {
    pub index: usize,
    pub name: &'static str,
    pub kwargs: Map<String, Json>,
    pub meta: Json,
    pub format: ResultFormat,
    pub condition: Option<Condition>,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub enum Kind {
    RowCount(Bounds),
    ColumnCount(Bounds),
    /// `None`: no list given, which GE treats as "any columns".
    ColumnsOrdered(Option<Vec<Json>>),
    ColumnsSet {
        set: Option<Vec<String>>,
        exact: bool,
    },
    ColumnExists {
        column: String,
        index: Option<usize>,
    },
    Map {
        column: String,
        test: MapTest,
        mostly: f64,
    },
    Stat {
        column: String,
        stat: Stat,
    },
    Pair {
        a: String,
        b: String,
        test: PairTest,
        ignore: Ignore,
        mostly: f64,
    },
    Multi {
        columns: Vec<String>,
        test: MultiTest,
        ignore: Ignore,
        mostly: f64,
    },
    /// The arguments could not be used; the error is the expectation's exception.
    Invalid(QualityError),
}

#[derive(Debug, Clone)]
pub enum MapTest {
    NotNull,
    Null,
    Unique,
    Between(Bounds),
    InSet(Vec<Literal>),
    NotInSet(Vec<Literal>),
    Regex(regex::Regex),
    NotRegex(regex::Regex),
    /// Matches any (`any`) or all of the patterns.
    RegexList {
        list: Vec<regex::Regex>,
        any: bool,
    },
    NotRegexList(Vec<regex::Regex>),
    LengthBetween(Bounds),
    Strftime(String),
    Increasing {
        strictly: bool,
    },
    Decreasing {
        strictly: bool,
    },
    Json,
    Dateutil,
    ZScore {
        threshold: f64,
        double_sided: bool,
    },
}

impl MapTest {
    /// Nulls are the subject of these two; every other row-wise check skips them.
    pub fn counts_nulls(&self) -> bool {
        matches!(self, MapTest::NotNull | MapTest::Null)
    }

    /// Whether the check needs to see the whole column before judging a row (so it cannot
    /// sort rows into good and bad one batch at a time).
    pub fn is_global(&self) -> bool {
        matches!(
            self,
            MapTest::Unique
                | MapTest::Increasing { .. }
                | MapTest::Decreasing { .. }
                | MapTest::ZScore { .. }
        )
    }
}

#[derive(Debug, Clone)]
pub enum Stat {
    Min(Bounds),
    Max(Bounds),
    Mean(Bounds),
    Median(Bounds),
    Sum(Bounds),
    Stdev(Bounds),
    Quantiles {
        quantiles: Vec<f64>,
        ranges: Vec<(Option<f64>, Option<f64>)>,
    },
    UniqueCount(Bounds),
    UniqueProportion(Bounds),
    MostCommon {
        set: Vec<Literal>,
        ties_okay: bool,
    },
    /// `None`: no set given, which GE treats as the universal set.
    DistinctInSet(Option<Vec<Literal>>),
    DistinctContain(Vec<Literal>),
    DistinctEqual(Vec<Literal>),
    /// The column's type is one of these names (numpy, pandas, SQL or Arrow spellings); no
    /// names (GE's `type_list: null`) accept any type.
    Type(Vec<String>),
}

impl Stat {
    /// Whether evaluating this needs every value (sorted) or every distinct value (counted).
    pub fn needs_values(&self) -> bool {
        matches!(self, Stat::Median(_) | Stat::Quantiles { .. })
    }

    pub fn needs_counts(&self) -> bool {
        matches!(
            self,
            Stat::UniqueCount(_)
                | Stat::UniqueProportion(_)
                | Stat::MostCommon { .. }
                | Stat::DistinctInSet(_)
                | Stat::DistinctContain(_)
                | Stat::DistinctEqual(_)
        )
    }
}

#[derive(Debug, Clone)]
pub enum PairTest {
    Equal,
    Greater { or_equal: bool },
    InSet(Vec<(Literal, Literal)>),
}

#[derive(Debug, Clone)]
pub enum MultiTest {
    CompoundUnique,
    UniqueWithinRecord,
    SumEqual(f64),
}

/// Which rows a multi-column check leaves out because of missing values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignore {
    BothMissing,
    EitherMissing,
    AllMissing,
    AnyMissing,
    Never,
}

impl Check {
    pub fn new(
        config: &ExpectationConfig,
        default: &ResultFormat,
        parameters: &Parameters,
    ) -> Check {
        // A parameter without a value leaves the arguments as written; the check reports why.
        let (kwargs, unresolved) = match parameters.substitute(&config.kwargs) {
            Ok(kw) => (kw, None),
            Err(e) => (config.kwargs.clone(), Some(e)),
        };
        let kw = &kwargs;
        let format = kw
            .get("result_format")
            .map_or_else(|| default.clone(), |v| ResultFormat::read(v, default));
        let condition = match kw.get("row_condition").and_then(Json::as_str) {
            Some(text) if !text.trim().is_empty() => Some(condition::parse(
                text,
                kw.get("condition_parser").and_then(Json::as_str),
            )),
            _ => None,
        };
        let invalid = |e: QualityError| Kind::Invalid(e.at_expectation(config.index));
        let (condition, kind) = match (condition.transpose(), unresolved) {
            (_, Some(e)) => (None, invalid(e)),
            (Ok(c), None) => (c, kind(config.expectation.name, kw).unwrap_or_else(invalid)),
            (Err(e), None) => (None, invalid(e)),
        };
        Check {
            index: config.index,
            name: config.expectation.name,
            kwargs,
            meta: config.meta.clone(),
            format,
            condition,
            kind,
        }
    }

    /// The columns the check reads (its domain), in the order results list them.
    pub fn columns(&self) -> Vec<String> {
        match &self.kind {
            Kind::Map { column, .. } | Kind::Stat { column, .. } => vec![column.clone()],
            Kind::Pair { a, b, .. } => vec![a.clone(), b.clone()],
            Kind::Multi { columns, .. } => columns.clone(),
            _ => Vec::new(),
        }
    }
}

fn text(kw: &Map<String, Json>, key: &str) -> Result<String, QualityError> {
    match kw.get(key) {
        Some(Json::String(s)) => Ok(s.clone()),
        Some(other) => Err(QualityError::argument(
            key,
            format!("`{key}` must be a string, found {other}"),
        )),
        None => Err(QualityError::argument(key, format!("`{key}` is required"))),
    }
}

fn flag(kw: &Map<String, Json>, key: &str) -> bool {
    kw.get(key).and_then(Json::as_bool).unwrap_or(false)
}

fn mostly(kw: &Map<String, Json>) -> Result<f64, QualityError> {
    let refused = |message: String| Err(QualityError::argument("mostly", message));
    match kw.get("mostly") {
        None | Some(Json::Null) => Ok(1.0),
        Some(v) => match v.as_f64() {
            Some(m) if m > 1.0 => refused("mostly must be less than or equal to 1".into()),
            Some(m) if m < 0.0 => refused("mostly must be greater than or equal to 0".into()),
            Some(m) => Ok(m),
            None => refused(format!("mostly must be a number, found {v}")),
        },
    }
}

fn literal(v: Option<&Json>) -> Option<Literal> {
    v.filter(|v| !v.is_null()).map(Literal::from_json)
}

fn bounds(kw: &Map<String, Json>, need_one: bool) -> Result<Bounds, QualityError> {
    let b = any_bounds(kw, need_one)?;
    if let (Some(Literal::Number(lo)), Some(Literal::Number(hi))) = (&b.min, &b.max)
        && lo > hi
    {
        return Err(QualityError::suite(
            "ValueError: min_value cannot be greater than max_value",
        ));
    }
    Ok(b)
}

/// Bounds that may be crossed (GE then finds every value unexpected rather than raising).
fn any_bounds(kw: &Map<String, Json>, need_one: bool) -> Result<Bounds, QualityError> {
    let b = Bounds {
        min: literal(kw.get("min_value")),
        max: literal(kw.get("max_value")),
        strict_min: flag(kw, "strict_min"),
        strict_max: flag(kw, "strict_max"),
    };
    if need_one && b.min.is_none() && b.max.is_none() {
        return Err(QualityError::suite(
            "min_value and max_value cannot both be None",
        ));
    }
    for (key, v) in bound_arguments(&b) {
        if let Literal::Text(s) = v
            && let Some(Json::Object(_)) = serde_json::from_str::<Json>(s).ok()
        {
            return Err(QualityError::argument(
                key,
                format!("suite parameters are not supported: {s}"),
            ));
        }
    }
    Ok(b)
}

/// The bounds given, with the argument each came from.
fn bound_arguments(b: &Bounds) -> impl Iterator<Item = (&'static str, &Literal)> {
    [("min_value", &b.min), ("max_value", &b.max)]
        .into_iter()
        .filter_map(|(key, v)| Some((key, v.as_ref()?)))
}

/// A bound that is not a whole number, where GE counts (rows, columns, lengths).
fn whole_bounds(b: &Bounds) -> Result<(), QualityError> {
    for (key, v) in bound_arguments(b) {
        if !matches!(v, Literal::Number(n) if n.fract() == 0.0) {
            return Err(QualityError::argument(
                key,
                format!("min_value and max_value must be integers, found {v:?}"),
            ));
        }
    }
    Ok(())
}

fn count_bounds(kw: &Map<String, Json>) -> Result<Bounds, QualityError> {
    let b = bounds(kw, false)?;
    whole_bounds(&b)?;
    Ok(b)
}

fn list<'a>(kw: &'a Map<String, Json>, key: &str) -> Result<&'a Vec<Json>, QualityError> {
    match kw.get(key) {
        Some(Json::Array(items)) => Ok(items),
        Some(Json::Null) | None => Err(QualityError::argument(
            key,
            format!("argument of type 'NoneType' is not iterable: `{key}` must be a list"),
        )),
        Some(other) => Err(QualityError::argument(
            key,
            format!("`{key}` must be a list, found {other}"),
        )),
    }
}

fn literals(kw: &Map<String, Json>, key: &str) -> Result<Vec<Literal>, QualityError> {
    Ok(list(kw, key)?.iter().map(Literal::from_json).collect())
}

fn strings(kw: &Map<String, Json>, key: &str) -> Result<Vec<String>, QualityError> {
    list(kw, key)?
        .iter()
        .map(|v| match v {
            Json::String(s) => Ok(s.clone()),
            other => Err(QualityError::argument(
                key,
                format!("`{key}` must list strings, found {other}"),
            )),
        })
        .collect()
}

/// The pattern `pattern`, given in argument `key`.
fn regex(key: &str, pattern: &str) -> Result<regex::Regex, QualityError> {
    // The crate's message draws the pattern over several lines; its last line says what is wrong.
    regex::Regex::new(pattern).map_err(|e| {
        let e = e.to_string();
        QualityError::argument(
            key,
            format!(
                "invalid regex `{pattern}`: {}",
                e.lines().last().unwrap_or(&e).trim_start_matches("error: ")
            ),
        )
    })
}

fn ignore(kw: &Map<String, Json>, default: Ignore) -> Result<Ignore, QualityError> {
    Ok(match kw.get("ignore_row_if").and_then(Json::as_str) {
        None => default,
        Some("both_values_are_missing") => Ignore::BothMissing,
        Some("either_value_is_missing") => Ignore::EitherMissing,
        Some("all_values_are_missing") => Ignore::AllMissing,
        Some("any_value_is_missing") => Ignore::AnyMissing,
        Some("never" | "neither") => Ignore::Never,
        Some(other) => {
            return Err(QualityError::argument(
                "ignore_row_if",
                format!("ValueError: ignore_row_if `{other}` is not a valid enumeration member"),
            ));
        }
    })
}

/// The check a suite entry names, its arguments read by the family of its expectation. Each
/// family reads the test's own arguments before the columns it applies to, so the first
/// argument error reported stays the same.
fn kind(name: &str, kw: &Map<String, Json>) -> Result<Kind, QualityError> {
    if let Some(test) = map_test(name, kw)? {
        return Ok(Kind::Map {
            column: text(kw, "column")?,
            test,
            mostly: mostly(kw)?,
        });
    }
    if let Some(stat) = column_stat(name, kw)? {
        return Ok(Kind::Stat {
            column: text(kw, "column")?,
            stat,
        });
    }
    if let Some(test) = pair_test(name, kw)? {
        return pair(kw, test);
    }
    if let Some(test) = multi_test(name, kw)? {
        return multi(kw, test);
    }
    if let Some(kind) = table_kind(name, kw)? {
        return Ok(kind);
    }
    Err(QualityError::suite(format!(
        "{name} is not evaluated by Sluice"
    )))
}

/// A count that must be exactly the whole number `key` gives.
fn exact(kw: &Map<String, Json>, key: &str) -> Result<Bounds, QualityError> {
    let v = kw.get(key).cloned().unwrap_or(Json::Null);
    match v.as_f64() {
        Some(n) if n.fract() == 0.0 && n >= 0.0 => Ok(Bounds {
            min: Some(Literal::Number(n)),
            max: Some(Literal::Number(n)),
            ..Bounds::default()
        }),
        _ => Err(QualityError::argument(
            key,
            format!("`{key}` must be integers ≥ 0, found {v}"),
        )),
    }
}

/// Expectations on the table as a whole: its row count and its columns.
fn table_kind(name: &str, kw: &Map<String, Json>) -> Result<Option<Kind>, QualityError> {
    Ok(Some(match name {
        "expect_table_row_count_to_be_between" => Kind::RowCount(count_bounds(kw)?),
        "expect_table_row_count_to_equal" => Kind::RowCount(exact(kw, "value")?),
        "expect_table_column_count_to_equal" => Kind::ColumnCount(exact(kw, "value")?),
        "expect_table_column_count_to_be_between" => Kind::ColumnCount(count_bounds(kw)?),
        "expect_table_columns_to_match_ordered_list" => Kind::ColumnsOrdered(
            given(kw, "column_list")
                .then(|| list(kw, "column_list").cloned())
                .transpose()?,
        ),
        "expect_table_columns_to_match_set" => Kind::ColumnsSet {
            set: given(kw, "column_set")
                .then(|| strings(kw, "column_set"))
                .transpose()?,
            exact: kw
                .get("exact_match")
                .and_then(Json::as_bool)
                .unwrap_or(true),
        },
        "expect_column_to_exist" => Kind::ColumnExists {
            column: text(kw, "column")?,
            index: kw
                .get("column_index")
                .and_then(Json::as_u64)
                .map(|i| i as usize),
        },
        _ => return Ok(None),
    }))
}

/// The test a column map expectation applies to each value.
fn map_test(name: &str, kw: &Map<String, Json>) -> Result<Option<MapTest>, QualityError> {
    Ok(Some(match name {
        "expect_column_values_to_not_be_null" => MapTest::NotNull,
        "expect_column_values_to_be_null" => MapTest::Null,
        "expect_column_values_to_be_unique" => MapTest::Unique,
        "expect_column_values_to_be_between" => MapTest::Between(bounds(kw, true)?),
        "expect_column_values_to_be_in_set" => MapTest::InSet(literals(kw, "value_set")?),
        "expect_column_values_to_not_be_in_set" => MapTest::NotInSet(literals(kw, "value_set")?),
        "expect_column_value_lengths_to_be_between" => {
            let b = any_bounds(kw, true)?;
            whole_bounds(&b)?;
            MapTest::LengthBetween(b)
        }
        "expect_column_value_lengths_to_equal" => MapTest::LengthBetween(exact(kw, "value")?),
        "expect_column_values_to_match_strftime_format" => MapTest::Strftime(strftime_format(kw)?),
        "expect_column_values_to_be_increasing" => MapTest::Increasing {
            strictly: flag(kw, "strictly"),
        },
        "expect_column_values_to_be_decreasing" => MapTest::Decreasing {
            strictly: flag(kw, "strictly"),
        },
        "expect_column_values_to_be_json_parseable" => MapTest::Json,
        "expect_column_values_to_be_dateutil_parseable" => MapTest::Dateutil,
        "expect_column_value_z_scores_to_be_less_than" => {
            let threshold = kw.get("threshold").and_then(Json::as_f64).ok_or_else(|| {
                QualityError::argument("threshold", "`threshold` must be a number")
            })?;
            MapTest::ZScore {
                threshold,
                double_sided: kw
                    .get("double_sided")
                    .and_then(Json::as_bool)
                    .unwrap_or(true),
            }
        }
        _ => return regex_test(name, kw),
    }))
}

/// The column map tests that match values against regular expressions.
fn regex_test(name: &str, kw: &Map<String, Json>) -> Result<Option<MapTest>, QualityError> {
    let patterns = || -> Result<Vec<regex::Regex>, QualityError> {
        strings(kw, "regex_list")?
            .iter()
            .map(|p| regex("regex_list", p))
            .collect()
    };
    Ok(Some(match name {
        "expect_column_values_to_match_regex" => {
            MapTest::Regex(regex("regex", &text(kw, "regex")?)?)
        }
        "expect_column_values_to_not_match_regex" => {
            MapTest::NotRegex(regex("regex", &text(kw, "regex")?)?)
        }
        "expect_column_values_to_match_regex_list" => {
            let list = patterns()?;
            let any = match kw.get("match_on").and_then(Json::as_str) {
                None | Some("any") => true,
                Some("all") => false,
                Some(other) => {
                    return Err(QualityError::argument(
                        "match_on",
                        format!("match_on must be `any` or `all`, found `{other}`"),
                    ));
                }
            };
            MapTest::RegexList { list, any }
        }
        "expect_column_values_to_not_match_regex_list" => MapTest::NotRegexList(patterns()?),
        _ => return Ok(None),
    }))
}

/// A strftime format Python's strptime can read.
fn strftime_format(kw: &Map<String, Json>) -> Result<String, QualityError> {
    let format = text(kw, "strftime_format")?;
    // The directives Python's strptime reads; chrono knows more (%D, %F, %T, …).
    let mut directives = format.split('%').skip(1);
    if directives.any(|d| !d.is_empty() && !"aAbBcdfHIjmMpSUwWxXyYzZGuV".contains(&d[..1]))
        || chrono::format::StrftimeItems::new(&format)
            .any(|i| matches!(i, chrono::format::Item::Error))
    {
        return Err(QualityError::argument(
            "strftime_format",
            format!("Unable to use provided strftime_format. `{format}`"),
        ));
    }
    Ok(format)
}

/// The statistic an aggregate expectation measures over one column (its types included).
fn column_stat(name: &str, kw: &Map<String, Json>) -> Result<Option<Stat>, QualityError> {
    Ok(Some(match name {
        "expect_column_values_to_be_of_type" => Stat::Type(vec![text(kw, "type_")?]),
        "expect_column_values_to_be_in_type_list" => {
            let names = match kw.get("type_list") {
                None | Some(Json::Null) => Vec::new(),
                Some(_) => strings(kw, "type_list")?,
            };
            if names.is_empty() && kw.get("type_list").is_some_and(Json::is_array) {
                return Err(QualityError::argument(
                    "type_list",
                    "`type_list` must name at least one type",
                ));
            }
            Stat::Type(names)
        }
        "expect_column_min_to_be_between" => Stat::Min(bounds(kw, false)?),
        "expect_column_max_to_be_between" => Stat::Max(bounds(kw, false)?),
        "expect_column_mean_to_be_between" => Stat::Mean(bounds(kw, false)?),
        "expect_column_median_to_be_between" => Stat::Median(bounds(kw, false)?),
        "expect_column_sum_to_be_between" => Stat::Sum(bounds(kw, false)?),
        "expect_column_stdev_to_be_between" => Stat::Stdev(bounds(kw, false)?),
        "expect_column_unique_value_count_to_be_between" => Stat::UniqueCount(bounds(kw, false)?),
        "expect_column_proportion_of_unique_values_to_be_between" => {
            Stat::UniqueProportion(bounds(kw, false)?)
        }
        "expect_column_quantile_values_to_be_between" => quantiles(kw)?,
        "expect_column_most_common_value_to_be_in_set" => Stat::MostCommon {
            set: literals(kw, "value_set")?,
            ties_okay: flag(kw, "ties_okay"),
        },
        "expect_column_distinct_values_to_be_in_set" => Stat::DistinctInSet(
            given(kw, "value_set")
                .then(|| literals(kw, "value_set"))
                .transpose()?,
        ),
        "expect_column_distinct_values_to_contain_set" => Stat::DistinctContain(set_or_empty(kw)?),
        "expect_column_distinct_values_to_equal_set" => Stat::DistinctEqual(set_or_empty(kw)?),
        _ => return Ok(None),
    }))
}

/// The test a column pair expectation applies to each row's two values.
fn pair_test(name: &str, kw: &Map<String, Json>) -> Result<Option<PairTest>, QualityError> {
    Ok(Some(match name {
        "expect_column_pair_values_to_be_equal" => PairTest::Equal,
        "expect_column_pair_values_a_to_be_greater_than_b" => PairTest::Greater {
            or_equal: flag(kw, "or_equal"),
        },
        "expect_column_pair_values_to_be_in_set" => PairTest::InSet(
            list(kw, "value_pairs_set")?
                .iter()
                .map(|p| match p.as_array().map(Vec::as_slice) {
                    Some([a, b]) => Ok((Literal::from_json(a), Literal::from_json(b))),
                    _ => Err(QualityError::argument(
                        "value_pairs_set",
                        format!("value_pairs_set must hold pairs, found {p}"),
                    )),
                })
                .collect::<Result<_, _>>()?,
        ),
        _ => return Ok(None),
    }))
}

/// The test a multi-column expectation applies to each row's values.
fn multi_test(name: &str, kw: &Map<String, Json>) -> Result<Option<MultiTest>, QualityError> {
    Ok(Some(match name {
        "expect_compound_columns_to_be_unique" => MultiTest::CompoundUnique,
        "expect_select_column_values_to_be_unique_within_record" => MultiTest::UniqueWithinRecord,
        "expect_multicolumn_sum_to_equal" => {
            let total = kw.get("sum_total").and_then(Json::as_f64).ok_or_else(|| {
                QualityError::argument("sum_total", "`sum_total` must be a number")
            })?;
            MultiTest::SumEqual(total)
        }
        _ => return Ok(None),
    }))
}

fn given(kw: &Map<String, Json>, key: &str) -> bool {
    kw.get(key).is_some_and(|v| !v.is_null())
}

fn set_or_empty(kw: &Map<String, Json>) -> Result<Vec<Literal>, QualityError> {
    match kw.get("value_set") {
        None | Some(Json::Null) => Ok(Vec::new()),
        _ => literals(kw, "value_set"),
    }
}

fn quantiles(kw: &Map<String, Json>) -> Result<Stat, QualityError> {
    let refused = |message: &str| QualityError::argument("quantile_ranges", message);
    let spec = kw
        .get("quantile_ranges")
        .and_then(Json::as_object)
        .ok_or_else(|| {
            refused("quantile_ranges must be a mapping with `quantiles` and `value_ranges`")
        })?;
    let quantiles: Vec<f64> = spec
        .get("quantiles")
        .and_then(Json::as_array)
        .ok_or_else(|| refused("quantile_ranges needs `quantiles`"))?
        .iter()
        .map(|q| {
            q.as_f64()
                .ok_or_else(|| refused(&format!("quantile `{q}` is not a valid float")))
        })
        .collect::<Result<_, _>>()?;
    let ranges: Vec<(Option<f64>, Option<f64>)> = spec
        .get("value_ranges")
        .and_then(Json::as_array)
        .ok_or_else(|| refused("quantile_ranges needs `value_ranges`"))?
        .iter()
        .map(|r| match r.as_array().map(Vec::as_slice) {
            Some([lo, hi]) => {
                let (lo, hi) = (lo.as_f64(), hi.as_f64());
                if let (Some(l), Some(h)) = (lo, hi)
                    && l > h
                {
                    return Err(refused("quantile_ranges must consist of ordered pairs"));
                }
                Ok((lo, hi))
            }
            _ => Err(refused("quantile_ranges must consist of ordered pairs")),
        })
        .collect::<Result<_, _>>()?;
    if ranges.len() != quantiles.len() {
        return Err(refused(
            "ValueError: quantile_values and quantiles must have the same number of elements",
        ));
    }
    if let Some(q) = quantiles.iter().find(|q| !(0.0..=1.0).contains(*q)) {
        return Err(refused(&format!(
            "ValueError: quantile {q} is not between 0 and 1"
        )));
    }
    Ok(Stat::Quantiles { quantiles, ranges })
}

fn pair(kw: &Map<String, Json>, test: PairTest) -> Result<Kind, QualityError> {
    Ok(Kind::Pair {
        a: text(kw, "column_A")?,
        b: text(kw, "column_B")?,
        test,
        ignore: ignore(kw, Ignore::BothMissing)?,
        mostly: mostly(kw)?,
    })
}

fn multi(kw: &Map<String, Json>, test: MultiTest) -> Result<Kind, QualityError> {
    Ok(Kind::Multi {
        columns: strings(kw, "column_list")?,
        test,
        ignore: ignore(kw, Ignore::AllMissing)?,
        mostly: mostly(kw)?,
    })
}
