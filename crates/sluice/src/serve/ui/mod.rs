//! The web UI of `sluice serve`: server-rendered pages (askama templates under
//! `templates/ui/`) with a little JavaScript of our own (`assets/sluice.js`, embedded in the
//! binary, no CDN) for the interactive parts — local times, live refresh of a region, a log
//! that tails while the task runs, and buttons that call the REST API. Pages read the store and
//! the loaded project directly; actions go through the API, so the UI can do nothing the API
//! cannot.
//!
//! Auth: with a token, the browser signs in once at `/login`; the token is kept in an
//! HttpOnly, SameSite=Strict cookie that the API accepts like the bearer header.

mod graph;
mod observe;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sluice_core::{Diagnostic, Pipeline};

use super::Service;
use crate::output::RunView;
use crate::try_log;

type S = State<Arc<Service>>;

/// Whether the request's principal may change things: pages show their action buttons only
/// then (the API refuses the others anyway).
pub struct CanChange(pub bool);

impl<T: Send + Sync> axum::extract::FromRequestParts<T> for CanChange {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &T,
    ) -> std::result::Result<CanChange, Self::Rejection> {
        let principal = parts.extensions.get::<super::access::Principal>();
        Ok(CanChange(
            principal.is_some_and(|p| p.role >= sluice_store::Role::Operator),
        ))
    }
}

/// How many runs the pipeline page shows in its grid.
const GRID_RUNS: usize = 500;

pub fn routes(metrics: metrics_exporter_prometheus::PrometheusHandle) -> Router<Arc<Service>> {
    let metrics = Arc::new(metrics);
    Router::new()
        .route(
            "/streams",
            get(move |state: S| observe::streams(state, metrics.clone())),
        )
        .route("/lineage", get(observe::lineage))
        .route("/dead-letters", get(observe::dead_letters))
        .route("/audit", get(observe::audit))
        .route("/", get(pipelines))
        .route("/pipelines/{pipeline}", get(pipeline))
        .route("/runs/{run}", get(run))
        .route("/runs/{run}/tasks/{task}", get(task))
        .route(
            "/ui/runs/{run}/tasks/{task}/tries/{try_number}/log",
            get(log_tail),
        )
        .route(
            "/ui/runs/{run}/tasks/{task}/tries/{try_number}/report",
            get(report),
        )
        .route("/quality", get(quality))
        .route("/ui/assets/{file}", get(asset))
        .route("/login", get(login))
}

/// A page that could not be shown, as a page.
pub struct UiError(StatusCode, String);

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            status: self.0.as_u16(),
            message: self.1,
        };
        let body = page.render().unwrap_or_else(|e| e.to_string());
        (self.0, Html(body)).into_response()
    }
}

impl<E: Into<anyhow::Error>> From<E> for UiError {
    fn from(e: E) -> Self {
        UiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{:#}", e.into()))
    }
}

impl UiError {
    pub fn not_found(message: impl Into<String>) -> UiError {
        UiError(StatusCode::NOT_FOUND, message.into())
    }

    pub fn unauthorized(message: impl Into<String>) -> UiError {
        UiError(StatusCode::UNAUTHORIZED, message.into())
    }
}

fn not_found(message: impl Into<String>) -> UiError {
    UiError::not_found(message)
}

type Result<T> = std::result::Result<T, UiError>;

fn page(t: impl Template) -> Result<Html<String>> {
    Ok(Html(t.render()?))
}

#[derive(Template)]
#[template(path = "ui/error.html")]
struct ErrorPage {
    status: u16,
    message: String,
}

/// A time as the page shows it: UTC in the HTML, the user's time zone once the script ran, the
/// UTC value on hover.
pub struct Time(DateTime<Utc>);

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let iso = self.0.format("%Y-%m-%dT%H:%M:%SZ");
        write!(
            f,
            r#"<time datetime="{iso}" title="{iso}">{}</time>"#,
            self.0.format("%Y-%m-%d %H:%M UTC")
        )
    }
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| Time(t).to_string()).unwrap_or_default()
}

/// A state as a CSS class and a one-letter grid class.
fn state_letter(state: &str) -> &'static str {
    match state {
        "success" => "s",
        "failed" => "f",
        "running" => "r",
        "queued" => "q",
        "up_for_retry" => "u",
        "upstream_failed" => "x",
        "skipped" => "k",
        "scheduled" => "d",
        _ => "n",
    }
}

fn seconds(s: Option<f64>) -> String {
    match s {
        None => String::new(),
        Some(s) if s < 60.0 => format!("{s:.1} s"),
        Some(s) => format!("{}m {:02}s", (s / 60.0) as u64, (s % 60.0) as u64),
    }
}

// ---------------------------------------------------------------------------------------------
// Pipelines

struct PipelineRow {
    id: String,
    description: String,
    schedule: String,
    cron: String,
    timezone: String,
    next: String,
    paused: bool,
    /// Latest runs, oldest first: (run id, state, logical date).
    recent: Vec<(i64, String, String)>,
}

struct Problem {
    place: String,
    message: String,
    hint: String,
}

#[derive(Template)]
#[template(path = "ui/pipelines.html")]
struct PipelinesPage {
    pipelines: Vec<PipelineRow>,
    problems: Vec<Problem>,
}

fn cron_of(p: &Pipeline) -> String {
    match &p.timetable.schedule {
        sluice_core::schedule::Schedule::Cron { expr, .. } => expr.clone(),
        _ => String::new(),
    }
}

fn next_run(service: &Service, p: &Pipeline) -> Option<DateTime<Utc>> {
    service
        .store
        .latest_scheduled(&p.id)
        .ok()
        .flatten()
        .and_then(|r| {
            p.timetable.next(&sluice_core::DataInterval {
                start: r.data_interval_start,
                end: r.data_interval_end,
            })
        })
        .or_else(|| p.timetable.first())
        .map(|i| i.end)
}

fn problems(diags: &[Diagnostic]) -> Vec<Problem> {
    diags
        .iter()
        .map(|d| Problem {
            place: format!("{}:{}:{}", d.file, d.line, d.col),
            message: d.message.clone(),
            hint: d.hint.clone().unwrap_or_default(),
        })
        .collect()
}

async fn pipelines(State(service): S) -> Result<Html<String>> {
    let paused = service.store.paused()?;
    let (list, diags) = {
        let loaded = service.loaded.read().expect("lock");
        let list: Vec<Arc<Pipeline>> = loaded.pipelines.values().cloned().collect();
        (list, loaded.problems.clone())
    };
    let mut rows = Vec::with_capacity(list.len());
    for p in list {
        let mut recent: Vec<(i64, String, String)> = service
            .store
            .runs(&p.id, 12)?
            .into_iter()
            .map(|r| {
                (
                    r.id,
                    r.state.to_string(),
                    r.logical_date.format("%Y-%m-%d %H:%M").to_string(),
                )
            })
            .collect();
        recent.reverse();
        rows.push(PipelineRow {
            description: p.description.clone().unwrap_or_default(),
            schedule: p.timetable.schedule.describe(),
            cron: cron_of(&p),
            timezone: p.timetable.tz.name().to_string(),
            next: time(next_run(&service, &p)),
            paused: paused.contains(&p.id),
            recent,
            id: p.id.clone(),
        });
    }
    page(PipelinesPage {
        pipelines: rows,
        problems: problems(&diags),
    })
}

// ---------------------------------------------------------------------------------------------
// A pipeline: graph and grid

#[derive(Template)]
#[template(path = "ui/pipeline.html")]
struct PipelinePage {
    /// Show the action buttons.
    can_change: bool,
    id: String,
    description: String,
    schedule: String,
    cron: String,
    timezone: String,
    paused: bool,
    next: String,
    /// The run whose states colour the graph.
    selected: Option<(i64, String, String)>,
    graph: String,
    /// Run ids of the grid's columns, newest first, comma-separated (the script maps a click
    /// on a cell to its run).
    grid_runs: String,
    grid_head: String,
    grid_rows: String,
    runs_shown: usize,
    today: String,
}

#[derive(Deserialize)]
struct Selected {
    run: Option<i64>,
}

fn find(service: &Service, id: &str) -> Result<Arc<Pipeline>> {
    service
        .pipeline(id)
        .ok_or_else(|| not_found(format!("no pipeline `{id}`")))
}

/// The pipeline's DAG, each task coloured by its state in `states` and linked to it.
fn dag(p: &Pipeline, run: Option<i64>, states: &HashMap<String, String>) -> String {
    let nodes: Vec<graph::Node> = p
        .tasks
        .iter()
        .map(|t| {
            let state = states.get(&t.id).cloned().unwrap_or_default();
            graph::Node {
                label: t.id.clone(),
                title: format!("{} ({}) {}", t.id, t.kind, state),
                class: state,
                href: run.map(|r| format!("/runs/{r}/tasks/{}", t.id)),
            }
        })
        .collect();
    let edges: Vec<(usize, usize)> = p
        .tasks
        .iter()
        .enumerate()
        .flat_map(|(i, t)| t.upstream.iter().map(move |&u| (u, i)))
        .collect();
    graph::svg(&nodes, &edges, &format!("the tasks of {}", p.id))
}

async fn pipeline(
    State(service): S,
    CanChange(can_change): CanChange,
    Path(id): Path<String>,
    Query(selected): Query<Selected>,
) -> Result<Html<String>> {
    let p = find(&service, &id)?;
    let paused = service.store.paused()?.contains(&p.id);
    let runs = service.store.runs(&p.id, GRID_RUNS)?;
    let cells = service.store.grid(&p.id, GRID_RUNS)?;
    let column: HashMap<i64, usize> = runs.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
    let row: HashMap<&str, usize> = p
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    // One letter per cell: tasks × runs.
    let mut letters = vec![vec!["n"; runs.len()]; p.tasks.len()];
    for (run, task, state) in &cells {
        if let (Some(&c), Some(&r)) = (column.get(run), row.get(task.as_str())) {
            letters[r][c] = state_letter(state.as_str());
        }
    }
    let selected_run = selected
        .run
        .and_then(|id| runs.iter().find(|r| r.id == id))
        .or(runs.first());
    let states: HashMap<String, String> = selected_run
        .map(|r| {
            cells
                .iter()
                .filter(|(run, _, _)| *run == r.id)
                .map(|(_, task, state)| (task.clone(), state.to_string()))
                .collect()
        })
        .unwrap_or_default();
    // Built by hand: 25,000 cells through a template loop would be slower and bigger.
    let mut grid_head = String::with_capacity(runs.len() * 40);
    for r in &runs {
        grid_head.push_str(&format!(
            "<th class={} title=\"{} {}\">",
            state_letter(r.state.as_str()),
            r.logical_date.format("%Y-%m-%d %H:%M"),
            r.state
        ));
    }
    let mut grid_rows = String::with_capacity(p.tasks.len() * (runs.len() * 12 + 120));
    for (t, task) in p.tasks.iter().enumerate() {
        let name = graph::escape(&task.id);
        grid_rows.push_str(&format!("<tr data-task=\"{name}\"><th scope=row>"));
        match runs.first() {
            Some(r) => grid_rows.push_str(&format!(
                "<a href=\"/runs/{}/tasks/{name}\">{name}</a>",
                r.id
            )),
            None => grid_rows.push_str(&name),
        }
        for letter in &letters[t] {
            grid_rows.push_str("<td class=");
            grid_rows.push_str(letter);
            grid_rows.push('>');
        }
        grid_rows.push_str("</tr>");
    }
    page(PipelinePage {
        can_change,
        description: p.description.clone().unwrap_or_default(),
        schedule: p.timetable.schedule.describe(),
        cron: cron_of(&p),
        timezone: p.timetable.tz.name().to_string(),
        paused,
        next: time(next_run(&service, &p)),
        selected: selected_run.map(|r| {
            (
                r.id,
                r.logical_date.format("%Y-%m-%d %H:%M").to_string(),
                r.state.to_string(),
            )
        }),
        graph: dag(&p, selected_run.map(|r| r.id), &states),
        grid_runs: runs
            .iter()
            .map(|r| r.id.to_string())
            .collect::<Vec<_>>()
            .join(","),
        grid_head,
        grid_rows,
        runs_shown: runs.len(),
        today: Utc::now().format("%Y-%m-%d").to_string(),
        id: p.id.clone(),
    })
}

// ---------------------------------------------------------------------------------------------
// A run

#[derive(Template)]
#[template(path = "ui/run.html")]
struct RunPage {
    /// Show the action buttons.
    can_change: bool,
    id: i64,
    view: RunView,
    started: String,
    ended: String,
    duration: String,
    graph: String,
    finished: bool,
    sla: String,
}

fn find_run(service: &Service, id: &str) -> Result<sluice_store::RunRecord> {
    let id: i64 = id
        .parse()
        .map_err(|_| UiError(StatusCode::BAD_REQUEST, format!("`{id}` is not a run id")))?;
    service
        .store
        .run(id)
        .map_err(|_| not_found(format!("no run {id}")))
}

async fn run(
    State(service): S,
    CanChange(can_change): CanChange,
    Path(id): Path<String>,
) -> Result<Html<String>> {
    let run = find_run(&service, &id)?;
    let p = service.pipeline(&run.pipeline);
    let order: Vec<String> = p
        .as_ref()
        .map(|p| p.tasks.iter().map(|t| t.id.clone()).collect())
        .unwrap_or_default();
    let view = RunView::load(&service.store, &run, &order)?;
    let states: HashMap<String, String> = view
        .tasks
        .iter()
        .map(|t| (t.task.clone(), t.state.clone()))
        .collect();
    let sla = match p.as_ref().and_then(|p| p.sla) {
        None => "none".to_string(),
        Some(sla) => {
            let deadline = run.data_interval_end + chrono::Duration::from_std(sla)?;
            let done = run.ended_at.unwrap_or_else(Utc::now);
            let verdict = if done <= deadline {
                if run.ended_at.is_some() {
                    "met"
                } else {
                    "on time so far"
                }
            } else {
                "missed"
            };
            format!("{verdict} (due {})", Time(deadline))
        }
    };
    page(RunPage {
        can_change,
        id: run.id,
        started: time(run.started_at),
        ended: time(run.ended_at),
        duration: seconds(view.duration_s),
        graph: p
            .as_ref()
            .map(|p| dag(p, Some(run.id), &states))
            .unwrap_or_default(),
        finished: run.ended_at.is_some(),
        sla,
        view,
    })
}

// ---------------------------------------------------------------------------------------------
// A task and its tries

struct TryRow {
    number: u32,
    outcome: String,
    started: String,
    duration: String,
    rows: String,
    error: String,
}

#[derive(Template)]
#[template(path = "ui/task.html")]
struct TaskPage {
    /// Show the action buttons.
    can_change: bool,
    run: i64,
    pipeline: String,
    logical_date: String,
    task: String,
    kind: String,
    state: String,
    tries: Vec<TryRow>,
    /// The try whose log is shown.
    shown: u32,
    /// The shown try wrote a data-quality report (a `validate` task).
    report: bool,
    log: String,
    log_running: bool,
    /// The task's configuration rendered for this run and try, secrets masked (pretty JSON).
    config: String,
}

#[derive(Deserialize)]
struct TryQuery {
    #[serde(rename = "try")]
    try_number: Option<u32>,
}

async fn task(
    State(service): S,
    CanChange(can_change): CanChange,
    Path((id, task)): Path<(String, String)>,
    Query(q): Query<TryQuery>,
) -> Result<Html<String>> {
    let run = find_run(&service, &id)?;
    let p = service.pipeline(&run.pipeline);
    let definition = p
        .as_deref()
        .and_then(|p| p.task_index(&task).map(|i| (p, &p.tasks[i])));
    let kind = definition
        .map(|(_, t)| t.kind.to_string())
        .unwrap_or_default();
    let instance = service
        .store
        .task_instances(run.id)?
        .into_iter()
        .find(|t| t.task == task)
        .ok_or_else(|| not_found(format!("run {} has no task `{task}`", run.id)))?;
    let tries = service.store.tries(run.id, &task)?;
    let shown = q
        .try_number
        .or(tries.last().map(|t| t.try_number))
        .unwrap_or(0);
    let shown_try = tries.iter().find(|t| t.try_number == shown);
    let log = shown_try.map(try_log::text).unwrap_or_default();
    let rows = tries
        .iter()
        .map(|t| TryRow {
            number: t.try_number,
            outcome: t.outcome.to_string(),
            started: Time(t.started_at).to_string(),
            duration: seconds(t.duration_ms.map(|ms| ms as f64 / 1000.0)),
            rows: match (t.rows, t.rejected.filter(|r| *r > 0)) {
                (Some(r), Some(x)) => format!("{r} ({x} set aside)"),
                (Some(r), None) => r.to_string(),
                _ => String::new(),
            },
            error: t.error.clone().unwrap_or_default(),
        })
        .collect();
    let report = shown_try.and_then(report_path).is_some_and(|p| p.exists());
    let config = definition
        .map(|(p, t)| service.executor().rendered_config(p, &run, t, shown.max(1)))
        .map(|c| serde_json::to_string_pretty(&c).unwrap_or_default())
        .unwrap_or_default();
    page(TaskPage {
        can_change,
        config,
        report,
        run: run.id,
        pipeline: run.pipeline.clone(),
        logical_date: run.logical_date.format("%Y-%m-%d %H:%M").to_string(),
        state: instance.state.to_string(),
        kind,
        log_running: shown_try.is_some_and(|t| t.outcome == sluice_store::TryOutcome::Running),
        log,
        shown,
        tries: rows,
        task,
    })
}

/// The HTML report a `validate` try wrote beside its log.
fn report_path(t: &sluice_store::TryRecord) -> Option<std::path::PathBuf> {
    t.log_path
        .as_ref()
        .map(|log| std::path::Path::new(log).with_extension("quality.html"))
}

/// A try's data-quality report, as the `validate` task wrote it (self-contained HTML).
async fn report(
    State(service): S,
    Path((id, task, try_number)): Path<(String, String, u32)>,
) -> Result<Response> {
    let run = find_run(&service, &id)?;
    let html = try_log::find(&service.store, run.id, &task, try_number)?
        .as_ref()
        .and_then(report_path)
        .and_then(|p| std::fs::read_to_string(p).ok())
        .ok_or_else(|| not_found(format!("try {try_number} of `{task}` wrote no report")))?;
    use axum::http::header;
    Ok((
        [
            (header::CONTENT_SECURITY_POLICY, super::guard::REPORT_CSP),
            (header::X_FRAME_OPTIONS, "SAMEORIGIN"),
        ],
        Html(html),
    )
        .into_response())
}

struct Validation {
    pipeline: String,
    task: String,
    /// Oldest first: (run id, success, title).
    history: Vec<(i64, bool, String)>,
    passed: usize,
    quarantined: i64,
    latest: Option<(i64, u32)>,
}

#[derive(Template)]
#[template(path = "ui/quality.html")]
struct QualityPage {
    validations: Vec<Validation>,
}

/// Every `validate` task with its suite's results over the latest runs (from the JSON result
/// each try wrote beside its log) and the rows it quarantined.
async fn quality(State(service): S) -> Result<Html<String>> {
    let pipelines: Vec<Arc<Pipeline>> = service
        .loaded
        .read()
        .expect("lock")
        .pipelines
        .values()
        .cloned()
        .collect();
    let mut validations = Vec::new();
    for p in pipelines {
        let tasks: Vec<&str> = p
            .tasks
            .iter()
            .filter(|t| t.kind == "validate")
            .map(|t| t.id.as_str())
            .collect();
        if tasks.is_empty() {
            continue;
        }
        let runs = service.store.runs(&p.id, 30)?;
        for task in tasks {
            let mut v = Validation {
                pipeline: p.id.clone(),
                task: task.to_string(),
                history: Vec::new(),
                passed: 0,
                quarantined: 0,
                latest: None,
            };
            for r in runs.iter().rev() {
                let Some(last) = service.store.tries(r.id, task)?.pop() else {
                    continue;
                };
                let result: Option<serde_json::Value> = last
                    .log_path
                    .as_ref()
                    .and_then(|log| {
                        std::fs::read(std::path::Path::new(log).with_extension("quality.json")).ok()
                    })
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok());
                let Some(result) = result else { continue };
                let success = result["success"].as_bool().unwrap_or(false);
                let percent = result["statistics"]["success_percent"]
                    .as_f64()
                    .unwrap_or(0.0);
                v.passed += usize::from(success);
                v.quarantined += last.rejected.unwrap_or(0);
                v.history.push((
                    r.id,
                    success,
                    format!(
                        "{}: {percent:.0}% of expectations met",
                        r.logical_date.format("%Y-%m-%d %H:%M")
                    ),
                ));
                v.latest = Some((r.id, last.try_number));
            }
            validations.push(v);
        }
    }
    page(QualityPage { validations })
}

#[derive(Deserialize)]
struct LogFrom {
    from: Option<u64>,
}

/// The part of a try's log past byte `from`, and whether the try still runs: the task page
/// polls this to tail the log. Plain text; the header `x-log-next` is the next `from`.
async fn log_tail(
    State(service): S,
    Path((id, task, try_number)): Path<(String, String, u32)>,
    Query(from): Query<LogFrom>,
) -> Result<Response> {
    let run = find_run(&service, &id)?;
    let t = try_log::find(&service.store, run.id, &task, try_number)?
        .ok_or_else(|| not_found(format!("task `{task}` of run {id} has no try {try_number}")))?;
    let bytes = try_log::read(&t).ok().flatten().unwrap_or_default();
    let start = (from.from.unwrap_or(0) as usize).min(bytes.len());
    // Only whole lines, so a UTF-8 character is never cut in two.
    let end = bytes[start..]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(start, |i| start + i + 1);
    let text = String::from_utf8_lossy(&bytes[start..end]).into_owned();
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "text/plain; charset=utf-8".to_string(),
            ),
            (
                header::HeaderName::from_static("x-log-next"),
                end.to_string(),
            ),
            (
                header::HeaderName::from_static("x-try-running"),
                (t.outcome == sluice_store::TryOutcome::Running).to_string(),
            ),
        ],
        text,
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------------
// Assets and sign-in

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "sluice.css" => (include_str!("../../../assets/sluice.css"), "text/css"),
        "sluice.js" => (include_str!("../../../assets/sluice.js"), "text/javascript"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "ui/login.html")]
struct LoginPage;

async fn login() -> Result<Html<String>> {
    page(LoginPage)
}
