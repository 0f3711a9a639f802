//! Expectation suites as Great Expectations writes them — both dialects (0.x:
//! `expectation_suite_name` / `expectation_type`; 1.x: `name` / `type`) — in JSON or YAML.
//!
//! Files are read through Sluice's YAML reader (JSON is YAML), so every problem is reported at
//! its file:line:col with the expectation's index and a hint; nothing unknown is ignored.

use std::sync::Arc;

use serde_json::{Map, Value as Json};
use sluice_core::Diagnostic;
use sluice_core::diag::{Diagnostics, did_you_mean};
use sluice_core::yaml::{self, Node, Span, Value};

use crate::QualityError;
use crate::catalog::{self, Class, Expectation, STANDARD};
use crate::parameters;

#[derive(Debug)]
pub struct Suite {
    pub name: String,
    pub expectations: Vec<ExpectationConfig>,
    /// The suite's own `suite_parameters` (GE 0.x: `evaluation_parameters`): values for
    /// `$PARAMETER` arguments that the run does not give.
    pub parameters: Map<String, Json>,
}

impl Suite {
    /// The `$PARAMETER` names that neither `given` nor the suite's own `suite_parameters` have a
    /// value for, as (expectation, argument, name).
    pub fn missing_parameters(
        &self,
        given: &Map<String, Json>,
    ) -> Vec<(&ExpectationConfig, &str, String)> {
        let mut missing = Vec::new();
        for e in &self.expectations {
            for (key, v) in &e.kwargs {
                for name in parameters::required_names(v) {
                    if !given.contains_key(&name) && !self.parameters.contains_key(&name) {
                        missing.push((e, key.as_str(), name));
                    }
                }
            }
        }
        missing
    }

    /// [`Suite::missing_parameters`] as problems at each expectation; `how` says, for a name,
    /// where its value can be given.
    pub fn parameter_problems(
        &self,
        given: &Map<String, Json>,
        how: impl Fn(&str) -> String,
    ) -> Vec<Diagnostic> {
        self.missing_parameters(given)
            .into_iter()
            .map(|(e, key, name)| {
                Diagnostic::new(
                    &e.span,
                    format!(
                        "expectations[{}]: `{key}` uses the suite parameter `{name}`, which has no value",
                        e.index
                    ),
                )
                .hint(how(&name))
            })
            .collect()
    }
}

/// One expectation of a suite, checked against the catalog.
#[derive(Debug)]
pub struct ExpectationConfig {
    pub expectation: &'static Expectation,
    pub kwargs: Map<String, Json>,
    pub meta: Json,
    /// Position in the suite, from 0 (as GE's results list them).
    pub index: usize,
    pub span: Span,
}

const SUITE_KEYS: &[&str] = &[
    "name",
    "expectation_suite_name",
    "expectations",
    "meta",
    "notes",
    "id",
    "ge_cloud_id",
    "data_asset_type",
    "suite_parameters",
    "evaluation_parameters",
];
const EXPECTATION_KEYS: &[&str] = &[
    "type",
    "expectation_type",
    "kwargs",
    "meta",
    "id",
    "ge_cloud_id",
    "notes",
    "description",
    "rendered_content",
];
const RESULT_FORMATS: &[&str] = &["BOOLEAN_ONLY", "BASIC", "SUMMARY", "COMPLETE"];

/// Reads a suite; `None` when it has problems (all of them are in `diags`).
pub fn parse(file: &str, text: &str, diags: &mut Diagnostics) -> Option<Suite> {
    let root = match yaml::parse(Arc::from(file), text) {
        Ok(node) => node,
        Err(e) => {
            diags.push(
                Diagnostic::new(&e.span, e.message)
                    .hint("a suite is a JSON or YAML file as Great Expectations writes it"),
            );
            return None;
        }
    };
    let Value::Map(entries) = &root.value else {
        diags.push(Diagnostic::new(&root.span, format!("a suite must be a mapping, found {}", root.kind_name())).hint(
            "e.g. {\"name\": \"orders\", \"expectations\": [{\"type\": \"expect_column_values_to_not_be_null\", \"kwargs\": {\"column\": \"id\"}}]}",
        ));
        return None;
    };
    let before = diags.len();
    let mut name = None;
    let mut list = None;
    let mut parameters = Map::new();
    for (k, v) in entries {
        let key = k.as_str().unwrap_or_default();
        match key {
            "name" | "expectation_suite_name" => name = v.as_str().map(String::from),
            "expectations" => list = Some(v),
            "suite_parameters" | "evaluation_parameters" => match v.to_json() {
                Json::Object(values) => parameters.extend(values),
                Json::Null => {}
                _ => diags.push(
                    Diagnostic::new(
                        &v.span,
                        format!("`{key}` must be a mapping, found {}", v.kind_name()),
                    )
                    .hint("e.g. suite_parameters: {min_rows: 1000}"),
                ),
            },
            _ if SUITE_KEYS.contains(&key) => {}
            _ => unknown_key(diags, k, key, "the suite", SUITE_KEYS),
        }
    }
    let Some(list) = list else {
        diags.push(
            Diagnostic::new(&root.span, "the suite has no `expectations`")
                .hint("add `expectations: [...]`"),
        );
        return None;
    };
    let Value::Seq(items) = &list.value else {
        diags.push(Diagnostic::new(
            &list.span,
            format!("`expectations` must be a list, found {}", list.kind_name()),
        ));
        return None;
    };
    let expectations: Vec<ExpectationConfig> = items
        .iter()
        .enumerate()
        .filter_map(|(index, item)| expectation(index, item, diags))
        .collect();
    (diags.len() == before).then(|| Suite {
        name: name.unwrap_or_else(|| {
            file.rsplit('/')
                .next()
                .unwrap_or(file)
                .split('.')
                .next()
                .unwrap_or(file)
                .to_string()
        }),
        expectations,
        parameters,
    })
}

fn unknown_key(diags: &mut Diagnostics, node: &Node, key: &str, what: &str, known: &[&str]) {
    let hint = did_you_mean(key, known.iter().copied())
        .unwrap_or_else(|| format!("allowed keys: {}", known.join(", ")));
    diags.push(Diagnostic::new(&node.span, format!("unknown key `{key}` in {what}")).hint(hint));
}

fn expectation(index: usize, node: &Node, diags: &mut Diagnostics) -> Option<ExpectationConfig> {
    let at = format!("expectations[{index}]");
    let Value::Map(entries) = &node.value else {
        diags.push(Diagnostic::new(
            &node.span,
            format!("{at} must be a mapping, found {}", node.kind_name()),
        ));
        return None;
    };
    let mut kind = None;
    let mut kwargs = None;
    let mut meta = Json::Null;
    for (k, v) in entries {
        let key = k.as_str().unwrap_or_default();
        match key {
            "type" | "expectation_type" => kind = Some(v),
            "kwargs" => kwargs = Some(v),
            "meta" => meta = v.to_json(),
            _ if EXPECTATION_KEYS.contains(&key) => {}
            _ => unknown_key(diags, k, key, &at, EXPECTATION_KEYS),
        }
    }
    let Some(kind) = kind else {
        diags.push(
            Diagnostic::new(
                &node.span,
                format!("{at} has no `type` (or `expectation_type`)"),
            )
            .hint("e.g. `type: expect_column_values_to_not_be_null`"),
        );
        return None;
    };
    let name = kind.as_str().unwrap_or_default();
    let Some(expectation) = catalog::find(name) else {
        let hint = did_you_mean(
            &catalog::snake_case(name),
            catalog::EXPECTATIONS.iter().map(|e| e.name),
        )
        .unwrap_or_else(|| "see docs/data-quality.md for the expectations Sluice evaluates".into());
        diags.push(
            Diagnostic::new(
                &kind.content_span(),
                format!("{at}: unknown expectation type `{name}`"),
            )
            .hint(hint),
        );
        return None;
    };
    let empty = Node {
        span: node.span.clone(),
        value: Value::Map(Vec::new()),
    };
    let kwargs_node = kwargs.unwrap_or(&empty);
    let Value::Map(args) = &kwargs_node.value else {
        diags.push(Diagnostic::new(
            &kwargs_node.span,
            format!(
                "{at}: `kwargs` must be a mapping, found {}",
                kwargs_node.kind_name()
            ),
        ));
        return None;
    };
    let before = diags.len();
    let mut kwargs = Map::new();
    for (k, v) in args {
        let key = k.as_str().unwrap_or_default();
        if !expectation.required.contains(&key)
            && !expectation.optional.contains(&key)
            && !STANDARD.contains(&key)
        {
            let known: Vec<&str> = expectation
                .required
                .iter()
                .chain(expectation.optional)
                .chain(STANDARD)
                .copied()
                .collect();
            // `min` → `min_value`: an abbreviation is a likely slip too.
            let hint = did_you_mean(key, known.iter().copied())
                .or_else(|| {
                    known
                        .iter()
                        .find(|k| k.starts_with(key))
                        .map(|k| format!("did you mean `{k}`?"))
                })
                .unwrap_or_else(|| format!("{} takes {}", expectation.name, known.join(", ")));
            diags.push(
                Diagnostic::new(
                    &k.span,
                    format!("{at}: {} has no argument `{key}`", expectation.name),
                )
                .hint(hint),
            );
            continue;
        }
        if let Err(problem) = check_argument(key, v, expectation) {
            diags.push(Diagnostic::new(&v.span, format!("{at}: {problem}")));
            continue;
        }
        kwargs.insert(key.to_string(), v.to_json());
    }
    for required in expectation.required {
        if !kwargs.contains_key(*required) && diags.len() == before {
            diags.push(
                Diagnostic::new(
                    &kwargs_node.span,
                    format!("{at}: {} needs `{required}`", expectation.name),
                )
                .hint(format!("add `{required}` to its kwargs")),
            );
        }
    }
    (diags.len() == before).then(|| ExpectationConfig {
        expectation,
        kwargs,
        meta,
        index,
        span: node.span.clone(),
    })
}

/// The shape an argument's value must have.
#[derive(Clone, Copy)]
enum Shape {
    Text,
    Share,
    Flag,
    List,
    ResultFormat,
    Count,
    Any,
}

fn shape(key: &str, expectation: &Expectation) -> Shape {
    match key {
        "column" | "column_A" | "column_B" | "regex" | "strftime_format" | "type_"
        | "row_condition" | "condition_parser" => Shape::Text,
        "mostly" => Shape::Share,
        "strict_min"
        | "strict_max"
        | "exact_match"
        | "ties_okay"
        | "strictly"
        | "or_equal"
        | "double_sided"
        | "catch_exceptions"
        | "allow_relative_error" => Shape::Flag,
        "value_set" | "column_list" | "column_set" | "regex_list" | "type_list"
        | "value_pairs_set" => Shape::List,
        "result_format" => Shape::ResultFormat,
        "value" | "min_value" | "max_value" if expectation.class == Class::Table => Shape::Count,
        _ => Shape::Any,
    }
}

/// Checks the shape of one argument; the values themselves are judged against the data. A
/// null stands for "not given", as in Great Expectations.
fn check_argument(key: &str, v: &Node, expectation: &Expectation) -> Result<(), QualityError> {
    if v.is_null() {
        return Ok(());
    }
    if let Value::Map(entries) = &v.value
        && entries
            .iter()
            .any(|(k, _)| k.as_str() == Some(parameters::KEY))
    {
        return check_parameter(key, entries);
    }
    let ok = match (shape(key, expectation), &v.value) {
        (Shape::Text, Value::Str { .. })
        | (Shape::Flag, Value::Bool(_))
        | (Shape::List, Value::Seq(_))
        | (Shape::Any, _) => true,
        (Shape::Share, Value::Int(i)) => (0..=1).contains(i),
        (Shape::Share, Value::Float(f)) => (0.0..=1.0).contains(f),
        (Shape::Count, Value::Int(i)) => *i >= 0,
        (Shape::ResultFormat, Value::Str { text, .. }) => RESULT_FORMATS.contains(&text.as_str()),
        (Shape::ResultFormat, Value::Map(_)) => true,
        _ => false,
    };
    if ok {
        return Ok(());
    }
    let wanted = match shape(key, expectation) {
        Shape::Text => format!("must be a string, found {}", v.kind_name()),
        Shape::Share => {
            "must be a number between 0 and 1 (the share of values that must pass)".into()
        }
        Shape::Flag => format!("must be true or false, found {}", v.kind_name()),
        Shape::List => format!("must be a list, found {}", v.kind_name()),
        Shape::Count => format!("must be a whole number ≥ 0, found {}", v.kind_name()),
        Shape::ResultFormat => format!(
            "must be one of {} (or a mapping with `result_format`)",
            RESULT_FORMATS.join(", ")
        ),
        Shape::Any => unreachable!("any value is accepted"),
    };
    Err(QualityError::argument(key, format!("`{key}` {wanted}")))
}

/// A `{"$PARAMETER": "…"}` argument (`argument`): its value comes at run time, but its text
/// must read.
fn check_parameter(argument: &str, entries: &[(Node, Node)]) -> Result<(), QualityError> {
    let refused =
        |problem: String| QualityError::argument(argument, format!("`{argument}` {problem}"));
    for (k, v) in entries {
        let key = k.as_str().unwrap_or_default();
        if key == parameters::KEY {
            let Some(text) = v.as_str() else {
                return Err(refused(format!(
                    "is a suite parameter whose `{key}` must be a name or an expression, found {}",
                    v.kind_name()
                )));
            };
            parameters::names(text).map_err(|e| {
                refused(format!("is a suite parameter that cannot be read: `{text}`: {e} (expressions use numbers, names, + - * / ^, now(), datetime(…), timedelta(…))"))
            })?;
        } else if !key.starts_with(&format!("{}.", parameters::KEY)) {
            return Err(refused(format!(
                "is a suite parameter with an unknown key `{key}` (it takes `$PARAMETER` and `$PARAMETER.<name>`)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        let mut diags = Diagnostics::default();
        let suite = parse("suites/orders.json", text, &mut diags);
        assert_eq!(suite.is_some(), diags.is_empty());
        diags.0.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn both_dialects_and_yaml_read_the_same() {
        let v0 = r#"{"expectation_suite_name": "orders", "expectations": [
            {"expectation_type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"}, "meta": {}},
            {"expectation_type": "expect_column_values_to_be_between", "kwargs": {"column": "total", "min_value": 0, "mostly": 0.99}}]}"#;
        let v1 = r#"{"name": "orders", "id": "x", "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"}},
            {"type": "expect_column_values_to_be_between", "kwargs": {"column": "total", "min_value": 0, "mostly": 0.99}}]}"#;
        let yaml = "name: orders\nexpectations:\n  - type: expect_column_values_to_not_be_null\n    kwargs: {column: order_id}\n  - type: ExpectColumnValuesToBeBetween\n    kwargs: {column: total, min_value: 0, mostly: 0.99}\n";
        for text in [v0, v1, yaml] {
            let mut diags = Diagnostics::default();
            let suite =
                parse("s.json", text, &mut diags).unwrap_or_else(|| panic!("{:?}", diags.0));
            assert_eq!(suite.name, "orders");
            let names: Vec<&str> = suite
                .expectations
                .iter()
                .map(|e| e.expectation.name)
                .collect();
            assert_eq!(
                names,
                [
                    "expect_column_values_to_not_be_null",
                    "expect_column_values_to_be_between"
                ]
            );
            assert_eq!(
                suite.expectations[1].kwargs["mostly"],
                serde_json::json!(0.99)
            );
            assert_eq!(suite.expectations[1].index, 1);
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_place_and_a_hint() {
        let text = r#"{"name": "orders", "expectations": [
  {"type": "expect_column_values_to_not_be_nul", "kwargs": {"column": "id"}},
  {"type": "expect_column_values_to_be_between", "kwargs": {"column": "total", "min": 0}},
  {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "status", "value_set": "paid", "mostly": 2}},
  {"type": "expect_column_values_to_match_regex", "kwargs": {}},
  {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": "many"}}
]}"#;
        let got = problems(text);
        let want = [
            "suites/orders.json:2:13: error: expectations[0]: unknown expectation type `expect_column_values_to_not_be_nul`\n  hint: did you mean `expect_column_values_to_not_be_null`?",
            "suites/orders.json:3:80: error: expectations[1]: expect_column_values_to_be_between has no argument `min`\n  hint: did you mean `min_value`?",
            "suites/orders.json:4:93: error: expectations[2]: `value_set` must be a list, found a string",
            "suites/orders.json:4:111: error: expectations[2]: `mostly` must be a number between 0 and 1 (the share of values that must pass)",
            "suites/orders.json:5:61: error: expectations[3]: expect_column_values_to_match_regex needs `column`\n  hint: add `column` to its kwargs",
            "suites/orders.json:6:76: error: expectations[4]: `min_value` must be a whole number ≥ 0, found a string",
        ];
        assert_eq!(got.len(), want.len(), "{got:#?}");
        assert_eq!(got, want);
    }

    #[test]
    fn suite_parameters_are_read_and_their_text_checked() {
        let text = r#"{"name": "orders", "suite_parameters": {"floor": 0}, "expectations": [
  {"type": "expect_column_values_to_be_between", "kwargs": {"column": "total", "min_value": {"$PARAMETER": "floor"}, "max_value": {"$PARAMETER": "cap * 2"}}},
  {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "status", "value_set": {"$PARAMETER": "statuses", "$PARAMETER.statuses": ["paid"]}}}
]}"#;
        let mut diags = Diagnostics::default();
        let suite = parse("s.json", text, &mut diags).unwrap();
        let missing: Vec<(usize, &str, String)> = suite
            .missing_parameters(&Map::new())
            .into_iter()
            .map(|(e, key, name)| (e.index, key, name))
            .collect();
        assert_eq!(missing, [(0, "max_value", "cap".to_string())]);
        let given = serde_json::json!({"cap": 50});
        assert!(
            suite
                .missing_parameters(given.as_object().unwrap())
                .is_empty()
        );

        let bad = r#"{"name": "x", "expectations": [
  {"type": "expect_column_max_to_be_between", "kwargs": {"column": "ts", "min_value": {"$PARAMETER": "now() - timedelta(days=)"}}}]}"#;
        assert_eq!(
            problems(bad),
            [
                "suites/orders.json:2:87: error: expectations[0]: `min_value` is a suite parameter that cannot be read: `now() - timedelta(days=)`: expected a number, a name, a function or `(` at column 24 (expressions use numbers, names, + - * / ^, now(), datetime(…), timedelta(…))"
            ]
        );
    }

    #[test]
    fn syntax_errors_and_missing_lists_are_reported() {
        let syntax = problems("{\"name\": ");
        assert!(syntax[0].starts_with("suites/orders.json:"), "{syntax:?}");
        assert!(
            syntax[0].contains("hint: a suite is a JSON or YAML file"),
            "{syntax:?}"
        );
        assert_eq!(
            problems("{\"name\": \"x\"}"),
            [
                "suites/orders.json:1:1: error: the suite has no `expectations`\n  hint: add `expectations: [...]`"
            ]
        );
    }
}
