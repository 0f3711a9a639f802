//! `sql`: run templated SQL on the project's embedded DuckDB warehouse, every statement of the
//! task in one transaction.
//!
//! ```yaml
//! transform_data: { sql: { file: sql/transform_orders.sql } }
//! quick_check:    { sql: "select count(*) from staging.orders" }
//! ```
//!
//! `on:` names the DuckDB database: `warehouse` (the default: the project's warehouse) or a
//! duckdb:// connection. Values reach the SQL only through the `sql` (literal) and `ident`
//! (identifier) filters.

use std::path::PathBuf;
use std::sync::Arc;

use crate::io::{self, Endpoint};
use futures::future::BoxFuture;
use sluice_core::connections::Connections;
use sluice_core::decode::Fields;
use sluice_core::sql::Dialect;
use sluice_core::task::CompileContext;
use sluice_core::template::TemplateContext;
use sluice_core::yaml::{Node, Span};
use sluice_core::{Diagnostic, TaskAction, TaskError, TaskKind, TaskOutput, TaskRun};
use sluice_warehouse::{QueryGuard, Warehouse, WarehouseError, Warehouses, execute_in_transaction};

/// Attempts of one transaction that loses write-write conflicts to concurrent tasks.
const CONFLICT_ATTEMPTS: u32 = 12;

fn is_conflict(message: &str) -> bool {
    message.contains("write-write conflict") || message.contains("Conflict on")
}

pub struct SqlKind {
    pub warehouses: Arc<Warehouses>,
    /// The project's warehouse: what `on: warehouse` (or no `on:`) means.
    pub default_warehouse: PathBuf,
    pub connections: Connections,
}

impl SqlKind {
    /// The DuckDB database `on: NAME` names, or a diagnostic.
    fn resolve(&self, on: &Node, cx: &mut CompileContext<'_>) -> Option<Arc<Warehouse>> {
        match io::endpoint(&self.connections, &self.default_warehouse, on, cx)? {
            Endpoint::DuckDb { path, .. } => Some(self.warehouses.get(&path)),
            other => {
                cx.diags.push(
                    Diagnostic::new(
                        &on.span,
                        format!(
                            "`{}` is a {} connection; sql tasks run on DuckDB connections",
                            on.scalar_text().unwrap_or_default(),
                            other.kind_name()
                        ),
                    )
                    .hint("use `on: warehouse` or a duckdb:// connection"),
                );
                None
            }
        }
    }
}

#[derive(Debug)]
struct SqlAction {
    warehouse: Arc<Warehouse>,
    sql: String,
    origin: String,
}

impl TaskKind for SqlKind {
    fn name(&self) -> &'static str {
        "sql"
    }

    fn compile(&self, config: &Node, cx: &mut CompileContext<'_>) -> Option<Arc<dyn TaskAction>> {
        let mut warehouse = None;
        let (sql, origin, ok) = if let Some(text) = config.as_str() {
            let ok = cx.check_template(config, text);
            (text.to_string(), "inline SQL".to_string(), ok)
        } else {
            let fields = Fields::new(config, "`sql`", &["query", "file", "on"], cx.diags)?;
            if let Some(on) = fields.get("on") {
                warehouse = Some(self.resolve(on, cx)?);
            }
            match (fields.get("query"), fields.get("file")) {
                (Some(q), None) => {
                    let text = q.as_str().unwrap_or_default().to_string();
                    let ok = cx.check_template(q, &text);
                    (text, "inline SQL".to_string(), ok)
                }
                (None, Some(f)) => {
                    let rel = f.as_str().unwrap_or_default();
                    let path = cx.project.root.join(rel);
                    let text = match std::fs::read_to_string(&path) {
                        Ok(t) => t,
                        Err(e) => {
                            cx.diags.push(
                                Diagnostic::new(&f.content_span(), format!("cannot read SQL file `{rel}`: {e}"))
                                    .hint("paths are relative to the project folder, e.g. sql/transform_orders.sql"),
                            );
                            return None;
                        }
                    };
                    let ok = cx.check_template_at(&Span::new(rel.into(), 1, 1), &text);
                    (text, rel.to_string(), ok)
                }
                (Some(_), Some(f)) => {
                    cx.diags.push(Diagnostic::new(
                        &f.span,
                        "`sql` takes `query` or `file`, not both",
                    ));
                    return None;
                }
                (None, None) => {
                    cx.diags.push(
                        Diagnostic::new(&config.span, "`sql` needs `query` or `file`")
                            .hint("e.g. `sql: { file: sql/transform.sql }` or `sql: \"select 1\"`"),
                    );
                    return None;
                }
            }
        };
        if sql.trim().is_empty() {
            cx.diags
                .push(Diagnostic::new(&config.span, "the SQL is empty"));
            return None;
        }
        ok.then(|| {
            let warehouse =
                warehouse.unwrap_or_else(|| self.warehouses.get(&self.default_warehouse));
            Arc::new(SqlAction {
                warehouse,
                sql,
                origin,
            }) as Arc<dyn TaskAction>
        })
    }
}

impl TaskAction for SqlAction {
    fn lineage(&self, template: Option<&TemplateContext>) -> sluice_core::Lineage {
        let warehouse = Endpoint::DuckDb {
            name: "warehouse".into(),
            path: self.warehouse.path().to_path_buf(),
        };
        let sql = match template {
            Some(_) => crate::lineage::rendered(&self.sql, template),
            None => crate::lineage::without_templates(&self.sql),
        };
        crate::lineage::sql_lineage(&sql, &warehouse)
    }

    fn run<'a>(&'a self, run: &'a TaskRun) -> BoxFuture<'a, Result<TaskOutput, TaskError>> {
        Box::pin(async move {
            let sql = run.render_for(Dialect::DuckDb, &self.sql)?;
            run.log.line(format!(
                "running {} on {}:\n{sql}",
                self.origin,
                self.warehouse.path().display()
            ));
            let warehouse = self.warehouse.clone();
            let mut conn = warehouse
                .connect()
                .map_err(|e| TaskError::failed(e.to_string()))?;
            let guard = QueryGuard::new(&conn);
            let cancel = run.cancel.clone();
            let interrupt = conn.interrupt_handle();
            // The query runs on a blocking thread; cancellation interrupts it from here.
            let log = run.log.clone();
            let work = tokio::task::spawn_blocking(move || {
                // DuckDB's concurrency control is optimistic: two transactions that touch the
                // same catalog entry or rows conflict, and the loser can simply go again.
                let mut attempt = 1;
                loop {
                    match execute_in_transaction(&mut conn, &sql) {
                        Err(WarehouseError::Sql(msg))
                            if is_conflict(&msg) && attempt < CONFLICT_ATTEMPTS =>
                        {
                            log.line(format!("transaction conflict, trying again: {msg}"));
                            // Exponential, capped, with jitter so that racing tasks drift apart.
                            let jitter = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map_or(0, |d| u64::from(d.subsec_nanos()) % 20);
                            let wait = (10u64 << attempt.min(6)).min(400) + jitter;
                            std::thread::sleep(std::time::Duration::from_millis(wait));
                            attempt += 1;
                        }
                        other => return other,
                    }
                }
            });
            let result = tokio::select! {
                r = work => r.map_err(|e| TaskError::failed(format!("the query thread failed: {e}")))?,
                _ = cancel.cancelled() => {
                    interrupt.interrupt();
                    Err(WarehouseError::Interrupted)
                }
            };
            guard.disarm();
            match result {
                Ok(()) => {
                    run.log.line("committed");
                    Ok(TaskOutput::default())
                }
                Err(WarehouseError::Interrupted) => {
                    Err(TaskError::failed("the query was interrupted"))
                }
                Err(e) => {
                    run.log.line(format!("rolled back: {e}"));
                    Err(TaskError::failed(e.to_string()))
                }
            }
        })
    }
}
