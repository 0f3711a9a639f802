//! The executor end to end without the binary: pipelines of fake tasks (`support::Fake`, a
//! script per try) run against the real metadata store — SQLite in a temporary folder, and
//! PostgreSQL at 127.0.0.1:5432 in a database of its own — each case on both.

mod support;

mod retries;
mod sla;
mod slots;
mod stopping;
mod trigger_rules;
mod workers;
