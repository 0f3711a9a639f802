//! The task kinds of this scope: `sql` on the embedded warehouse, `shell` and `python`.
//! [`registry`] is the one place kinds are registered.

mod process;
pub mod python;
pub mod shell;
pub mod sql;

use std::sync::Arc;

use sluice_core::KindRegistry;
use sluice_warehouse::Warehouse;

/// Every task kind, wired to the project's warehouse and Python interpreter.
pub fn registry(warehouse: Arc<Warehouse>, python: &str) -> KindRegistry {
    let mut kinds = KindRegistry::default();
    kinds.register(Arc::new(sql::SqlKind { warehouse }));
    kinds.register(Arc::new(shell::ShellKind));
    kinds.register(Arc::new(python::PythonKind {
        interpreter: python.to_string(),
    }));
    kinds
}
