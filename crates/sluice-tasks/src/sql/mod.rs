//! `sql`: run templated SQL on a database — the project's warehouse (DuckDB, or the
//! PostgreSQL / MySQL server `warehouse` names) or any duckdb://, postgres:// or mysql://
//! connection — every statement of the task in one transaction.
//!
//! ```yaml
//! transform_data: { sql: { file: sql/transform_orders.sql } }
//! in_the_dw:      { sql: { on: shop_dw, file: sql/rollup.sql, statement_timeout: 10m } }
//! quick_check:    { sql: "select count(*) from staging.orders" }
//! ```
//!
//! Values reach the SQL only through the `sql` (literal) and `ident` (identifier) filters, which
//! quote in the connection's dialect. PostgreSQL runs DDL inside the transaction too; MySQL and
//! MariaDB commit implicitly at each DDL statement, so there a task that mixes DDL and data
//! changes is atomic only per statement group (see docs/tasks.md).

mod duck;
mod server;
mod syntax;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::io::{self, Endpoint};
use futures::future::BoxFuture;
use sluice_connect::{MySqlTarget, PgTarget};
use sluice_core::connections::{Connection, Connections, WAREHOUSE};
use sluice_core::decode::Fields;
use sluice_core::sql::Dialect;
use sluice_core::task::CompileContext;
use sluice_core::template::TemplateContext;
use sluice_core::yaml::{Node, Span};
use sluice_core::{Diagnostic, TaskAction, TaskError, TaskKind, TaskOutput, TaskRun};
use sluice_warehouse::{Warehouse, Warehouses};

pub struct SqlKind {
    pub warehouses: Arc<Warehouses>,
    /// The project's DuckDB warehouse: what `on: warehouse` (or no `on:`) means unless the
    /// `warehouse` connection names a server.
    pub default_warehouse: PathBuf,
    pub connections: Connections,
}

/// Where a task's SQL runs.
#[derive(Debug)]
enum Database {
    DuckDb(Arc<Warehouse>),
    // Boxed: a parsed target (driver configuration, TLS set-up) is large.
    Postgres(Connection, Box<PgTarget>),
    MySql(Connection, Box<MySqlTarget>),
}

impl Database {
    fn dialect(&self) -> Dialect {
        match self {
            Database::DuckDb(_) => Dialect::DuckDb,
            Database::Postgres(..) => Dialect::Postgres,
            Database::MySql(..) => Dialect::MySql,
        }
    }

    fn endpoint(&self) -> Endpoint {
        match self {
            Database::DuckDb(w) => Endpoint::DuckDb {
                name: WAREHOUSE.into(),
                path: w.path().to_path_buf(),
            },
            Database::Postgres(c, _) => Endpoint::Postgres(c.clone()),
            Database::MySql(c, _) => Endpoint::MySql(c.clone()),
        }
    }
}

impl SqlKind {
    /// The database `on:` names (the warehouse without it), or a diagnostic at `span`.
    fn resolve(
        &self,
        on: Option<&Node>,
        span: &Span,
        cx: &mut CompileContext<'_>,
    ) -> Option<Database> {
        let endpoint = match on {
            Some(on) => io::endpoint(&self.connections, &self.default_warehouse, on, cx)?,
            None => io::warehouse(&self.connections, &self.default_warehouse, &cx.project.root),
        };
        let span = on.map_or(span, |n| &n.span);
        let at = |message: String| Diagnostic::new(span, message);
        match endpoint {
            Endpoint::DuckDb { path, .. } => Some(Database::DuckDb(self.warehouses.get(&path))),
            Endpoint::Postgres(c) => match PgTarget::parse(c.expose_uri()) {
                Ok(target) => Some(Database::Postgres(c, Box::new(target))),
                Err(e) => {
                    cx.diags.push(at(format!("connection `{}`: {e}", c.name)));
                    None
                }
            },
            Endpoint::MySql(c) => match MySqlTarget::parse(c.expose_uri()) {
                Ok(target) => Some(Database::MySql(c, Box::new(target))),
                Err(e) => {
                    cx.diags.push(at(format!("connection `{}`: {e}", c.name)));
                    None
                }
            },
            other => {
                cx.diags.push(
                    at(format!(
                        "`{}` is a {} connection; sql tasks run on DuckDB, PostgreSQL and \
                         MySQL/MariaDB connections",
                        on.and_then(Node::scalar_text).unwrap_or_default(),
                        other.kind_name()
                    ))
                    .hint("use `on: warehouse` or a duckdb://, postgres:// or mysql:// connection"),
                );
                None
            }
        }
    }
}

#[derive(Debug)]
struct SqlAction {
    database: Database,
    sql: String,
    origin: String,
    /// The server aborts a statement that runs longer (PostgreSQL and MySQL/MariaDB).
    statement_timeout: Option<Duration>,
}

/// The task's SQL as written.
struct Script {
    text: String,
    /// "inline SQL" or the file's path.
    origin: String,
    /// Where the text starts.
    at: Span,
    /// Its template parsed.
    ok: bool,
}

/// The SQL text of the task and where it came from, or diagnostics.
fn script(
    config: &Node,
    fields: Option<&Fields<'_>>,
    cx: &mut CompileContext<'_>,
) -> Option<Script> {
    let inline = |node: &Node, cx: &mut CompileContext<'_>| {
        let text = node.as_str().unwrap_or_default().to_string();
        let ok = cx.check_template(node, &text);
        Script {
            text,
            origin: "inline SQL".to_string(),
            at: node.content_span(),
            ok,
        }
    };
    let Some(fields) = fields else {
        return Some(inline(config, cx));
    };
    match (fields.get("query"), fields.get("file")) {
        (Some(q), None) => Some(inline(q, cx)),
        (None, Some(f)) => {
            let rel = f.as_str().unwrap_or_default();
            let path = cx.project.root.join(rel);
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    cx.diags.push(
                        Diagnostic::new(
                            &f.content_span(),
                            format!("cannot read SQL file `{rel}`: {e}"),
                        )
                        .hint("paths are relative to the project folder, e.g. sql/transform_orders.sql"),
                    );
                    return None;
                }
            };
            let at = Span::new(rel.into(), 1, 1);
            let ok = cx.check_template_at(&at, &text);
            Some(Script {
                text,
                origin: rel.to_string(),
                at,
                ok,
            })
        }
        (Some(_), Some(f)) => {
            cx.diags.push(Diagnostic::new(
                &f.span,
                "`sql` takes `query` or `file`, not both",
            ));
            None
        }
        (None, None) => {
            cx.diags.push(
                Diagnostic::new(&config.span, "`sql` needs `query` or `file`")
                    .hint("e.g. `sql: { file: sql/transform.sql }` or `sql: \"select 1\"`"),
            );
            None
        }
    }
}

impl TaskKind for SqlKind {
    fn name(&self) -> &'static str {
        "sql"
    }

    fn compile(&self, config: &Node, cx: &mut CompileContext<'_>) -> Option<Arc<dyn TaskAction>> {
        let fields = if config.as_str().is_some() {
            None
        } else {
            Some(Fields::new(
                config,
                "`sql`",
                &["query", "file", "on", "statement_timeout", "check_syntax"],
                cx.diags,
            )?)
        };
        let database = self.resolve(fields.as_ref().and_then(|f| f.get("on")), &config.span, cx);
        let statement_timeout = fields
            .as_ref()
            .and_then(|f| f.duration("statement_timeout", cx.diags));
        if let (Some(Database::DuckDb(_)), Some(f)) = (&database, fields.as_ref())
            && let Some(node) = f.get("statement_timeout")
        {
            cx.diags.push(
                Diagnostic::new(
                    &node.span,
                    "`statement_timeout` applies to PostgreSQL and MySQL/MariaDB connections",
                )
                .hint("on DuckDB, give the task a `timeout:`; it interrupts the query"),
            );
            return None;
        }
        let check_syntax = fields
            .as_ref()
            .and_then(|f| f.bool("check_syntax", cx.diags))
            .unwrap_or(true);
        let script = script(config, fields.as_ref(), cx)?;
        if script.text.trim().is_empty() {
            cx.diags
                .push(Diagnostic::new(&config.span, "the SQL is empty"));
            return None;
        }
        let database = database?;
        if check_syntax && script.ok {
            let problems = syntax::check(&script.text, database.dialect(), &script.at);
            let broken = problems.iter().any(Diagnostic::is_error);
            cx.diags.0.extend(problems);
            if broken {
                return None;
            }
        }
        script.ok.then(|| {
            Arc::new(SqlAction {
                database,
                sql: script.text,
                origin: script.origin,
                statement_timeout,
            }) as Arc<dyn TaskAction>
        })
    }
}

impl TaskAction for SqlAction {
    fn lineage(&self, template: Option<&TemplateContext>) -> sluice_core::Lineage {
        let sql = match template {
            Some(_) => crate::lineage::rendered(&self.sql, template),
            None => crate::lineage::without_templates(&self.sql),
        };
        crate::lineage::sql_lineage(&sql, &self.database.endpoint())
    }

    fn run<'a>(&'a self, run: &'a TaskRun) -> BoxFuture<'a, Result<TaskOutput, TaskError>> {
        Box::pin(async move {
            let sql = run.render_for(self.database.dialect(), &self.sql)?;
            match &self.database {
                Database::DuckDb(warehouse) => {
                    run.log.line(format!(
                        "running {} on {}:\n{sql}",
                        self.origin,
                        warehouse.path().display()
                    ));
                    duck::run(warehouse.clone(), sql, run).await
                }
                Database::Postgres(_, target) => {
                    run.log.line(format!(
                        "running {} on PostgreSQL {}:\n{sql}",
                        self.origin,
                        target.target()
                    ));
                    server::postgres(target, &sql, self.statement_timeout, run).await
                }
                Database::MySql(_, target) => {
                    run.log.line(format!(
                        "running {} on MySQL {}:\n{sql}",
                        self.origin,
                        target.target()
                    ));
                    server::mysql(target, &sql, self.statement_timeout, run).await
                }
            }
        })
    }
}
