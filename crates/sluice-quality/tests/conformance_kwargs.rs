//! Every argument list Great Expectations' own test cases pass to an expectation Sluice knows
//! must be accepted by the suite reader (unless the case expects GE itself to raise).
//! The cases are GE's `tests/test_definitions` (see great_expectations/README.md).

use serde_json::json;
use sluice_core::diag::Diagnostics;
use sluice_quality::catalog;
use sluice_testkit::conformance;

#[test]
fn the_suite_reader_accepts_the_arguments_of_every_upstream_case() {
    let cases = conformance::cases();
    assert!(
        cases.len() >= 600,
        "the vendored cases are missing: {} found",
        cases.len()
    );
    let (mut accepted, mut out_of_scope) = (0, 0);
    let mut rejected = Vec::new();
    for case in &cases {
        let (title, kind, kwargs, test) = (&case.title, &case.kind, &case.test["in"], &case.test);
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
