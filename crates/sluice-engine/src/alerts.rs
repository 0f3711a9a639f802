//! What the executor tells alert channels. It only describes the event; delivering it (HTTP,
//! a command) belongs to the binary, which must never make the executor wait.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertEvent {
    /// The task failed and will not be retried.
    Failure,
    /// A try failed; another follows.
    Retry,
    /// The task succeeded after failed tries.
    Recovery,
    /// A deadline (`sla:`) passed with the work unfinished.
    SlaMiss,
    /// A task's rows fell well below its recent runs' (`row_drop:`).
    RowDrop,
}

#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub event: AlertEvent,
    pub pipeline: String,
    pub task: String,
    pub run_id: String,
    pub logical_date: String,
    pub try_number: u32,
    /// Secrets already masked.
    pub error: Option<String>,
    /// The last lines of the try's log (masked as the log is).
    pub log_tail: Vec<String>,
    /// The command that runs the task again.
    pub rerun: String,
    /// Channel names, from the task's `alert:`.
    #[serde(skip)]
    pub channels: Vec<String>,
}

impl Alert {
    /// One line a person reads first.
    pub fn summary(&self) -> String {
        let what = match self.event {
            AlertEvent::Failure => "failed",
            AlertEvent::Retry => "failed and will be retried",
            AlertEvent::Recovery => "recovered",
            AlertEvent::SlaMiss => "is late",
            AlertEvent::RowDrop => "processed far fewer rows than usual",
        };
        format!(
            "{}.{} {what} for {} (try {}){}",
            self.pipeline,
            self.task,
            self.logical_date,
            self.try_number,
            self.error
                .as_deref()
                .map(|e| format!(": {}", e.lines().next().unwrap_or_default()))
                .unwrap_or_default()
        )
    }
}

/// Receives alerts; must return at once (deliver in the background).
pub trait Notifier: Send + Sync {
    fn send(&self, alert: Alert);
}
