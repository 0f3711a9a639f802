//! The task kinds: `extract` and `load` (between databases, APIs and the lake), `validate`
//! (data quality), `sql` on DuckDB, `shell` and `python`.
//! [`registry`] is the one place kinds are registered.

mod duck;
pub mod extract;
mod io;
pub mod lineage;
pub mod load;
mod process;
pub mod python;
pub mod quality;
pub mod shell;
pub mod sql;

use std::sync::Arc;

pub use io::{Endpoint, endpoint_named, open_lake};

use sluice_core::connections::Connections;
use sluice_core::{KindRegistry, Settings};
use sluice_warehouse::Warehouses;

/// Every task kind, wired to the project's warehouse, connections and Python interpreter.
pub fn registry(settings: &Settings, connections: &Connections) -> KindRegistry {
    let python = &settings.python;
    let warehouses = Warehouses::shared();
    let lake = io::open_lake(&settings.paths.lake, &settings.paths.root, connections);
    let mut kinds = KindRegistry::default();
    kinds.register(Arc::new(extract::ExtractKind {
        connections: connections.clone(),
        default_warehouse: settings.paths.warehouse.clone(),
        warehouses: warehouses.clone(),
        lake: lake.clone(),
        http: sluice_io::http::PageClient::new(),
    }));
    kinds.register(Arc::new(load::LoadKind {
        connections: connections.clone(),
        default_warehouse: settings.paths.warehouse.clone(),
        warehouses: warehouses.clone(),
        lake: lake.clone(),
    }));
    kinds.register(Arc::new(quality::ValidateKind {
        connections: connections.clone(),
        default_warehouse: settings.paths.warehouse.clone(),
        warehouses: warehouses.clone(),
        lake,
    }));
    kinds.register(Arc::new(sql::SqlKind {
        warehouses,
        default_warehouse: settings.paths.warehouse.clone(),
        connections: connections.clone(),
    }));
    let inherited = Arc::new(sluice_core::settings::inherited_env(&settings.task_env));
    kinds.register(Arc::new(shell::ShellKind {
        inherited: inherited.clone(),
    }));
    kinds.register(Arc::new(python::PythonKind {
        interpreter: python.to_string(),
        inherited,
    }));
    kinds
}

/// The values of secret-named entries (`Authorization`, `X-Api-Key`, `API_TOKEN`) of a task's
/// headers, parameters or environment, as written; templated values become known only when a
/// try renders them.
fn configured_secrets<'a>(entries: impl IntoIterator<Item = &'a (String, String)>) -> Vec<String> {
    entries
        .into_iter()
        .filter(|(name, value)| {
            sluice_core::secrets::is_secret_name(name)
                && !value.contains("{{")
                && !value.contains("{%")
        })
        .flat_map(|(_, value)| sluice_core::secrets::value_secrets(value))
        .collect()
}
