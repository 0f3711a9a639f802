//! SLAs, watched while the work runs: a pipeline's `sla` is a deadline after its interval ends
//! (a scheduled run must have finished by then; a manual or backfill run of an old interval
//! would always be late), a task's `sla` a deadline after the run starts. A
//! deadline that passes with the work unfinished is a miss, reported once, naming the late
//! tasks and what they wait for.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sluice_core::{DataInterval, Pipeline, TaskState};

pub(crate) struct Deadlines {
    /// (task, or None for the whole run; the SLA; the deadline; missed already)
    items: Vec<(Option<usize>, Duration, DateTime<Utc>, bool)>,
}

/// One missed deadline.
pub(crate) struct Miss {
    pub task: Option<usize>,
    pub sla: Duration,
    pub deadline: DateTime<Utc>,
}

impl Deadlines {
    pub fn new(
        pipeline: &Pipeline,
        interval: &DataInterval,
        run_started: DateTime<Utc>,
        scheduled: bool,
    ) -> Deadlines {
        let at = |base: DateTime<Utc>, d: Duration| {
            base + chrono::Duration::from_std(d).unwrap_or_default()
        };
        let mut items = Vec::new();
        if let Some(sla) = pipeline.sla.filter(|_| scheduled) {
            items.push((None, sla, at(interval.end, sla), false));
        }
        for (i, t) in pipeline.tasks.iter().enumerate() {
            if let Some(sla) = t.sla {
                items.push((Some(i), sla, at(run_started, sla), false));
            }
        }
        Deadlines { items }
    }

    /// Whether deadline `k` can still be missed: not reported yet, its work unfinished.
    fn open(&self, k: usize, states: &[TaskState]) -> bool {
        let (task, _, _, missed) = self.items[k];
        !missed
            && match task {
                None => !states.iter().all(|s| s.is_finished()),
                Some(i) => !states[i].is_finished(),
            }
    }

    /// How long until the next deadline that can still be missed.
    pub fn next_wait(&self, states: &[TaskState]) -> Option<Duration> {
        (0..self.items.len())
            .filter(|&k| self.open(k, states))
            .map(|k| self.items[k].2)
            .min()
            .map(|d| (d - Utc::now()).to_std().unwrap_or_default())
    }

    /// The deadlines passed by now with their work unfinished, each reported once.
    pub fn missed(&mut self, states: &[TaskState]) -> Vec<Miss> {
        let now = Utc::now();
        let due: Vec<usize> = (0..self.items.len())
            .filter(|&k| self.open(k, states) && self.items[k].2 <= now)
            .collect();
        due.into_iter()
            .map(|k| {
                let item = &mut self.items[k];
                item.3 = true;
                Miss {
                    task: item.0,
                    sla: item.1,
                    deadline: item.2,
                }
            })
            .collect()
    }
}

/// "late: load (running), blocked by extract (failed)" for the tasks a miss is about.
pub(crate) fn describe(
    pipeline: &Pipeline,
    miss: &Miss,
    states: &[TaskState],
) -> (Vec<usize>, String) {
    let late: Vec<usize> = match miss.task {
        Some(i) => vec![i],
        None => (0..states.len())
            .filter(|&i| !states[i].is_finished())
            .collect(),
    };
    let mut parts = Vec::new();
    for &i in &late {
        let t = &pipeline.tasks[i];
        let blockers: Vec<String> = t
            .upstream
            .iter()
            .filter(|&&u| states[u] != TaskState::Success)
            .map(|&u| format!("{} ({})", pipeline.tasks[u].id, states[u]))
            .collect();
        parts.push(if blockers.is_empty() {
            format!("{} ({})", t.id, states[i])
        } else {
            format!(
                "{} ({}), blocked by {}",
                t.id,
                states[i],
                blockers.join(", ")
            )
        });
    }
    let what = match miss.task {
        Some(i) => format!(
            "task {} missed its SLA of {} after the run's start",
            pipeline.tasks[i].id,
            humantime(miss.sla)
        ),
        None => format!(
            "the run missed its SLA of {} after the interval's end",
            humantime(miss.sla)
        ),
    };
    let late_by = humantime((Utc::now() - miss.deadline).to_std().unwrap_or_default());
    (
        late,
        format!(
            "{what} (deadline {}, late by {late_by}); late: {}",
            sluice_core::template::iso(miss.deadline),
            parts.join("; ")
        ),
    )
}

fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s / 60 % 60),
    }
}
