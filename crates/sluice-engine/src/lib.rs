//! Executes pipeline runs: the event-driven executor over the metadata store, running tries
//! itself or handing them to `sluice worker`s, and the worker that runs them.

pub mod alerts;
pub mod executor;
pub mod lineage;
pub mod metrics;
pub mod pools;
mod sla;
pub mod worker;

pub use executor::{Dispatch, EngineError, Executor, Progress, RunOutcome, RunRequest};
pub use pools::Pools;
pub use worker::Worker;
