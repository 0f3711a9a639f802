//! Data quality with Great Expectations' semantics: suites (both file dialects) checked
//! against the catalog of expectations Sluice evaluates, measured by one of two engines — one
//! pass over Arrow batches ([`scan`]) or SQL run where a table lives ([`pushdown`]) — and
//! judged once ([`result`]) into GE's result shape.

pub mod catalog;
pub mod condition;
mod dates;
mod error;
pub mod expect;
pub mod parameters;
pub mod pushdown;
pub mod report;
pub mod result;
pub mod scan;
pub mod suite;
pub mod value;

use serde_json::Value as Json;

pub use error::{QualityError, SuitePlace};
pub use expect::{Check, Level, ResultFormat};
pub use parameters::Parameters;
pub use suite::{ExpectationConfig, Suite};

/// A suite made ready to evaluate, with the result format every expectation reports at
/// unless its own `result_format` says otherwise and the values of its suite parameters.
#[derive(Debug)]
pub struct Validation {
    pub suite: String,
    pub checks: Vec<Check>,
}

impl Validation {
    pub fn new(suite: &Suite, format: &ResultFormat, parameters: &Parameters) -> Validation {
        let parameters = parameters.or(&suite.parameters);
        Validation {
            suite: suite.name.clone(),
            checks: suite
                .expectations
                .iter()
                .map(|e| Check::new(e, format, &parameters))
                .collect(),
        }
    }

    /// Judges what an engine observed into the whole validation result.
    pub fn judge(
        &self,
        observed: Vec<Result<result::Observation, QualityError>>,
        data: &str,
    ) -> Json {
        let results = self
            .checks
            .iter()
            .zip(observed)
            .map(|(check, o)| result::judge(check, o))
            .collect();
        result::validation(&self.suite, results, data)
    }
}
