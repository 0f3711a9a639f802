//! `load`: lake files (Parquet, CSV, JSON) into a DuckDB or PostgreSQL table, in one
//! transaction, so that running it twice leaves the same rows and a failure leaves the table as
//! it was.
//!
//! ```yaml
//! load_to_staging:
//!   load:
//!     from: lake://orders/{{ ds }}/data.parquet   # or { task: extract_orders }: that extract's output
//!     into: staging.orders                   # or { connection: analytics_pg, table: staging.orders }
//!     mode: replace_partition                # append | replace | replace_partition | merge
//!     partition: { column: order_date, value: "{{ ds }}" }
//!     schema_evolution: add_columns          # fail (default) | add_columns | ignore_extra
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use sluice_core::connections::{Connections, WAREHOUSE};
use sluice_core::decode::Fields;
use sluice_core::task::CompileContext;
use sluice_core::yaml::{Node, Value};
use sluice_core::{Diagnostic, TaskAction, TaskError, TaskKind, TaskOutput, TaskRun};
use sluice_io::bad::BadRecords;
use sluice_io::files::{self, FileRead, Format};
use sluice_io::load::LoadMode;
use sluice_io::schema::{self, Policy};
use sluice_warehouse::Warehouses;

use crate::duck::{self, DuckLoad};
use crate::io::{self, Endpoint, FILE_KEYS, FilesSource, LakeHandle, task_error};

pub struct LoadKind {
    pub connections: Connections,
    pub default_warehouse: PathBuf,
    pub warehouses: Arc<Warehouses>,
    pub lake: LakeHandle,
}

#[derive(Debug)]
struct LoadAction {
    source: FilesSource,
    target: Endpoint,
    schema: String,
    table: String,
    /// `replace_partition` values are templates, rendered for each run.
    mode: LoadMode,
    policy: Policy,
    max_bad_records: u64,
    lake: LakeHandle,
    warehouses: Arc<Warehouses>,
}

const KEYS: &[&str] = &[
    "from",
    "into",
    "mode",
    "partition",
    "keys",
    "schema_evolution",
    "max_bad_records",
];

impl TaskKind for LoadKind {
    fn name(&self) -> &'static str {
        "load"
    }

    fn compile(&self, config: &Node, cx: &mut CompileContext<'_>) -> Option<Arc<dyn TaskAction>> {
        let fields = Fields::new(config, "`load`", KEYS, cx.diags)?;
        let from = fields.required("from", "`load`", cx.diags)?;
        // A wrong source is reported and the other fields are still checked.
        let source = files_source(from, cx)?;
        let into = fields.required("into", "`load`", cx.diags)?;
        let (target, schema, table) = self.target_table(into, cx)?;
        let mode = load_mode(&fields, config, cx)?;
        let policy = schema_evolution(&fields, cx)?;
        let max_bad_records = u64::from(fields.uint("max_bad_records", cx.diags).unwrap_or(0));
        Some(Arc::new(LoadAction {
            source: source?,
            target,
            schema,
            table,
            mode,
            policy,
            max_bad_records,
            lake: self.lake.clone(),
            warehouses: self.warehouses.clone(),
        }))
    }
}

impl LoadKind {
    /// `into`: the warehouse's table, or `{ connection, table }`; with the schema and table
    /// names (the target's default schema when the name has none).
    fn target_table(
        &self,
        into: &Node,
        cx: &mut CompileContext<'_>,
    ) -> Option<(Endpoint, String, String)> {
        let (target, table_name) = match &into.value {
            Value::Map(_) => {
                let f = Fields::new(into, "`into`", &["connection", "table"], cx.diags)?;
                let conn = f.required("connection", "`into`", cx.diags)?;
                let table = f
                    .required("table", "`into`", cx.diags)?
                    .scalar_text()
                    .unwrap_or_default();
                (
                    io::endpoint(&self.connections, &self.default_warehouse, conn, cx)?,
                    table,
                )
            }
            _ => (
                io::warehouse(&self.connections, &self.default_warehouse, &cx.project.root),
                into.scalar_text().unwrap_or_default(),
            ),
        };
        let Some(default_schema) = target.default_schema() else {
            cx.diags.push(
                Diagnostic::new(
                    &into.span,
                    format!("cannot load into {}", target.describe()),
                )
                .hint(format!(
                    "load into `{WAREHOUSE}`, a duckdb://, postgres:// or mysql:// connection \
                     (a mysql:// one names its database, or write `database.table`)"
                )),
            );
            return None;
        };
        if table_name.is_empty() || table_name.split('.').count() > 2 {
            cx.diags.push(
                Diagnostic::new(&into.span, format!("`{table_name}` is not a table name"))
                    .hint("write `table` or `schema.table`"),
            );
            return None;
        }
        let (schema, table) = io::split_table(&table_name, &default_schema);
        Some((target, schema, table))
    }
}

/// `from`: a lake path, `{ task: … }` (an upstream task's output) or `{ files: …, format: … }`.
/// None stops the compilation; Some(None) is a source found wrong (and said so) while the
/// other fields are still checked.
fn files_source(from: &Node, cx: &mut CompileContext<'_>) -> Option<Option<FilesSource>> {
    if let Some(text) = from.as_str() {
        let text = text.to_string();
        let ok = cx.check_template(from, &text);
        if Format::from_name(&text).is_none() {
            cx.diags.push(
                Diagnostic::new(
                    &from.content_span(),
                    format!("cannot tell the format of `{text}` from its extension"),
                )
                .hint("write `from: { files: …, format: csv }`"),
            );
            return None;
        }
        Some(ok.then_some(FilesSource {
            path: text,
            format: None,
            schema: None,
        }))
    } else if let Some(task) = from_task(from) {
        Some(upstream_extract(&task, from, cx))
    } else {
        let f = Fields::new(from, "`from`", FILE_KEYS, cx.diags)?;
        let path = f.required("files", "`from`", cx.diags)?;
        Some(io::files_source(&f, path, cx))
    }
}

/// `mode`, with what it needs: `partition` for replace_partition, `keys` for merge.
fn load_mode(fields: &Fields<'_>, config: &Node, cx: &mut CompileContext<'_>) -> Option<LoadMode> {
    let mode = fields
        .get("mode")
        .and_then(|node| Some((node, node.scalar_text()?)));
    let Some((mode_node, name)) = mode else {
        cx.diags.push(
            Diagnostic::new(&config.span, "`load` needs `mode`")
                .hint("append, replace, replace_partition or merge: say how a rerun treats the rows already loaded"),
        );
        return None;
    };
    match name.as_str() {
        "append" => Some(LoadMode::Append),
        "replace" => Some(LoadMode::Replace),
        "replace_partition" => replace_partition(fields, mode_node, cx),
        "merge" => {
            let keys: Vec<String> = fields
                .string_list("keys", cx.diags)
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            if keys.is_empty() {
                cx.diags.push(
                    Diagnostic::new(
                        &mode_node.span,
                        "merge needs `keys`, the columns that identify a row",
                    )
                    .hint("e.g. `keys: [order_id]`"),
                );
                return None;
            }
            Some(LoadMode::Merge { keys })
        }
        other => {
            let hint = sluice_core::diag::did_you_mean(other, LoadMode::NAMES.iter().copied())
                .unwrap_or_else(|| format!("use one of {}", LoadMode::NAMES.join(", ")));
            cx.diags.push(
                Diagnostic::new(&mode_node.span, format!("unknown load mode `{other}`")).hint(hint),
            );
            None
        }
    }
}

/// `mode: replace_partition` with its `partition: { column, value | values }` (templates).
fn replace_partition(
    fields: &Fields<'_>,
    mode_node: &Node,
    cx: &mut CompileContext<'_>,
) -> Option<LoadMode> {
    let Some(p) = fields.get("partition") else {
        cx.diags.push(
            Diagnostic::new(&mode_node.span, "replace_partition needs `partition`")
                .hint("e.g. `partition: { column: order_date, value: \"{{ ds }}\" }`"),
        );
        return None;
    };
    let pf = Fields::new(p, "`partition`", &["column", "value", "values"], cx.diags)?;
    let column = pf
        .required("column", "`partition`", cx.diags)?
        .scalar_text()
        .unwrap_or_default();
    let mut values: Vec<(String, &Node)> = pf.string_list("values", cx.diags);
    if let Some(v) = pf.get("value") {
        values.push((v.scalar_text().unwrap_or_default(), v));
    }
    if values.is_empty() {
        cx.diags.push(Diagnostic::new(
            &p.span,
            "`partition` needs `value` or `values`",
        ));
        return None;
    }
    let mut ok = true;
    for (text, node) in &values {
        ok &= cx.check_template(node, text);
    }
    if !ok {
        return None;
    }
    Some(LoadMode::ReplacePartition {
        column,
        values: values.into_iter().map(|(t, _)| t).collect(),
    })
}

/// `schema_evolution`: what a load does with columns the table lacks (fail by default).
fn schema_evolution(fields: &Fields<'_>, cx: &mut CompileContext<'_>) -> Option<Policy> {
    let Some(n) = fields.get("schema_evolution") else {
        return Some(Policy::Fail);
    };
    let name = n.scalar_text().unwrap_or_default();
    let policy = Policy::parse(&name);
    if policy.is_none() {
        cx.diags.push(
            Diagnostic::new(&n.span, format!("unknown schema_evolution `{name}`"))
                .hint(format!("use one of {}", Policy::NAMES.join(", "))),
        );
    }
    policy
}

/// `from: { task: extract_orders }`: the name of the upstream extract, when that is the form.
pub(crate) fn from_task(from: &Node) -> Option<String> {
    match &from.value {
        Value::Map(entries) if entries.len() == 1 && entries[0].0.as_str() == Some("task") => {
            Some(entries[0].1.scalar_text().unwrap_or_default())
        }
        _ => None,
    }
}

/// The `after` list of a task as written.
/// The columns of a DuckDB, PostgreSQL or MySQL table, or `None` when it does not exist.
async fn table_fields(
    target: &Endpoint,
    warehouses: &Warehouses,
    schema: &str,
    table: &str,
) -> Result<Option<Vec<sluice_io::arrow::datatypes::Field>>, sluice_io::IoError> {
    match target {
        Endpoint::DuckDb { path, .. } => {
            duck::table_fields(warehouses.get(path), schema.into(), table.into()).await
        }
        Endpoint::Postgres(c) => {
            let client = sluice_io::postgres::connect(c.expose_uri()).await?;
            sluice_io::postgres::table_fields(&client, schema, table).await
        }
        Endpoint::MySql(c) => {
            let (mut conn, _) = sluice_io::mysql::connect(c.expose_uri()).await?;
            let fields = sluice_io::mysql_load::table_fields(&mut conn, schema, table).await;
            let _ = sluice_io::mysql::disconnect(conn).await;
            fields
        }
        other => Err(sluice_io::IoError::invalid(format!(
            "{} tables cannot be written here; use DuckDB, PostgreSQL or MySQL/MariaDB",
            other.describe()
        ))),
    }
}

/// Loads a stream of batches into a DuckDB, PostgreSQL or MySQL table in one transaction, adding the
/// columns the table lacks.
pub(crate) async fn load_batches(
    target: &Endpoint,
    warehouses: &Warehouses,
    (schema, table): (&str, &str),
    incoming: &sluice_io::arrow::datatypes::Schema,
    mode: LoadMode,
    stream: sluice_io::BatchStream,
) -> Result<u64, sluice_io::IoError> {
    let existing = table_fields(target, warehouses, schema, table).await?;
    let shown = format!("{schema}.{table}");
    let plan = schema::plan(existing.as_deref(), incoming, Policy::AddColumns, &shown)?;
    match target {
        Endpoint::DuckDb { path, .. } => {
            let spec = DuckLoad {
                schema: schema.into(),
                table: table.into(),
                plan,
                mode,
                incoming: incoming.fields().iter().map(|f| f.name().clone()).collect(),
            };
            duck::load(warehouses.get(path), spec, None, stream).await
        }
        Endpoint::Postgres(c) => {
            sluice_io::load::load_postgres(c.expose_uri(), schema, table, &plan, &mode, stream)
                .await
        }
        Endpoint::MySql(c) => {
            let best = sluice_io::mysql_load::Transfer::Best;
            sluice_io::mysql_load::load_mysql(
                c.expose_uri(),
                (schema, table),
                &plan,
                &mode,
                stream,
                best,
            )
            .await
        }
        _ => unreachable!("table_fields refused it"),
    }
}

fn after_of(cx: &CompileContext<'_>, task: &str) -> Vec<String> {
    match cx.task_key(task, "after").map(|n| &n.value) {
        Some(Value::Seq(items)) => items.iter().filter_map(Node::scalar_text).collect(),
        Some(Value::Str { text, .. }) => vec![text.clone()],
        _ => Vec::new(),
    }
}

/// Whether `task` runs after `upstream`, directly or through other tasks.
fn runs_after(cx: &CompileContext<'_>, task: &str, upstream: &str) -> bool {
    let mut seen = std::collections::HashSet::new();
    let mut todo = after_of(cx, task);
    while let Some(t) = todo.pop() {
        if t == upstream {
            return true;
        }
        if seen.insert(t.clone()) {
            todo.extend(after_of(cx, &t));
        }
    }
    false
}

/// The Parquet file an upstream task writes: an `extract`'s `to`, or a `validate`'s `output`
/// (the rows that passed), rendered in this task's run.
pub(crate) fn upstream_extract(
    task: &str,
    from: &Node,
    cx: &mut CompileContext<'_>,
) -> Option<FilesSource> {
    let body = [("extract", "to"), ("validate", "output")]
        .into_iter()
        .find_map(|(kind, key)| cx.task_key(task, kind).map(|body| (body, key)));
    let Some((body, key)) = body else {
        let message = if cx.task_ids().any(|t| t == task) {
            format!(
                "`{task}` is not an extract or validate task; `from: {{ task: … }}` names one of those"
            )
        } else {
            format!("no task `{task}` in this pipeline")
        };
        let hint = sluice_core::diag::did_you_mean(
            task,
            cx.task_ids().collect::<Vec<_>>().iter().map(String::as_str),
        )
        .unwrap_or_else(|| "name the extract whose output this task reads".into());
        cx.diags
            .push(Diagnostic::new(&from.span, message).hint(hint));
        return None;
    };
    if !runs_after(cx, cx.task, task) {
        cx.diags.push(
            Diagnostic::new(
                &from.span,
                format!("this task reads `{task}`'s output but does not run after it"),
            )
            .hint(format!("add `after: [{task}]` to this task")),
        );
        return None;
    }
    let path = match &body.value {
        Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .and_then(|(_, v)| v.as_str()),
        _ => None,
    };
    let Some(path) = path else {
        cx.diags.push(
            Diagnostic::new(&from.span, format!("`{task}` has no `{key}` to read"))
                .hint(format!("give `{task}` an `{key}:` lake path")),
        );
        return None;
    };
    Some(FilesSource {
        path: path.to_string(),
        format: Some(Format::Parquet),
        schema: None,
    })
}

impl TaskAction for LoadAction {
    fn lineage(
        &self,
        template: Option<&sluice_core::template::TemplateContext>,
    ) -> sluice_core::Lineage {
        use crate::lineage::{fields_of, lake_dataset, rendered, table_dataset};
        let mut lineage = sluice_core::Lineage::default();
        if let Some(input) = lake_dataset(&self.lake, &rendered(&self.source.path, template)) {
            if let Some(schema) = &self.source.schema {
                lineage.fields.insert(input.clone(), fields_of(schema));
            }
            lineage = lineage.input(input);
        }
        if let Some(out) = table_dataset(&self.target, &format!("{}.{}", self.schema, self.table)) {
            lineage = lineage.output(out);
        }
        lineage
    }

    fn run<'a>(&'a self, run: &'a TaskRun) -> BoxFuture<'a, Result<TaskOutput, TaskError>> {
        Box::pin(io::until_cancelled(
            run,
            "the load was interrupted; the table is unchanged",
            self.load(run),
        ))
    }
}

impl LoadAction {
    fn shown_target(&self) -> String {
        let system = match &self.target {
            Endpoint::DuckDb { name, .. } => name.clone(),
            Endpoint::Postgres(c) | Endpoint::MySql(c) => c.name.clone(),
            _ => String::new(),
        };
        format!("{system}:{}.{}", self.schema, self.table)
    }

    async fn load(&self, run: &TaskRun) -> Result<TaskOutput, TaskError> {
        let lake = io::lake(&self.lake)?;
        let files = io::resolve_files(run, lake, &self.source).await?;
        let format = io::format_of(&self.source, &files[0].shown)?;
        let shown_target = self.shown_target();
        run.log.line(format!(
            "loading {} file(s) into {shown_target}: {}",
            files.len(),
            files
                .iter()
                .map(|f| f.shown.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        // DuckDB scans local Parquet files itself, its fastest path; everything else arrives
        // as batches.
        let parquet: Option<Vec<PathBuf>> = if format == Format::Parquet {
            files.iter().map(|f| f.local.clone()).collect()
        } else {
            None
        };
        let bad = Arc::new(BadRecords::new(run.ledger.clone(), self.max_bad_records));
        let (incoming, stream) = files::read(
            files,
            FileRead {
                format,
                schema: self.source.schema.clone(),
                bad: bad.clone(),
            },
        )
        .await
        .map_err(task_error)?;

        let existing = table_fields(&self.target, &self.warehouses, &self.schema, &self.table)
            .await
            .map_err(task_error)?;
        let plan = schema::plan(existing.as_deref(), &incoming, self.policy, &shown_target)
            .map_err(task_error)?;
        let mode = self.rendered_mode(run)?;
        needed_columns(&mode, &plan, &incoming)?;
        let incoming_columns: Vec<String> =
            incoming.fields().iter().map(|f| f.name().clone()).collect();
        let (_, stream) =
            sluice_io::load::project(&incoming, &plan.insert, stream).map_err(task_error)?;
        let rows = self
            .write_table(&plan, mode, incoming_columns, parquet, stream)
            .await;
        // Bad records are kept whether the load succeeded or not.
        let flushed = bad.flush();
        let rows = rows.map_err(|e| {
            run.log.line("rolled back: the table is unchanged");
            task_error(e)
        })?;
        flushed.map_err(task_error)?;
        self.record_schema_changes(run, &plan, &incoming)?;
        if bad.seen() > 0 {
            run.log.line(format!(
                "{} bad record(s) went to the dead-letter store (`sluice dlq list`)",
                bad.seen()
            ));
        }
        run.log
            .line(format!("loaded {rows} rows into {shown_target}; committed"));
        Ok(TaskOutput {
            rows: Some(rows),
            ..Default::default()
        })
    }

    /// The mode with this run's partition values rendered.
    fn rendered_mode(&self, run: &TaskRun) -> Result<LoadMode, TaskError> {
        Ok(match &self.mode {
            LoadMode::ReplacePartition { column, values } => LoadMode::ReplacePartition {
                column: column.clone(),
                values: values
                    .iter()
                    .map(|v| run.render(v))
                    .collect::<Result<_, _>>()?,
            },
            other => other.clone(),
        })
    }

    /// Writes the loaded columns into the table in one transaction; the rows written.
    async fn write_table(
        &self,
        plan: &schema::Plan,
        mode: LoadMode,
        incoming_columns: Vec<String>,
        parquet: Option<Vec<PathBuf>>,
        stream: sluice_io::BatchStream,
    ) -> Result<u64, sluice_io::IoError> {
        match &self.target {
            Endpoint::DuckDb { path, .. } => {
                let spec = DuckLoad {
                    schema: self.schema.clone(),
                    table: self.table.clone(),
                    plan: plan.clone(),
                    mode,
                    incoming: incoming_columns,
                };
                duck::load(self.warehouses.get(path), spec, parquet, stream).await
            }
            Endpoint::Postgres(c) => {
                sluice_io::load::load_postgres(
                    c.expose_uri(),
                    &self.schema,
                    &self.table,
                    plan,
                    &mode,
                    stream,
                )
                .await
            }
            Endpoint::MySql(c) => {
                sluice_io::mysql_load::load_mysql(
                    c.expose_uri(),
                    (&self.schema, &self.table),
                    plan,
                    &mode,
                    stream,
                    sluice_io::mysql_load::Transfer::Best,
                )
                .await
            }
            _ => unreachable!("checked at compile time"),
        }
    }

    /// Logs a created table and each column added or changed, and records the changes in the
    /// ledger.
    fn record_schema_changes(
        &self,
        run: &TaskRun,
        plan: &schema::Plan,
        incoming: &sluice_io::arrow::datatypes::Schema,
    ) -> Result<(), TaskError> {
        let shown_target = self.shown_target();
        let type_of = |dt: &sluice_io::arrow::datatypes::DataType| match &self.target {
            Endpoint::Postgres(_) => {
                sluice_io::postgres::pg_type(dt).unwrap_or_else(|_| dt.to_string())
            }
            Endpoint::MySql(_) => {
                sluice_io::mysql_load::mysql_type(dt, false).unwrap_or_else(|_| dt.to_string())
            }
            _ => sluice_warehouse::load::duck_type(dt).unwrap_or_else(|_| dt.to_string()),
        };
        let changes = plan.changes(&shown_target, type_of);
        if plan.create.is_some() {
            run.log.line(format!(
                "created {shown_target} ({})",
                files::describe(incoming)
            ));
        }
        for c in &changes {
            run.log.line(format!(
                "schema change on {shown_target}: {} `{}` {}{}",
                c.change,
                c.column,
                c.from_type
                    .as_ref()
                    .map(|f| format!("{f} → "))
                    .unwrap_or_default(),
                c.to_type
            ));
        }
        if !changes.is_empty() {
            run.ledger
                .schema_changes(&changes)
                .map_err(TaskError::failed)?;
        }
        Ok(())
    }
}

/// Checks that the columns a replace_partition or merge load needs are among those loaded.
fn needed_columns(
    mode: &LoadMode,
    plan: &schema::Plan,
    incoming: &sluice_io::arrow::datatypes::Schema,
) -> Result<(), TaskError> {
    let needed: Vec<&String> = match mode {
        LoadMode::ReplacePartition { column, .. } => vec![column],
        LoadMode::Merge { keys } => keys.iter().collect(),
        _ => Vec::new(),
    };
    for column in needed {
        if !plan.insert.contains(column) {
            return Err(TaskError::config(format!(
                "`{column}` is not among the loaded columns ({}); a {} load needs it",
                files::describe(incoming),
                if matches!(mode, LoadMode::Merge { .. }) {
                    "merge"
                } else {
                    "replace_partition"
                }
            )));
        }
    }
    Ok(())
}
