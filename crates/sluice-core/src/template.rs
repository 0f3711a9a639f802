//! Jinja templates with Airflow's variables and macros.
//!
//! Undefined variables are errors (a missing variable rendered as "" in SQL deletes the wrong
//! partition). Values reach SQL only through the `sql` filter, which renders a correctly quoted
//! literal, or the `ident` filter, which quotes an identifier: a template never splices raw text
//! into a statement. Both write the dialect of the database the SQL runs on
//! ([`TemplateContext::dialect`]; the warehouse's, DuckDB, unless a task says otherwise).

use std::sync::OnceLock;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use minijinja::value::{Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};
use serde::Serialize;

use crate::schedule::DataInterval;
use crate::sql::{self, Dialect};

/// Every variable a template may use, besides `item` in `for_each` pipelines.
pub const VARIABLES: &[&str] = &[
    "ds",
    "ds_nodash",
    "ts",
    "ts_nodash",
    "logical_date",
    "data_interval_start",
    "data_interval_end",
    "prev_ds",
    "prev_ds_nodash",
    "next_ds",
    "next_ds_nodash",
    "params",
    "macros",
    "pipeline",
    "task",
    "run_id",
    "try_number",
    "project_dir",
    "lake_root",
];

/// The shared template environment (its `sql` and `ident` filters write DuckDB's SQL).
pub fn environment() -> &'static Environment<'static> {
    environment_for(Dialect::DuckDb)
}

/// The environment whose `sql` and `ident` filters write `dialect`'s SQL: one per dialect,
/// so a filter needs nothing from the context to know how to quote.
fn environment_for(dialect: Dialect) -> &'static Environment<'static> {
    static ENVS: OnceLock<[Environment<'static>; 3]> = OnceLock::new();
    let envs = ENVS.get_or_init(|| {
        [Dialect::DuckDb, Dialect::Postgres, Dialect::MySql].map(|dialect| {
            let mut env = Environment::new();
            env.set_undefined_behavior(UndefinedBehavior::Strict);
            env.set_debug(true);
            // A template is user input: bound the work one render may do.
            env.set_fuel(Some(5_000_000));
            env.add_filter("sql", move |value: Value| sql_literal(dialect, &value));
            env.add_filter("ident", move |value: Value| ident_filter(dialect, &value));
            env.add_global(
                "macros",
                minijinja::context! {
                    ds_add => Value::from_function(ds_add),
                    ds_format => Value::from_function(ds_format),
                },
            );
            env
        })
    });
    match dialect {
        Dialect::DuckDb => &envs[0],
        Dialect::Postgres => &envs[1],
        Dialect::MySql => &envs[2],
    }
}

/// The values a task's templates see for one run and try.
#[derive(Debug, Clone, Serialize)]
pub struct TemplateContext {
    pub ds: String,
    pub ds_nodash: String,
    pub ts: String,
    pub ts_nodash: String,
    pub logical_date: String,
    pub data_interval_start: String,
    pub data_interval_end: String,
    pub prev_ds: Option<String>,
    pub prev_ds_nodash: Option<String>,
    pub next_ds: Option<String>,
    pub next_ds_nodash: Option<String>,
    pub params: serde_json::Value,
    pub pipeline: String,
    pub task: String,
    pub run_id: String,
    pub try_number: u32,
    /// The project folder, absolute.
    pub project_dir: String,
    /// The data lake's root folder, absolute.
    pub lake_root: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<serde_json::Value>,
    /// `{column, last_value}` for tasks that extract incrementally.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incremental: Option<serde_json::Value>,
    /// The SQL the `sql` and `ident` filters write: that of the database the rendered text
    /// runs on. Not a variable.
    #[serde(skip)]
    pub dialect: Dialect,
}

/// Airflow's rendering of an instant: `2024-01-01T06:00:00+00:00`.
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

impl TemplateContext {
    /// Builds the context; like Airflow, `ds` and `ts` are the logical date in UTC.
    #[expect(
        clippy::too_many_arguments,
        reason = "Airflow's variables of one try: each is its own value"
    )]
    pub fn new(
        pipeline: &str,
        task: &str,
        run_id: &str,
        try_number: u32,
        interval: &DataInterval,
        prev: Option<&DataInterval>,
        next: Option<&DataInterval>,
        params: serde_json::Value,
        item: Option<serde_json::Value>,
    ) -> Self {
        let ld = interval.logical_date();
        TemplateContext {
            ds: ld.format("%Y-%m-%d").to_string(),
            ds_nodash: ld.format("%Y%m%d").to_string(),
            ts: iso(ld),
            ts_nodash: ld.format("%Y%m%dT%H%M%S").to_string(),
            logical_date: iso(ld),
            data_interval_start: iso(interval.start),
            data_interval_end: iso(interval.end),
            prev_ds: prev.map(|p| p.start.format("%Y-%m-%d").to_string()),
            prev_ds_nodash: prev.map(|p| p.start.format("%Y%m%d").to_string()),
            next_ds: next.map(|n| n.start.format("%Y-%m-%d").to_string()),
            next_ds_nodash: next.map(|n| n.start.format("%Y%m%d").to_string()),
            params,
            pipeline: pipeline.to_string(),
            task: task.to_string(),
            run_id: run_id.to_string(),
            try_number,
            project_dir: String::new(),
            lake_root: String::new(),
            item,
            incremental: None,
            dialect: Dialect::DuckDb,
        }
    }

    /// The same values, for SQL that runs on a database of `dialect`.
    pub fn in_dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }

    /// Fills `project_dir` and `lake_root`.
    pub fn with_project(mut self, paths: &crate::settings::ProjectPaths) -> Self {
        self.project_dir = paths.root.display().to_string();
        self.lake_root = paths.lake.display().to_string();
        self
    }

    /// A context with placeholder values, used by `sluice check` to try-render templates.
    pub fn sample(
        pipeline: &str,
        task: &str,
        params: serde_json::Value,
        item: Option<serde_json::Value>,
    ) -> Self {
        let start = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .expect("constant")
            .with_timezone(&Utc);
        let interval = DataInterval {
            start,
            end: start + Duration::days(1),
        };
        let prev = DataInterval {
            start: start - Duration::days(1),
            end: start,
        };
        let next = DataInterval {
            start: interval.end,
            end: interval.end + Duration::days(1),
        };
        TemplateContext::new(
            pipeline,
            task,
            "check",
            1,
            &interval,
            Some(&prev),
            Some(&next),
            params,
            item,
        )
    }
}

/// A template that failed to parse or render.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub message: String,
    /// 1-based line within the template.
    pub line: Option<usize>,
    /// Byte offset within the template where the problem starts.
    pub offset: Option<usize>,
    pub hint: Option<String>,
}

impl TemplateError {
    fn from_minijinja(err: &Error, source: &str) -> Self {
        let detail = err.detail().map(str::to_string);
        let (message, hint) = match err.kind() {
            ErrorKind::UndefinedError => {
                let name = err.range().map(|r| source[r].trim().to_string());
                (
                    match &name {
                        Some(n) => format!("undefined template variable `{n}`"),
                        None => "undefined template variable".to_string(),
                    },
                    Some(format!(
                        "available: {} (`item` in for_each pipelines, `incremental` in extracts with `incremental:`); params must be declared under `params:`",
                        VARIABLES.join(", ")
                    )),
                )
            }
            ErrorKind::SyntaxError => (
                format!("template syntax error: {}", detail.unwrap_or_default()),
                Some("templates use Jinja syntax: {{ expression }} and {% statement %}".into()),
            ),
            ErrorKind::UnknownFilter => (
                format!("unknown filter: {}", detail.unwrap_or_default()),
                Some("Sluice adds the `sql` and `ident` filters to Jinja's built-in ones".into()),
            ),
            kind => (
                match detail {
                    Some(d) => format!("template error: {d}"),
                    None => format!("template error: {kind}"),
                },
                None,
            ),
        };
        TemplateError {
            message,
            line: err.line(),
            offset: err.range().map(|r| r.start),
            hint,
        }
    }
}

/// Renders `source` with `ctx`.
pub fn render(source: &str, ctx: &TemplateContext) -> Result<String, TemplateError> {
    if !source.contains("{{") && !source.contains("{%") && !source.contains("{#") {
        return Ok(source.to_string());
    }
    let env = environment_for(ctx.dialect);
    let tmpl = env
        .template_from_str(source)
        .map_err(|e| TemplateError::from_minijinja(&e, source))?;
    tmpl.render(Value::from(minijinja::value::Serde(ctx)))
        .map_err(|e| TemplateError::from_minijinja(&e, source))
}

/// Renders a value the way Airflow's `render_template_as_native_obj` does: a string that is
/// exactly one `{{ expression }}` becomes the expression's value (a list, a mapping, a number);
/// any other string is rendered as text; lists and mappings are rendered recursively.
pub fn render_native(
    value: &serde_json::Value,
    ctx: &TemplateContext,
) -> Result<serde_json::Value, TemplateError> {
    use serde_json::Value as J;
    Ok(match value {
        J::String(s) => {
            let t = s.trim();
            if let Some(expr) = t
                .strip_prefix("{{")
                .and_then(|r| r.strip_suffix("}}"))
                .filter(|e| !e.contains("{{") && !e.contains("}}"))
            {
                let env = environment_for(ctx.dialect);
                let compiled = env
                    .compile_expression(expr)
                    .map_err(|e| TemplateError::from_minijinja(&e, expr))?;
                let v = compiled
                    .eval(Value::from(minijinja::value::Serde(ctx)))
                    .map_err(|e| TemplateError::from_minijinja(&e, expr))?;
                serde_json::to_value(&v).map_err(|e| TemplateError {
                    message: format!("cannot convert `{expr}` to a value: {e}"),
                    line: None,
                    offset: None,
                    hint: None,
                })?
            } else {
                J::String(render(s, ctx)?)
            }
        }
        J::Array(items) => J::Array(
            items
                .iter()
                .map(|v| render_native(v, ctx))
                .collect::<Result<_, _>>()?,
        ),
        J::Object(map) => J::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_native(v, ctx)?)))
                .collect::<Result<_, TemplateError>>()?,
        ),
        other => other.clone(),
    })
}

/// Checks a template without running it: syntax, variables that do not exist, and a trial render
/// against placeholder values (which finds `params.x` that is not declared).
pub fn check(source: &str, sample: &TemplateContext) -> Result<(), TemplateError> {
    if !source.contains("{{") && !source.contains("{%") && !source.contains("{#") {
        return Ok(());
    }
    let env = environment_for(sample.dialect);
    let tmpl = env
        .template_from_str(source)
        .map_err(|e| TemplateError::from_minijinja(&e, source))?;
    let mut undeclared: Vec<String> = tmpl
        .undeclared_variables(false)
        .into_iter()
        .filter(|v| {
            let known = VARIABLES.contains(&v.as_str())
                || (v == "item" && sample.item.is_some())
                || (v == "incremental" && sample.incremental.is_some());
            !known
        })
        .collect();
    undeclared.sort();
    if let Some(name) = undeclared.first() {
        let offset = find_word(source, name);
        let line = offset.map(|o| source[..o].matches('\n').count() + 1);
        let hint =
            crate::diag::did_you_mean(name, VARIABLES.iter().copied()).unwrap_or_else(|| {
                format!(
                    "available: {} (`item` in for_each pipelines, `incremental` in extracts with `incremental:`)",
                    VARIABLES.join(", ")
                )
            });
        return Err(TemplateError {
            message: format!("undefined template variable `{name}`"),
            line,
            offset,
            hint: Some(hint),
        });
    }
    tmpl.render(Value::from(minijinja::value::Serde(sample)))
        .map(|_| ())
        .map_err(|e| TemplateError::from_minijinja(&e, source))
}

fn find_word(source: &str, word: &str) -> Option<usize> {
    let bytes = source.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    source.match_indices(word).map(|(i, _)| i).find(|&i| {
        let before = i.checked_sub(1).map(|j| bytes[j]);
        let after = bytes.get(i + word.len()).copied();
        !before.is_some_and(|b| is_ident(b) || b == b'.') && !after.is_some_and(is_ident)
    })
}

/// The `sql` filter: a value as a literal of `dialect` — strings quoted, numbers as numbers,
/// booleans as TRUE/FALSE, none as NULL, a list as a parenthesised list for `IN`.
fn sql_literal(dialect: Dialect, value: &Value) -> Result<String, Error> {
    let refused = |e: sql::SqlError| Error::new(ErrorKind::InvalidOperation, e.to_string());
    match value.kind() {
        ValueKind::None | ValueKind::Undefined => Ok(sql::NULL.into()),
        ValueKind::Bool => Ok(dialect.boolean(value.is_true()).into()),
        ValueKind::Number => dialect.number(&value.to_string()).map_err(refused),
        ValueKind::String => dialect
            .text(value.as_str().unwrap_or_default())
            .map_err(refused),
        ValueKind::Seq | ValueKind::Iterable => {
            let items = value
                .try_iter()?
                .map(|v| sql_literal(dialect, &v))
                .collect::<Result<Vec<_>, _>>()?;
            dialect.list(&items).map_err(refused)
        }
        kind => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("a {kind} cannot be written as a SQL literal"),
        )),
    }
}

/// The `ident` filter: a name quoted as an identifier of `dialect` (`schema.table` →
/// `"schema"."table"`).
fn ident_filter(dialect: Dialect, value: &Value) -> Result<String, Error> {
    let Some(s) = value.as_str() else {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("`ident` expects a string, found {}", value.kind()),
        ));
    };
    dialect
        .checked_qualified(s)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))
}

fn parse_ds(ds: &str, fmt: &str) -> Result<NaiveDateTime, Error> {
    NaiveDateTime::parse_from_str(ds, fmt)
        .or_else(|_| NaiveDate::parse_from_str(ds, fmt).map(|d| d.and_time(chrono::NaiveTime::MIN)))
        .map_err(|e| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("`{ds}` does not match `{fmt}`: {e}"),
            )
        })
}

/// `macros.ds_add('2024-01-01', 5)` → `'2024-01-06'`.
fn ds_add(ds: String, days: i64) -> Result<String, Error> {
    let d = parse_ds(&ds, "%Y-%m-%d")?;
    Ok((d + Duration::days(days)).format("%Y-%m-%d").to_string())
}

/// `macros.ds_format('2024-01-05', '%Y-%m-%d', '%m-%d-%y')` → `'01-05-24'`.
fn ds_format(ds: String, input_format: String, output_format: String) -> Result<String, Error> {
    let d = parse_ds(&ds, &input_format)?;
    let mut out = String::new();
    use std::fmt::Write;
    write!(out, "{}", d.format(&output_format)).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("`{output_format}` is not a valid date format"),
        )
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> TemplateContext {
        let mut c = TemplateContext::sample(
            "p",
            "t",
            serde_json::json!({"region": "eu", "ids": [1, 2]}),
            None,
        );
        c.run_id = "scheduled__2024-01-01T00:00:00+00:00".into();
        c
    }

    #[test]
    fn renders_airflow_variables() {
        let cases = [
            ("{{ ds }}", "2024-01-01"),
            ("{{ ds_nodash }}", "20240101"),
            ("{{ ts }}", "2024-01-01T00:00:00+00:00"),
            ("{{ ts_nodash }}", "20240101T000000"),
            ("{{ logical_date }}", "2024-01-01T00:00:00+00:00"),
            ("{{ data_interval_end }}", "2024-01-02T00:00:00+00:00"),
            ("{{ prev_ds }}/{{ next_ds }}", "2023-12-31/2024-01-02"),
            ("{{ macros.ds_add(ds, 5) }}", "2024-01-06"),
            ("{{ macros.ds_add(ds, -1) }}", "2023-12-31"),
            (
                "{{ macros.ds_format(ds, '%Y-%m-%d', '%m-%d-%y') }}",
                "01-01-24",
            ),
            ("{{ params.region }}", "eu"),
            ("{{ pipeline }}.{{ task }}#{{ try_number }}", "p.t#1"),
            ("{{ ds | sql }}", "'2024-01-01'"),
            ("{{ \"O'Brien\" | sql }}", "'O''Brien'"),
            ("{{ params.ids | sql }}", "(1, 2)"),
            (
                "{{ 3 | sql }} {{ true | sql }} {{ none | sql }}",
                "3 TRUE NULL",
            ),
            ("{{ 'staging.orders' | ident }}", "\"staging\".\"orders\""),
            ("{{ 'a\"b' | ident }}", "\"a\"\"b\""),
            ("no template", "no template"),
        ];
        let c = ctx();
        for (src, want) in cases {
            assert_eq!(render(src, &c).unwrap(), want, "template: {src}");
        }
    }

    #[test]
    fn sql_filter_cannot_be_escaped() {
        let mut c = ctx();
        c.params = serde_json::json!({"evil": "x'; drop table orders; --"});
        let out = render("select * from t where a = {{ params.evil | sql }}", &c).unwrap();
        assert_eq!(
            out,
            "select * from t where a = 'x''; drop table orders; --'"
        );
    }

    #[test]
    fn filters_write_the_target_dialect() {
        let mut c = ctx();
        c.params = serde_json::json!({"v": "a\\'b", "n": -2, "t": "s.a`b\"c"});
        let cases = [
            (Dialect::DuckDb, "'a\\''b' (-2) \"s\".\"a`b\"\"c\""),
            (Dialect::Postgres, "E'a\\\\''b' (-2) \"s\".\"a`b\"\"c\""),
            (Dialect::MySql, "_utf8mb4 X'615C2762' (-2) `s`.`a``b\"c`"),
        ];
        for (dialect, want) in cases {
            let c = c.clone().in_dialect(dialect);
            let got = render(
                "{{ params.v | sql }} {{ params.n | sql }} {{ params.t | ident }}",
                &c,
            )
            .unwrap();
            assert_eq!(got, want, "{dialect:?}");
        }
        let pg = c.clone().in_dialect(Dialect::Postgres);
        let e = render("{{ 'a\\x00b' | sql }}", &pg);
        assert!(
            e.is_err_and(|e| e.message.contains("NUL")),
            "NUL on PostgreSQL"
        );
        let e = render("{{ '' | ident }}", &c).unwrap_err();
        assert!(e.message.contains("cannot be empty"), "{e:?}");
        assert_eq!(
            render("{{ [] | sql }}", &c).unwrap_err().message,
            "template error: an empty list cannot be written as a SQL list (`IN ()` is invalid)"
        );
    }

    #[test]
    fn undefined_is_an_error() {
        let c = ctx();
        let e = render("{{ dss }}", &c).unwrap_err();
        assert!(e.message.contains("undefined"), "{e:?}");
        let e = check("select {{ dss }}", &c).unwrap_err();
        assert_eq!(e.message, "undefined template variable `dss`");
        assert_eq!(e.offset, Some(10));
        assert!(e.hint.unwrap().contains("did you mean `ds`"));
        let e = check("{{ params.nope }}", &c).unwrap_err();
        assert!(e.message.contains("undefined"), "{e:?}");
        let e = check("line1\n{{ ds }\n", &c).unwrap_err();
        assert!(e.message.contains("syntax"), "{e:?}");
        assert_eq!(e.line, Some(2));
        assert!(
            check("{{ item.name }}", &c).is_err(),
            "item only exists in for_each pipelines"
        );
    }

    #[test]
    fn native_rendering() {
        let mut c = ctx();
        c.item = Some(serde_json::json!({"name": "mysql_orders", "table": "orders"}));
        let v = render_native(
            &serde_json::json!({"config": "{{ item }}", "day": "{{ ds }}", "n": 3, "s": "x-{{ item.name }}"}),
            &c,
        )
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"config": {"name": "mysql_orders", "table": "orders"}, "day": "2024-01-01", "n": 3, "s": "x-mysql_orders"})
        );
    }
}
