//! OpenLineage run events for task tries: START when a try starts, COMPLETE or FAIL when it
//! ends, with the task's input and output datasets, their schema facet where the fields are
//! known, the column-lineage facet where the SQL tells, and the SQL itself. Where the events go
//! (an NDJSON file, a Marquez-compatible endpoint) is the binary's business: a `LineageSink`.

use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use sluice_core::{Lineage, Pipeline};
use sluice_store::RunRecord;

const SPEC: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const FACETS: &str = "https://openlineage.io/spec/facets";

/// Receives run events (JSON objects in OpenLineage's RunEvent shape). Must not block.
pub trait LineageSink: Send + Sync {
    /// The namespace of Sluice's jobs (the project's name unless configured).
    fn namespace(&self) -> &str;
    fn emit(&self, event: Value);
    /// Waits (at most `within`) for events still on their way.
    fn flush(&self, _within: std::time::Duration) {}
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Start,
    Complete,
    Fail,
    /// Stopped before it ended (Ctrl-C, SIGTERM): it runs again later.
    Abort,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Start => "START",
            EventType::Complete => "COMPLETE",
            EventType::Fail => "FAIL",
            EventType::Abort => "ABORT",
        }
    }
}

fn producer() -> String {
    format!(
        "https://github.com/sluice-data/sluice/tree/v{}",
        env!("CARGO_PKG_VERSION")
    )
}

fn facet(name: &str, version: &str, body: Value) -> Value {
    let mut f = Map::new();
    f.insert("_producer".into(), Value::String(producer()));
    f.insert(
        "_schemaURL".into(),
        Value::String(format!("{FACETS}/{version}/{name}.json#/$defs/{name}")),
    );
    if let Value::Object(fields) = body {
        f.extend(fields);
    }
    Value::Object(f)
}

/// A stable UUID (version-5 layout, SHA-256 based) for a name: the same try gets the same run
/// id in its START and its COMPLETE, across processes.
pub fn run_uuid(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// One try's run event.
#[expect(
    clippy::too_many_arguments,
    reason = "an event names its kind, job, run, try, datasets and error: one argument each"
)]
pub fn run_event(
    event: EventType,
    namespace: &str,
    pipeline: &Pipeline,
    task: &str,
    run: &RunRecord,
    try_number: u32,
    lineage: &Lineage,
    error: Option<&str>,
) -> Value {
    let iso = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut run_facets = Map::new();
    run_facets.insert(
        "nominalTime".into(),
        facet(
            "NominalTimeRunFacet",
            "1-0-1",
            json!({
                "nominalStartTime": iso(run.data_interval_start),
                "nominalEndTime": iso(run.data_interval_end),
            }),
        ),
    );
    run_facets.insert(
        "parent".into(),
        facet(
            "ParentRunFacet",
            "1-1-0",
            json!({
                "run": { "runId": run_uuid(&format!("{}/{}", pipeline.id, run.run_id)) },
                "job": { "namespace": namespace, "name": pipeline.id },
            }),
        ),
    );
    if let Some(message) = error {
        run_facets.insert(
            "errorMessage".into(),
            facet(
                "ErrorMessageRunFacet",
                "1-0-1",
                json!({ "message": message, "programmingLanguage": "sluice" }),
            ),
        );
    }
    let mut job_facets = Map::new();
    job_facets.insert(
        "jobType".into(),
        facet(
            "JobTypeJobFacet",
            "2-0-3",
            json!({ "processingType": "BATCH", "integration": "SLUICE", "jobType": "TASK" }),
        ),
    );
    if let Some(sql) = &lineage.sql {
        job_facets.insert(
            "sql".into(),
            facet("SQLJobFacet", "1-1-0", json!({ "query": sql })),
        );
    }
    let dataset = |d: &sluice_core::Dataset, output: bool| {
        let mut facets = Map::new();
        if let Some(fields) = lineage.fields.get(d) {
            facets.insert(
                "schema".into(),
                facet("SchemaDatasetFacet", "1-1-1", json!({ "fields": fields })),
            );
        }
        if output && let Some(columns) = lineage.columns.get(d) {
            let fields: Map<String, Value> = columns
                .iter()
                .map(|(col, inputs)| {
                    let input_fields: Vec<Value> = inputs
                        .iter()
                        .map(|(ds, field)| {
                            json!({ "namespace": ds.namespace, "name": ds.name, "field": field })
                        })
                        .collect();
                    (col.clone(), json!({ "inputFields": input_fields }))
                })
                .collect();
            facets.insert(
                "columnLineage".into(),
                facet(
                    "ColumnLineageDatasetFacet",
                    "1-2-0",
                    json!({ "fields": fields }),
                ),
            );
        }
        json!({ "namespace": d.namespace, "name": d.name, "facets": facets })
    };
    json!({
        "eventType": event.as_str(),
        "eventTime": iso(Utc::now()),
        "producer": producer(),
        "schemaURL": SPEC,
        "run": {
            "runId": run_uuid(&format!("{}/{}/{task}/{try_number}", pipeline.id, run.run_id)),
            "facets": run_facets,
        },
        "job": {
            "namespace": namespace,
            "name": format!("{}.{task}", pipeline.id),
            "facets": job_facets,
        },
        "inputs": lineage.inputs.iter().map(|d| dataset(d, false)).collect::<Vec<_>>(),
        "outputs": lineage.outputs.iter().map(|d| dataset(d, true)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_stable_uuids() {
        let a = run_uuid("p/manual__2024-01-01/t/1");
        assert_eq!(a, run_uuid("p/manual__2024-01-01/t/1"));
        assert_ne!(a, run_uuid("p/manual__2024-01-01/t/2"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "5", "version nibble");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "variant bits");
    }
}
