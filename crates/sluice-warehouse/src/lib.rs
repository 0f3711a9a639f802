//! The embedded DuckDB warehouse.
//!
//! DuckDB allows one process to write a database file, with any number of connections inside
//! that process. The database is opened once, lazily (a project whose pipelines never touch the
//! warehouse never opens it), and every task gets its own connection cloned from that one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub mod load;

pub use duckdb;
use duckdb::{Connection, InterruptHandle};

#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error("cannot open the warehouse {path}: {message}{hint}")]
    Open {
        path: String,
        message: String,
        hint: &'static str,
    },
    #[error("{0}")]
    Sql(String),
    #[error("the query was interrupted")]
    Interrupted,
}

pub struct Warehouse {
    path: PathBuf,
    base: Mutex<Option<Connection>>,
}

impl std::fmt::Debug for Warehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Warehouse({})", self.path.display())
    }
}

impl Warehouse {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Warehouse {
            path: path.into(),
            base: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new connection to the warehouse, opening the database on first use.
    pub fn connect(&self) -> Result<Connection, WarehouseError> {
        let mut base = self.base.lock().unwrap_or_else(|p| p.into_inner());
        if base.is_none() {
            if let Some(dir) = self.path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let conn = Connection::open(&self.path).map_err(|e| {
                let message = e.to_string();
                let hint = if message.contains("lock") {
                    "\n  hint: another process has this warehouse open for writing; DuckDB allows one writer process at a time"
                } else {
                    ""
                };
                WarehouseError::Open {
                    path: self.path.display().to_string(),
                    message,
                    hint,
                }
            })?;
            *base = Some(conn);
        }
        base.as_ref()
            .expect("opened above")
            .try_clone()
            .map_err(|e| WarehouseError::Sql(e.to_string()))
    }
}

/// The DuckDB databases a process uses, each opened once whichever tasks name it.
#[derive(Default, Debug)]
pub struct Warehouses {
    by_path: Mutex<HashMap<PathBuf, Arc<Warehouse>>>,
}

impl Warehouses {
    /// The process's warehouses. DuckDB lets one process write a database file, and a second
    /// open of the same file in one process would be a second writer: everything in a process
    /// (tasks, streams, validation) opens its databases here.
    pub fn shared() -> Arc<Warehouses> {
        static SHARED: std::sync::OnceLock<Arc<Warehouses>> = std::sync::OnceLock::new();
        SHARED.get_or_init(Arc::default).clone()
    }

    pub fn get(&self, path: &Path) -> Arc<Warehouse> {
        let mut map = self.by_path.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(path.to_path_buf())
            .or_insert_with(|| Arc::new(Warehouse::new(path)))
            .clone()
    }
}

/// Interrupts a running query when dropped before [`QueryGuard::disarm`] is called: a task
/// whose future is dropped (timeout, cancellation) stops its query instead of leaving it running.
pub struct QueryGuard {
    handle: Option<Arc<InterruptHandle>>,
}

impl QueryGuard {
    pub fn new(conn: &Connection) -> Self {
        QueryGuard {
            handle: Some(conn.interrupt_handle()),
        }
    }

    pub fn disarm(mut self) {
        self.handle = None;
    }
}

impl Drop for QueryGuard {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.interrupt();
        }
    }
}

/// Runs every statement of `sql` in one transaction: all of them take effect, or none.
pub fn execute_in_transaction(conn: &mut Connection, sql: &str) -> Result<(), WarehouseError> {
    let tx = conn.transaction().map_err(sql_error)?;
    tx.execute_batch(sql).map_err(sql_error)?;
    tx.commit().map_err(sql_error)
}

fn sql_error(e: duckdb::Error) -> WarehouseError {
    let text = e.to_string();
    if text.contains("Interrupted") || text.contains("INTERRUPT") {
        WarehouseError::Interrupted
    } else {
        WarehouseError::Sql(text)
    }
}
