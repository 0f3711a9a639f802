//! Great Expectations' own expectation test cases (`crates/sluice-quality/tests/great_expectations/`,
//! see its README) as a data-driven test: the cases are loaded into Arrow, validated by an
//! engine and compared with GE's expected output by GE's comparison rules. The in-memory
//! engine's runner (sluice-quality's tests) and the SQL engines' runners (sluice-tasks' tests)
//! share it here, test support of its own rather than one crate's test file included by
//! another.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use serde_json::{Value, json};
use sluice_core::diag::Diagnostics;
use sluice_quality::{Level, ResultFormat, Validation, catalog};

/// The vendored cases: sluice-quality's test data.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sluice-quality/tests/great_expectations")
}

/// One upstream test case with its dataset.
pub struct Case {
    pub title: String,
    pub kind: String,
    pub folder: String,
    pub dataset: Value,
    pub test: Value,
}

pub fn cases() -> Vec<Case> {
    let root = root();
    let mut out = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                let text = python_json(&std::fs::read_to_string(&path).unwrap());
                let doc: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let kind = doc["expectation_type"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let file = path.strip_prefix(&root).unwrap().display().to_string();
                let folder = file.split('/').next().unwrap_or_default().to_string();
                for dataset in doc["datasets"].as_array().into_iter().flatten() {
                    for test in dataset["tests"].as_array().into_iter().flatten() {
                        out.push(Case {
                            title: format!("{file}: {}", test["title"].as_str().unwrap_or("?")),
                            kind: kind.clone(),
                            folder: folder.clone(),
                            dataset: dataset.clone(),
                            test: test.clone(),
                        });
                    }
                }
            }
        }
    }
    out.sort_by(|a, b| a.title.cmp(&b.title));
    out
}

/// Python's `json` writes NaN and ±Infinity bare; as strings they keep their meaning here.
pub fn python_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let bare = ["NaN", "-Infinity", "Infinity"]
            .iter()
            .find(|t| !in_string && rest.starts_with(**t));
        if let Some(token) = bare {
            out.push_str(&format!("\"{token}\""));
            rest = &rest[token.len()..];
            continue;
        }
        if c == '"' && !escaped {
            in_string = !in_string;
        }
        escaped = c == '\\' && !escaped;
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Whether a backend list names `backend` (GE's retired `_v2_api` tokens name nothing).
fn listed(v: &Value, backend: &str) -> bool {
    v.as_array().is_some_and(|l| {
        l.iter().filter_map(Value::as_str).any(|b| {
            b == backend
                || b == format!("{backend}_v3_api")
                || b.starts_with(&format!("{backend}>="))
        })
    })
}

/// Expectations GE's runner never runs on a SQL backend (its "not implemented" list).
const NOT_ON_SQL: &[&str] = &[
    "expect_column_values_to_be_increasing",
    "expect_column_values_to_be_decreasing",
    "expect_column_values_to_match_strftime_format",
    "expect_column_values_to_be_dateutil_parseable",
    "expect_column_values_to_be_json_parseable",
];

/// Whether GE's runner runs the case for `backend` (`sqlalchemy` stands for every SQL
/// backend in GE's lists).
fn runs_for(case: &Case, backend: &str) -> bool {
    let sql = backend != "pandas";
    if sql && NOT_ON_SQL.contains(&case.kind.as_str()) {
        return false;
    }
    [&case.dataset, &case.test].iter().all(|scope| {
        let only = scope
            .get("only_for")
            .is_none_or(|only| listed(only, backend) || (sql && listed(only, "sqlalchemy")));
        let suppressed = scope
            .get("suppress_test_for")
            .is_some_and(|s| listed(s, backend) || (sql && listed(s, "sqlalchemy")));
        only && !suppressed
    })
}

/// SQL-only cases whose expected output differs from the pandas case on the same data; the
/// engines give one verdict, pandas', on every backend.
const CONTRADICT_PANDAS: &[(&str, &str)] = &[(
    "positive_test__exact_min_and_max_sqlalchemy",
    "PostgreSQL's own stddev_samp rounds the last digit otherwise (…515) than pandas (…517, the case `positive_test__exact_min_and_max`)",
)];

/// Why a case does not apply to an engine that stands for `backends` (GE's backend names:
/// `pandas` for the in-memory engine; the SQL engines answer for `pandas` too, since both
/// engines give one verdict, and for the SQL backends they are): `None` when it applies.
pub fn skip_reason(case: &Case, backends: &[&str]) -> Option<String> {
    if catalog::find(&case.kind).is_none() {
        return Some(format!("out of scope: {}", case.kind));
    }
    if !case.dataset["data"].is_object() {
        return Some("several tables (multi-table expectation)".into());
    }
    if !backends.iter().any(|b| runs_for(case, b)) {
        let lists = |key: &str| {
            [&case.dataset, &case.test]
                .into_iter()
                .filter_map(|s| s.get(key))
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join(" and ")
        };
        let (only, suppressed) = (lists("only_for"), lists("suppress_test_for"));
        let only = (!only.is_empty()).then(|| format!("runs it only for {only}"));
        let suppressed =
            (!suppressed.is_empty()).then(|| format!("suppresses it for {suppressed}"));
        let why: Vec<String> = only.into_iter().chain(suppressed).collect();
        return Some(format!("upstream {}", why.join(" and ")));
    }
    if !case.test["in"].is_object() {
        return Some("positional arguments (GE 0.x calling convention)".into());
    }
    if let Some((_, why)) = CONTRADICT_PANDAS
        .iter()
        .find(|(title, _)| case.title.ends_with(&format!(": {title}")))
    {
        return Some(format!("depends on pandas typing: {why}"));
    }
    // GE's SQL backends load such columns as text (their declared SQL type), so on a SQL
    // engine the case no longer depends on pandas' typing.
    if backends.iter().any(|b| *b != "pandas" && runs_for(case, b)) {
        return None;
    }
    let used = used_columns(case);
    for c in &used {
        if pandas_typed(&case.dataset, c) {
            return Some(format!(
                "depends on pandas typing (column `{c}` is a mixed-type object column)"
            ));
        }
    }
    let kwargs = case.test["in"].to_string();
    let pandas_names = ["\"object", "\"O\"", "Timestamp", "DatetimeTZDtype"];
    if case.kind.contains("type")
        && (pandas_names.iter().any(|n| kwargs.contains(n))
            || case.test["title"].as_str().unwrap_or("").contains("pandas"))
    {
        return Some("depends on pandas typing (numpy/pandas dtype names)".into());
    }
    None
}

fn used_columns(case: &Case) -> Vec<String> {
    let data = case.dataset["data"].as_object().unwrap();
    let kwargs = case.test["in"].to_string();
    data.keys()
        .filter(|c| {
            kwargs.contains(&format!("\"{c}\""))
                || kwargs.contains(&format!("{c} "))
                || kwargs.contains(&format!("{c}="))
                || kwargs.contains(&format!("{c}!"))
                || kwargs.contains(&format!("{c}<"))
                || kwargs.contains(&format!("{c}>"))
        })
        .cloned()
        .collect()
}

/// A column whose values mix types (pandas `object` dtype), which pandas compares value by
/// value with Python's rules.
fn pandas_typed(dataset: &Value, column: &str) -> bool {
    let declared = dataset["schemas"]["pandas"][column].as_str();
    if declared == Some("object") {
        return true;
    }
    let values = dataset["data"][column]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let kinds: std::collections::BTreeSet<&str> = values
        .iter()
        .filter(|v| !v.is_null())
        .map(|v| match v {
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(s) if ["NaN", "Infinity", "-Infinity"].contains(&s.as_str()) => "number",
            Value::String(_) => "text",
            _ => "nested",
        })
        .collect();
    kinds.len() > 1 || kinds.contains("nested")
}

/// The dataset as one Arrow batch, typed as the case's pandas schema says (or inferred), with
/// GE's `pk_index` column for row-wise expectations.
pub fn batch(case: &Case) -> RecordBatch {
    let data = case.dataset["data"].as_object().unwrap();
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    let mut rows = 0;
    for (name, values) in data {
        let values = values.as_array().cloned().unwrap_or_default();
        rows = rows.max(values.len());
        let declared = case.dataset["schemas"]["pandas"][name]
            .as_str()
            .unwrap_or("");
        let array = column(&values, declared);
        fields.push(Field::new(name, array.data_type().clone(), true));
        arrays.push(array);
    }
    if case.folder.contains("map_expectations") && !data.contains_key("pk_index") {
        fields.push(Field::new("pk_index", DataType::Int64, false));
        arrays.push(Arc::new(Int64Array::from_iter_values(0..rows as i64)));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
}

fn column(values: &[Value], declared: &str) -> ArrayRef {
    let number = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => s.parse().ok(),
        },
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    };
    let present: Vec<&Value> = values.iter().filter(|v| !v.is_null()).collect();
    let kind = match declared {
        "int" | "int64" | "Int64Dtype" => "int",
        "float" | "float64" => "float",
        "str" | "object" => "text",
        "bool" => "bool",
        "datetime64[ns]" | "datetime64" | "datetime" | "timestamp" | "date" => "time",
        _ if present.is_empty() => "float",
        _ if present.iter().all(|v| v.is_i64() || v.is_u64()) => "int",
        _ if present.iter().all(|v| v.is_boolean()) => "bool",
        _ if present.iter().all(|v| number(v).is_some() && !v.is_string() || matches!(v, Value::String(s) if ["NaN","Infinity","-Infinity"].contains(&s.as_str()))) => "float",
        _ => "text",
    };
    match kind {
        "int" => Arc::new(
            values
                .iter()
                .map(|v| number(v).map(|n| n as i64))
                .collect::<Int64Array>(),
        ) as ArrayRef,
        "float" => Arc::new(values.iter().map(number).collect::<Float64Array>()),
        "bool" => Arc::new(values.iter().map(|v| v.as_bool()).collect::<BooleanArray>()),
        "time" => Arc::new(
            values
                .iter()
                .map(|v| v.as_str().and_then(sluice_quality::value::parse_time))
                .collect::<TimestampMicrosecondArray>(),
        ) as ArrayRef,
        _ => Arc::new(
            values
                .iter()
                .map(|v| match v {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                })
                .collect::<StringArray>(),
        ),
    }
    .pipe(|a| {
        if kind == "time" {
            arrow::compute::cast(&a, &DataType::Timestamp(TimeUnit::Microsecond, None)).unwrap()
        } else {
            a
        }
    })
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}

/// The validation of one case: its kwargs as a one-expectation suite, with the result format
/// GE's runner uses. `None` when the suite reader refuses the kwargs (GE would raise too).
pub fn validation(case: &Case) -> Result<Validation, String> {
    let suite =
        json!({"name": "case", "expectations": [{"type": case.kind, "kwargs": case.test["in"]}]});
    let mut diags = Diagnostics::default();
    let suite = sluice_quality::suite::parse("case.json", &suite.to_string(), &mut diags)
        .ok_or_else(|| {
            diags
                .0
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        })?;
    let mut format = ResultFormat::new(Level::Complete);
    if case.folder.contains("map_expectations") {
        format.index_columns = vec!["pk_index".into()];
    }
    Ok(Validation::new(&suite, &format, &Default::default()))
}

/// Compares one expectation result with the case's `out`, by GE's rules; `Err` says how it
/// differs.
pub fn compare(case: &Case, result: &Value) -> Result<(), String> {
    let out = &case.test["out"];
    let res = &result["result"];
    let exact = case.test["exact_match_out"].as_bool().unwrap_or(false);
    let raised = result["exception_info"]["raised_exception"]
        .as_bool()
        .unwrap_or(false);
    let differs = |key: &str, want: &Value, got: &Value| {
        Err(format!(
            "{key}: want {want}, got {got}; result {}",
            compact(result)
        ))
    };
    if let Some(sub) = out.get("traceback_substring").and_then(Value::as_str) {
        return if raised {
            Ok(())
        } else {
            Err(format!("should raise ({sub}); result {}", compact(result)))
        };
    }
    // A case that documents an upstream error (`error`) and expects nothing checks nothing.
    let expects_nothing = out.as_object().is_none_or(|o| o.is_empty());
    if raised && !expects_nothing {
        return Err(format!(
            "raised: {}",
            result["exception_info"]["exception_message"]
        ));
    }
    if let Some(want) = out.get("success")
        && want != &result["success"]
    {
        return differs("success", want, &result["success"]);
    }
    if exact {
        if let Some(want) = out.get("result").and_then(Value::as_object) {
            for (k, v) in want {
                if let Some(got) = res.get(k)
                    && !same(v, got, None)
                {
                    return differs(k, v, got);
                }
            }
        }
        return Ok(());
    }
    let tolerance = case.test["tolerance"].as_f64();
    for (key, want) in out.as_object().into_iter().flatten() {
        let got = &res[key.as_str()];
        let ok = match key.as_str() {
            "success" | "traceback_substring" | "meta" => true,
            "observed_value" => same(want, &res["observed_value"], tolerance),
            "observed_value_list" => want
                .as_array()
                .is_some_and(|l| l.iter().any(|w| same(w, &res["observed_value"], tolerance))),
            "unexpected_list" => same(&sorted(want), &sorted(&res["unexpected_list"]), None),
            "unexpected_index_list" => {
                same(&by_pk(want), &by_pk(&res["unexpected_index_list"]), None)
            }
            "partial_unexpected_list" => same(want, &res["partial_unexpected_list"], None),
            "details" => same(want, &res["details"], tolerance),
            "value_counts" => want.as_array().is_some_and(|l| {
                l.iter().all(|w| {
                    res["details"]["value_counts"]
                        .as_array()
                        .is_some_and(|g| g.iter().any(|g| same(w, g, None)))
                })
            }),
            "unexpected_count" => true,
            _ => return Err(format!("out key `{key}` is not compared by this runner")),
        };
        if !ok {
            return differs(
                key,
                want,
                if key == "value_counts" {
                    &res["details"]
                } else {
                    got
                },
            );
        }
    }
    Ok(())
}

fn compact(v: &Value) -> String {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("expectation_config");
        m.remove("meta");
    }
    let s = v.to_string();
    if s.len() > 600 {
        format!("{}…", &s[..600])
    } else {
        s
    }
}

fn sorted(v: &Value) -> Value {
    let mut items = v.as_array().cloned().unwrap_or_default();
    items.sort_by_key(canonical);
    Value::Array(items)
}

fn by_pk(v: &Value) -> Value {
    let mut items = v.as_array().cloned().unwrap_or_default();
    items.sort_by_key(|a| {
        a.get("pk_index")
            .and_then(Value::as_i64)
            .or(a.as_i64())
            .unwrap_or(0)
    });
    Value::Array(items)
}

/// A spelling that sorts and compares values the way Python does (1 == 1.0; one timestamp
/// format).
fn canonical(v: &Value) -> String {
    match v {
        Value::Number(n) => format!("{:020.6}", n.as_f64().unwrap_or(0.0)),
        Value::String(s) => match sluice_quality::value::parse_time(s) {
            Some(t) if s.len() >= 10 => format!("t{t}"),
            _ => format!("s{s}"),
        },
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        Value::Object(m) => {
            let mut keys: Vec<_> = m
                .iter()
                .map(|(k, v)| format!("{k}:{}", canonical(v)))
                .collect();
            keys.sort();
            format!("{{{}}}", keys.join(","))
        }
        other => other.to_string(),
    }
}

/// Equality with numbers by value (within `tolerance` when given) and timestamps by instant.
pub fn same(want: &Value, got: &Value, tolerance: Option<f64>) -> bool {
    match (want, got) {
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            match tolerance {
                Some(t) => (a - b).abs() <= t * b.abs().max(1e-12) + 1e-12 || (a - b).abs() <= t,
                None => a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()),
            }
        }
        (Value::String(a), Value::Number(b)) | (Value::Number(b), Value::String(a)) => {
            a.parse::<f64>().is_ok_and(|a| a == b.as_f64().unwrap())
                || (a == "NaN" && b.as_f64().unwrap().is_nan())
        }
        (Value::String(a), Value::String(b)) => a == b || canonical(want) == canonical(got),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y, tolerance))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|g| same(v, g, tolerance)))
        }
        _ => want == got,
    }
}

/// What an engine answers for one case: the validation result, or why it could not validate
/// (the case could not be loaded into it, the engine failed).
pub type Answer = Result<Value, Box<dyn std::error::Error>>;

/// Runs every case through `engine` and returns (passed, failures, skips).
pub fn run(
    backends: &[&str],
    mut engine: impl FnMut(&Case, &Validation) -> Answer,
) -> (usize, Vec<String>, Vec<(String, String)>) {
    let (mut passed, mut failed, mut skipped) = (0, Vec::new(), Vec::new());
    for case in cases() {
        if let Some(reason) = skip_reason(&case, backends) {
            skipped.push((case.title.clone(), reason));
            continue;
        }
        let raises = case.test["out"].get("traceback_substring").is_some()
            || case.test.get("error").is_some();
        let validation = match validation(&case) {
            Ok(v) => v,
            Err(e) if raises => {
                let _ = e;
                passed += 1;
                continue;
            }
            Err(e) => {
                failed.push(format!("{}: suite refused: {e}", case.title));
                continue;
            }
        };
        match engine(&case, &validation) {
            Ok(result) => match compare(&case, &result["results"][0]) {
                Ok(()) => passed += 1,
                Err(e) => failed.push(format!("{}: {e}", case.title)),
            },
            Err(e) => failed.push(format!("{}: engine: {e}", case.title)),
        }
    }
    (passed, failed, skipped)
}

/// Prints the tally and the skip reasons (grouped), as the issue asks.
pub fn report(backend: &str, passed: usize, failed: &[String], skipped: &[(String, String)]) {
    println!(
        "{backend}: {passed} passed, {} failed, {} skipped",
        failed.len(),
        skipped.len()
    );
    let mut reasons: std::collections::BTreeMap<&str, usize> = Default::default();
    for (_, r) in skipped {
        *reasons.entry(r.as_str()).or_default() += 1;
    }
    for (r, n) in reasons {
        println!("  skipped {n:>3}: {r}");
    }
    for f in failed {
        println!("FAILED {f}");
    }
}
