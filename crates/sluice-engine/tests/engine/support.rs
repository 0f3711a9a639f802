//! A project in a temporary folder with its metadata store (SQLite there, or a PostgreSQL
//! database of its own), pipelines built directly from `Task`s, and a fake `TaskAction` that
//! follows a script per try and writes down what it did, and when.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sluice_core::Redactor;
use sluice_core::pipeline::AlertRoutes;
use sluice_core::state::RetryPolicy;
use sluice_core::yaml::Span;
use sluice_core::{
    DataInterval, Pipeline, ProjectPaths, Schedule, Task, TaskAction, TaskError, TaskOutput,
    TaskRun, TaskState, Timetable, TriggerRule,
};
use sluice_engine::alerts::{Alert, Notifier};
use sluice_engine::{Dispatch, Executor, Pools, Progress, RunOutcome, RunRequest};
use sluice_store::{RunRecord, RunType, Store, TryOutcome};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Runs an async case on SQLite and on PostgreSQL, as two tests named after the case. With
/// `paused`, tokio's clock is paused: it jumps to the next timer whenever everything waits, so
/// retry delays, timeouts and grace periods pass at once — and exactly.
#[macro_export]
macro_rules! on_both {
    ($case:ident, paused) => {
        on_both!(@ $case, start_paused = true);
    };
    ($case:ident, real_time) => {
        on_both!(@ $case, flavor = "current_thread");
    };
    (@ $case:ident, $($runtime:tt)*) => {
        mod $case {
            #[tokio::test($($runtime)*)]
            async fn sqlite() {
                super::$case($crate::support::Project::sqlite()).await
            }
            #[tokio::test($($runtime)*)]
            async fn postgres() {
                super::$case($crate::support::Project::postgres(stringify!($case))).await
            }
        }
    };
}

/// A project folder and its metadata store; what its runs alert goes to `alerts`.
pub struct Project {
    pub store: Arc<Store>,
    pub paths: Arc<ProjectPaths>,
    pub alerts: Arc<Alerts>,
    // Dropped after the store: the folder and the database outlive what uses them.
    _database: Option<sluice_testkit::pg::Database>,
    _dir: tempfile::TempDir,
}

impl Project {
    pub fn sqlite() -> Project {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths(dir.path());
        let store = Store::open(&paths.state.join("metadata.db")).unwrap();
        Project::new(dir, paths, store, None)
    }

    /// The metadata in a PostgreSQL database of the case's own (logs and locks in the folder).
    pub fn postgres(case: &str) -> Project {
        let database = sluice_testkit::pg::Database::create(&format!("sluice_engine_{case}"));
        let store = Store::connect(&database.url).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let paths = paths(dir.path());
        Project::new(dir, paths, store, Some(database))
    }

    fn new(
        dir: tempfile::TempDir,
        paths: ProjectPaths,
        store: Store,
        database: Option<sluice_testkit::pg::Database>,
    ) -> Project {
        Project {
            store: Arc::new(store),
            paths: Arc::new(paths),
            alerts: Arc::new(Alerts::default()),
            _database: database,
            _dir: dir,
        }
    }

    /// An executor running tries here, `parallelism` at a time, with these pools.
    pub fn executor(&self, parallelism: usize, pools: Arc<Pools>) -> Executor {
        Executor {
            store: self.store.clone(),
            paths: self.paths.clone(),
            parallelism,
            redactor: Arc::new(Redactor::new(["hunter2-secret".to_string()])),
            pools,
            notifier: Some(self.alerts.clone()),
            dispatch: Dispatch::Local,
            lineage: None,
        }
    }

    /// Runs `pipeline` for the first of January 2024 with a roomy executor, to its end.
    pub async fn run(&self, pipeline: &Pipeline) -> RunOutcome {
        let exec = self.executor(8, Arc::new(Pools::default()));
        run_on(&exec, pipeline, 1, &NoProgress, CancellationToken::new()).await
    }

    /// The state of each task of a run, by task id.
    pub fn states(&self, run: &RunRecord) -> BTreeMap<String, TaskState> {
        self.store
            .task_instances(run.id)
            .unwrap()
            .into_iter()
            .map(|ti| (ti.task, ti.state))
            .collect()
    }

    /// The outcomes of a task's tries, oldest first.
    pub fn outcomes(&self, run: &RunRecord, task: &str) -> Vec<TryOutcome> {
        let tries = self.store.tries(run.id, task).unwrap();
        tries.into_iter().map(|t| t.outcome).collect()
    }

    /// The error of try `n` of a task.
    pub fn error(&self, run: &RunRecord, task: &str, n: u32) -> String {
        let tries = self.store.tries(run.id, task).unwrap();
        let t = tries.iter().find(|t| t.try_number == n).unwrap();
        t.error.clone().unwrap_or_default()
    }

    /// The log of try `n` of a task.
    pub fn log(&self, run: &RunRecord, task: &str, n: u32) -> String {
        let tries = self.store.tries(run.id, task).unwrap();
        let t = tries.iter().find(|t| t.try_number == n).unwrap();
        std::fs::read_to_string(t.log_path.as_ref().unwrap()).unwrap_or_default()
    }

    /// `task`'s first try ended by a panic whose message starts with `message` — recorded as
    /// that try's failure, in its error and its log — and its retry succeeded.
    pub fn assert_panicked_then_succeeded(&self, run: &RunRecord, task: &str, message: &str) {
        assert_eq!(
            self.outcomes(run, task),
            [TryOutcome::Failed, TryOutcome::Success]
        );
        let error = self.error(run, task, 1);
        assert!(
            error.starts_with(&format!("the task panicked: {message}")),
            "{error}"
        );
        let log = self.log(run, task, 1);
        assert!(
            log.contains(&format!("try 1 failed: the task panicked: {message}")),
            "{log}"
        );
    }
}

fn paths(root: &std::path::Path) -> ProjectPaths {
    ProjectPaths {
        root: root.to_path_buf(),
        lake: root.join("lake"),
        state: root.join(".sluice"),
        warehouse: root.join("warehouse.duckdb"),
    }
}

/// Runs `pipeline` for day `day` of January 2024 (a manual run), to its end or its stop.
pub async fn run_on(
    exec: &Executor,
    pipeline: &Pipeline,
    day: u32,
    progress: &dyn Progress,
    cancel: CancellationToken,
) -> RunOutcome {
    run_as(exec, pipeline, day, RunType::Manual, progress, cancel).await
}

pub async fn run_as(
    exec: &Executor,
    pipeline: &Pipeline,
    day: u32,
    run_type: RunType,
    progress: &dyn Progress,
    cancel: CancellationToken,
) -> RunOutcome {
    let req = RunRequest {
        pipeline,
        interval: interval(day),
        run_type,
        rerun_failed: false,
    };
    exec.run(req, progress, cancel).await.unwrap()
}

/// The day's interval: midnight to midnight, UTC.
pub fn interval(day: u32) -> DataInterval {
    let start: DateTime<Utc> = format!("2024-01-{day:02}T00:00:00Z").parse().unwrap();
    DataInterval {
        start,
        end: start + chrono::Duration::days(1),
    }
}

pub struct NoProgress;
impl Progress for NoProgress {}

// ---------------------------------------------------------------------------------------------
// Pipelines

/// A task running `action`, with Sluice's defaults (no retry, all_success, priority 1).
pub fn task(id: &str, action: Arc<dyn TaskAction>) -> Task {
    Task {
        id: id.into(),
        span: span(),
        kind: "fake",
        owner: None,
        description: None,
        upstream: Vec::new(),
        downstream: Vec::new(),
        retry: RetryPolicy::default(),
        timeout: None,
        trigger_rule: TriggerRule::AllSuccess,
        sla: None,
        priority: 1,
        pool: None,
        queue: "default".into(),
        config: serde_json::json!({ "fake": id }),
        alert: AlertRoutes::default(),
        action,
    }
}

/// A pipeline of `tasks`, each with the ids of its upstream tasks (listed before it).
pub fn pipeline(id: &str, tasks: Vec<(Task, &[&str])>) -> Pipeline {
    let ids: Vec<String> = tasks.iter().map(|(t, _)| t.id.clone()).collect();
    let index = |name: &str| ids.iter().position(|t| t == name).expect("an earlier task");
    let mut built: Vec<Task> = Vec::new();
    for (mut t, after) in tasks {
        t.upstream = after.iter().map(|a| index(a)).collect();
        let me = built.len();
        for &u in &t.upstream {
            built[u].downstream.push(me);
        }
        built.push(t);
    }
    Pipeline {
        id: id.into(),
        file: format!("pipelines/{id}.yaml"),
        span: span(),
        description: None,
        timetable: Timetable {
            schedule: Schedule::Manual,
            tz: chrono_tz::UTC,
            start: "2024-01-01T00:00:00Z".parse().unwrap(),
            end: None,
        },
        catchup: false,
        tags: Vec::new(),
        params: serde_json::json!({}),
        sla: None,
        max_active_runs: 16,
        max_active_tasks: 16,
        row_drop: None,
        item: None,
        tasks: built,
    }
}

fn span() -> Span {
    Span::new("pipelines/fake.yaml".into(), 1, 1)
}

// ---------------------------------------------------------------------------------------------
// The fake task

/// What a fake task does in one try.
#[derive(Debug, Clone)]
pub enum Step {
    /// Succeeds at once, reporting 10 rows.
    Succeed,
    /// Fails with a retryable error.
    Fail,
    /// Fails with a configuration error: retrying cannot help.
    FailConfig,
    Panic(&'static str),
    /// Works this long, stopping (with an error) as soon as it is told to, then succeeds.
    Work(Duration),
    /// Works this long whatever it is told, then succeeds.
    Stubborn(Duration),
    /// Succeeds once `alerts` holds an alert of this task, or fails after 10 s.
    UntilAlerted(Arc<Alerts>),
}

/// A task following a script: try N does step N (the last step repeats).
#[derive(Debug)]
pub struct Fake {
    steps: Vec<Step>,
    journal: Arc<Journal>,
}

pub fn fake(journal: &Arc<Journal>, steps: &[Step]) -> Arc<dyn TaskAction> {
    Arc::new(Fake {
        steps: steps.to_vec(),
        journal: journal.clone(),
    })
}

impl TaskAction for Fake {
    fn run<'a>(&'a self, run: &'a TaskRun) -> BoxFuture<'a, Result<TaskOutput, TaskError>> {
        Box::pin(async move {
            let try_number = run.template.try_number;
            let n = (try_number as usize).clamp(1, self.steps.len());
            let step = self.steps[n - 1].clone();
            let mut visit = self.journal.enter(&run.template.task, try_number);
            run.log.line(format!("fake step {step:?}"));
            let done = Ok(TaskOutput {
                rows: Some(10),
                ..TaskOutput::default()
            });
            let result = match step {
                Step::Succeed => done,
                Step::Fail => Err(TaskError::failed("the source said no")),
                Step::FailConfig => Err(TaskError::config("no such column: amount")),
                Step::Panic(message) => panic!("{message}"),
                Step::Work(d) => tokio::select! {
                    _ = tokio::time::sleep(d) => done,
                    _ = run.cancel.cancelled() => Err(TaskError::failed("stopped")),
                },
                Step::Stubborn(d) => {
                    tokio::time::sleep(d).await;
                    done
                }
                Step::UntilAlerted(alerts) => {
                    let task = run.template.task.clone();
                    let seen = async {
                        while !alerts.all().iter().any(|a| a.task.contains(&task)) {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    };
                    match tokio::time::timeout(Duration::from_secs(10), seen).await {
                        Ok(()) => done,
                        Err(_) => Err(TaskError::failed("no alert while the task ran")),
                    }
                }
            };
            visit.ended = true;
            result
        })
    }
}

/// What the fake tasks did, in order, on tokio's clock.
#[derive(Debug, Default)]
pub struct Journal {
    entries: Mutex<Vec<Entry>>,
    running: AtomicUsize,
    peak: AtomicUsize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub task: String,
    pub try_number: u32,
    pub what: What,
    pub at: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    Started,
    Ended,
    /// Its future was dropped before it ended (abandoned, or it panicked).
    Dropped,
}

impl Journal {
    pub fn new() -> Arc<Journal> {
        Arc::new(Journal::default())
    }

    fn enter(self: &Arc<Self>, task: &str, try_number: u32) -> Visit {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        self.write(task, try_number, What::Started);
        Visit {
            journal: self.clone(),
            task: task.into(),
            try_number,
            ended: false,
        }
    }

    fn write(&self, task: &str, try_number: u32, what: What) {
        self.entries.lock().unwrap().push(Entry {
            task: task.into(),
            try_number,
            what,
            at: Instant::now(),
        });
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.entries.lock().unwrap().clone()
    }

    /// Tasks in the order their tries started.
    pub fn starts(&self) -> Vec<String> {
        let entries = self.entries();
        let started = entries.iter().filter(|e| e.what == What::Started);
        started.map(|e| e.task.clone()).collect()
    }

    /// When `what` happened to try `try_number` of `task`.
    pub fn at(&self, task: &str, try_number: u32, what: What) -> Instant {
        self.entries()
            .into_iter()
            .find(|e| e.task == task && e.try_number == try_number && e.what == what)
            .unwrap_or_else(|| panic!("{task} try {try_number} never {what:?}"))
            .at
    }

    /// The most tries that ran at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

/// One try of a fake task, from its start until its future ends or is dropped.
struct Visit {
    journal: Arc<Journal>,
    task: String,
    try_number: u32,
    ended: bool,
}

impl Drop for Visit {
    fn drop(&mut self) {
        self.journal.running.fetch_sub(1, Ordering::SeqCst);
        let what = if self.ended {
            What::Ended
        } else {
            What::Dropped
        };
        self.journal.write(&self.task, self.try_number, what);
    }
}

// ---------------------------------------------------------------------------------------------
// Alerts and progress

/// A notifier that keeps every alert.
#[derive(Debug, Default)]
pub struct Alerts(Mutex<Vec<Alert>>);

impl Alerts {
    pub fn all(&self) -> Vec<Alert> {
        self.0.lock().unwrap().clone()
    }
}

impl Notifier for Alerts {
    fn send(&self, alert: Alert) {
        self.0.lock().unwrap().push(alert);
    }
}

/// Progress that cancels the run when a task reaches `state`.
pub struct CancelOn {
    pub state: TaskState,
    pub cancel: CancellationToken,
}

impl Progress for CancelOn {
    fn task_finished(&self, _: &RunRecord, _: &str, state: TaskState, _: Option<&str>) {
        if state == self.state {
            self.cancel.cancel();
        }
    }
}

/// Every alert route of a task set to the channel `ops`.
pub fn alert_everything() -> AlertRoutes {
    let ops = vec!["ops".to_string()];
    AlertRoutes {
        failure: ops.clone(),
        retry: ops.clone(),
        recovery: ops.clone(),
        sla_miss: ops.clone(),
        row_drop: ops,
    }
}
