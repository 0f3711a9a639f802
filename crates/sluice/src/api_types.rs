//! The bodies of the REST API's requests and answers, defined once: the server's handlers
//! (`serve/api.rs`) answer with these types and the client (`client.rs`) reads them, so the two
//! cannot drift apart.
//!
//! Fields are in alphabetical order because that is the order the API has always answered in
//! (its bodies used to be `serde_json` maps, which sort their keys): a client that compares text
//! sees no change. A run is the exception: its fields are `sluice runs --json`'s.
//!
//! The answers that carry the store's or the project's own records (tries, a run's schema
//! changes, file problems) are `Serialize` only: those records are written, never read back,
//! and no client of ours reads these answers.

use serde::{Deserialize, Serialize};
use sluice_core::Diagnostic;
use sluice_store::TryRecord;

use crate::output::RunView;

/// Every error the API answers: `{"error": "…"}`, with the status that says whose it is.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// `POST /api/pipelines/{pipeline}/runs`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    /// The logical date, YYYY-MM-DD.
    pub date: String,
}

/// `POST /api/pipelines/{pipeline}/backfills`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    /// First and last logical date, YYYY-MM-DD, inclusive.
    pub from: String,
    pub to: String,
}

/// `POST /api/runs/{run}/clear`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClearRequest {
    #[serde(default)]
    pub downstream: bool,
    /// Tasks to clear; none means every task.
    #[serde(default)]
    pub tasks: Vec<String>,
}

/// A pipeline as loaded by the server.
#[derive(Debug, Serialize, Deserialize)]
pub struct PipelineInfo {
    pub catchup: bool,
    pub description: Option<String>,
    pub file: String,
    pub id: String,
    pub max_active_runs: u32,
    /// The logical date of the next scheduled run.
    pub next_logical_date: Option<String>,
    pub paused: bool,
    pub schedule: String,
    pub tasks: Vec<PipelineTask>,
    pub timezone: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PipelineTask {
    pub id: String,
    pub kind: String,
    pub upstream: Vec<String>,
}

/// `GET /api/pipelines`: the pipelines, and the problems of files that do not load.
#[derive(Serialize)]
pub struct PipelineList {
    pub pipelines: Vec<PipelineInfo>,
    pub problems: Vec<Diagnostic>,
}

/// A run with its tasks: `sluice runs --json`'s view and the run's store id.
#[derive(Serialize)]
pub struct Run {
    #[serde(flatten)]
    pub view: RunView,
    pub id: i64,
}

#[derive(Serialize)]
pub struct RunList {
    pub runs: Vec<Run>,
}

/// A backfill and its progress, read from its runs.
#[derive(Debug, Serialize, Deserialize)]
pub struct BackfillProgress {
    pub created_at: String,
    /// Intervals whose run succeeded.
    pub done: usize,
    pub failed: usize,
    /// Every interval's run has succeeded or failed.
    pub finished: bool,
    pub from: String,
    pub id: i64,
    pub intervals: usize,
    pub pending: usize,
    pub pipeline: String,
    pub running: usize,
    pub to: String,
}

impl BackfillProgress {
    /// The line `sluice backfill --via-server` prints as the backfill goes on.
    pub fn summary(&self) -> String {
        format!(
            "{} intervals: {} done, {} failed, {} running, {} pending",
            self.intervals, self.done, self.failed, self.running, self.pending
        )
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BackfillList {
    pub backfills: Vec<BackfillProgress>,
}

/// `POST /api/pipelines/{pipeline}/pause` and `…/unpause`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Paused {
    pub id: String,
    pub paused: bool,
}

/// `POST /api/runs/{run}/clear`: the tasks made runnable again.
#[derive(Debug, Serialize, Deserialize)]
pub struct Cleared {
    pub cleared: Vec<String>,
    pub run: i64,
}

/// `POST /api/failed-tasks/{id}/replay`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Replayed {
    pub cleared: Vec<String>,
    pub failed_task: i64,
    pub run: i64,
}

/// `GET /api/runs/{run}/tasks/{task}/tries`, oldest first.
#[derive(Serialize)]
pub struct TryList {
    pub tries: Vec<TryRecord>,
}

/// A page of the audit log, newest first.
#[derive(Serialize)]
pub struct AuditList {
    pub entries: Vec<sluice_store::AuditEntry>,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before: Option<i64>,
}
