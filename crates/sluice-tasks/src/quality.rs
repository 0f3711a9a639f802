//! `validate`: a Great Expectations suite run against files, the lake or a warehouse table,
//! with a report next to the try's log, and what to do when the data fails.
//!
//! ```yaml
//! validate_orders:
//!   validate:
//!     suite: suites/orders.json            # GE 0.x or 1.x JSON, or YAML
//!     data: { task: extract_orders }       # a path/glob/lake:// path, or { table: staging.orders, connection: analytics }
//!     on_failure: quarantine               # fail (default) | warn | quarantine
//!     output: lake://orders/{{ ds }}/valid.parquet           # quarantine: the rows that passed
//!     quarantine: lake://quarantine/orders/{{ ds }}.parquet  # and those that did not, with why
//!     # or a table: quarantine: { table: quality.orders_rejected, connection: analytics }
//!   after: [extract_orders]
//! ```
//!
//! The same functions back `sluice validate`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use serde_json::Value as Json;
use sluice_core::connections::Connections;
use sluice_core::decode::Fields;
use sluice_core::task::CompileContext;
use sluice_core::yaml::Node;
use sluice_core::{Diagnostic, TaskAction, TaskError, TaskKind, TaskOutput, TaskRun};
use sluice_io::arrow::array::{ArrayRef, StringArray};
use sluice_io::arrow::compute::filter_record_batch;
use sluice_io::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use sluice_io::arrow::record_batch::RecordBatch;
use sluice_io::bad::BadRecords;
use sluice_io::files::{self, FileRead};
use sluice_io::lake::{Lake, Location};
use sluice_io::load::LoadMode;
use sluice_io::{BatchStream, IoError};
use sluice_quality::pushdown::{self, Database, Dialect};
use sluice_quality::{
    Level, Parameters, QualityError, ResultFormat, Validation, parameters, report, scan,
};
use sluice_warehouse::{Warehouse, Warehouses};

use crate::duck;
use crate::io::{self, Endpoint, FilesSource, LakeHandle, task_error};

/// The column of a quarantine table that names the run whose rows they are (its `ts`): a
/// re-run replaces its own rows and no others.
pub const RUN_COLUMN: &str = "_quarantined_for";

/// Where rows that break the suite go.
#[derive(Debug)]
enum Quarantine {
    /// A Parquet file (a lake path, templated).
    File(String),
    /// A DuckDB, PostgreSQL or MySQL table, created (and widened) as needed.
    Table { endpoint: Endpoint, table: String },
}

/// The column of quarantined rows that names the expectations each row broke.
pub const BROKEN_COLUMN: &str = "_failed_expectations";

/// The project's DuckDB warehouse (or another DuckDB file) as a pushdown target.
pub struct DuckDatabase(pub Arc<Warehouse>);

impl Database for DuckDatabase {
    fn dialect(&self) -> Dialect {
        Dialect::DuckDb
    }

    async fn query(&mut self, sql: String) -> Result<(SchemaRef, Vec<RecordBatch>), QualityError> {
        let (schema, stream) = duck::query_batches(self.0.clone(), sql)
            .await
            .map_err(QualityError::database)?;
        let batches = stream.try_collect().await.map_err(QualityError::database)?;
        Ok((schema, batches))
    }
}

/// A PostgreSQL database as a pushdown target.
pub struct PgDatabase(pub Arc<sluice_io::postgres::Client>);

impl Database for PgDatabase {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn query(&mut self, sql: String) -> Result<(SchemaRef, Vec<RecordBatch>), QualityError> {
        let (schema, stream) = sluice_io::postgres::extract(self.0.clone(), &sql, 0)
            .await
            .map_err(QualityError::database)?;
        let batches = stream.try_collect().await.map_err(QualityError::database)?;
        Ok((schema, batches))
    }
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs the in-memory engine over a stream of batches (on blocking threads).
pub async fn validate_stream(
    validation: &Validation,
    schema: SchemaRef,
    mut stream: BatchStream,
) -> Result<Vec<Result<sluice_quality::result::Observation, QualityError>>, IoError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<RecordBatch, IoError>>(2);
    let checks = validation.checks.clone();
    let scan = tokio::task::spawn_blocking(move || {
        scan::run(
            &checks,
            &schema,
            std::iter::from_fn(move || rx.blocking_recv()),
            threads(),
        )
    });
    while let Some(batch) = stream.next().await {
        let failed = batch.is_err();
        if tx.send(batch).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    scan.await
        .map_err(|e| IoError::invalid(format!("the validation stopped: {e}")))?
}

/// Validates files (a path, glob or lake:// path already resolved to files).
pub async fn validate_files(
    validation: &Validation,
    files: Vec<Location>,
    read: FileRead,
    shown: &str,
) -> Result<Json, IoError> {
    let (schema, stream) = files::read(files, read).await?;
    let observed = validate_stream(validation, schema, stream).await?;
    Ok(validation.judge(observed, shown))
}

/// Rows per batch when a MySQL table streams through the in-memory engine.
const MYSQL_BATCH_ROWS: usize = 65_536;

/// Validates a table where it lives (`schema.table` on DuckDB or PostgreSQL, in SQL), or as
/// it streams out of MySQL/MariaDB.
pub async fn validate_table(
    validation: &Validation,
    endpoint: &Endpoint,
    table: &str,
    warehouses: &Warehouses,
) -> Result<Json, IoError> {
    let quoted = |default: &str| {
        let (schema, name) = io::split_table(table, default);
        // DuckDB and PostgreSQL quote names alike.
        let dialect = endpoint.dialect().unwrap_or_default();
        format!(
            "{}.{}",
            dialect.quote_ident(&schema),
            dialect.quote_ident(&name)
        )
    };
    let observed = match endpoint {
        Endpoint::DuckDb { path, .. } => {
            let mut db = DuckDatabase(warehouses.get(path));
            pushdown::run(&validation.checks, &quoted("main"), &mut db).await
        }
        Endpoint::Postgres(c) => {
            let client = sluice_io::postgres::connect(c.expose_uri()).await?;
            let mut db = PgDatabase(Arc::new(client));
            pushdown::run(&validation.checks, &quoted("public"), &mut db).await
        }
        // No SQL engine for MySQL's dialect yet: its rows stream through the in-memory engine
        // (one pass, memory bounded by the batch).
        Endpoint::MySql(c) => {
            let default = endpoint.default_schema().unwrap_or_default();
            let query = format!("SELECT * FROM {}", quoted(&default));
            let (schema, stream) =
                sluice_io::mysql::extract(c.expose_uri(), &query, MYSQL_BATCH_ROWS).await?;
            let observed = validate_stream(validation, schema, stream).await?;
            let shown = format!("{}:{table}", endpoint_name(endpoint));
            return Ok(validation.judge(observed, &shown));
        }
        other => {
            return Err(IoError::invalid(format!(
                "{} cannot be validated in place; validate DuckDB, PostgreSQL or MySQL tables, \
                 or files",
                other.describe()
            )));
        }
    }
    .map_err(quality_error)?;
    Ok(validation.judge(observed, &format!("{}:{table}", endpoint_name(endpoint))))
}

/// A validation that could not run fails its try (or `sluice validate`) with the error's text,
/// the same words whoever's doing it is.
fn quality_error(e: QualityError) -> IoError {
    IoError::invalid(e.to_string())
}

fn endpoint_name(endpoint: &Endpoint) -> &str {
    match endpoint {
        Endpoint::DuckDb { name, .. } => name,
        Endpoint::Postgres(c) | Endpoint::MySql(c) | Endpoint::Http(c) | Endpoint::Other(c) => {
            &c.name
        }
    }
}

/// Reads `parameters:` (name → value; text may be a template) and checks that every name the
/// suite's `$PARAMETER` arguments use has a value here or in the suite.
fn suite_parameters(
    node: &Node,
    suite: &sluice_quality::Suite,
    cx: &mut CompileContext<'_>,
) -> Option<serde_json::Map<String, Json>> {
    let Json::Object(values) = node.to_json() else {
        cx.diags.push(
            Diagnostic::new(
                &node.span,
                "`parameters` must be a mapping of names to values",
            )
            .hint("e.g. parameters: { run_date: \"{{ ds }}\", min_rows: 1000 }"),
        );
        return None;
    };
    let mut ok = true;
    if let sluice_core::yaml::Value::Map(entries) = &node.value {
        for (_, v) in entries {
            if let Some(text) = v.as_str() {
                ok &= cx.check_template(v, text);
            }
        }
    }
    for problem in suite.parameter_problems(&values, |name| {
        format!("give it under `parameters:`, e.g. parameters: {{ {name}: ... }}")
    }) {
        cx.diags.push(problem);
        ok = false;
    }
    ok.then_some(values)
}

/// Reads a suite file; problems are reported at their place in it.
pub fn read_suite(
    path: &Path,
    shown: &str,
    diags: &mut sluice_core::diag::Diagnostics,
) -> Option<sluice_quality::Suite> {
    match std::fs::read_to_string(path) {
        Ok(text) => sluice_quality::suite::parse(shown, &text, diags),
        Err(e) => {
            diags.push(Diagnostic::file(
                shown,
                format!("cannot read the suite: {e}"),
            ));
            None
        }
    }
}

/// Writes the JSON result and the HTML report beside a try's log.
fn write_reports(log: &Path, result: &Json, shown: &str) -> std::io::Result<PathBuf> {
    let html = log.with_extension("quality.html");
    std::fs::write(
        log.with_extension("quality.json"),
        serde_json::to_vec_pretty(result)?,
    )?;
    std::fs::write(&html, report::html(result, shown))?;
    Ok(html)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnFailure {
    Fail,
    Warn,
    Quarantine,
}

#[derive(Debug)]
enum Data {
    Files(FilesSource),
    Table { endpoint: Endpoint, table: String },
}

pub struct ValidateKind {
    pub connections: Connections,
    pub default_warehouse: PathBuf,
    pub warehouses: Arc<Warehouses>,
    pub lake: LakeHandle,
}

#[derive(Debug)]
struct ValidateAction {
    suite: String,
    /// Built when the task is compiled, or for each run when the suite has parameters.
    validation: Arc<Validation>,
    suite_config: Arc<sluice_quality::Suite>,
    level: Level,
    /// `parameters:`: values for the suite's `$PARAMETER` arguments; text is a template.
    parameters: serde_json::Map<String, Json>,
    data: Data,
    on_failure: OnFailure,
    output: Option<String>,
    quarantine: Option<Quarantine>,
    lake: LakeHandle,
    warehouses: Arc<Warehouses>,
}

const KEYS: &[&str] = &[
    "suite",
    "data",
    "on_failure",
    "output",
    "quarantine",
    "result_format",
    "parameters",
];

impl ValidateKind {
    /// `{ table: schema.table, connection: NAME }` (the warehouse when no connection is named)
    /// on DuckDB, PostgreSQL or MySQL/MariaDB; `refused` words the problem for another kind of database.
    fn table_at(
        &self,
        node: &Node,
        what: &str,
        cx: &mut CompileContext<'_>,
        refused: impl FnOnce(String) -> Diagnostic,
    ) -> Option<(Endpoint, String)> {
        let f = Fields::new(node, what, &["table", "connection"], cx.diags)?;
        let table = f
            .required("table", what, cx.diags)?
            .scalar_text()
            .unwrap_or_default();
        let endpoint = match f.get("connection") {
            Some(c) => io::endpoint(&self.connections, &self.default_warehouse, c, cx)?,
            None => io::warehouse(&self.connections, &self.default_warehouse, &cx.project.root),
        };
        if !matches!(
            endpoint,
            Endpoint::DuckDb { .. } | Endpoint::Postgres(_) | Endpoint::MySql(_)
        ) {
            cx.diags.push(refused(endpoint.describe()));
            return None;
        }
        Some((endpoint, table))
    }
}

impl TaskKind for ValidateKind {
    fn name(&self) -> &'static str {
        "validate"
    }

    fn compile(&self, config: &Node, cx: &mut CompileContext<'_>) -> Option<Arc<dyn TaskAction>> {
        let fields = Fields::new(config, "`validate`", KEYS, cx.diags)?;
        let (suite_path, suite) = suite_of(&fields, cx)?;
        // Every problem of the task is reported, not only the first: an unknown result format
        // or on_failure, or an invalid expectation, is reported and the rest still checked.
        let level = result_format(&fields, cx);
        let parameters = match fields.get("parameters") {
            Some(node) => suite_parameters(node, &suite, cx)?,
            None => serde_json::Map::new(),
        };
        let validation = Arc::new(Validation::new(
            &suite,
            &ResultFormat::new(level.unwrap_or(Level::Summary)),
            &Parameters::new(parameters.clone()),
        ));
        let expectations_valid = expectations_valid(&suite, &validation, cx);
        let data_node = fields.required("data", "`validate`", cx.diags)?;
        let data = self.data(data_node, cx)?;
        let on_failure = on_failure(&fields, cx);
        let output = template_path(&fields, "output", cx)?;
        let quarantine = self.quarantine(&fields, cx)?;
        if !quarantine_fits(
            config,
            &fields,
            on_failure.unwrap_or(OnFailure::Fail),
            &data,
            output.is_some() && quarantine.is_some(),
            cx,
        ) {
            return None;
        }
        let (Some(level), Some(on_failure), true) = (level, on_failure, expectations_valid) else {
            return None;
        };
        Some(Arc::new(ValidateAction {
            suite: suite_path,
            validation,
            suite_config: Arc::new(suite),
            level,
            parameters,
            data,
            on_failure,
            output,
            quarantine,
            lake: self.lake.clone(),
            warehouses: self.warehouses.clone(),
        }))
    }
}

impl ValidateKind {
    /// `data`: a lake path, `{ task: … }` (an upstream task's output) or a table.
    fn data(&self, data_node: &Node, cx: &mut CompileContext<'_>) -> Option<Data> {
        if let Some(text) = data_node.as_str() {
            let text = text.to_string();
            cx.check_template(data_node, &text).then_some(())?;
            Some(Data::Files(FilesSource {
                path: text,
                format: None,
                schema: None,
            }))
        } else if let Some(task) = crate::load::from_task(data_node) {
            Some(Data::Files(crate::load::upstream_extract(
                &task, data_node, cx,
            )?))
        } else {
            let (endpoint, table) = self.table_at(data_node, "`data`", cx, |kind| {
                Diagnostic::new(
                    &data_node.span,
                    format!("{kind} tables cannot be validated in place"),
                )
                .hint("validate a DuckDB, PostgreSQL or MySQL table, or extract to the lake first")
            })?;
            Some(Data::Table { endpoint, table })
        }
    }

    /// `quarantine`: a lake path or a table, for the rows that fail (None when not given).
    fn quarantine(
        &self,
        fields: &Fields<'_>,
        cx: &mut CompileContext<'_>,
    ) -> Option<Option<Quarantine>> {
        match fields.get("quarantine") {
            Some(node) if node.as_str().is_none() => {
                let (endpoint, table) = self.table_at(node, "`quarantine`", cx, |kind| {
                    Diagnostic::new(&node.span, format!("cannot quarantine into {kind} tables"))
                        .hint("quarantine into a DuckDB, PostgreSQL or MySQL table, or a lake file")
                })?;
                Some(Some(Quarantine::Table { endpoint, table }))
            }
            _ => Some(template_path(fields, "quarantine", cx)?.map(Quarantine::File)),
        }
    }
}

/// `suite`: the suite file's path as written, and the suite read from it.
fn suite_of(
    fields: &Fields<'_>,
    cx: &mut CompileContext<'_>,
) -> Option<(String, sluice_quality::Suite)> {
    let suite_node = fields.required("suite", "`validate`", cx.diags)?;
    let suite_path = suite_node.scalar_text().unwrap_or_default();
    let full = cx.project.root.join(&suite_path);
    if !full.is_file() {
        cx.diags.push(
            Diagnostic::new(
                &suite_node.content_span(),
                format!("suite file `{suite_path}` not found"),
            )
            .hint("the path is relative to the project folder, e.g. `suites/orders.json`"),
        );
        return None;
    }
    let suite = read_suite(&full, &suite_path, cx.diags)?;
    Some((suite_path, suite))
}

/// `result_format` (SUMMARY when not given); None when it is unknown (reported).
fn result_format(fields: &Fields<'_>, cx: &mut CompileContext<'_>) -> Option<Level> {
    let Some(node) = fields.get("result_format") else {
        return Some(Level::Summary);
    };
    let text = node.scalar_text().unwrap_or_default();
    let level = Level::parse(&text);
    if level.is_none() {
        cx.diags.push(
            Diagnostic::new(&node.span, format!("unknown result_format `{text}`"))
                .hint("use BOOLEAN_ONLY, BASIC, SUMMARY or COMPLETE"),
        );
    }
    level
}

/// Reports each expectation whose arguments are invalid; whether there was none.
fn expectations_valid(
    suite: &sluice_quality::Suite,
    validation: &Validation,
    cx: &mut CompileContext<'_>,
) -> bool {
    let mut valid = true;
    for check in &validation.checks {
        let e = &suite.expectations[check.index];
        // Templated parameters take their values when the task runs.
        let parameterised = e
            .kwargs
            .values()
            .any(|v| parameters::parameter(v).is_some());
        if let sluice_quality::expect::Kind::Invalid(problem) = &check.kind
            && !parameterised
        {
            cx.diags.push(
                Diagnostic::new(&e.span, format!("expectations[{}]: {problem}", check.index))
                    .hint("fix the expectation's arguments"),
            );
            valid = false;
        }
    }
    valid
}

/// `on_failure` (fail when not given); None when it is unknown (reported).
fn on_failure(fields: &Fields<'_>, cx: &mut CompileContext<'_>) -> Option<OnFailure> {
    let Some(node) = fields.get("on_failure") else {
        return Some(OnFailure::Fail);
    };
    match node.scalar_text().unwrap_or_default().as_str() {
        "fail" => Some(OnFailure::Fail),
        "warn" => Some(OnFailure::Warn),
        "quarantine" => Some(OnFailure::Quarantine),
        other => {
            cx.diags.push(
                Diagnostic::new(&node.span, format!("unknown on_failure `{other}`"))
                    .hint("use fail, warn or quarantine"),
            );
            None
        }
    }
}

/// A lake path (a template) under `key`; Some(None) when not given, None when it does not
/// parse (reported).
fn template_path(
    fields: &Fields<'_>,
    key: &str,
    cx: &mut CompileContext<'_>,
) -> Option<Option<String>> {
    match fields.get(key) {
        None => Some(None),
        Some(node) => {
            let text = node.scalar_text().unwrap_or_default();
            cx.check_template(node, &text).then_some(Some(text))
        }
    }
}

/// Whether `output` and `quarantine` fit `on_failure` (reported when not): they go with
/// `on_failure: quarantine`, which needs both, and files to split.
fn quarantine_fits(
    config: &Node,
    fields: &Fields<'_>,
    on_failure: OnFailure,
    data: &Data,
    both_given: bool,
    cx: &mut CompileContext<'_>,
) -> bool {
    if on_failure == OnFailure::Quarantine {
        if matches!(data, Data::Table { .. }) {
            cx.diags.push(
                Diagnostic::new(
                    &config.span,
                    "quarantine splits files; a table is validated where it lives",
                )
                .hint("validate the files before loading them, or use on_failure: fail or warn"),
            );
            return false;
        }
        if !both_given {
            cx.diags.push(
                Diagnostic::new(
                    &config.span,
                    "on_failure: quarantine needs `output` (rows that pass) and `quarantine` (rows that do not)",
                )
                .hint("e.g. output: lake://orders/{{ ds }}/valid.parquet, quarantine: lake://quarantine/orders/{{ ds }}.parquet"),
            );
            return false;
        }
    } else if let Some(node) = fields.get("output").or(fields.get("quarantine")) {
        cx.diags.push(
            Diagnostic::new(
                &node.span,
                "`output` and `quarantine` apply to on_failure: quarantine",
            )
            .hint("add `on_failure: quarantine`, or remove them"),
        );
        return false;
    }
    true
}

impl TaskAction for ValidateAction {
    fn lineage(
        &self,
        template: Option<&sluice_core::template::TemplateContext>,
    ) -> sluice_core::Lineage {
        use crate::lineage::{lake_dataset, rendered, table_dataset};
        let mut lineage = sluice_core::Lineage::default();
        let input = match &self.data {
            Data::Files(files) => lake_dataset(&self.lake, &rendered(&files.path, template)),
            Data::Table { endpoint, table } => table_dataset(endpoint, table),
        };
        if let Some(d) = input {
            lineage = lineage.input(d);
        }
        if let Some(d) = self
            .output
            .as_ref()
            .and_then(|path| lake_dataset(&self.lake, &rendered(path, template)))
        {
            lineage = lineage.output(d);
        }
        let rejected = match &self.quarantine {
            Some(Quarantine::File(path)) => lake_dataset(&self.lake, &rendered(path, template)),
            Some(Quarantine::Table { endpoint, table }) => table_dataset(endpoint, table),
            None => None,
        };
        if let Some(d) = rejected {
            lineage = lineage.output(d);
        }
        lineage
    }

    fn run<'a>(&'a self, run: &'a TaskRun) -> BoxFuture<'a, Result<TaskOutput, TaskError>> {
        Box::pin(io::until_cancelled(
            run,
            "the validation was interrupted; nothing was written",
            self.validate(run),
        ))
    }
}

impl ValidateAction {
    async fn files(
        &self,
        run: &TaskRun,
        source: &FilesSource,
    ) -> Result<(Vec<Location>, FileRead, String), TaskError> {
        let lake = io::lake(&self.lake)?;
        let shown = run.render(&source.path)?;
        let files = io::resolve_files(run, lake, source).await?;
        let first = files.first().map(|f| f.shown.clone()).unwrap_or_default();
        let read = FileRead {
            format: io::format_of(source, &first)?,
            schema: source.schema.clone(),
            bad: Arc::new(BadRecords::new(run.ledger.clone(), 0)),
        };
        Ok((files, read, shown))
    }

    /// The validation for this run: the suite's parameters take their rendered values.
    fn validation(&self, run: &TaskRun) -> Result<Arc<Validation>, TaskError> {
        if self.parameters.is_empty() {
            return Ok(self.validation.clone());
        }
        let mut values = self.parameters.clone();
        for value in values.values_mut() {
            if let Json::String(text) = value {
                *text = run.render(text)?;
            }
        }
        Ok(Arc::new(Validation::new(
            &self.suite_config,
            &ResultFormat::new(self.level),
            &Parameters::new(values),
        )))
    }

    async fn validate(&self, run: &TaskRun) -> Result<TaskOutput, TaskError> {
        let validation = self.validation(run)?;
        let (result, shown, files) = match &self.data {
            Data::Files(source) => {
                let (files, read, shown) = self.files(run, source).await?;
                let rows_files = files.clone();
                let result = validate_files(&validation, files, read, &shown)
                    .await
                    .map_err(task_error)?;
                (result, shown, Some((rows_files, source)))
            }
            Data::Table { endpoint, table } => {
                let table = run.render_for(endpoint.dialect().unwrap_or_default(), table)?;
                let result = validate_table(&validation, endpoint, &table, &self.warehouses)
                    .await
                    .map_err(task_error)?;
                let shown = format!("{}:{table}", endpoint_name(endpoint));
                (result, shown, None)
            }
        };
        for line in report::text(&result, &shown).lines() {
            run.log.line(line);
        }
        match write_reports(run.log.path(), &result, &shown) {
            Ok(path) => run.log.line(format!("report: {}", path.display())),
            Err(e) => run
                .log
                .line(format!("the report could not be written: {e}")),
        }
        let success = result["success"].as_bool().unwrap_or(false);
        let summary = failure_summary(&self.suite, &result);
        match self.on_failure {
            _ if success && self.on_failure != OnFailure::Quarantine => Ok(TaskOutput::default()),
            OnFailure::Fail => Err(TaskError::config(summary)),
            OnFailure::Warn => {
                run.log
                    .line(format!("warning (on_failure: warn): {summary}"));
                Ok(TaskOutput::default())
            }
            OnFailure::Quarantine => {
                let whole = validation
                    .checks
                    .iter()
                    .zip(result["results"].as_array().into_iter().flatten())
                    .filter(|(c, r)| r["success"] != Json::Bool(true) && !scan::is_row_wise(c))
                    .map(|(c, _)| c.name)
                    .collect::<Vec<_>>();
                if !whole.is_empty() {
                    return Err(TaskError::config(format!(
                        "{summary}; {} cannot be fixed by quarantining rows",
                        whole.join(", ")
                    )));
                }
                let Some((files, source)) = files else {
                    unreachable!("quarantine is refused for tables when the task is compiled")
                };
                let (_, read, _) = self.files(run, source).await?;
                let (good, bad) = self.split(run, &validation, files, read).await?;
                run.log.line(format!(
                    "{good} row(s) passed and continue; {bad} row(s) quarantined with the expectations they broke"
                ));
                Ok(TaskOutput {
                    rows: Some(good),
                    rejected: Some(bad),
                    watermark: None,
                })
            }
        }
    }

    /// Writes the rows that pass every row-wise expectation to `output` and the others, with
    /// the names of the expectations they broke, to `quarantine`.
    async fn split(
        &self,
        run: &TaskRun,
        validation: &Validation,
        files: Vec<Location>,
        read: FileRead,
    ) -> Result<(u64, u64), TaskError> {
        let lake = io::lake(&self.lake)?;
        let at = |path: &str| -> Result<Location, TaskError> {
            lake.resolve(&run.render(path)?).map_err(task_error)
        };
        let good_at = at(self.output.as_deref().unwrap_or_default())?;
        // A table keeps every run's rows; each run's are marked with its `ts`.
        let run_key = match &self.quarantine {
            Some(Quarantine::Table { .. }) => Some(run.render("{{ ts }}")?),
            _ => None,
        };
        let (schema, mut stream) = files::read(files, read).await.map_err(task_error)?;
        let mut bad_fields: Vec<Field> =
            schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        bad_fields.push(Field::new(BROKEN_COLUMN, DataType::Utf8, false));
        if run_key.is_some() {
            bad_fields.push(Field::new(RUN_COLUMN, DataType::Utf8, false));
        }
        let bad_schema: SchemaRef = Arc::new(Schema::new(bad_fields));
        let (good_tx, good_rx) = tokio::sync::mpsc::channel(2);
        let (bad_tx, bad_rx) = tokio::sync::mpsc::channel(2);
        let good_writer = files::write_parquet(&good_at, schema.clone(), receiver(good_rx));
        let bad_writer: BoxFuture<'_, Result<u64, IoError>> = match &self.quarantine {
            Some(Quarantine::Table { endpoint, table }) => {
                let default = endpoint.default_schema().unwrap_or_else(|| "main".into());
                let rendered = run.render_for(endpoint.dialect().unwrap_or_default(), table)?;
                let (schema, table) = io::split_table(&rendered, &default);
                let mode = LoadMode::ReplacePartition {
                    column: RUN_COLUMN.into(),
                    values: run_key.iter().cloned().collect(),
                };
                let bad_schema = bad_schema.clone();
                Box::pin(async move {
                    crate::load::load_batches(
                        endpoint,
                        &self.warehouses,
                        (&schema, &table),
                        &bad_schema,
                        mode,
                        receiver(bad_rx),
                    )
                    .await
                })
            }
            Some(Quarantine::File(path)) => {
                let bad_at = at(path)?;
                let bad_schema = bad_schema.clone();
                Box::pin(async move {
                    files::write_parquet(&bad_at, bad_schema, receiver(bad_rx)).await
                })
            }
            None => unreachable!("quarantine needs a target when the task is compiled"),
        };
        let checks = &validation.checks;
        let feed = async move {
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                let broken = scan::row_failures(checks, &batch).map_err(quality_error)?;
                let keep: Vec<bool> = broken.iter().map(Vec::is_empty).collect();
                let good = filter_record_batch(&batch, &keep.iter().map(|&k| Some(k)).collect())?;
                let bad = filter_record_batch(&batch, &keep.iter().map(|&k| Some(!k)).collect())?;
                let reasons: StringArray = broken
                    .iter()
                    .filter(|b| !b.is_empty())
                    .map(|b| {
                        Some(
                            b.iter()
                                .map(|&i| checks[i].name)
                                .collect::<Vec<_>>()
                                .join(", "),
                        )
                    })
                    .collect();
                let mut columns: Vec<ArrayRef> = bad.columns().to_vec();
                columns.push(Arc::new(reasons));
                if let Some(key) = &run_key {
                    columns.push(Arc::new(StringArray::from(vec![
                        key.as_str();
                        bad.num_rows()
                    ])));
                }
                let bad = RecordBatch::try_new(bad_schema.clone(), columns)?;
                if good_tx.send(Ok(good)).await.is_err() || bad_tx.send(Ok(bad)).await.is_err() {
                    break;
                }
            }
            drop((good_tx, bad_tx));
            Ok::<(), IoError>(())
        };
        let (fed, good, bad) = tokio::join!(feed, good_writer, bad_writer);
        fed.map_err(task_error)?;
        Ok((good.map_err(task_error)?, bad.map_err(task_error)?))
    }
}

fn receiver(rx: tokio::sync::mpsc::Receiver<Result<RecordBatch, IoError>>) -> BatchStream {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) }).boxed()
}

/// One sentence for a failed validation: which expectations failed and how.
pub fn failure_summary(suite: &str, result: &Json) -> String {
    let failed: Vec<String> = report::lines(result)
        .into_iter()
        .filter(|l| !l.success)
        .map(|l| format!("{}({}): {}", l.expectation, l.arguments, l.observed))
        .collect();
    format!(
        "suite {suite} failed {} of {} expectations: {}",
        failed.len(),
        result["statistics"]["evaluated_expectations"],
        failed.join("; ")
    )
}

/// What `sluice validate` names on its command line, resolved against the project.
pub enum Target {
    /// A file, glob or lake:// path, resolved to its files.
    Files {
        files: Vec<Location>,
        read: FileRead,
    },
    /// `CONNECTION:schema.table`.
    Table { endpoint: Endpoint, table: String },
}

/// Resolves a file path, glob or lake:// path to the files to read (the format from the
/// first file's extension).
pub async fn files_target(
    lake: &Lake,
    path: &str,
    ledger: Arc<dyn sluice_core::task::Ledger>,
) -> Result<Target, IoError> {
    let location = lake.resolve(path)?;
    let files = lake.expand(&location).await?;
    let first = files.first().map(|f| f.shown.clone()).unwrap_or_default();
    let format = files::Format::from_name(&first).ok_or_else(|| {
        IoError::invalid(format!(
            "cannot tell the format of {first} from its extension (csv, tsv, json, ndjson, parquet)"
        ))
    })?;
    Ok(Target::Files {
        files,
        read: FileRead {
            format,
            schema: None,
            bad: Arc::new(BadRecords::new(ledger, 0)),
        },
    })
}
