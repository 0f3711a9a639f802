//! `extract`: read from a database query, an HTTP JSON API or files, and write one Parquet file
//! into the lake, streaming record batches (never a whole table in memory).
//!
//! ```yaml
//! extract_orders:
//!   extract:
//!     from: { connection: orders_db, query: "select * from orders where updated_at > {{ incremental.last_value | sql }}" }
//!     to: lake://orders/{{ ds }}/data.parquet
//!     incremental: { column: updated_at, initial: "1970-01-01" }
//! ```
//!
//! With `incremental`, the task's high-water mark (the largest value of `column` extracted) is
//! kept in the metadata store and offered to templates as `incremental.last_value`; it advances
//! only when the whole run succeeds, so a run that fails later re-reads the same rows.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use sluice_core::connections::{Connection, Connections};
use sluice_core::decode::Fields;
use sluice_core::sql::Dialect;
use sluice_core::task::{CompileContext, template_diagnostic};
use sluice_core::template::{self, TemplateContext};
use sluice_core::yaml::{Node, Value};
use sluice_core::{Diagnostic, TaskAction, TaskError, TaskKind, TaskOutput, TaskRun};
use sluice_io::arrow::datatypes::SchemaRef;
use sluice_io::bad::BadRecords;
use sluice_io::files::{self, FileRead};
use sluice_io::http::{Auth, HttpSource, Pagination};
use sluice_io::load::HighWater;
use sluice_io::{BATCH_ROWS, BatchStream, IoError};
use sluice_warehouse::Warehouses;

use crate::io::{self, Endpoint, FILE_KEYS, FilesSource, LakeHandle, task_error};

pub struct ExtractKind {
    pub connections: Connections,
    pub default_warehouse: PathBuf,
    pub warehouses: Arc<Warehouses>,
    pub lake: LakeHandle,
    pub http: sluice_io::http::PageClient,
}

#[derive(Debug)]
enum Source {
    Query { endpoint: Endpoint, query: String },
    Files(FilesSource),
    Http(Box<HttpConfig>),
}

struct HttpConfig {
    connection: Connection,
    path: String,
    params: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    records: Vec<String>,
    pagination: Pagination,
    max_pages: Option<u64>,
    follow_cross_origin: bool,
    retries: u32,
    schema: Option<SchemaRef>,
}

/// Names only for headers and parameters: their values may be keys.
impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |pairs: &[(String, String)]| -> Vec<String> {
            pairs.iter().map(|(name, _)| name.clone()).collect()
        };
        f.debug_struct("HttpConfig")
            .field("connection", &self.connection)
            .field("path", &self.path)
            .field("params", &names(&self.params))
            .field("headers", &names(&self.headers))
            .field("records", &self.records)
            .field("pagination", &self.pagination)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
struct Incremental {
    column: String,
    initial: Option<String>,
}

struct ExtractAction {
    source: Source,
    to: String,
    incremental: Option<Incremental>,
    max_bad_records: u64,
    lake: LakeHandle,
    warehouses: Arc<Warehouses>,
    http: sluice_io::http::PageClient,
}

impl std::fmt::Debug for ExtractAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtractAction")
            .field("source", &self.source)
            .field("to", &self.to)
            .finish()
    }
}

const FROM_KEYS: &[&str] = &[
    "connection",
    "query",
    "files",
    "format",
    "schema",
    "delimiter",
    "path",
    "params",
    "headers",
    "records",
    "pagination",
    "max_pages",
    "retries",
    "follow_cross_origin",
];

impl TaskKind for ExtractKind {
    fn name(&self) -> &'static str {
        "extract"
    }

    fn compile(&self, config: &Node, cx: &mut CompileContext<'_>) -> Option<Arc<dyn TaskAction>> {
        let fields = Fields::new(
            config,
            "`extract`",
            &["from", "to", "incremental", "max_bad_records"],
            cx.diags,
        )?;
        let mut ok = true;
        let incremental = match fields.get("incremental") {
            Some(node) => {
                let inc = Fields::new(node, "`incremental`", &["column", "initial"], cx.diags)?;
                let column = inc
                    .required("column", "`incremental`", cx.diags)?
                    .scalar_text()
                    .unwrap_or_default();
                Some(Incremental {
                    column,
                    initial: inc.string("initial", cx.diags),
                })
            }
            None => None,
        };
        // Templates of an incremental extract may use `incremental.*`.
        let mut sample = cx.sample.clone();
        if let Some(inc) = &incremental {
            sample.incremental = Some(incremental_value(inc, Some("2024-01-01 00:00:00")));
        }
        let from = fields.required("from", "`extract`", cx.diags)?;
        let source = self.source(from, &sample, cx);
        ok &= source.is_some();
        let to = fields.required("to", "`extract`", cx.diags)?;
        let to_text = to.as_str().unwrap_or_default().to_string();
        ok &= check(cx, to, &to_text, &sample);
        let max_bad_records = fields.uint("max_bad_records", cx.diags).unwrap_or(0);
        (ok && source.is_some()).then(|| {
            Arc::new(ExtractAction {
                source: source.expect("checked"),
                to: to_text,
                incremental,
                max_bad_records: u64::from(max_bad_records),
                lake: self.lake.clone(),
                warehouses: self.warehouses.clone(),
                http: self.http.clone(),
            }) as Arc<dyn TaskAction>
        })
    }
}

fn check(cx: &mut CompileContext<'_>, node: &Node, text: &str, sample: &TemplateContext) -> bool {
    match template::check(text, sample) {
        Ok(()) => true,
        Err(e) => {
            cx.diags
                .push(template_diagnostic(&node.content_span(), text, &e));
            false
        }
    }
}

/// The dialect a query source's SQL is written in.
fn source_dialect(endpoint: &Endpoint) -> Dialect {
    endpoint.dialect().unwrap_or_default()
}

fn incremental_value(inc: &Incremental, last: Option<&str>) -> serde_json::Value {
    serde_json::json!({ "column": inc.column, "last_value": last })
}

/// `a.b.c` → ["a", "b", "c"] (an empty path is the body itself).
fn json_path(text: &str) -> Vec<String> {
    text.split('.')
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect()
}

fn string_map(
    node: &Node,
    what: &str,
    sample: &TemplateContext,
    cx: &mut CompileContext<'_>,
) -> Option<Vec<(String, String)>> {
    let Value::Map(entries) = &node.value else {
        cx.diags.push(Diagnostic::new(
            &node.span,
            format!("`{what}` must be a mapping of names to values"),
        ));
        return None;
    };
    let mut ok = true;
    let mut out = Vec::new();
    for (k, v) in entries {
        let value = v.scalar_text().unwrap_or_default();
        ok &= check(cx, v, &value, sample);
        out.push((k.scalar_text().unwrap_or_default(), value));
    }
    ok.then_some(out)
}

impl ExtractKind {
    fn source(
        &self,
        from: &Node,
        sample: &TemplateContext,
        cx: &mut CompileContext<'_>,
    ) -> Option<Source> {
        let fields = Fields::new(from, "`from`", FROM_KEYS, cx.diags)?;
        if let Some(path) = fields.get("files") {
            for (key, node) in fields.keys() {
                if !FILE_KEYS.contains(&key) {
                    cx.diags.push(
                        Diagnostic::new(
                            &node.span,
                            format!("`{key}` does not apply to a files source"),
                        )
                        .hint(format!("a files source takes {}", FILE_KEYS.join(", "))),
                    );
                    return None;
                }
            }
            return io::files_source(&fields, path, cx).map(Source::Files);
        }
        let Some(conn_node) = fields.get("connection") else {
            cx.diags.push(
                Diagnostic::new(&from.span, "`from` needs `connection` (a database or HTTP API) or `files`")
                    .hint("e.g. `from: { connection: orders_db, query: \"select * from orders\" }` or `from: { files: lake://raw/orders/*.csv }`"),
            );
            return None;
        };
        let endpoint = io::endpoint(&self.connections, &self.default_warehouse, conn_node, cx)?;
        match endpoint {
            Endpoint::DuckDb { .. } | Endpoint::Postgres(_) | Endpoint::MySql(_) => {
                let q = fields.required("query", "`from`", cx.diags)?;
                let query = q.as_str().unwrap_or_default().to_string();
                for (key, node) in fields.keys() {
                    if !["connection", "query"].contains(&key) {
                        cx.diags.push(
                            Diagnostic::new(
                                &node.span,
                                format!(
                                    "`{key}` does not apply to a {} source",
                                    endpoint.describe()
                                ),
                            )
                            .hint("a database source takes `connection` and `query`"),
                        );
                        return None;
                    }
                }
                // The query is checked as it will run: its filters write the source's SQL.
                let sample = sample.clone().in_dialect(source_dialect(&endpoint));
                check(cx, q, &query, &sample).then_some(Source::Query { endpoint, query })
            }
            Endpoint::Http(connection) => {
                for (key, node) in fields.keys() {
                    if ["query", "files", "format", "delimiter"].contains(&key) {
                        cx.diags.push(
                            Diagnostic::new(&node.span, format!("`{key}` does not apply to an HTTP source"))
                                .hint("an HTTP source takes path, params, headers, records, pagination, schema, max_pages, retries and follow_cross_origin"),
                        );
                        return None;
                    }
                }
                let mut ok = true;
                let path = match fields.get("path") {
                    Some(p) => {
                        let text = p.as_str().unwrap_or_default().to_string();
                        ok &= check(cx, p, &text, sample);
                        text
                    }
                    None => String::new(),
                };
                let params = match fields.get("params") {
                    Some(n) => string_map(n, "params", sample, cx).unwrap_or_else(|| {
                        ok = false;
                        Vec::new()
                    }),
                    None => Vec::new(),
                };
                let headers = match fields.get("headers") {
                    Some(n) => string_map(n, "headers", sample, cx).unwrap_or_else(|| {
                        ok = false;
                        Vec::new()
                    }),
                    None => Vec::new(),
                };
                let records = json_path(&fields.string("records", cx.diags).unwrap_or_default());
                let pagination = match fields.get("pagination") {
                    Some(n) => pagination(n, cx)?,
                    None => Pagination::None,
                };
                let schema = match fields.get("schema") {
                    Some(n) => Some(io::declared_schema(n, cx)?),
                    None => None,
                };
                let max_pages = fields.uint("max_pages", cx.diags).map(u64::from);
                let retries = fields.uint("retries", cx.diags).unwrap_or(3);
                let follow_cross_origin = fields
                    .bool("follow_cross_origin", cx.diags)
                    .unwrap_or(false);
                ok.then(|| {
                    Source::Http(Box::new(HttpConfig {
                        connection,
                        path,
                        params,
                        headers,
                        records,
                        pagination,
                        max_pages,
                        follow_cross_origin,
                        retries,
                        schema,
                    }))
                })
            }
            Endpoint::Other(c) => {
                cx.diags.push(
                    Diagnostic::new(&conn_node.span, format!("cannot extract from `{}` ({} connection)", c.name, c.kind.name()))
                        .hint("extract from postgres://, mysql://, duckdb:// or https:// connections; read files with `files:`"),
                );
                None
            }
        }
    }
}

/// `pagination: {type: next_link, path: links.next}`, `{type: link_header}`,
/// `{type: cursor, path: meta.next, param: cursor}`, `{type: page, param: page, start: 1,
/// size_param: per_page, size: 100}`.
fn pagination(node: &Node, cx: &mut CompileContext<'_>) -> Option<Pagination> {
    let fields = Fields::new(
        node,
        "`pagination`",
        &["type", "path", "param", "start", "size_param", "size"],
        cx.diags,
    )?;
    let kind = fields.required("type", "`pagination`", cx.diags)?;
    let path = json_path(&fields.string("path", cx.diags).unwrap_or_default());
    let need = |cx: &mut CompileContext<'_>, key: &str| -> Option<String> {
        let v = fields.string(key, cx.diags);
        if v.is_none() {
            cx.diags.push(Diagnostic::new(
                &node.span,
                format!("this pagination needs `{key}`"),
            ));
        }
        v
    };
    Some(match kind.scalar_text().unwrap_or_default().as_str() {
        "next_link" => {
            if path.is_empty() {
                cx.diags.push(Diagnostic::new(&node.span, "next_link pagination needs `path`, where the next page's URL is in the body").hint("or use `type: link_header` for a `Link: <…>; rel=\"next\"` header"));
                return None;
            }
            Pagination::NextLink { path }
        }
        "link_header" => Pagination::NextLink { path: Vec::new() },
        "cursor" => {
            let param = need(cx, "param")?;
            if path.is_empty() {
                cx.diags.push(Diagnostic::new(
                    &node.span,
                    "cursor pagination needs `path`, where the next cursor is in the body",
                ));
                return None;
            }
            Pagination::Cursor { param, path }
        }
        "page" => {
            let param = need(cx, "param")?;
            let start = fields.uint("start", cx.diags).unwrap_or(1);
            let size = match (
                fields.string("size_param", cx.diags),
                fields.uint("size", cx.diags),
            ) {
                (Some(p), Some(n)) => Some((p, u64::from(n))),
                (None, None) => None,
                _ => {
                    cx.diags.push(Diagnostic::new(
                        &node.span,
                        "`size_param` and `size` go together",
                    ));
                    return None;
                }
            };
            Pagination::PageNumber {
                param,
                start: u64::from(start),
                size,
            }
        }
        other => {
            cx.diags.push(
                Diagnostic::new(&kind.span, format!("unknown pagination `{other}`"))
                    .hint("use next_link, link_header, cursor or page"),
            );
            return None;
        }
    })
}

impl TaskAction for ExtractAction {
    fn secrets(&self) -> Vec<String> {
        match &self.source {
            Source::Http(http) => {
                crate::configured_secrets(http.headers.iter().chain(&http.params))
            }
            Source::Query { .. } | Source::Files(_) => Vec::new(),
        }
    }

    fn lineage(&self, template: Option<&TemplateContext>) -> sluice_core::Lineage {
        use crate::lineage::{fields_of, lake_dataset, rendered, sql_lineage};
        let mut lineage = sluice_core::Lineage::default();
        let schema = match &self.source {
            Source::Query { endpoint, query } => {
                let template = template.map(|t| t.clone().in_dialect(source_dialect(endpoint)));
                let read = sql_lineage(&rendered(query, template.as_ref()), endpoint);
                lineage.sql = read.sql;
                for d in read.inputs {
                    lineage = lineage.input(d);
                }
                None
            }
            Source::Files(files) => {
                if let Some(d) = lake_dataset(&self.lake, &rendered(&files.path, template)) {
                    lineage = lineage.input(d);
                }
                files.schema.as_ref()
            }
            Source::Http(http) => {
                let url = http.connection.url();
                let authority = match url.port() {
                    Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
                    None => url.host_str().unwrap_or_default().to_string(),
                };
                let path = rendered(&http.path, template);
                let base = url.path().trim_end_matches('/');
                lineage = lineage.input(sluice_core::Dataset::new(
                    format!("{}://{authority}", url.scheme()),
                    format!("{base}/{}", path.trim_start_matches('/')),
                ));
                http.schema.as_ref()
            }
        };
        if let Some(out) = lake_dataset(&self.lake, &rendered(&self.to, template)) {
            if let Some(schema) = schema {
                lineage.fields.insert(out.clone(), fields_of(schema));
            }
            lineage = lineage.output(out);
        }
        lineage
    }

    fn run<'a>(&'a self, run: &'a TaskRun) -> BoxFuture<'a, Result<TaskOutput, TaskError>> {
        Box::pin(io::until_cancelled(
            run,
            "the extract was interrupted",
            self.extract(run),
        ))
    }
}

impl ExtractAction {
    async fn extract(&self, run: &TaskRun) -> Result<TaskOutput, TaskError> {
        let lake = io::lake(&self.lake)?;
        let context = self.template_context(run);
        let render = |text: &str| {
            template::render(text, &context).map_err(|e| TaskError::config(e.to_string()))
        };
        let bad = Arc::new(BadRecords::new(run.ledger.clone(), self.max_bad_records));
        let (schema, stream) = self.read(run, lake, &render, &bad).await?;
        let high_water = match &self.incremental {
            Some(inc) => Some(Arc::new(Mutex::new(
                HighWater::new(&inc.column, &schema).map_err(task_error)?,
            ))),
            None => None,
        };
        let target = lake.resolve(&render(&self.to)?).map_err(task_error)?;
        run.log.line(format!(
            "writing Parquet to {target} (columns: {})",
            files::describe(&schema)
        ));
        // The high-water mark sees every batch on its way to the file.
        let stream = observe(stream, high_water.clone());
        let rows = files::write_parquet(&target, schema, stream)
            .await
            .map_err(task_error)?;
        bad.flush().map_err(task_error)?;
        let rejected = bad.seen();
        if rejected > 0 {
            run.log.line(format!(
                "{rejected} bad record(s) went to the dead-letter store (`sluice dlq list`)"
            ));
        }
        let watermark = high_water.and_then(|h| {
            h.lock()
                .unwrap_or_else(|p| p.into_inner())
                .value()
                .map(String::from)
        });
        run.log.line(format!(
            "extracted {rows} rows into {target}{}",
            watermark
                .as_ref()
                .map(|w| format!("; new high-water mark {w} (committed when the run succeeds)"))
                .unwrap_or_default()
        ));
        Ok(TaskOutput {
            rows: Some(rows),
            rejected: Some(rejected),
            watermark: watermark.or_else(|| run.watermark.clone()),
        })
    }

    /// The run's template context in the source's SQL dialect, with the incremental column's
    /// last value (logged).
    fn template_context(&self, run: &TaskRun) -> TemplateContext {
        let mut context = run.template.clone();
        if let Source::Query { endpoint, .. } = &self.source {
            context.dialect = source_dialect(endpoint);
        }
        if let Some(inc) = &self.incremental {
            let last = run.watermark.as_deref().or(inc.initial.as_deref());
            context.incremental = Some(incremental_value(inc, last));
            run.log.line(format!(
                "incremental on `{}`, last value: {}",
                inc.column,
                last.unwrap_or("none (first run)")
            ));
        }
        context
    }

    /// Starts reading the source: its schema and its batches. Bad records of files and HTTP
    /// pages go to `bad`.
    async fn read(
        &self,
        run: &TaskRun,
        lake: &sluice_io::lake::Lake,
        render: &(dyn Fn(&str) -> Result<String, TaskError> + Sync),
        bad: &Arc<BadRecords>,
    ) -> Result<(SchemaRef, BatchStream), TaskError> {
        match &self.source {
            Source::Query { endpoint, query } => {
                let query = render(query)?;
                run.log
                    .line(format!("extracting from {}:\n{query}", endpoint.describe()));
                self.query(endpoint, query).await
            }
            Source::Files(source) => {
                let files = io::resolve_files(run, lake, source).await?;
                let format = io::format_of(source, &files[0].shown)?;
                run.log.line(format!(
                    "reading {} file(s): {}",
                    files.len(),
                    files
                        .iter()
                        .map(|f| f.shown.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                files::read(
                    files,
                    FileRead {
                        format,
                        schema: source.schema.clone(),
                        bad: bad.clone(),
                    },
                )
                .await
                .map_err(task_error)
            }
            Source::Http(http) => {
                let source = self.http_source(http, render)?;
                run.log.line(format!(
                    "reading {}{}",
                    http.connection.redacted_uri(),
                    http.path
                ));
                let pages = sluice_io::http::pages(self.http.clone(), source);
                sluice_io::rows::batches_from_pages(
                    pages,
                    http.schema.clone(),
                    bad.clone(),
                    format!("{}{}", http.connection.name, http.path),
                )
                .await
                .map_err(task_error)
            }
        }
    }

    /// Runs the rendered query on its database.
    async fn query(
        &self,
        endpoint: &Endpoint,
        query: String,
    ) -> Result<(SchemaRef, BatchStream), TaskError> {
        match endpoint {
            Endpoint::Postgres(c) => {
                let client = sluice_io::postgres::connect(c.expose_uri())
                    .await
                    .map_err(task_error)?;
                sluice_io::postgres::extract(client, &query, BATCH_ROWS).await
            }
            Endpoint::MySql(c) => {
                sluice_io::mysql::extract(c.expose_uri(), &query, BATCH_ROWS).await
            }
            Endpoint::DuckDb { path, .. } => {
                crate::duck::query_batches(self.warehouses.get(path), query).await
            }
            _ => unreachable!("checked at compile time"),
        }
        .map_err(task_error)
    }

    fn http_source(
        &self,
        http: &HttpConfig,
        render: &dyn Fn(&str) -> Result<String, TaskError>,
    ) -> Result<HttpSource, TaskError> {
        let mut base = http.connection.url().clone();
        // Credentials travel in headers, never in the URL that error messages could show.
        let auth = if !base.username().is_empty() {
            let user = percent_decode(base.username());
            let password = base.password().map(percent_decode);
            Some(Auth::Basic { user, password })
        } else {
            base.query_pairs()
                .find(|(k, _)| k == "token")
                .map(|(_, v)| Auth::Bearer(v.into_owned()))
        };
        let kept: Vec<(String, String)> = base
            .query_pairs()
            .filter(|(k, _)| k != "token")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let _ = base.set_username("");
        let _ = base.set_password(None);
        base.set_query(None);
        let path = render(&http.path)?;
        let url = if path.is_empty() {
            base
        } else {
            let mut joined = base.clone();
            let prefix = base.path().trim_end_matches('/');
            joined.set_path(&format!("{prefix}/{}", path.trim_start_matches('/')));
            joined
        };
        let mut source = HttpSource::new(url);
        source.params = kept;
        for (k, v) in &http.params {
            source.params.push((k.clone(), render(v)?));
        }
        for (k, v) in &http.headers {
            source.headers.push((k.clone(), render(v)?));
        }
        source.auth = auth;
        source.records_path = http.records.clone();
        source.pagination = http.pagination.clone();
        source.max_pages = http.max_pages;
        source.retries = http.retries;
        source.follow_cross_origin = http.follow_cross_origin;
        source.timeout = Duration::from_secs(60);
        Ok(source)
    }
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Passes batches through, letting the high-water mark see each one.
fn observe(stream: BatchStream, high_water: Option<Arc<Mutex<HighWater>>>) -> BatchStream {
    let Some(hw) = high_water else { return stream };
    stream
        .map(move |batch| {
            let batch = batch?;
            hw.lock()
                .unwrap_or_else(|p| p.into_inner())
                .observe(&batch)?;
            Ok::<_, IoError>(batch)
        })
        .boxed()
}
