//! What commands print: live progress, tables, and the JSON shape of runs.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use sluice_core::TaskState;
use sluice_engine::Progress;
use sluice_store::{RunRecord, Store};

/// Progress on a terminal: one bar over all tasks of all runs, naming the running ones.
/// Elsewhere (CI logs, pipes): one line per finished task on stderr.
pub struct LiveProgress {
    bar: Option<ProgressBar>,
    quiet: bool,
    running: Mutex<BTreeMap<String, ()>>,
}

impl LiveProgress {
    pub fn new(total_tasks: u64, quiet: bool, json: bool) -> Self {
        let bar = (std::io::stderr().is_terminal() && !quiet && !json).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total_tasks), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner:.cyan} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} tasks  {wide_msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        LiveProgress {
            bar,
            quiet: quiet || json,
            running: Mutex::new(BTreeMap::new()),
        }
    }

    fn label(run: &RunRecord, task: &str) -> String {
        format!("{}@{}", task, run.logical_date.format("%Y-%m-%d %H:%M"))
    }

    fn refresh(&self) {
        if let Some(bar) = &self.bar {
            let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            let names: Vec<&str> = running.keys().map(String::as_str).take(4).collect();
            let more = running.len().saturating_sub(names.len());
            let mut msg = if names.is_empty() {
                String::new()
            } else {
                format!("running: {}", names.join(", "))
            };
            if more > 0 {
                msg.push_str(&format!(" +{more}"));
            }
            bar.set_message(msg);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for LiveProgress {
    fn run_started(&self, _run: &RunRecord, _tasks: usize, already_done: usize) {
        if let Some(bar) = &self.bar {
            bar.inc(already_done as u64);
        }
    }

    fn task_started(&self, run: &RunRecord, task: &str, _try_number: u32) {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(Self::label(run, task), ());
        self.refresh();
    }

    fn task_finished(&self, run: &RunRecord, task: &str, state: TaskState, error: Option<&str>) {
        let label = Self::label(run, task);
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&label);
        let line = match (state, error) {
            (TaskState::Success, _) => format!("✓ {label}"),
            (TaskState::UpForRetry, Some(e)) => {
                format!("↻ {label} will be retried: {}", first_line(e))
            }
            (_, Some(e)) => format!("✗ {label} {state}: {}", first_line(e)),
            (_, None) => format!("- {label} {state}"),
        };
        if state.is_finished()
            && let Some(bar) = &self.bar
        {
            bar.inc(1);
        }
        match &self.bar {
            Some(bar) if state != TaskState::Success => bar.println(line),
            Some(_) => {}
            None if !self.quiet => eprintln!("{line}"),
            None => {}
        }
        self.refresh();
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

/// A run with its tasks, as `--json` prints it.
#[derive(Serialize)]
pub struct RunView {
    pub pipeline: String,
    pub run_id: String,
    pub run_type: String,
    pub logical_date: String,
    pub data_interval_start: String,
    pub data_interval_end: String,
    pub state: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub duration_s: Option<f64>,
    pub tasks: Vec<TaskView>,
    /// Schema changes loads applied during the run.
    pub schema_changes: Vec<sluice_store::SchemaChangeRecord>,
}

#[derive(Serialize)]
pub struct TaskView {
    pub task: String,
    pub state: String,
    pub tries: u32,
    pub duration_s: Option<f64>,
    pub rows: Option<i64>,
    /// Rows set aside (quarantined or dead-lettered).
    pub rejected: Option<i64>,
    pub error: Option<String>,
    pub log: Option<String>,
}

/// A pipeline's task ids in its order (topological): the order a `RunView` lists them in.
pub fn task_order(p: &sluice_core::Pipeline) -> Vec<String> {
    p.tasks.iter().map(|t| t.id.clone()).collect()
}

fn iso(t: chrono::DateTime<chrono::Utc>) -> String {
    sluice_core::template::iso(t)
}

impl RunView {
    /// Reads a run and its tasks (in the pipeline's order when known).
    pub fn load(store: &Store, run: &RunRecord, order: &[String]) -> anyhow::Result<RunView> {
        let mut tis = store.task_instances(run.id)?;
        tis.sort_by_key(|t| {
            order
                .iter()
                .position(|o| *o == t.task)
                .unwrap_or(usize::MAX)
        });
        let mut tasks = Vec::with_capacity(tis.len());
        for ti in tis {
            let tries = store.tries(run.id, &ti.task)?;
            let last = tries.last();
            tasks.push(TaskView {
                state: ti.state.to_string(),
                tries: ti.tries,
                duration_s: last
                    .and_then(|t| t.duration_ms)
                    .map(|ms| ms as f64 / 1000.0),
                rows: last.and_then(|t| t.rows),
                rejected: last.and_then(|t| t.rejected),
                error: last
                    .and_then(|t| t.error.clone())
                    .filter(|_| ti.state != TaskState::Success),
                log: last.and_then(|t| t.log_path.clone()),
                task: ti.task,
            });
        }
        Ok(RunView {
            pipeline: run.pipeline.clone(),
            run_id: run.run_id.clone(),
            run_type: run.run_type.clone(),
            logical_date: iso(run.logical_date),
            data_interval_start: iso(run.data_interval_start),
            data_interval_end: iso(run.data_interval_end),
            state: run.state.to_string(),
            started_at: run.started_at.map(iso),
            ended_at: run.ended_at.map(iso),
            duration_s: run
                .started_at
                .zip(run.ended_at)
                .map(|(s, e)| (e - s).num_milliseconds() as f64 / 1000.0),
            tasks,
            schema_changes: store.schema_changes(run.id)?,
        })
    }

    /// The summary a person reads after a run.
    pub fn print(&self, log_tail: usize) {
        let duration = self
            .duration_s
            .map(|d| format!("  {d:.1}s"))
            .unwrap_or_default();
        println!(
            "{}  {}  [{}, {})  {}{}",
            self.pipeline,
            self.logical_date,
            self.data_interval_start,
            self.data_interval_end,
            self.state.to_uppercase(),
            duration
        );
        let rows: Vec<Vec<String>> = self
            .tasks
            .iter()
            .map(|t| {
                vec![
                    format!("  {}", t.task),
                    t.state.clone(),
                    format!("{} {}", t.tries, if t.tries == 1 { "try" } else { "tries" }),
                    t.duration_s.map(|d| format!("{d:.2}s")).unwrap_or_default(),
                    match (t.rows, t.rejected.filter(|&r| r > 0)) {
                        (Some(r), Some(x)) => format!("{r} rows, {x} set aside"),
                        (Some(r), None) => format!("{r} rows"),
                        _ => String::new(),
                    },
                ]
            })
            .collect();
        print_table(&rows);
        for c in &self.schema_changes {
            println!(
                "  schema change by {} (try {}): {} `{}` on {}: {}{}",
                c.task,
                c.try_number,
                c.change,
                c.column,
                c.target,
                c.from_type
                    .as_ref()
                    .map(|f| format!("{f} → "))
                    .unwrap_or_default(),
                c.to_type
            );
        }
        for t in self.tasks.iter().filter(|t| t.error.is_some()) {
            println!(
                "\n  {} failed: {}",
                t.task,
                t.error.as_deref().unwrap_or_default()
            );
            if let Some(log) = &t.log {
                let tail = crate::try_log::last_lines(log, log_tail);
                if !tail.is_empty() {
                    println!("  last lines of {log}:");
                    for line in tail {
                        println!("    | {line}");
                    }
                }
            }
        }
    }
}

/// Prints rows with aligned columns.
pub fn print_table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| format!("{cell:<width$}", width = widths[c]))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}
