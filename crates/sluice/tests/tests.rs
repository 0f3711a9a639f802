//! The binary's integration tests, as one test binary (ripgrep's layout): one module per topic,
//! so the binary's dependencies are linked into one executable instead of fourteen.
//! Register a new topic file here (`Cargo.toml` sets `autotests = false`).

mod common;

mod check;
mod concurrency;
mod exposure;
mod kafka_e2e;
mod lineage;
mod load;
mod observability;
mod quality;
mod run;
mod secrets;
mod serve;
mod sources;
mod stream;
mod stream_sinks;
mod ui;
mod warehouse;
mod workers;
