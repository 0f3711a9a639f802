//! GE's expectation test cases against the in-memory engine (the `pandas` backend's cases).

use sluice_testkit::conformance;

#[test]
fn great_expectations_cases_pass_on_the_arrow_engine() {
    let (passed, failed, skipped) = conformance::run(&["pandas"], |case, validation| {
        let batch = conformance::batch(case);
        let Ok(observed) = sluice_quality::scan::run(
            &validation.checks,
            &batch.schema(),
            std::iter::once(Ok::<_, std::convert::Infallible>(batch.clone())),
            2,
        );
        Ok(validation.judge(observed, "case"))
    });
    conformance::report("arrow engine", passed, &failed, &skipped);
    assert!(passed >= 403, "only {passed} cases passed");
    assert!(failed.is_empty(), "{} cases failed", failed.len());
}
