//! The task kinds of this scope: `sql` on the embedded warehouse, `shell` and `python`.
//! [`registry`] is the one place kinds are registered.

mod process;
pub mod python;
pub mod shell;
pub mod sql;

use std::sync::Arc;

use sluice_core::connections::Connections;
use sluice_core::{KindRegistry, Settings};
use sluice_warehouse::Warehouses;

/// Every task kind, wired to the project's warehouse, connections and Python interpreter.
pub fn registry(settings: &Settings, connections: &Connections) -> KindRegistry {
    let python = &settings.python;
    let mut kinds = KindRegistry::default();
    kinds.register(Arc::new(sql::SqlKind {
        warehouses: Arc::new(Warehouses::default()),
        default_warehouse: settings.paths.warehouse.clone(),
        connections: connections.clone(),
    }));
    kinds.register(Arc::new(shell::ShellKind));
    kinds.register(Arc::new(python::PythonKind {
        interpreter: python.to_string(),
    }));
    kinds
}
