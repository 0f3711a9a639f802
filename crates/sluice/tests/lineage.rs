//! Lineage end to end: the demo project's daily run emits OpenLineage run events (START and
//! COMPLETE for every task that reads or writes data) that satisfy the spec's RunEvent schema,
//! name their datasets per the naming spec, carry the schema and column-lineage facets, and
//! reach a Marquez-compatible endpoint; `sluice lineage TABLE` draws the graph across tasks.

use crate::common;

use std::path::{Path, PathBuf};

use common::Outcome;
use serde_json::Value;

fn demo(dir: &Path, lineage: &str) -> PathBuf {
    let demo = dir.join("demo");
    common::init_demo(&demo);
    let settings = demo.join("sluice.yaml");
    let text = std::fs::read_to_string(&settings).unwrap();
    std::fs::write(&settings, format!("{text}lineage: {lineage}\n")).unwrap();
    demo
}

fn sluice(project: &Path, args: &[&str]) -> Outcome {
    let out = std::process::Command::new(common::sluice_bin())
        .args(args)
        .arg("--project")
        .arg(project)
        .output()
        .unwrap();
    common::outcome(args, out)
}

/// Every event satisfies the RunEvent schema (formats checked too).
fn assert_valid(events: &[Value]) {
    let schema: Value =
        serde_json::from_str(include_str!("lineage/run-event.schema.json")).unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    for e in events {
        let errors: Vec<String> = validator
            .iter_errors(e)
            .map(|err| format!("{err} at {}", err.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:?} in {e:#}");
    }
}

fn by_job<'a>(events: &'a [Value], job: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["job"]["name"] == job).collect()
}

#[test]
fn a_run_emits_valid_openlineage_events_and_the_graph_spans_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let demo = demo(dir.path(), "{ file: lineage/events.ndjson }");
    let run = sluice(&demo, &["run", "daily_sales_etl", "--date", "2024-01-01"]);
    assert_eq!(run.code, 0, "{}", run.explain());
    let text = std::fs::read_to_string(demo.join("lineage/events.ndjson")).unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_valid(&events);

    // Every task that reads or writes data: a START then a COMPLETE, with one run id; the shell
    // task that only echoes emits nothing.
    for task in [
        "extract_orders",
        "validate_data",
        "load_to_staging",
        "transform_data",
        "update_aggregates",
    ] {
        let mine = by_job(&events, &format!("daily_sales_etl.{task}"));
        let kinds: Vec<&str> = mine
            .iter()
            .map(|e| e["eventType"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["START", "COMPLETE"], "{task}");
        assert_eq!(mine[0]["run"]["runId"], mine[1]["run"]["runId"]);
        assert_eq!(mine[0]["job"]["namespace"], "demo");
        assert_eq!(
            mine[0]["run"]["facets"]["parent"]["job"]["name"],
            "daily_sales_etl"
        );
    }
    assert!(by_job(&events, "daily_sales_etl.notify").is_empty());

    // The extract: a CSV of the lake in, a Parquet file out, with its declared fields.
    let extract = by_job(&events, "daily_sales_etl.extract_orders")[1];
    assert_eq!(extract["inputs"][0]["namespace"], "file");
    assert!(
        extract["inputs"][0]["name"]
            .as_str()
            .unwrap()
            .ends_with("lake/raw/orders/2024-01-01.csv"),
        "{extract:#}"
    );
    let out = &extract["outputs"][0];
    assert!(
        out["name"]
            .as_str()
            .unwrap()
            .ends_with("lake/orders/2024-01-01/data.parquet")
    );
    let fields: Vec<&str> = out["facets"]["schema"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(fields[..3], ["order_id", "customer_id", "total"]);
    // The load: into the warehouse's staging.orders, named catalog.schema.table.
    let load = by_job(&events, "daily_sales_etl.load_to_staging")[1];
    assert_eq!(load["outputs"][0]["name"], "warehouse.staging.orders");
    let ns = load["outputs"][0]["namespace"].as_str().unwrap();
    assert!(
        ns.starts_with("duckdb:///") && ns.ends_with("warehouse.duckdb"),
        "{ns}"
    );
    // The SQL transform: tables from the SQL, and columns traced to their origin.
    let transform = by_job(&events, "daily_sales_etl.transform_data")[1];
    assert_eq!(transform["inputs"][0]["name"], "warehouse.staging.orders");
    let enriched = &transform["outputs"][0];
    assert_eq!(enriched["name"], "warehouse.analytics.orders_enriched");
    let columns = &enriched["facets"]["columnLineage"]["fields"];
    assert_eq!(
        columns["order_date"]["inputFields"][0]["field"],
        "created_at"
    );
    assert_eq!(
        columns["total"]["inputFields"][0]["name"],
        "warehouse.staging.orders"
    );
    assert!(
        transform["job"]["facets"]["sql"]["query"]
            .as_str()
            .unwrap()
            .contains("'2024-01-01'")
    );

    // The graph, across the tasks of the project.
    let graph = sluice(&demo, &["lineage", "staging.orders"]);
    assert_eq!(graph.code, 0, "{}", graph.explain());
    let up = graph.stdout.split("downstream:").next().unwrap();
    let down = graph.stdout.split("downstream:").nth(1).unwrap();
    assert!(
        up.contains("← task daily_sales_etl.load_to_staging"),
        "{}",
        graph.stdout
    );
    assert!(
        up.contains("← task daily_sales_etl.extract_orders"),
        "{}",
        graph.stdout
    );
    assert!(
        down.contains("→ task daily_sales_etl.transform_data"),
        "{}",
        graph.stdout
    );
    assert!(
        down.contains("analytics.orders_enriched"),
        "{}",
        graph.stdout
    );
    let json = sluice(&demo, &["lineage", "warehouse.staging.orders", "--json"]).json();
    assert_eq!(json["dataset"]["name"], "warehouse.staging.orders");
    let unknown = sluice(&demo, &["lineage", "staging.ordrs"]);
    assert_eq!(unknown.code, 2, "{}", unknown.explain());
    assert!(
        unknown.stderr.contains("staging.orders"),
        "{}",
        unknown.explain()
    );
}

#[test]
fn events_reach_a_marquez_compatible_endpoint() {
    let (url, got) = common::json_receiver("/api/v1/lineage");
    let base = url.trim_end_matches("/api/v1/lineage");
    let dir = tempfile::tempdir().unwrap();
    let demo = demo(
        dir.path(),
        &format!("{{ url: \"{base}\", namespace: sales }}"),
    );
    let run = sluice(&demo, &["run", "daily_sales_etl", "--date", "2024-01-01"]);
    assert_eq!(run.code, 0, "{}", run.explain());
    let events = got.lock().unwrap().clone();
    assert_valid(&events);
    assert_eq!(events.len(), 10, "START and COMPLETE of five tasks");
    assert!(events.iter().all(|e| e["job"]["namespace"] == "sales"));
}
