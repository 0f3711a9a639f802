//! Sluice's core: pipeline files and their validation into plans, schedules and data
//! intervals, templates, task and run states, and the boundary task kinds implement.
//!
//! This crate knows no database and opens no connection. Its I/O: it reads the project's files,
//! reads the `SLUICE_*` environment once (`settings::Environment`), and appends to a try's log
//! file (`task::TaskLog`).

pub mod connections;
pub mod decode;
pub mod diag;
pub mod lineage;
pub mod pipeline;
pub mod project;
pub mod schedule;
pub mod secrets;
pub mod settings;
pub mod sql;
pub mod state;
pub mod stream;
pub mod task;
pub mod template;
pub mod yaml;

pub use diag::Diagnostic;
pub use lineage::{Dataset, Lineage};
pub use pipeline::{Pipeline, Task};
pub use project::Project;
pub use schedule::{DataInterval, Schedule, Timetable};
pub use secrets::Redactor;
pub use settings::{
    AlertChannel, Environment, LineageSettings, LineageTarget, Metadata, ProjectPaths,
    ServeSettings, Settings, Statsd,
};
pub use state::{RunState, TaskState, TriggerRule};
pub use task::{
    DeadLetter, KindRegistry, Ledger, SchemaChange, TaskAction, TaskError, TaskKind, TaskLog,
    TaskOutput, TaskRun,
};
