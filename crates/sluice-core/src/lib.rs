//! Sluice's core: pipeline files and their validation into plans, schedules and data
//! intervals, templates, task and run states, and the boundary task kinds implement.
//!
//! This crate does no I/O beyond reading project files, and knows no database.

pub mod connections;
pub mod decode;
pub mod diag;
pub mod lineage;
pub mod pipeline;
pub mod project;
pub mod schedule;
pub mod state;
pub mod stream;
pub mod task;
pub mod template;
pub mod yaml;

pub use diag::Diagnostic;
pub use lineage::{Dataset, Lineage};
pub use pipeline::{Pipeline, Task};
pub use project::{
    AlertChannel, LineageSettings, LineageTarget, Metadata, Project, ProjectPaths, Settings, Statsd,
};
pub use schedule::{DataInterval, Schedule, Timetable};
pub use state::{RunState, TaskState, TriggerRule};
pub use task::{
    DeadLetter, KindRegistry, Ledger, SchemaChange, TaskAction, TaskError, TaskKind, TaskLog,
    TaskOutput, TaskRun,
};
