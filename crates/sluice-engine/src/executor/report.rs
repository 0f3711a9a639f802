//! What a run tells the outside while it works: alerts (failure, retry, recovery, row drop, SLA
//! miss) to the `Notifier`, OpenLineage events to the `LineageSink`.

use sluice_core::{TaskLog, TaskState};

use sluice_core::Pipeline;
use sluice_store::RunRecord;

use super::{EngineError, Executor};
use crate::alerts::{Alert, AlertEvent};
use crate::lineage::EventType;

/// One run as its reports see it.
pub(super) struct Report<'a> {
    pub exec: &'a Executor,
    pub pipeline: &'a Pipeline,
    pub run: &'a RunRecord,
}

impl Report<'_> {
    /// When `rows` is below `share` of the median of task `i`'s last successful runs, says so.
    pub(super) fn row_drop(
        &self,
        i: usize,
        rows: u64,
        share: f64,
    ) -> Result<Option<String>, EngineError> {
        let task = &self.pipeline.tasks[i].id;
        let mut recent = self
            .exec
            .store
            .recent_rows(&self.pipeline.id, task, self.run.id, 7)?;
        if recent.len() < 3 {
            return Ok(None);
        }
        recent.sort_unstable();
        let median = recent[recent.len() / 2] as f64;
        Ok(((rows as f64) < share * median).then(|| {
            format!(
                "{rows} rows, against a median of {median} over the last {} runs (row_drop: {share})",
                recent.len()
            )
        }))
    }

    /// Reports a missed deadline while the work still runs: metric, log line, alert.
    pub(super) fn sla_missed(&self, miss: &crate::sla::Miss, states: &[TaskState]) {
        let (pipeline, run) = (self.pipeline, self.run);
        let (late, message) = crate::sla::describe(pipeline, miss, states);
        let task = miss.task.map_or("run", |i| pipeline.tasks[i].id.as_str());
        crate::metrics::sla_missed(&pipeline.id, task);
        tracing::warn!(pipeline = %pipeline.id, run_id = %run.run_id, "{message}");
        let Some(notifier) = &self.exec.notifier else {
            return;
        };
        let mut channels: Vec<String> = late
            .iter()
            .flat_map(|&i| pipeline.tasks[i].alert.sla_miss.iter().cloned())
            .collect();
        channels.sort();
        channels.dedup();
        if channels.is_empty() {
            return;
        }
        notifier.send(Alert {
            event: AlertEvent::SlaMiss,
            pipeline: pipeline.id.clone(),
            task: late
                .iter()
                .map(|&i| pipeline.tasks[i].id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            run_id: run.run_id.clone(),
            logical_date: sluice_core::template::iso(run.logical_date),
            try_number: 0,
            error: Some(message),
            log_tail: Vec::new(),
            rerun: format!("sluice runs {}", pipeline.id),
            channels,
        });
    }

    /// Tells task `i`'s alert channels about a failure, a retry, a recovery or (an error with
    /// state success) a row drop.
    pub(super) fn alert(
        &self,
        i: usize,
        try_number: u32,
        state: TaskState,
        error: Option<&str>,
        log: Option<&TaskLog>,
        failed_id: Option<i64>,
    ) {
        let Some(notifier) = &self.exec.notifier else {
            return;
        };
        let (pipeline, run, task) = (self.pipeline, self.run, &self.pipeline.tasks[i]);
        let (event, channels) = match state {
            _ if error.is_some() && state == TaskState::Success => {
                (AlertEvent::RowDrop, &task.alert.row_drop)
            }
            TaskState::Failed => (AlertEvent::Failure, &task.alert.failure),
            TaskState::UpForRetry => (AlertEvent::Retry, &task.alert.retry),
            TaskState::Success if try_number > 1 => (AlertEvent::Recovery, &task.alert.recovery),
            _ => return,
        };
        if channels.is_empty() {
            return;
        }
        let date = run.logical_date.format("%Y-%m-%d");
        let rerun = match failed_id {
            Some(id) => format!("sluice dlq replay {id}"),
            None => format!("sluice run {} --date {date}", pipeline.id),
        };
        let log_tail = log
            .and_then(|l| std::fs::read_to_string(l.path()).ok())
            .map(|text| {
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(10)..]
                    .iter()
                    .map(|l| l.to_string())
                    .collect()
            })
            .unwrap_or_default();
        notifier.send(Alert {
            event,
            pipeline: pipeline.id.clone(),
            task: task.id.clone(),
            run_id: run.run_id.clone(),
            logical_date: sluice_core::template::iso(run.logical_date),
            try_number,
            error: error.map(String::from),
            log_tail,
            rerun,
            channels: channels.clone(),
        });
    }

    /// Tells the lineage sink about a try of task `i`, when the task reads or writes data.
    pub(super) fn emit_lineage(
        &self,
        i: usize,
        try_number: u32,
        event: EventType,
        error: Option<&str>,
    ) {
        let Some(sink) = &self.exec.lineage else {
            return;
        };
        let task = &self.pipeline.tasks[i];
        let ctx = self
            .exec
            .try_context(self.pipeline, self.run, &task.id, try_number);
        let lineage = task.action.lineage(Some(&ctx));
        if lineage.is_empty() {
            return;
        }
        let mut event = crate::lineage::run_event(
            event,
            sink.namespace(),
            self.pipeline,
            &task.id,
            self.run,
            try_number,
            &lineage,
            error,
        );
        // The SQL facet, dataset names, the error: every string of the event.
        self.exec.redactor.redact_json(&mut event);
        sink.emit(event);
    }
}
