//! How a try ended, as the store records it: one enum for the executor, the workers' answers
//! and the queries, written as the same words the metadata databases have always held.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::db::Value;
use crate::{Result, StoreError};

/// How a try ended (or that it has not yet). Stored as text in `task_tries.outcome` and in
/// `task_queue.outcome` (a worker's answer); the words are part of the schema, so existing
/// databases read back unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TryOutcome {
    /// Started and not ended yet (or its process died: resuming closes it as interrupted).
    Running,
    Success,
    /// The task reported an error (or panicked); retried per its policy when retryable.
    Failed,
    /// It outran its `timeout`; always retryable.
    TimedOut,
    /// Its process stopped before it ended (Ctrl-C, killed); does not use up a try.
    Interrupted,
    /// Its worker stopped renewing the lease (a queue answer only: the try is recorded as
    /// failed, and counts as a try).
    Lost,
}

impl TryOutcome {
    pub const ALL: [TryOutcome; 6] = [
        TryOutcome::Running,
        TryOutcome::Success,
        TryOutcome::Failed,
        TryOutcome::TimedOut,
        TryOutcome::Interrupted,
        TryOutcome::Lost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TryOutcome::Running => "running",
            TryOutcome::Success => "success",
            TryOutcome::Failed => "failed",
            TryOutcome::TimedOut => "timed_out",
            TryOutcome::Interrupted => "interrupted",
            TryOutcome::Lost => "lost",
        }
    }

    /// Reads a stored outcome; an unknown word means the database was written by something
    /// else than Sluice.
    pub fn parse(s: &str) -> Result<TryOutcome> {
        TryOutcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt(format!("try outcome `{s}`")))
    }
}

impl fmt::Display for TryOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<TryOutcome> for Value {
    fn from(o: TryOutcome) -> Self {
        Value::Text(o.as_str().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_stored_as_the_words_of_the_schema() {
        let words: Vec<&str> = TryOutcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(
            words,
            [
                "running",
                "success",
                "failed",
                "timed_out",
                "interrupted",
                "lost"
            ]
        );
        for o in TryOutcome::ALL {
            assert_eq!(TryOutcome::parse(o.as_str()).unwrap(), o);
            assert_eq!(
                serde_json::to_value(o).unwrap(),
                serde_json::Value::String(o.as_str().into())
            );
        }
        assert!(matches!(
            TryOutcome::parse("succeeded"),
            Err(StoreError::Corrupt(_))
        ));
    }
}
