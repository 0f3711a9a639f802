//! The REST API of `sluice serve` (JSON; described at `/api/openapi.json`). Every error is a
//! JSON `{"error": "…"}` with the status that says whose it is: 400 bad input, 401 missing or
//! wrong token, 404 unknown pipeline/run/task, 409 conflicts.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_core::schedule::MAX_INTERVALS;
use sluice_store::RunType;

use super::access::{Access, SESSION_COOKIE, SESSION_HOURS};
use super::{Service, task_specs};
use crate::api_types::{
    AuditList, BackfillList, BackfillProgress, BackfillRequest, ClearRequest, Cleared, ErrorBody,
    Paused, PipelineInfo, PipelineList, PipelineTask, Replayed, Run, RunList, TriggerRequest,
    TryList,
};
use crate::output::{RunView, task_order};
use crate::try_log;

pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

fn not_found(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, message.into())
}

impl<E: std::fmt::Display> From<E> for ApiError
where
    E: Into<anyhow::Error>,
{
    fn from(e: E) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

type Result<T> = std::result::Result<T, ApiError>;
type S = State<Arc<Service>>;

pub fn router(
    service: Arc<Service>,
    token: Option<String>,
    allowed_hosts: &[String],
    https: bool,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> Router {
    let service_store = service.store.clone();
    let app = Router::new()
        .route("/api/openapi.json", get(openapi))
        .route("/api/pipelines", get(pipelines))
        .route("/api/pipelines/{pipeline}", get(pipeline))
        .route("/api/pipelines/{pipeline}/runs", get(runs).post(trigger))
        .route("/api/pipelines/{pipeline}/pause", post(pause))
        .route("/api/pipelines/{pipeline}/unpause", post(unpause))
        .route("/api/pipelines/{pipeline}/backfills", post(backfill))
        .route("/api/backfills", get(backfills))
        .route("/api/backfills/{backfill}", get(backfill_progress))
        .route("/api/runs/{run}", get(run))
        .route("/api/runs/{run}/clear", post(clear))
        .route("/api/runs/{run}/tasks/{task}/tries", get(tries))
        .route(
            "/api/runs/{run}/tasks/{task}/tries/{try_number}/log",
            get(log),
        )
        .route("/api/failed-tasks/{id}/replay", post(replay))
        .route("/api/audit", get(audit))
        .merge(super::ui::routes(metrics.clone()))
        .fallback(|uri: axum::http::Uri| async move {
            if uri.path().starts_with("/api/") {
                not_found("no such API route; see /api/openapi.json").into_response()
            } else {
                super::ui::UiError::not_found(format!("nothing at {}", uri.path())).into_response()
            }
        })
        .with_state(service)
        .merge(crate::metrics::route(metrics));
    let access = Arc::new(Access::new(token, service_store, https));
    let app = app
        .route("/login", post(sign_in).with_state(access.clone()))
        .route("/logout", post(sign_out).with_state(access.clone()))
        .layer(middleware::from_fn_with_state(
            access,
            super::access::access,
        ));
    let guard = Arc::new(super::guard::Guard::new(allowed_hosts));
    app.layer(middleware::from_fn(redact_body))
        .layer(middleware::from_fn_with_state(guard, super::guard::guard))
}

/// Every text the API and the UI serve (JSON, pages, logs, reports, errors) passes through the
/// process's redactor: what the store and the logs hold was masked when written, but a page
/// also shows problems, settings and files read as they are.
async fn redact_body(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let textual = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/") || t.contains("json") || t.contains("javascript"));
    if !textual {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let body = match std::str::from_utf8(&bytes) {
        Ok(text) => axum::body::Body::from(crate::secrets::redact(text)),
        Err(_) => axum::body::Body::from(bytes),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, body)
}

#[derive(Deserialize)]
struct SignIn {
    token: String,
}

/// The sign-in form: a right token starts a session, whose random id becomes an HttpOnly,
/// SameSite=Strict cookie (other sites cannot send it, scripts cannot read it); the token itself
/// never leaves the form.
async fn sign_in(
    State(access): State<Arc<Access>>,
    axum::Form(form): axum::Form<SignIn>,
) -> Response {
    let principal = match access.by_token(form.token.trim()) {
        Ok(Some(p)) => p,
        Ok(None) => return super::ui::UiError::unauthorized("wrong token").into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let session = access.store().create_session(
        &principal.name,
        principal.role,
        &[],
        chrono::Duration::hours(SESSION_HOURS),
    );
    match session {
        Ok(id) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, "/".to_string()),
                (
                    header::SET_COOKIE,
                    format!(
                        "{SESSION_COOKIE}={id}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}",
                        SESSION_HOURS * 3600,
                        access.cookie_flags()
                    ),
                ),
            ],
        )
            .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Ends the browser's session.
async fn sign_out(State(access): State<Arc<Access>>, headers: axum::http::HeaderMap) -> Response {
    if let Some(id) = super::access::cookie(&headers, SESSION_COOKIE)
        && let Err(e) = access.store().end_session(&id)
    {
        return ApiError::from(e).into_response();
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/login".to_string()),
            (
                header::SET_COOKIE,
                format!(
                    "{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{}",
                    access.cookie_flags()
                ),
            ),
        ],
    )
        .into_response()
}

#[derive(Deserialize)]
struct AuditQuery {
    limit: Option<u32>,
    before: Option<i64>,
}

/// The audit log, newest first, a page at a time (`before`: the last id of the previous page).
async fn audit(State(service): S, Query(q): Query<AuditQuery>) -> Result<Json<AuditList>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let entries = service.store.audit(limit, q.before)?;
    let next_before = (entries.len() == limit as usize)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(Json(AuditList {
        entries,
        next_before,
    }))
}

fn pipeline_info(service: &Service, p: &sluice_core::Pipeline, paused: bool) -> PipelineInfo {
    let next = service
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
        .or_else(|| p.timetable.first());
    PipelineInfo {
        id: p.id.clone(),
        file: p.file.clone(),
        description: p.description.clone(),
        schedule: p.timetable.schedule.describe(),
        timezone: p.timetable.tz.name().to_string(),
        catchup: p.catchup,
        max_active_runs: p.max_active_runs,
        paused,
        next_logical_date: next.map(|i| sluice_core::template::iso(i.start)),
        tasks: p
            .tasks
            .iter()
            .map(|t| PipelineTask {
                id: t.id.clone(),
                kind: t.kind.to_string(),
                upstream: t.upstream.iter().map(|&u| p.tasks[u].id.clone()).collect(),
            })
            .collect(),
    }
}

async fn pipelines(State(service): S) -> Result<Json<PipelineList>> {
    let paused = service.store.paused()?;
    let loaded = service.loaded.read().expect("lock");
    let pipelines = loaded
        .pipelines
        .values()
        .map(|p| pipeline_info(&service, p, paused.contains(&p.id)))
        .collect();
    Ok(Json(PipelineList {
        pipelines,
        problems: loaded.problems.clone(),
    }))
}

fn find(service: &Service, id: &str) -> Result<Arc<sluice_core::Pipeline>> {
    service
        .pipeline(id)
        .ok_or_else(|| not_found(format!("no pipeline `{id}`")))
}

async fn pipeline(State(service): S, Path(id): Path<String>) -> Result<Json<PipelineInfo>> {
    let p = find(&service, &id)?;
    let paused = service.store.paused()?.contains(&p.id);
    Ok(Json(pipeline_info(&service, &p, paused)))
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

fn run_body(service: &Service, run: &sluice_store::RunRecord) -> Result<Run> {
    let order = service
        .pipeline(&run.pipeline)
        .map(|p| task_order(&p))
        .unwrap_or_default();
    let view = RunView::load(&service.store, run, &order)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Run { view, id: run.id })
}

async fn runs(
    State(service): S,
    Path(id): Path<String>,
    limit: std::result::Result<Query<Limit>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RunList>> {
    let Query(limit) = limit.map_err(|e| bad(e.body_text()))?;
    let p = find(&service, &id)?;
    let runs = service
        .store
        .runs(&p.id, limit.limit.unwrap_or(25).min(1000))?;
    let runs = runs
        .iter()
        .map(|r| run_body(&service, r))
        .collect::<Result<Vec<_>>>()?;
    Ok(Json(RunList { runs }))
}

async fn trigger(
    State(service): S,
    Path(id): Path<String>,
    body: std::result::Result<Json<TriggerRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Run>)> {
    let Json(body) = body.map_err(|e| bad(e.body_text()))?;
    let p = find(&service, &id)?;
    let interval = p
        .timetable
        .interval_for_date(date(&body.date)?)
        .map_err(bad)?;
    let (run, created) =
        service
            .store
            .ensure_run(&p.id, &interval, RunType::Manual, &task_specs(&p))?;
    service.wake.notify_one();
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(run_body(&service, &run)?)))
}

fn date(text: &str) -> Result<chrono::NaiveDate> {
    sluice_core::schedule::parse_date(text).map_err(bad)
}

/// A backfill with its progress, read from its runs.
fn progress(service: &Service, b: &sluice_store::BackfillRecord) -> Result<BackfillProgress> {
    let intervals = match service.pipeline(&b.pipeline) {
        Some(p) => p
            .timetable
            .intervals_between(date(&b.from)?, date(&b.to)?, MAX_INTERVALS)?,
        None => Vec::new(),
    };
    let dates: Vec<_> = intervals.iter().map(|i| i.start).collect();
    let states = service.store.run_states(&b.pipeline, &dates)?;
    let count = |want: &[sluice_core::RunState]| {
        states
            .iter()
            .filter(|s| s.is_some_and(|s| want.contains(&s)))
            .count()
    };
    let done = count(&[sluice_core::RunState::Success]);
    let failed = count(&[sluice_core::RunState::Failed]);
    let running = count(&[sluice_core::RunState::Running]);
    Ok(BackfillProgress {
        id: b.id,
        pipeline: b.pipeline.clone(),
        from: b.from.clone(),
        to: b.to.clone(),
        created_at: sluice_core::template::iso(b.created_at),
        intervals: dates.len(),
        done,
        failed,
        running,
        pending: dates.len() - done - failed - running,
        finished: done + failed == dates.len(),
    })
}

async fn backfill(
    State(service): S,
    Path(id): Path<String>,
    body: std::result::Result<Json<BackfillRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<BackfillProgress>)> {
    let Json(body) = body.map_err(|e| bad(e.body_text()))?;
    let p = find(&service, &id)?;
    let (from, to) = (date(&body.from)?, date(&body.to)?);
    if from > to {
        return Err(bad(format!("`from` {from} is after `to` {to}")));
    }
    let limit = service.max_backfill_intervals();
    let intervals = p
        .timetable
        .intervals_between(from, to, limit as usize)
        .map_err(|e| {
            bad(format!(
                "`{}` has {e} between {from} and {to}: backfill a shorter range at a time, or \
                 raise `serve: {{ max_backfill_intervals: {limit} }}` in sluice.yaml",
                p.id
            ))
        })?;
    if intervals.is_empty() {
        return Err(bad(format!(
            "`{}` has no interval with a logical date between {from} and {to}",
            p.id
        )));
    }
    let record = service.store.add_backfill(&p.id, &body.from, &body.to)?;
    let answer = progress(&service, &record)?;
    // Its runs are created in the background, queued (the request is answered at once; its
    // progress counts the runs not yet created as pending); the scheduler runs them,
    // `max_active_runs` at a time, and resumes them after a restart like any unfinished run.
    let background = service.clone();
    tokio::task::spawn_blocking(move || background.create_backfill_runs(&p, record.id, &intervals));
    Ok((StatusCode::CREATED, Json(answer)))
}

async fn backfills(State(service): S, Query(limit): Query<Limit>) -> Result<Json<BackfillList>> {
    let backfills = service
        .store
        .backfills(None)?
        .iter()
        .take(limit.limit.unwrap_or(50).clamp(1, 500))
        .map(|b| progress(&service, b))
        .collect::<Result<Vec<_>>>()?;
    Ok(Json(BackfillList { backfills }))
}

async fn backfill_progress(
    State(service): S,
    Path(id): Path<String>,
) -> Result<Json<BackfillProgress>> {
    let id: i64 = id
        .parse()
        .map_err(|_| bad(format!("`{id}` is not a backfill id (a number)")))?;
    let b = service
        .store
        .backfills(None)?
        .into_iter()
        .find(|b| b.id == id)
        .ok_or_else(|| not_found(format!("no backfill {id}")))?;
    Ok(Json(progress(&service, &b)?))
}

async fn set_paused(service: &Service, id: &str, paused: bool) -> Result<Json<Paused>> {
    let p = find(service, id)?;
    service.store.set_paused(&p.id, paused)?;
    service.wake.notify_one();
    Ok(Json(Paused {
        id: p.id.clone(),
        paused,
    }))
}

async fn pause(State(service): S, Path(id): Path<String>) -> Result<Json<Paused>> {
    set_paused(&service, &id, true).await
}

async fn unpause(State(service): S, Path(id): Path<String>) -> Result<Json<Paused>> {
    set_paused(&service, &id, false).await
}

fn find_run(service: &Service, id: &str) -> Result<sluice_store::RunRecord> {
    let id: i64 = id
        .parse()
        .map_err(|_| bad(format!("`{id}` is not a run id (a number)")))?;
    service
        .store
        .run(id)
        .map_err(|_| not_found(format!("no run {id}")))
}

async fn run(State(service): S, Path(id): Path<String>) -> Result<Json<Run>> {
    let run = find_run(&service, &id)?;
    Ok(Json(run_body(&service, &run)?))
}

/// The task names `tasks_to_clear` picked.
fn names(specs: &[(&str, u32)]) -> Vec<String> {
    specs.iter().map(|(t, _)| (*t).to_string()).collect()
}

async fn clear(
    State(service): S,
    Path(id): Path<String>,
    body: std::result::Result<Json<ClearRequest>, JsonRejection>,
) -> Result<Json<Cleared>> {
    let Json(body) = body.map_err(|e| bad(e.body_text()))?;
    let run = find_run(&service, &id)?;
    let p = find(&service, &run.pipeline)?;
    let specs = p
        .tasks_to_clear(&body.tasks, body.downstream)
        .map_err(|t| not_found(format!("`{}` has no task `{t}`", p.id)))?;
    service.store.clear(run.id, &specs)?;
    service.wake.notify_one();
    Ok(Json(Cleared {
        run: run.id,
        cleared: names(&specs),
    }))
}

async fn tries(
    State(service): S,
    Path((id, task)): Path<(String, String)>,
) -> Result<Json<TryList>> {
    let run = find_run(&service, &id)?;
    let tries = service.store.tries(run.id, &task)?;
    if tries.is_empty()
        && service
            .pipeline(&run.pipeline)
            .is_some_and(|p| p.task_index(&task).is_none())
    {
        return Err(not_found(format!(
            "`{}` has no task `{task}`",
            run.pipeline
        )));
    }
    Ok(Json(TryList { tries }))
}

async fn log(
    State(service): S,
    Path((id, task, try_number)): Path<(String, String, String)>,
) -> Result<Response> {
    let run = find_run(&service, &id)?;
    let n: u32 = try_number
        .parse()
        .map_err(|_| bad(format!("`{try_number}` is not a try number")))?;
    let t = try_log::find(&service.store, run.id, &task, n)?
        .ok_or_else(|| not_found(format!("task `{task}` of run {id} has no try {n}")))?;
    let text = try_log::text(&t);
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// Replays a task of the dead-letter store: clears it (and what is downstream) in its run, which
/// the server then runs again, and marks the entry replayed.
async fn replay(State(service): S, Path(id): Path<String>) -> Result<Json<Replayed>> {
    let id: i64 = id
        .parse()
        .map_err(|_| bad(format!("`{id}` is not a failed-task id (a number)")))?;
    let t = service
        .store
        .failed_task(id)?
        .ok_or_else(|| not_found(format!("no failed task {id}")))?;
    let p = find(&service, &t.pipeline)?;
    let run = service
        .store
        .find_run(&t.pipeline, t.logical_date)?
        .ok_or_else(|| not_found(format!("the run of failed task {id} no longer exists")))?;
    let specs = p
        .tasks_to_clear(std::slice::from_ref(&t.task), true)
        .map_err(|name| not_found(format!("`{}` no longer has a task `{name}`", p.id)))?;
    service.store.clear(run.id, &specs)?;
    // Not marked replayed here: the entry shows as replayed once the re-run succeeds.
    service.wake.notify_one();
    Ok(Json(Replayed {
        failed_task: id,
        run: run.id,
        cleared: names(&specs),
    }))
}

async fn openapi() -> Json<Value> {
    Json(document())
}

/// The OpenAPI 3.1 description of every route above.
pub fn document() -> Value {
    let error = json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let ok = |description: &str| json!({"description": description, "content": {"application/json": {"schema": {"type": "object"}}}});
    let path_param = |name: &str, description: &str| json!({"name": name, "in": "path", "required": true, "description": description, "schema": {"type": "string"}});
    let pipeline = path_param("pipeline", "pipeline id");
    let run = path_param("run", "run id (a number, the `id` of a run)");
    let task = path_param("task", "task id");
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Sluice", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Pipelines, runs and tries of a `sluice serve` project. Send `Authorization: Bearer <SLUICE_API_TOKEN>` when the server has a token. A request that changes something must be JSON (`Content-Type: application/json`) or carry `Authorization` or `X-Sluice-Request: 1`, and is refused (403) from another site; the `Host` must be an IP address, `localhost` or one of `serve.allowed_hosts`."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}}
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/openapi.json": {"get": {"summary": "This document", "responses": {"200": ok("the OpenAPI document")}}},
            "/api/pipelines": {"get": {"summary": "Every pipeline, with the problems of files that do not load (file, line, col, message, hint)",
                "responses": {"200": ok("pipelines and problems"), "401": error}}},
            "/api/pipelines/{pipeline}": {"get": {"summary": "One pipeline", "parameters": [pipeline],
                "responses": {"200": ok("the pipeline"), "401": error, "404": error}}},
            "/api/pipelines/{pipeline}/runs": {
                "get": {"summary": "The latest runs, newest first, with their tasks", "parameters": [pipeline,
                    {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0, "maximum": 1000}}],
                    "responses": {"200": ok("runs"), "400": error, "401": error, "404": error}},
                "post": {"summary": "Trigger a run for a logical date (it starts at once)", "parameters": [pipeline],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["date"], "additionalProperties": false,
                        "properties": {"date": {"type": "string", "format": "date"}}}}}},
                    "responses": {"201": ok("the new run"), "200": ok("the run already existed"), "400": error, "401": error, "404": error}}
            },
            "/api/pipelines/{pipeline}/pause": {"post": {"summary": "Stop scheduling new runs", "parameters": [pipeline],
                "responses": {"200": ok("paused"), "401": error, "404": error}}},
            "/api/pipelines/{pipeline}/unpause": {"post": {"summary": "Schedule again", "parameters": [pipeline],
                "responses": {"200": ok("unpaused"), "401": error, "404": error}}},
            "/api/pipelines/{pipeline}/backfills": {"post": {"summary": "Start a backfill: a run for every interval whose logical date is in [from, to], executed max_active_runs at a time; kept across restarts",
                "parameters": [pipeline],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["from", "to"], "additionalProperties": false,
                    "properties": {"from": {"type": "string", "format": "date"}, "to": {"type": "string", "format": "date"}}}}}},
                "responses": {"201": ok("the backfill with its progress"), "400": error, "401": error, "404": error}}},
            "/api/backfills": {"get": {"summary": "The latest backfills, newest first, with their progress (intervals done / failed / running / pending)",
                "parameters": [{"name": "limit", "in": "query", "required": false, "description": "how many (1–500, default 50)", "schema": {"type": "integer"}}],
                "responses": {"200": ok("backfills"), "401": error}}},
            "/api/backfills/{backfill}": {"get": {"summary": "One backfill's progress", "parameters": [path_param("backfill", "backfill id")],
                "responses": {"200": ok("the backfill"), "400": error, "401": error, "404": error}}},
            "/api/runs/{run}": {"get": {"summary": "A run with its tasks", "parameters": [run],
                "responses": {"200": ok("the run"), "400": error, "401": error, "404": error}}},
            "/api/runs/{run}/clear": {"post": {"summary": "Clear tasks (all when `tasks` is empty), optionally with their downstream tasks; the server runs them again", "parameters": [run],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "additionalProperties": false,
                    "properties": {"tasks": {"type": "array", "items": {"type": "string"}}, "downstream": {"type": "boolean"}}}}}},
                "responses": {"200": ok("what was cleared"), "400": error, "401": error, "404": error}}},
            "/api/failed-tasks/{id}/replay": {"post": {"summary": "Replay a task of the dead-letter store: clear it and its downstream tasks in its run (the server runs them again) and mark it replayed",
                "parameters": [path_param("id", "failed-task id (`sluice dlq list`)")],
                "responses": {"200": ok("what was cleared"), "400": error, "401": error, "404": error}}},
            "/api/runs/{run}/tasks/{task}/tries": {"get": {"summary": "A task's tries in a run", "parameters": [run, task],
                "responses": {"200": ok("tries"), "400": error, "401": error, "404": error}}},
            "/api/runs/{run}/tasks/{task}/tries/{try_number}/log": {"get": {"summary": "A try's log (secrets masked)",
                "parameters": [run, task, path_param("try_number", "try number, from 1")],
                "responses": {"200": {"description": "the log", "content": {"text/plain": {"schema": {"type": "string"}}}}, "400": error, "401": error, "404": error}}},
            "/api/audit": {"get": {"summary": "The audit log (admin): every change made through the server, newest first — who, from where, what, with which parameters (secrets masked), and the status",
                "parameters": [
                    {"name": "limit", "in": "query", "required": false, "description": "entries per page (1–1000, default 100)", "schema": {"type": "integer"}},
                    {"name": "before", "in": "query", "required": false, "description": "`next_before` of the previous page", "schema": {"type": "integer"}}],
                "responses": {"200": ok("entries, and next_before when there are more"), "400": error, "401": error, "403": error}}}
        }
    })
}
