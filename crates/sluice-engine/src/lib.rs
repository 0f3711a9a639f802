//! Executes pipeline runs: the local, event-driven executor over the metadata store.

pub mod alerts;
pub mod executor;
pub mod metrics;
pub mod pools;
mod sla;

pub use executor::{EngineError, Executor, Progress, RunOutcome, RunRequest};
pub use pools::Pools;
