//! Why an expectation (or a whole validation) could not be answered, and whose doing it is:
//! the suite's, the data's, the database's or Sluice's own. The text is what users read — an
//! expectation's `exception_info`, a `sluice check` diagnostic, a failed task's error — and is
//! Great Expectations' wording where GE has one.

/// An error of data-quality validation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QualityError {
    /// The suite asks for something that cannot be done: arguments GE would refuse, a row
    /// condition or a suite parameter that cannot be read or has no value. Fixed by editing the
    /// suite (or giving the parameter a value).
    #[error("{message}")]
    Suite { place: SuitePlace, message: String },
    /// The data cannot answer the expectation as written: a column it does not have, values
    /// of a type the test does not take or that do not compare with the suite's bounds.
    #[error("{0}")]
    Data(String),
    /// The database behind a [`crate::pushdown::Database`] refused or failed a query.
    #[error("{0}")]
    Database(String),
    /// A state Sluice's own code should never reach: a bug to report.
    #[error("internal: {0}")]
    Internal(String),
}

/// Where in a suite a mistake is, as far as the code that found it knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuitePlace {
    /// The expectation's index in the suite's `expectations`.
    pub expectation: Option<usize>,
    /// The argument (a `kwargs` key, `row_condition` included) to blame.
    pub argument: Option<String>,
}

impl QualityError {
    /// The suite's mistake in `argument`.
    pub fn argument(argument: &str, message: impl Into<String>) -> QualityError {
        QualityError::Suite {
            place: SuitePlace {
                expectation: None,
                argument: Some(argument.to_string()),
            },
            message: message.into(),
        }
    }

    /// The suite's mistake, in no one argument (several, or the expectation's type).
    pub fn suite(message: impl Into<String>) -> QualityError {
        QualityError::Suite {
            place: SuitePlace::default(),
            message: message.into(),
        }
    }

    pub fn data(message: impl Into<String>) -> QualityError {
        QualityError::Data(message.into())
    }

    /// A database's failure, in its own words.
    pub fn database(error: impl std::fmt::Display) -> QualityError {
        QualityError::Database(error.to_string())
    }

    /// The same mistake, placed at expectation `index` of the suite (other kinds unchanged).
    pub fn at_expectation(self, index: usize) -> QualityError {
        match self {
            QualityError::Suite { mut place, message } => {
                place.expectation = Some(index);
                QualityError::Suite { place, message }
            }
            other => other,
        }
    }

    /// Where in the suite the mistake is; `None` when it is not the suite's.
    pub fn place(&self) -> Option<&SuitePlace> {
        match self {
            QualityError::Suite { place, .. } => Some(place),
            _ => None,
        }
    }
}
