//! Every argument list Great Expectations' own test cases pass to an expectation Sluice knows
//! must be accepted by the suite reader (unless the case expects GE itself to raise).
//! The cases are GE's `tests/test_definitions` (see great_expectations/README.md).

use std::path::Path;

use serde_json::{Value, json};
use sluice_core::diag::Diagnostics;
use sluice_quality::catalog;

fn cases() -> Vec<(String, String, Value, Value)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/great_expectations");
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
                for dataset in doc["datasets"].as_array().into_iter().flatten() {
                    for test in dataset["tests"].as_array().into_iter().flatten() {
                        let file = path.strip_prefix(&root).unwrap().display().to_string();
                        let title = format!("{file}: {}", test["title"].as_str().unwrap_or("?"));
                        out.push((title, kind.clone(), test["in"].clone(), test.clone()));
                    }
                }
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Python's `json` writes NaN and ±Infinity bare; as strings they keep their meaning here.
fn python_json(text: &str) -> String {
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

#[test]
fn the_suite_reader_accepts_the_arguments_of_every_upstream_case() {
    let cases = cases();
    assert!(
        cases.len() >= 600,
        "the vendored cases are missing: {} found",
        cases.len()
    );
    let (mut accepted, mut out_of_scope) = (0, 0);
    let mut rejected = Vec::new();
    for (title, kind, kwargs, test) in &cases {
        if catalog::find(kind).is_none() || !kwargs.is_object() {
            out_of_scope += 1;
            continue;
        }
        let suite = json!({"name": "case", "expectations": [{"type": kind, "kwargs": kwargs}]});
        let mut diags = Diagnostics::default();
        let parsed = sluice_quality::suite::parse("case.json", &suite.to_string(), &mut diags);
        // Cases where GE itself raises (`out.traceback_substring`, or the documentation-only
        // `error`) may be refused already by the reader.
        let raises =
            test["out"].get("traceback_substring").is_some() || test.get("error").is_some();
        match (parsed.is_some(), raises) {
            (true, _) | (false, true) => accepted += 1,
            (false, false) => rejected.push(format!(
                "{title}\n  {}",
                diags
                    .0
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("\n  ")
            )),
        }
    }
    println!(
        "{accepted} accepted, {} rejected, {out_of_scope} out of scope",
        rejected.len()
    );
    assert!(
        rejected.is_empty(),
        "{} upstream cases rejected:\n{}",
        rejected.len(),
        rejected.join("\n")
    );
}
