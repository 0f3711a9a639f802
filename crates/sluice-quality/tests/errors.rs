//! Every error says whose doing it is: the suite's (with the expectation and argument to fix),
//! the data's, or the database's — in the words users read today.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use arrow::array::Int64Array;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use sluice_core::diag::Diagnostics;
use sluice_quality::expect::Kind;
use sluice_quality::pushdown::{self, Database, Dialect};
use sluice_quality::{Level, QualityError, ResultFormat, SuitePlace, Validation, scan, suite};

fn validation(expectations: &str) -> Validation {
    let text = format!(r#"{{"name": "s", "expectations": [{expectations}]}}"#);
    let mut diags = Diagnostics::default();
    let suite = suite::parse("s.json", &text, &mut diags).unwrap_or_else(|| panic!("{diags:?}"));
    Validation::new(
        &suite,
        &ResultFormat::new(Level::Summary),
        &Default::default(),
    )
}

fn refusal(validation: &Validation, index: usize) -> &QualityError {
    match &validation.checks[index].kind {
        Kind::Invalid(e) => e,
        other => panic!("expectation {index} was accepted: {other:?}"),
    }
}

fn place(expectation: usize, argument: &str) -> SuitePlace {
    SuitePlace {
        expectation: Some(expectation),
        argument: Some(argument.into()),
    }
}

#[test]
fn suite_mistakes_name_the_expectation_and_argument_to_fix() {
    let v = validation(
        r#"{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
           {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "id", "regex": "("}},
           {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id", "row_condition": "id = 1"}},
           {"type": "expect_column_values_to_be_between", "kwargs": {"column": "id", "min_value": {"$PARAMETER": "lo"}}},
           {"type": "expect_column_values_to_be_between", "kwargs": {"column": "id", "min_value": 5, "max_value": 1}}"#,
    );
    assert!(matches!(v.checks[0].kind, Kind::Map { .. }));

    let regex = refusal(&v, 1);
    assert_eq!(regex.place(), Some(&place(1, "regex")));
    assert!(
        regex.to_string().starts_with("invalid regex `(`: "),
        "{regex}"
    );

    let condition = refusal(&v, 2);
    assert_eq!(condition.place(), Some(&place(2, "row_condition")));
    assert_eq!(
        condition.to_string(),
        "row_condition `id = 1`: `=` at offset 3 is not an operator (use ==, !=, <, <=, >, >=)"
    );

    let parameter = refusal(&v, 3);
    assert_eq!(parameter.place(), Some(&place(3, "min_value")));
    assert!(
        parameter.to_string().starts_with(
            "`min_value`: suite parameter `lo`: no value for `lo`; give it at run time"
        ),
        "{parameter}"
    );

    // A mistake across two arguments names the expectation only.
    let crossed = refusal(&v, 4);
    assert_eq!(
        crossed.place(),
        Some(&SuitePlace {
            expectation: Some(4),
            argument: None
        })
    );
    assert_eq!(
        crossed.to_string(),
        "ValueError: min_value cannot be greater than max_value"
    );
}

fn ids() -> (SchemaRef, RecordBatch) {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    let batch =
        RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))]).unwrap();
    (schema, batch)
}

#[test]
fn data_that_cannot_answer_is_the_datas_doing_and_becomes_the_exception() {
    let v = validation(
        r#"{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
           {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "total"}},
           {"type": "expect_column_values_to_match_strftime_format", "kwargs": {"column": "id", "strftime_format": "%Y"}}"#,
    );
    let (schema, batch) = ids();
    let Ok(observed) = scan::run(
        &v.checks,
        &schema,
        [Ok::<_, std::convert::Infallible>(batch)].into_iter(),
        1,
    );
    assert!(observed[0].is_ok(), "{:?}", observed[0]);
    let missing = "The column \"total\" does not exist in the data (its columns: id)";
    assert_eq!(
        observed[1].as_ref().err(),
        Some(&QualityError::Data(missing.into()))
    );
    let not_text =
        "Values passed to expect_column_values_to_match_strftime_format must be of type string.";
    assert_eq!(
        observed[2].as_ref().err(),
        Some(&QualityError::Data(not_text.into()))
    );
    let result = v.judge(observed, "ids");
    assert_eq!(
        result["results"][1]["exception_info"]["exception_message"],
        missing
    );
    assert_eq!(
        result["results"][1]["exception_info"]["exception_traceback"],
        format!("expect_column_values_to_not_be_null: {missing}")
    );
}

/// A database whose every query fails, as a dropped connection does.
struct Unreachable;

impl Database for Unreachable {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn query(&mut self, _sql: String) -> Result<(SchemaRef, Vec<RecordBatch>), QualityError> {
        Err(QualityError::database(
            "PostgreSQL: connection reset by peer",
        ))
    }
}

/// Runs a future that never waits (the fake database answers at once).
fn now<T>(future: impl Future<Output = T>) -> T {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("the future waited"),
    }
}

#[test]
fn a_failing_database_is_the_databases_doing() {
    let v = validation(
        r#"{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}}"#,
    );
    let error = now(pushdown::run(
        &v.checks,
        "\"public\".\"t\"",
        &mut Unreachable,
    ))
    .unwrap_err();
    assert_eq!(
        error,
        QualityError::Database("PostgreSQL: connection reset by peer".into())
    );
    assert_eq!(error.place(), None);
    assert_eq!(error.to_string(), "PostgreSQL: connection reset by peer");
}
