//! Executes pipeline runs: the local, event-driven executor over the metadata store.

pub mod executor;

pub use executor::{EngineError, Executor, Progress, RunOutcome, RunRequest};
