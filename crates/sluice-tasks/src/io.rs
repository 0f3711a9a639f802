//! What the `extract` and `load` kinds share: the lake, connections by name, file sources and
//! declared schemas, decoded from YAML with their positions for `sluice check`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sluice_core::connections::{
    CONNECTIONS_FILE, Connection, ConnectionKind, Connections, ENV_PREFIX, WAREHOUSE,
};
use sluice_core::decode::Fields;
use sluice_core::diag::did_you_mean;
use sluice_core::sql::Dialect;
use sluice_core::task::CompileContext;
use sluice_core::yaml::{Node, Value};
use sluice_core::{Diagnostic, TaskError, TaskOutput, TaskRun};
use sluice_io::IoError;
use sluice_io::arrow::datatypes::{Field, Schema, SchemaRef};
use sluice_io::files::Format;
use sluice_io::lake::Lake;

/// The connection a `lake` names, when there is one: the project's lake lives in that store.
pub const LAKE: &str = "lake";

/// The project's lake, or why it could not be set up (reported by the tasks that use it).
pub type LakeHandle = Arc<Result<Lake, String>>;

pub fn open_lake(lake_dir: &Path, root: &Path, connections: &Connections) -> LakeHandle {
    let lake = match connections.get(LAKE) {
        Some(c) if c.kind == ConnectionKind::S3 => Lake::s3(c.url(), c.redacted_uri(), root),
        Some(c) if c.kind == ConnectionKind::File => Lake::local(Path::new(c.url().path()), root),
        Some(c) => Err(IoError::invalid(format!(
            "the `lake` connection is a {} connection; a lake is an s3:// or file:// location",
            c.kind.name()
        ))),
        None => Lake::local(lake_dir, root),
    };
    Arc::new(lake.map_err(|e| e.to_string()))
}

pub fn lake(handle: &LakeHandle) -> Result<&Lake, TaskError> {
    handle
        .as_ref()
        .as_ref()
        .map_err(|e| TaskError::config(format!("the data lake is not usable: {e}")))
}

/// An I/O failure as a task error: bad data and configuration are not retried.
pub fn task_error(e: IoError) -> TaskError {
    if e.retryable() {
        TaskError::failed(e.to_string())
    } else {
        TaskError::config(e.to_string())
    }
}

/// Runs `work` until it ends or the try is cancelled; dropping `work` stops its streams and
/// rolls back its transaction.
pub async fn until_cancelled(
    run: &TaskRun,
    interrupted: &str,
    work: impl std::future::Future<Output = Result<TaskOutput, TaskError>>,
) -> Result<TaskOutput, TaskError> {
    tokio::select! {
        r = work => r,
        _ = run.cancel.cancelled() => Err(TaskError::failed(interrupted)),
    }
}

/// What a connection name stands for.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// A DuckDB database file (`warehouse` is the project's).
    DuckDb {
        name: String,
        path: PathBuf,
    },
    Postgres(Connection),
    MySql(Connection),
    Http(Connection),
    Other(Connection),
}

impl Endpoint {
    /// The kind of system, as people call it.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Endpoint::DuckDb { .. } => "DuckDB",
            Endpoint::Postgres(c) | Endpoint::MySql(c) | Endpoint::Http(c) | Endpoint::Other(c) => {
                c.kind.name()
            }
        }
    }

    /// The SQL dialect of a database endpoint (`None` for HTTP APIs and other systems).
    pub fn dialect(&self) -> Option<Dialect> {
        match self {
            Endpoint::DuckDb { .. } => Some(Dialect::DuckDb),
            Endpoint::Postgres(_) => Some(Dialect::Postgres),
            Endpoint::MySql(_) => Some(Dialect::MySql),
            Endpoint::Http(_) | Endpoint::Other(_) => None,
        }
    }

    /// The schema a table name without one lives in, for the databases tables are written to.
    /// (MySQL has databases for schemas: the one the URI names.)
    pub fn default_schema(&self) -> Option<String> {
        match self {
            Endpoint::DuckDb { .. } => Some("main".into()),
            Endpoint::Postgres(_) => Some("public".into()),
            Endpoint::MySql(c) => Some(c.url().path().trim_start_matches('/'))
                .filter(|db| !db.is_empty())
                .map(str::to_string),
            _ => None,
        }
    }

    pub fn describe(&self) -> String {
        let name = match self {
            Endpoint::DuckDb { name, .. } => name,
            Endpoint::Postgres(c) | Endpoint::MySql(c) | Endpoint::Http(c) | Endpoint::Other(c) => {
                &c.name
            }
        };
        format!("{} `{name}`", self.kind_name())
    }
}

/// The connection `name` (or the project's `warehouse`) as an endpoint; `None` when there is
/// no such connection.
pub fn endpoint_named(
    connections: &Connections,
    default_warehouse: &Path,
    root: &Path,
    name: &str,
) -> Option<Endpoint> {
    if let Some(c) = connections.get(name) {
        return Some(match c.kind {
            ConnectionKind::DuckDb => Endpoint::DuckDb {
                name: name.to_string(),
                path: c.duckdb_path(root).expect("a DuckDB connection"),
            },
            ConnectionKind::Postgres => Endpoint::Postgres(c.clone()),
            ConnectionKind::MySql => Endpoint::MySql(c.clone()),
            ConnectionKind::Http => Endpoint::Http(c.clone()),
            _ => Endpoint::Other(c.clone()),
        });
    }
    (name == WAREHOUSE).then(|| Endpoint::DuckDb {
        name: WAREHOUSE.to_string(),
        path: default_warehouse.to_path_buf(),
    })
}

/// The project's warehouse: the `warehouse` connection when there is one (DuckDB, PostgreSQL
/// or MySQL), else the embedded DuckDB file.
pub fn warehouse(connections: &Connections, default_warehouse: &Path, root: &Path) -> Endpoint {
    endpoint_named(connections, default_warehouse, root, WAREHOUSE)
        .expect("`warehouse` always names an endpoint")
}

/// The endpoint `node` names, or a diagnostic.
pub fn endpoint(
    connections: &Connections,
    default_warehouse: &Path,
    node: &Node,
    cx: &mut CompileContext<'_>,
) -> Option<Endpoint> {
    let name = node.scalar_text().unwrap_or_default();
    if let Some(e) = endpoint_named(connections, default_warehouse, &cx.project.root, &name) {
        return Some(e);
    }
    let names = connections
        .iter()
        .map(|c| c.name.as_str())
        .chain([WAREHOUSE]);
    let hint = did_you_mean(&name, names).unwrap_or_else(|| {
        format!(
            "define it in {CONNECTIONS_FILE} or as {ENV_PREFIX}{}",
            name.to_ascii_uppercase()
        )
    });
    cx.diags
        .push(Diagnostic::new(&node.span, format!("unknown connection `{name}`")).hint(hint));
    None
}

/// Files to read: a templated path (globs allowed) and how to parse them.
#[derive(Debug, Clone)]
pub struct FilesSource {
    pub path: String,
    /// From `format:` or the file extension at run time.
    pub format: Option<Format>,
    pub schema: Option<SchemaRef>,
}

pub const FILE_KEYS: &[&str] = &["files", "format", "schema", "delimiter"];

/// Decodes `files`, `format`, `schema` and `delimiter` of a source mapping.
pub fn files_source(
    fields: &Fields<'_>,
    path: &Node,
    cx: &mut CompileContext<'_>,
) -> Option<FilesSource> {
    let text = path.as_str().unwrap_or_default().to_string();
    let mut ok = cx.check_template(path, &text);
    let mut format = None;
    if let Some(f) = fields.get("format") {
        let name = f.scalar_text().unwrap_or_default();
        format = Format::parse(&name);
        if format.is_none() {
            cx.diags.push(
                Diagnostic::new(&f.span, format!("unknown format `{name}`"))
                    .hint("use csv, tsv, json, ndjson or parquet"),
            );
            ok = false;
        }
    } else if Format::from_name(&text).is_none() {
        cx.diags.push(
            Diagnostic::new(
                &path.content_span(),
                format!("cannot tell the format of `{text}` from its extension"),
            )
            .hint("add `format: csv` (or tsv, json, ndjson, parquet)"),
        );
        ok = false;
    }
    if let Some(d) = fields.get("delimiter") {
        let text = d.scalar_text().unwrap_or_default();
        match (text.as_bytes(), format) {
            ([b], Some(Format::Csv { .. }) | None) => format = Some(Format::Csv { delimiter: *b }),
            _ => {
                cx.diags.push(
                    Diagnostic::new(&d.span, "`delimiter` must be one character, for CSV files")
                        .hint("e.g. `delimiter: \";\"`"),
                );
                ok = false;
            }
        }
    }
    let parquet = format == Some(Format::Parquet)
        || (format.is_none() && Format::from_name(&text) == Some(Format::Parquet));
    let schema = match fields.get("schema") {
        Some(node) if parquet => {
            cx.diags.push(
                Diagnostic::new(
                    &node.span,
                    "`schema` applies to CSV and JSON files; Parquet files carry their own types",
                )
                .hint("remove `schema`, or cast in a later sql task"),
            );
            ok = false;
            None
        }
        Some(node) => {
            let s = declared_schema(node, cx);
            ok &= s.is_some();
            s
        }
        None => None,
    };
    ok.then_some(FilesSource {
        path: text,
        format,
        schema,
    })
}

/// `schema: {order_id: int64, amount: "decimal(10,2)"}` (a column ending in `!` is NOT NULL:
/// `order_id: int64!`).
pub fn declared_schema(node: &Node, cx: &mut CompileContext<'_>) -> Option<SchemaRef> {
    let Value::Map(entries) = &node.value else {
        cx.diags.push(
            Diagnostic::new(
                &node.span,
                format!(
                    "`schema` must map column names to types, found {}",
                    node.kind_name()
                ),
            )
            .hint("e.g. `schema: {order_id: int64, amount: \"decimal(10,2)\", order_date: date}`"),
        );
        return None;
    };
    let mut fields = Vec::with_capacity(entries.len());
    let mut ok = true;
    for (k, v) in entries {
        let name = k.scalar_text().unwrap_or_default();
        let ty = v.scalar_text().unwrap_or_default();
        let (ty, nullable) = match ty.strip_suffix('!') {
            Some(t) => (t.to_string(), false),
            None => (ty, true),
        };
        match sluice_io::rows::parse_type(&ty) {
            Ok(dt) => fields.push(Field::new(name, dt, nullable)),
            Err(e) => {
                cx.diags
                    .push(Diagnostic::new(&v.span, format!("column `{name}`: {e}")));
                ok = false;
            }
        }
    }
    ok.then(|| Arc::new(Schema::new(fields)))
}

/// `schema.table` or `table` (schema `main` in DuckDB, `public` in PostgreSQL).
pub fn split_table(name: &str, default_schema: &str) -> (String, String) {
    match name.split_once('.') {
        Some((s, t)) => (s.to_string(), t.to_string()),
        None => (default_schema.to_string(), name.to_string()),
    }
}

/// Renders a templated path and resolves it to its files.
pub async fn resolve_files(
    run: &TaskRun,
    lake: &Lake,
    source: &FilesSource,
) -> Result<Vec<sluice_io::lake::Location>, TaskError> {
    let path = run.render(&source.path)?;
    let location = lake.resolve(&path).map_err(task_error)?;
    lake.expand(&location).await.map_err(task_error)
}

/// The format of files: declared, or from the first file's extension.
pub fn format_of(source: &FilesSource, first: &str) -> Result<Format, TaskError> {
    source
        .format
        .or_else(|| Format::from_name(first))
        .ok_or_else(|| {
            TaskError::config(format!("cannot tell the format of {first}; add `format:`"))
        })
}
