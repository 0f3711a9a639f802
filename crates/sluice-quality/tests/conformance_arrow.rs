//! GE's expectation test cases against the in-memory engine (the `pandas` backend's cases).

mod conformance_runner;
use conformance_runner as conformance;

#[test]
fn great_expectations_cases_pass_on_the_arrow_engine() {
    let (passed, failed, skipped) = conformance::run(&["pandas"], |case, validation| {
        let batch = conformance::batch(case);
        let observed = sluice_quality::scan::run(
            &validation.checks,
            &batch.schema(),
            std::iter::once(Ok::<_, ()>(batch.clone())),
            2,
        )
        .map_err(|()| "source failed".to_string())?;
        Ok(validation.judge(observed, "case"))
    });
    conformance::report("arrow engine", passed, &failed, &skipped);
    assert!(passed >= 403, "only {passed} cases passed");
    assert!(failed.is_empty(), "{} cases failed", failed.len());
}
