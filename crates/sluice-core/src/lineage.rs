//! What a task reads and writes, in OpenLineage's terms: datasets named per the OpenLineage
//! naming spec (a namespace for the data source, a name unique within it), their known fields,
//! and which input columns each output column is computed from.
//!
//! Namespaces: `postgres://HOST:PORT` (name `DATABASE.SCHEMA.TABLE`), `mysql://HOST:PORT`
//! (`DATABASE.TABLE`), `s3://BUCKET` (the object key), `file` (the absolute path),
//! `https://HOST` (the path) and, for DuckDB files, `duckdb://` + the file's absolute path
//! (`CATALOG.SCHEMA.TABLE`, the catalog being the file's stem, as DuckDB names it).

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Dataset {
    pub namespace: String,
    pub name: String,
}

impl Dataset {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Dataset {
        Dataset {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name, self.namespace)
    }
}

/// A field of a dataset (the schema facet); the type when it is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    pub name: String,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
}

/// A task's lineage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lineage {
    pub inputs: Vec<Dataset>,
    pub outputs: Vec<Dataset>,
    /// The fields of datasets, where known.
    pub fields: BTreeMap<Dataset, Vec<Field>>,
    /// For an output dataset: each of its columns and the input columns it is computed from.
    pub columns: BTreeMap<Dataset, BTreeMap<String, Vec<(Dataset, String)>>>,
    /// The SQL the task runs, as rendered (OpenLineage's `sql` job facet).
    pub sql: Option<String>,
}

impl Lineage {
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty() && self.outputs.is_empty()
    }

    pub fn input(mut self, d: Dataset) -> Lineage {
        if !self.inputs.contains(&d) {
            self.inputs.push(d);
        }
        self
    }

    pub fn output(mut self, d: Dataset) -> Lineage {
        if !self.outputs.contains(&d) {
            self.outputs.push(d);
        }
        self
    }
}
