//! Data quality with Great Expectations' semantics: suites (both file dialects) checked
//! against the catalog of expectations Sluice evaluates.
//!
//! The evaluation engines (Arrow batches in one pass; SQL pushdown into DuckDB and
//! PostgreSQL), results in GE's JSON shape and the conformance runner build on these types.

pub mod catalog;
pub mod suite;

pub use suite::{ExpectationConfig, Suite};
