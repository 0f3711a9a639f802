//! Pipeline files → validated pipelines.
//!
//! **Invariant:** a [`Pipeline`] that exists is valid: its tasks are in topological order, every
//! dependency names a task of the same pipeline, there is no cycle, every template parsed and
//! uses only variables that exist, and every task's kind accepted its configuration.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::decode::{Fields, valid_id};
use crate::diag::{Diagnostic, Diagnostics, did_you_mean};
use crate::schedule::{self, Schedule, Timetable};
use crate::settings::ProjectPaths;
use crate::state::{Backoff, RetryPolicy, TriggerRule};
use crate::task::{CompileContext, KindRegistry, TaskAction};
use crate::template::{self, TemplateContext};
use crate::yaml::{Node, Span, Value};

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub id: String,
    /// The file it was defined in, relative to the project.
    pub file: String,
    pub span: Span,
    pub description: Option<String>,
    pub timetable: Timetable,
    pub catchup: bool,
    pub tags: Vec<String>,
    pub params: serde_json::Value,
    pub sla: Option<Duration>,
    pub max_active_runs: u32,
    pub max_active_tasks: u32,
    /// Alert (`row_drop` route) when a task's rows fall below this share of its recent runs'
    /// median (`row_drop: 0.5` = a drop of more than half).
    pub row_drop: Option<f64>,
    /// The `for_each` entry this pipeline was generated from.
    pub item: Option<serde_json::Value>,
    /// In topological order: every task comes after its upstream tasks.
    pub tasks: Vec<Task>,
}

/// `alert: { failure: [ops], retry: [ops], recovery: [ops], sla_miss: [ops] }`: channel names
/// (from `alerts:` in sluice.yaml) per event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertRoutes {
    pub failure: Vec<String>,
    pub retry: Vec<String>,
    pub recovery: Vec<String>,
    pub sla_miss: Vec<String>,
    pub row_drop: Vec<String>,
}

impl AlertRoutes {
    pub fn channels(&self) -> impl Iterator<Item = &String> {
        self.failure
            .iter()
            .chain(&self.retry)
            .chain(&self.recovery)
            .chain(&self.sla_miss)
            .chain(&self.row_drop)
    }
}

#[derive(Debug, Clone)]
pub struct Task {
    pub id: String,
    pub span: Span,
    pub kind: &'static str,
    pub owner: Option<String>,
    pub description: Option<String>,
    /// Indices into `Pipeline::tasks`.
    pub upstream: Vec<usize>,
    pub downstream: Vec<usize>,
    pub retry: RetryPolicy,
    pub timeout: Option<Duration>,
    pub trigger_rule: TriggerRule,
    pub sla: Option<Duration>,
    /// Among ready tasks, higher first (Airflow's priority_weight); default 1.
    pub priority: i64,
    /// The pool whose slots this task takes (`pools:` in sluice.yaml).
    pub pool: Option<String>,
    /// The worker queue that runs this task when tries are handed to `sluice worker`s
    /// (Airflow's `queue`); workers listen on the queues they are given.
    pub queue: String,
    /// The task's definition as written (templates unrendered), for the dead-letter store.
    pub config: serde_json::Value,
    /// Which alert channels hear of this task's failures, retries and recoveries.
    pub alert: AlertRoutes,
    pub action: Arc<dyn TaskAction>,
}

impl Pipeline {
    pub fn task_index(&self, id: &str) -> Option<usize> {
        self.tasks.iter().position(|t| t.id == id)
    }

    /// What clearing `names` (every task when empty), and their downstream tasks when asked,
    /// resets: (task, retries it gets again), in pipeline order. `Err` names an unknown task.
    pub fn tasks_to_clear<'a>(
        &'a self,
        names: &'a [String],
        downstream: bool,
    ) -> Result<Vec<(&'a str, u32)>, &'a str> {
        let mut chosen: Vec<usize> = if names.is_empty() {
            (0..self.tasks.len()).collect()
        } else {
            names
                .iter()
                .map(|n| self.task_index(n).ok_or(n.as_str()))
                .collect::<Result<_, _>>()?
        };
        if downstream {
            chosen = chosen
                .iter()
                .flat_map(|&i| self.with_downstream(i))
                .collect();
        }
        chosen.sort_unstable();
        chosen.dedup();
        Ok(chosen
            .iter()
            .map(|&i| (self.tasks[i].id.as_str(), self.tasks[i].retry.retries))
            .collect())
    }

    /// `index` and every task downstream of it.
    pub fn with_downstream(&self, index: usize) -> Vec<usize> {
        let mut seen = vec![false; self.tasks.len()];
        let mut stack = vec![index];
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut seen[i], true) {
                stack.extend(&self.tasks[i].downstream);
            }
        }
        (0..self.tasks.len()).filter(|i| seen[*i]).collect()
    }

    /// Tasks without downstream tasks: they decide the run's outcome.
    pub fn leaves(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.tasks.len()).filter(|i| self.tasks[*i].downstream.is_empty())
    }
}

/// What one file yielded.
#[derive(Default)]
pub struct LoadedFile {
    pub pipelines: Vec<Pipeline>,
    /// Every pipeline id the file defines (also those with problems).
    pub ids: Vec<String>,
}

const PIPELINE_KEYS: &[&str] = &[
    "pipeline",
    "description",
    "schedule",
    "timezone",
    "start_date",
    "end_date",
    "catchup",
    "tags",
    "params",
    "defaults",
    "alert",
    "sla",
    "max_active_runs",
    "max_active_tasks",
    "row_drop",
    "for_each",
    "tasks",
];

/// The queue of tasks that name none, and of workers not told otherwise.
pub const DEFAULT_QUEUE: &str = "default";

/// Settings a task inherits from `defaults:`.
const INHERITED_KEYS: &[&str] = &[
    "owner",
    "retries",
    "retry_delay",
    "retry_backoff",
    "max_retry_delay",
    "timeout",
    "trigger_rule",
    "pool",
    "priority",
    "queue",
    "alert",
];

const TASK_KEYS: &[&str] = &["after", "description", "sla"];

/// What every pipeline of one file is decoded against.
struct FileScope<'a> {
    file: &'a str,
    paths: &'a ProjectPaths,
    kinds: &'a KindRegistry,
}

/// Decodes every pipeline a parsed file defines (several with `for_each`).
pub fn decode_file(
    file: &str,
    root: &Node,
    paths: &ProjectPaths,
    kinds: &KindRegistry,
    diags: &mut Diagnostics,
) -> LoadedFile {
    let Some(fields) = Fields::new(root, "a pipeline file", PIPELINE_KEYS, diags) else {
        return LoadedFile::default();
    };
    let Some(items) = for_each_items(&fields, diags) else {
        return LoadedFile::default();
    };
    let scope = FileScope { file, paths, kinds };
    let stem = std::path::Path::new(file)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = LoadedFile::default();
    for (n, item) in items.into_iter().enumerate() {
        let mut item_diags = Diagnostics::default();
        let id = pipeline_id(&fields, &stem, item.as_ref(), &mut item_diags);
        if let Some(id) = &id {
            if out.ids.contains(id) {
                let span = fields
                    .get("pipeline")
                    .map_or(root.span.clone(), |n| n.span.clone());
                item_diags.push(
                    Diagnostic::new(&span, format!("for_each entry {} generates the pipeline id `{id}` a second time", n + 1))
                        .hint("make the `pipeline:` template depend on a field that differs per entry, such as `{{ item.name }}`"),
                );
            } else {
                out.ids.push(id.clone());
            }
        }
        let generated = item.is_some();
        let pipeline =
            id.and_then(|id| decode_pipeline(&scope, &fields, root, id, item, &mut item_diags));
        // The same mistake would be reported once per generated entry: keep the first entry's.
        if !generated || item_diags.is_empty() || n == 0 || diags.is_empty() {
            diags.0.extend(item_diags.0);
        }
        if let Some(p) = pipeline {
            out.pipelines.push(p);
        }
    }
    out
}

/// One entry per pipeline to generate: the `for_each` entries, or `None` once for a plain file.
fn for_each_items(
    fields: &Fields<'_>,
    diags: &mut Diagnostics,
) -> Option<Vec<Option<serde_json::Value>>> {
    let Some(node) = fields.get("for_each") else {
        return Some(vec![None]);
    };
    match &node.value {
        Value::Seq(items) if !items.is_empty() => {
            Some(items.iter().map(|n| Some(n.to_json())).collect())
        }
        _ => {
            diags.push(
                Diagnostic::new(&node.span, "`for_each` must be a non-empty list")
                    .hint("list one entry per pipeline to generate; templates see it as `item`"),
            );
            None
        }
    }
}
fn pipeline_id(
    fields: &Fields<'_>,
    stem: &str,
    item: Option<&serde_json::Value>,
    diags: &mut Diagnostics,
) -> Option<String> {
    let Some(node) = fields.get("pipeline") else {
        if item.is_some() {
            diags.push(
                Diagnostic::new(
                    &fields.node.span,
                    "a `for_each` file needs a `pipeline:` id template",
                )
                .hint("for example `pipeline: \"etl_{{ item.name }}\"`"),
            );
            return None;
        }
        return valid_id(stem, &fields.node.span, "pipeline", diags).then(|| stem.to_string());
    };
    let Some(text) = node.scalar_text() else {
        diags.push(Diagnostic::new(
            &node.span,
            "`pipeline` must be a string id",
        ));
        return None;
    };
    let id = match item {
        Some(item) => {
            let env = template::environment();
            let rendered = env
                .template_from_str(&text)
                .and_then(|t| t.render(minijinja::context! { item => minijinja::Value::from(minijinja::value::Serde(item)) }));
            match rendered {
                Ok(s) => s,
                Err(e) => {
                    diags.push(
                        Diagnostic::new(
                            &node.content_span(),
                            format!("cannot render the pipeline id: {e}"),
                        )
                        .hint("the id template sees only `item`, the for_each entry"),
                    );
                    return None;
                }
            }
        }
        None => text,
    };
    valid_id(&id, &node.span, "pipeline", diags).then_some(id)
}

/// Task settings after `defaults:` were applied.
#[derive(Clone, Default)]
struct TaskSettings {
    owner: Option<String>,
    retry: RetryPolicy,
    timeout: Option<Duration>,
    trigger_rule: TriggerRule,
    priority: Option<i64>,
    pool: Option<String>,
    queue: Option<String>,
    alert: AlertRoutes,
}

/// `alert: { failure: [ops], … }` (a single name is a list of one).
fn read_alert(node: &Node, diags: &mut Diagnostics) -> Option<AlertRoutes> {
    let f = Fields::new(
        node,
        "`alert`",
        &["failure", "retry", "recovery", "sla_miss", "row_drop"],
        diags,
    )?;
    let list = |key: &str, diags: &mut Diagnostics| -> Vec<String> {
        f.string_list(key, diags)
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    };
    Some(AlertRoutes {
        failure: list("failure", diags),
        retry: list("retry", diags),
        recovery: list("recovery", diags),
        sla_miss: list("sla_miss", diags),
        row_drop: list("row_drop", diags),
    })
}

fn read_task_settings(
    fields: &Fields<'_>,
    base: &TaskSettings,
    diags: &mut Diagnostics,
) -> TaskSettings {
    let mut s = base.clone();
    if let Some(owner) = fields.string("owner", diags) {
        s.owner = Some(owner);
    }
    if let Some(pool) = fields.string("pool", diags) {
        s.pool = Some(pool);
    }
    if let Some(queue) = fields.string("queue", diags) {
        s.queue = Some(queue);
    }
    if let Some(node) = fields.get("alert")
        && let Some(routes) = read_alert(node, diags)
    {
        s.alert = routes;
    }
    if let Some(node) = fields.get("priority") {
        match node.value {
            Value::Int(n) => s.priority = Some(n),
            _ => diags.push(
                Diagnostic::new(&node.span, "`priority` must be a whole number")
                    .hint("higher runs first among ready tasks; the default is 1"),
            ),
        }
    }
    if let Some(r) = fields.uint("retries", diags) {
        s.retry.retries = r;
    }
    if let Some(d) = fields.duration("retry_delay", diags) {
        s.retry.delay = d;
    }
    if let Some(node) = fields.get("retry_backoff") {
        match node.as_str() {
            Some("exponential") => s.retry.backoff = Backoff::Exponential,
            Some("constant") | Some("fixed") => s.retry.backoff = Backoff::Constant,
            _ => diags.push(
                Diagnostic::new(
                    &node.span,
                    "`retry_backoff` must be `constant` or `exponential`",
                )
                .hint(
                    "exponential waits retry_delay × 2^(try−1), plus jitter, up to max_retry_delay",
                ),
            ),
        }
    }
    if let Some(d) = fields.duration("max_retry_delay", diags) {
        s.retry.max_delay = Some(d);
    }
    if let Some(d) = fields.duration("timeout", diags) {
        if d.is_zero() {
            diags.push(Diagnostic::new(
                &fields.get("timeout").expect("present").span,
                "`timeout` must be longer than 0s",
            ));
        } else {
            s.timeout = Some(d);
        }
    }
    if let Some(node) = fields.get("trigger_rule") {
        match node.as_str().and_then(TriggerRule::parse) {
            Some(rule) => s.trigger_rule = rule,
            None => {
                let given = node.scalar_text().unwrap_or_default();
                let hint = did_you_mean(&given, TriggerRule::NAMES)
                    .unwrap_or_else(|| format!("use one of: {}", TriggerRule::NAMES.join(", ")));
                diags.push(
                    Diagnostic::new(&node.span, format!("unknown trigger rule `{given}`"))
                        .hint(hint),
                );
            }
        }
    }
    s
}

fn decode_pipeline(
    scope: &FileScope<'_>,
    fields: &Fields<'_>,
    root: &Node,
    id: String,
    item: Option<serde_json::Value>,
    diags: &mut Diagnostics,
) -> Option<Pipeline> {
    let errors_before = diags.len();
    let description = fields.string("description", diags);
    let tz = timezone(fields, diags);
    let schedule = schedule(fields, diags);
    let (start, end) = dates(fields, root, &id, &schedule, &tz, diags);
    let catchup = fields.bool("catchup", diags).unwrap_or(false);
    let tags = fields
        .string_list("tags", diags)
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    let params = params(fields, diags);
    let sla = fields.duration("sla", diags);
    let max_active_runs = fields.uint("max_active_runs", diags).unwrap_or(16).max(1);
    let max_active_tasks = fields.uint("max_active_tasks", diags).unwrap_or(16).max(1);
    let row_drop = row_drop(fields, diags);
    let defaults = task_defaults(fields, diags);

    let tasks_node = fields.required("tasks", &format!("pipeline `{id}`"), diags);
    let tasks = tasks_node.and_then(|node| {
        let tasks = TaskScope {
            pipeline: &id,
            defaults: &defaults,
            params: &params,
            item: item.as_ref(),
            paths: scope.paths,
            kinds: scope.kinds,
        };
        decode_tasks(node, &tasks, diags)
    });

    if diags.len() > errors_before {
        return None;
    }
    Some(Pipeline {
        id,
        file: scope.file.to_string(),
        span: root.span.clone(),
        description,
        timetable: Timetable {
            schedule,
            tz,
            start,
            end,
        },
        catchup,
        tags,
        params,
        sla,
        max_active_runs,
        max_active_tasks,
        row_drop,
        item,
        tasks: tasks?,
    })
}

/// `timezone:`, UTC when absent or wrong.
fn timezone(fields: &Fields<'_>, diags: &mut Diagnostics) -> chrono_tz::Tz {
    let Some(node) = fields.get("timezone") else {
        return chrono_tz::UTC;
    };
    match node.as_str().map(schedule::parse_timezone) {
        Some(Ok(tz)) => tz,
        Some(Err(msg)) => {
            diags.push(
                Diagnostic::new(&node.span, msg)
                    .hint("use an IANA name such as UTC, Europe/Berlin or America/New_York"),
            );
            chrono_tz::UTC
        }
        None => {
            diags.push(Diagnostic::new(
                &node.span,
                "`timezone` must be a string such as Europe/Berlin",
            ));
            chrono_tz::UTC
        }
    }
}

/// `schedule:`, manual when absent or wrong.
fn schedule(fields: &Fields<'_>, diags: &mut Diagnostics) -> Schedule {
    let Some(node) = fields.get("schedule") else {
        return Schedule::Manual;
    };
    match node.scalar_text().map(|t| Schedule::parse(&t)) {
        Some(Ok(s)) => s,
        Some(Err(msg)) => {
            diags.push(Diagnostic::new(&node.content_span(), msg).hint(
                "write 5 fields (minute hour day-of-month month day-of-week), e.g. \"0 6 * * *\", or @hourly, @daily, @weekly, @monthly, @yearly, @once, none",
            ));
            Schedule::Manual
        }
        None => {
            diags.push(Diagnostic::new(
                &node.span,
                "`schedule` must be a cron expression or a preset",
            ));
            Schedule::Manual
        }
    }
}

/// `start_date:` and `end_date:` in the pipeline's time zone. A scheduled pipeline needs a
/// start; a manual one starts at the beginning of time.
fn dates(
    fields: &Fields<'_>,
    root: &Node,
    id: &str,
    schedule: &Schedule,
    tz: &chrono_tz::Tz,
    diags: &mut Diagnostics,
) -> (DateTime<Utc>, Option<DateTime<Utc>>) {
    let date_field = |key: &str, diags: &mut Diagnostics| -> Option<DateTime<Utc>> {
        let node = fields.get(key)?;
        let text = node.scalar_text()?;
        match schedule::parse_date_or_datetime(&text, tz) {
            Ok(t) => Some(t),
            Err(msg) => {
                diags.push(Diagnostic::new(
                    &node.content_span(),
                    format!("`{key}`: {msg}"),
                ));
                None
            }
        }
    };
    let start = date_field("start_date", diags);
    let end = date_field("end_date", diags);
    let start = match (start, schedule) {
        (Some(s), _) => s,
        (None, Schedule::Manual) => DateTime::<Utc>::MIN_UTC,
        (None, _) => {
            if fields.get("start_date").is_none() {
                diags.push(
                    Diagnostic::new(&root.span, format!("pipeline `{id}` has a schedule but no `start_date`"))
                        .hint("add `start_date: 2024-01-01`: runs are created for intervals from that date"),
                );
            }
            DateTime::<Utc>::MIN_UTC
        }
    };
    if let (Some(end), Some(node)) = (end, fields.get("end_date"))
        && end < start
    {
        diags.push(Diagnostic::new(
            &node.span,
            "`end_date` is before `start_date`",
        ));
    }
    (start, end)
}

/// `params:`, a mapping (empty when absent).
fn params(fields: &Fields<'_>, diags: &mut Diagnostics) -> serde_json::Value {
    match fields.get("params") {
        None => serde_json::Value::Object(Default::default()),
        Some(node) if matches!(node.value, Value::Map(_)) => node.to_json(),
        Some(node) => {
            diags.push(Diagnostic::new(
                &node.span,
                "`params` must be a mapping of names to values",
            ));
            serde_json::Value::Object(Default::default())
        }
    }
}

/// `row_drop:`, a share strictly between 0 and 1.
fn row_drop(fields: &Fields<'_>, diags: &mut Diagnostics) -> Option<f64> {
    fields.get("row_drop").and_then(|node| match node.value {
        Value::Float(f) if (0.0..1.0).contains(&f) && f > 0.0 => Some(f),
        _ => {
            diags.push(
                Diagnostic::new(&node.span, "`row_drop` must be a share between 0 and 1")
                    .hint("e.g. `row_drop: 0.5` alerts when a task's rows fall below half of their recent median"),
            );
            None
        }
    })
}

/// What every task of the pipeline inherits: the pipeline's `alert:`, then `defaults:`.
fn task_defaults(fields: &Fields<'_>, diags: &mut Diagnostics) -> TaskSettings {
    let mut defaults = TaskSettings::default();
    // A pipeline's `alert:` is every task's unless the task says otherwise.
    if let Some(node) = fields.get("alert")
        && let Some(routes) = read_alert(node, diags)
    {
        defaults.alert = routes;
    }
    if let Some(node) = fields.get("defaults")
        && let Some(df) = Fields::new(node, "`defaults`", INHERITED_KEYS, diags)
    {
        defaults = read_task_settings(&df, &defaults, diags);
    }
    defaults
}

/// What the tasks of one pipeline are decoded against.
struct TaskScope<'a> {
    pipeline: &'a str,
    defaults: &'a TaskSettings,
    params: &'a serde_json::Value,
    item: Option<&'a serde_json::Value>,
    paths: &'a ProjectPaths,
    kinds: &'a KindRegistry,
}

struct RawTask<'a> {
    id: String,
    key_span: Span,
    after: Vec<(String, &'a Node)>,
    task: Option<Task>,
}

/// `tasks:` → the pipeline's tasks in topological order, or None (with diagnostics).
fn decode_tasks(node: &Node, scope: &TaskScope<'_>, diags: &mut Diagnostics) -> Option<Vec<Task>> {
    let entries = task_entries(node, diags)?;
    let kind_names: Vec<&'static str> = scope.kinds.names().collect();
    let mut allowed: Vec<&str> = TASK_KEYS.to_vec();
    allowed.extend(INHERITED_KEYS);
    allowed.extend(&kind_names);

    let mut raw: Vec<RawTask<'_>> = Vec::new();
    for (key, body) in entries {
        let Some(task_id) = key.scalar_text() else {
            diags.push(Diagnostic::new(&key.span, "task ids must be strings"));
            continue;
        };
        if !valid_id(&task_id, &key.span, "task", diags) {
            continue;
        }
        if raw.iter().any(|r| r.id == task_id) {
            diags.push(Diagnostic::new(
                &key.span,
                format!("task `{task_id}` is defined twice"),
            ));
            continue;
        }
        let what = format!("task `{task_id}`");
        let Some(tf) = Fields::new(body, &what, &allowed, diags) else {
            continue;
        };
        let settings = read_task_settings(&tf, scope.defaults, diags);
        let after = tf.string_list("after", diags);
        let description = tf.string("description", diags);
        let sla = tf.duration("sla", diags);
        let Some(kind) = task_kind(&tf, key, &what, &kind_names, diags) else {
            continue;
        };
        let sample = TemplateContext::sample(
            scope.pipeline,
            &task_id,
            scope.params.clone(),
            scope.item.cloned(),
        )
        .with_project(scope.paths);
        let config = tf.get(kind).expect("chosen kinds are present");
        let mut cx = CompileContext {
            project: scope.paths,
            pipeline: scope.pipeline,
            task: &task_id,
            sample: &sample,
            tasks: entries,
            diags,
        };
        let action = scope
            .kinds
            .get(kind)
            .and_then(|k| k.compile(config, &mut cx));
        raw.push(RawTask {
            id: task_id.clone(),
            key_span: key.span.clone(),
            after,
            task: action.map(|action| Task {
                id: task_id,
                span: key.span.clone(),
                kind,
                owner: settings.owner,
                description,
                upstream: Vec::new(),
                downstream: Vec::new(),
                retry: settings.retry,
                timeout: settings.timeout,
                trigger_rule: settings.trigger_rule,
                sla,
                priority: settings.priority.unwrap_or(1),
                pool: settings.pool,
                queue: settings.queue.unwrap_or_else(|| DEFAULT_QUEUE.to_string()),
                config: body.to_json(),
                alert: settings.alert,
                action,
            }),
        });
    }
    let upstream = upstream_indices(&raw, diags)?;
    in_topological_order(raw, &upstream, diags)
}

/// The `(id, body)` entries of `tasks:`: a mapping with at least one task.
fn task_entries<'a>(node: &'a Node, diags: &mut Diagnostics) -> Option<&'a [(Node, Node)]> {
    let Value::Map(entries) = &node.value else {
        diags.push(
            Diagnostic::new(
                &node.span,
                format!(
                    "`tasks` must be a mapping of task ids to tasks, found {}",
                    node.kind_name()
                ),
            )
            .hint("write `tasks:` followed by indented `task_id: { ... }` entries"),
        );
        return None;
    };
    if entries.is_empty() {
        diags.push(Diagnostic::new(
            &node.span,
            "a pipeline needs at least one task",
        ));
        return None;
    }
    Some(entries)
}

/// The one kind of work a task names (`sql:`, `shell:`, …).
fn task_kind(
    tf: &Fields<'_>,
    key: &Node,
    what: &str,
    kind_names: &[&'static str],
    diags: &mut Diagnostics,
) -> Option<&'static str> {
    let chosen: Vec<(&'static str, &Node)> = tf
        .keys()
        .filter_map(|(k, node)| Some((*kind_names.iter().find(|n| **n == k)?, node)))
        .collect();
    match chosen.as_slice() {
        [(name, _)] => Some(name),
        [] => {
            diags.push(
                Diagnostic::new(&key.span, format!("{what} says what to do with none of: {}", kind_names.join(", ")))
                    .hint("add one of them, e.g. `sql: { file: sql/transform.sql }` or `shell: { command: \"echo {{ ds }}\" }`"),
            );
            None
        }
        [(first, _), (second, second_node), ..] => {
            diags.push(
                Diagnostic::new(
                    &second_node.span,
                    format!("{what} has two kinds of work (`{first}` and `{second}`)"),
                )
                .hint("split it into two tasks, the second with `after: [...]`"),
            );
            None
        }
    }
}

/// Each task's `after:` as indices into `raw`; None when one names itself or an unknown task.
fn upstream_indices(raw: &[RawTask<'_>], diags: &mut Diagnostics) -> Option<Vec<Vec<usize>>> {
    let index: HashMap<&str, usize> = raw
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let mut upstream: Vec<Vec<usize>> = vec![Vec::new(); raw.len()];
    let mut deps_ok = true;
    for (i, r) in raw.iter().enumerate() {
        let mut seen = HashSet::new();
        for (dep, dep_node) in &r.after {
            match index.get(dep.as_str()) {
                Some(&j) if j == i => {
                    deps_ok = false;
                    diags.push(Diagnostic::new(
                        &dep_node.span,
                        format!("task `{}` depends on itself", r.id),
                    ));
                }
                Some(&j) => {
                    if seen.insert(j) {
                        upstream[i].push(j);
                    }
                }
                None => {
                    deps_ok = false;
                    let hint =
                        did_you_mean(dep, raw.iter().map(|r| r.id.as_str())).unwrap_or_else(|| {
                            format!(
                                "tasks in this pipeline: {}",
                                raw.iter()
                                    .map(|r| r.id.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        });
                    diags.push(
                        Diagnostic::new(
                            &dep_node.span,
                            format!("task `{}` depends on unknown task `{dep}`", r.id),
                        )
                        .hint(hint),
                    );
                }
            }
        }
    }
    deps_ok.then_some(upstream)
}

/// The tasks renumbered into topological order, with both directions of every edge; None
/// (with the cycle reported) when there is no such order, or when a task did not compile.
fn in_topological_order(
    raw: Vec<RawTask<'_>>,
    upstream: &[Vec<usize>],
    diags: &mut Diagnostics,
) -> Option<Vec<Task>> {
    let order = match topological_order(upstream) {
        Ok(order) => order,
        Err(cycle) => {
            let path: Vec<&str> = cycle.iter().map(|&i| raw[i].id.as_str()).collect();
            diags.push(
                Diagnostic::new(
                    &raw[cycle[0]].key_span,
                    format!("dependency cycle: {}", path.join(" -> ")),
                )
                .hint(
                    "a pipeline is a directed acyclic graph: remove one of these `after:` entries",
                ),
            );
            return None;
        }
    };
    if raw.iter().any(|r| r.task.is_none()) {
        return None;
    }
    let mut position = vec![0usize; raw.len()];
    for (new, &old) in order.iter().enumerate() {
        position[old] = new;
    }
    let mut tasks: Vec<Option<Task>> = raw.into_iter().map(|r| r.task).collect();
    let mut ordered: Vec<Task> = order
        .iter()
        .map(|&old| tasks[old].take().expect("each once"))
        .collect();
    for (old, ups) in upstream.iter().enumerate() {
        let new = position[old];
        for &u in ups {
            ordered[new].upstream.push(position[u]);
            ordered[position[u]].downstream.push(new);
        }
    }
    Some(ordered)
}
/// Kahn's algorithm; on a cycle, returns the cycle's path (first node repeated at the end).
fn topological_order(upstream: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    let n = upstream.len();
    let mut downstream = vec![Vec::new(); n];
    let mut pending: Vec<usize> = upstream.iter().map(Vec::len).collect();
    for (i, ups) in upstream.iter().enumerate() {
        for &u in ups {
            downstream[u].push(i);
        }
    }
    let mut ready: Vec<usize> = (0..n).filter(|&i| pending[i] == 0).rev().collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop() {
        order.push(i);
        for &d in downstream[i].iter().rev() {
            pending[d] -= 1;
            if pending[d] == 0 {
                ready.push(d);
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Walk upstream edges among the unfinished nodes until one repeats: that is a cycle.
    let start = (0..n).find(|&i| pending[i] > 0).expect("a node is left");
    let mut path = vec![start];
    let mut at = start;
    loop {
        let next = *upstream[at]
            .iter()
            .find(|&&u| pending[u] > 0)
            .expect("an unfinished node has an unfinished upstream");
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut cycle: Vec<usize> = path[pos..].to_vec();
            // `path` follows upstream edges; a cycle reads better downstream.
            cycle.reverse();
            cycle.push(cycle[0]);
            return Err(cycle);
        }
        path.push(next);
        at = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topological_order_and_cycles() {
        // 0 <- 1 <- 2, 0 <- 2
        assert_eq!(
            topological_order(&[vec![], vec![0], vec![1, 0]]).unwrap(),
            vec![0, 1, 2]
        );
        // a -> b -> c -> a
        let cycle = topological_order(&[vec![2], vec![0], vec![1]]).unwrap_err();
        assert_eq!(cycle.len(), 4);
        assert_eq!(cycle.first(), cycle.last());
    }
}
