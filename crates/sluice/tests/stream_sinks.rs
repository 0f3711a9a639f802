//! The other sinks of `sluice stream`, on librdkafka's mock cluster: the embedded DuckDB
//! warehouse and a MariaDB one (exactly once, records and windowed results), Parquet files in the lake (one per
//! batch and partition, named by offsets, so a replay rewrites instead of duplicating) and
//! Kafka topics (records keyed for upserts; dead letters with their origin and reason in the
//! headers). Each is killed with SIGKILL mid-way and restarted; nothing is lost or doubled.

use crate::common;

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::TestProject;
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use sluice_warehouse::duckdb::Connection;

const PARTITIONS: i32 = 3;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn produce(brokers: &str, topic: &str, payloads: &[String]) {
    common::kafka::produce(brokers, topic, PARTITIONS, payloads);
}

/// `n` orders (ids 0..n, amounts id % 10 + 1) and, every 500th record, a broken one.
fn orders(n: i64) -> (Vec<String>, usize) {
    let mut payloads = Vec::new();
    let mut broken = 0;
    for i in 0..n {
        payloads.push(format!(
            r#"{{"id": {i}, "ts": "2024-01-01T{:02}:{:02}:{:02}Z", "category": "c{}", "amount": {}}}"#,
            i / 3600,
            i / 60 % 60,
            i % 60,
            i % 3,
            i % 10 + 1
        ));
        if i % 500 == 250 {
            payloads.push(format!(r#"{{"id": "broken{i}"}}"#));
            broken += 1;
        }
    }
    (payloads, broken)
}

fn stream_file(brokers: &str, name: &str, rest: &str) -> String {
    format!(
        "stream: {name}
source:
  kafka:
    brokers: \"{brokers}\"
    topic: orders
    group: {name}
    properties: {{ session.timeout.ms: \"6000\", heartbeat.interval.ms: \"500\" }}
require: [id, ts]
batch: {{ max_records: 100, max_wait: 200ms }}
{rest}"
    )
}

fn start(p: &TestProject, name: &str) -> Child {
    p.command(&["stream", name, "--stop-when-idle", "2s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Starts and SIGKILLs the stream `rounds` times at different moments, then runs it to the end;
/// returns the last run's summary line and how many runs were killed mid-way.
fn kill_and_finish(p: &TestProject, name: &str, rounds: u64) -> (String, u32) {
    let mut kills = 0;
    for round in 0..rounds {
        let mut child = start(p, name);
        std::thread::sleep(Duration::from_millis(3_300 + (round * 397) % 1_200));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        let _ = child.wait();
    }
    let out = start(p, name).wait_with_output().unwrap();
    let summary = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{summary}");
    (summary, kills)
}

fn column(db: &Connection, sql: &str) -> Vec<String> {
    let mut statement = db.prepare(sql).unwrap();
    statement
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// What `orders_and_minutes` produced and how its runs ended.
struct Killed {
    payloads: Vec<String>,
    broken: usize,
    summary: String,
    windows_summary: String,
    kills: u32,
}

/// The orders stream (upserts on `id`, dead letters beside) and a per-minute aggregate of it,
/// into `raw_table`, `dead_table` and `agg_table` of the warehouse, each killed mid-way and
/// then run to the end.
fn orders_and_minutes(
    p: &TestProject,
    raw_table: &str,
    dead_table: &str,
    agg_table: &str,
) -> Killed {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("orders", PARTITIONS, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let (payloads, broken) = orders(6_000);
    produce(&brokers, "orders", &payloads);
    p.write(
        "pipelines/orders_raw.yaml",
        &stream_file(
            &brokers,
            "orders_raw",
            &format!(
                "sink: {{ into: warehouse, table: {raw_table}, mode: upsert, key: [id] }}
delivery: exactly_once
dead_letter: {{ into: warehouse, table: {dead_table} }}
"
            ),
        ),
    );
    p.write(
        "pipelines/per_minute.yaml",
        &stream_file(
            &brokers,
            "per_minute",
            &format!(
                "event_time: {{ field: ts, max_out_of_orderness: 0s }}
aggregate: {{ key: [category], window: {{ tumbling: 1m }}, compute: {{ total: sum(amount), orders: count() }} }}
sink: {{ into: warehouse, table: {agg_table} }}
delivery: exactly_once
"
            ),
        ),
    );
    let (summary, kills) = kill_and_finish(p, "orders_raw", 4);
    let (windows_summary, window_kills) = kill_and_finish(p, "per_minute", 3);
    assert!(
        kills + window_kills >= 3,
        "killed mid-way only {kills}+{window_kills} times"
    );
    Killed {
        payloads,
        broken,
        summary,
        windows_summary,
        kills: kills + window_kills,
    }
}

fn total_amount() -> String {
    (0..6_000i64).map(|i| i % 10 + 1).sum::<i64>().to_string()
}

#[test]
fn the_warehouse_sink_loads_each_order_once_and_keeps_hourly_totals() {
    let p = TestProject::new();
    let run = orders_and_minutes(&p, "raw.orders", "raw.dead_letters", "agg.per_minute");
    let db = Connection::open(p.path().join("warehouse.duckdb")).unwrap();
    assert_eq!(
        column(
            &db,
            "SELECT count(*) || '/' || count(DISTINCT id) FROM raw.orders"
        ),
        ["6000/6000"],
        "({} kills) {}",
        run.kills,
        run.summary
    );
    assert_eq!(
        column(
            &db,
            "SELECT sum((record->>'amount')::BIGINT)::VARCHAR FROM raw.orders"
        ),
        [total_amount()]
    );
    assert_eq!(
        column(
            &db,
            "SELECT reason || ' x' || count(*) FROM raw.dead_letters GROUP BY reason"
        ),
        [format!("missing required field(s): ts x{}", run.broken)]
    );
    // Consumed = loaded + dead-lettered: the stored offsets cover every record produced.
    assert_eq!(
        column(
            &db,
            "SELECT sum(next_offset)::VARCHAR FROM sluice_stream_offsets WHERE stream = 'orders_raw'"
        ),
        [run.payloads.len().to_string()]
    );
    // Per minute and category, from the loaded orders: every minute but the last is closed.
    let expected = column(
        &db,
        "WITH o AS (
            SELECT date_trunc('minute', strptime(record->>'ts', '%Y-%m-%dT%H:%M:%SZ')) AS minute,
                   record->>'category' AS category, (record->>'amount')::BIGINT AS amount
            FROM raw.orders)
         SELECT minute || ' ' || category || ' ' || sum(amount) || ' ' || count(*) FROM o
         WHERE minute < (SELECT max(minute) FROM o)
         GROUP BY minute, category ORDER BY 1",
    );
    let got = column(
        &db,
        "SELECT window_start::TIMESTAMP || ' ' || category || ' ' || total::BIGINT
                || ' ' || orders::BIGINT
         FROM agg.per_minute ORDER BY 1",
    );
    assert_eq!(expected.len(), 99 * 3, "{expected:?}");
    assert_eq!(got, expected, "{}", run.windows_summary);
}

/// The same streams with the warehouse on MariaDB: rows, dead letters, offsets and window
/// state in one InnoDB transaction per batch.
#[test]
fn the_mariadb_warehouse_sink_loads_each_order_once_and_keeps_hourly_totals() {
    let dw = sluice_testkit::mariadb::Database::create("sluice_stream_sink");
    let p = TestProject::new();
    p.write("connections.yaml", &format!("warehouse: {}\n", dw.url));
    let run = orders_and_minutes(&p, "orders", "dead_letters", "per_minute");
    assert_eq!(
        dw.column("SELECT CONCAT(count(*), '/', count(DISTINCT id)) FROM orders"),
        ["6000/6000"],
        "({} kills) {}",
        run.kills,
        run.summary
    );
    assert_eq!(
        dw.column(
            "SELECT CAST(SUM(CAST(JSON_VALUE(record, '$.amount') AS SIGNED)) AS CHAR) FROM orders"
        ),
        [total_amount()]
    );
    assert_eq!(
        dw.column("SELECT CONCAT(reason, ' x', count(*)) FROM dead_letters GROUP BY reason"),
        [format!("missing required field(s): ts x{}", run.broken)]
    );
    assert_eq!(
        dw.column(
            "SELECT CAST(SUM(next_offset) AS CHAR) FROM sluice_stream_offsets
             WHERE stream = 'orders_raw'"
        ),
        [run.payloads.len().to_string()]
    );
    let expected = dw.column(
        "WITH o AS (
            SELECT DATE_FORMAT(STR_TO_DATE(JSON_VALUE(record, '$.ts'), '%Y-%m-%dT%H:%i:%sZ'),
                               '%Y-%m-%d %H:%i:00') AS minute,
                   JSON_VALUE(record, '$.category') AS category,
                   CAST(JSON_VALUE(record, '$.amount') AS SIGNED) AS amount
            FROM orders)
         SELECT CONCAT(minute, ' ', category, ' ', SUM(amount), ' ', COUNT(*)) FROM o
         WHERE minute < (SELECT MAX(minute) FROM o)
         GROUP BY minute, category ORDER BY 1",
    );
    let got = dw.column(
        "SELECT CONCAT(DATE_FORMAT(window_start, '%Y-%m-%d %H:%i:%s'), ' ', category, ' ',
                       CAST(total AS SIGNED), ' ', CAST(orders AS SIGNED))
         FROM per_minute ORDER BY 1",
    );
    assert_eq!(expected.len(), 99 * 3, "{expected:?}");
    assert_eq!(got, expected, "{}", run.windows_summary);
}

#[test]
fn the_lake_sink_writes_one_file_per_batch_and_partition_and_never_twice() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("orders", PARTITIONS, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let (payloads, broken) = orders(6_000);
    produce(&brokers, "orders", &payloads);

    let p = TestProject::new();
    p.write(
        "pipelines/orders_files.yaml",
        &stream_file(
            &brokers,
            "orders_files",
            "sink: { into: lake, path: \"lake://orders\" }
",
        ),
    );
    let (summary, kills) = kill_and_finish(&p, "orders_files", 4);

    let lake = p.path().join("lake/orders");
    let db = Connection::open_in_memory().unwrap();
    let files = format!("{}/topic=*/partition=*/*.parquet", lake.display());
    assert_eq!(
        column(
            &db,
            &format!(
                "SELECT count(*) || '/' || count(DISTINCT id) || ' ' || sum(amount)
                 FROM read_parquet('{files}', union_by_name = true)"
            )
        ),
        [format!(
            "6000/6000 {}",
            (0..6_000i64).map(|i| i % 10 + 1).sum::<i64>()
        )],
        "({kills} kills) {summary}"
    );
    // The files of a partition tile its offsets: each starts one past the previous one's end,
    // and the last ends at the partition's last offset.
    for partition in 0..PARTITIONS {
        let dir = lake.join(format!("topic=orders/partition={partition}"));
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut next = 0;
        for name in &names {
            let (first, last) = name
                .strip_suffix(".parquet")
                .and_then(|s| s.split_once('-'))
                .unwrap_or_else(|| panic!("{name}"));
            assert_eq!(first.parse::<i64>().unwrap(), next, "{names:?}");
            next = last.parse::<i64>().unwrap() + 1;
        }
        let produced = payloads.len() as i64 / PARTITIONS as i64
            + i64::from((payloads.len() as i64 % PARTITIONS as i64) > partition as i64);
        assert_eq!(next, produced, "partition {partition}: {names:?}");
    }
    // Dead letters: NDJSON beside the data, each with its offset and reason (a replayed batch
    // may write one again, with the same offset: counted once by offset).
    let dead = column(
        &db,
        &format!(
            "SELECT count(DISTINCT (partition, \"offset\")) || ' ' || min(reason)
             FROM read_json_auto('{}/_dead_letters/topic=*/partition=*/*.ndjson', hive_partitioning = false)",
            lake.display()
        ),
    );
    assert_eq!(dead, [format!("{broken} missing required field(s): ts")]);
}

/// Reads every message of `topic` (until 3 s pass without one).
fn consume_all(
    brokers: &str,
    topic: &str,
) -> Vec<(Option<String>, String, BTreeMap<String, String>)> {
    runtime().block_on(async {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", format!("check-{topic}"))
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        consumer.subscribe(&[topic]).unwrap();
        let mut out = Vec::new();
        let mut wait = Duration::from_secs(15); // the first join takes a few seconds
        while let Ok(Ok(m)) = tokio::time::timeout(wait, consumer.recv()).await {
            wait = Duration::from_secs(3);
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_string(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push((
                m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                headers,
            ));
        }
        out
    })
}

#[test]
fn the_kafka_sink_keys_records_and_dead_letters_carry_their_origin_in_headers() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("orders", PARTITIONS, 1).unwrap();
    cluster.create_topic("orders_clean", PARTITIONS, 1).unwrap();
    cluster.create_topic("orders_dlq", 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let (mut payloads, broken) = orders(1_000);
    payloads.push("not json at all".to_string());
    produce(&brokers, "orders", &payloads);

    let p = TestProject::new();
    p.write(
        "pipelines/orders_clean.yaml",
        &stream_file(
            &brokers,
            "orders_clean",
            "sink: { into: kafka, topic: orders_clean, mode: upsert, key: [id] }
dead_letter: { into: kafka, topic: orders_dlq }
",
        ),
    );
    let out = start(&p, "orders_clean").wait_with_output().unwrap();
    let summary = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{summary}");
    assert!(
        summary.contains(&format!(
            "{} consumed, 1000 loaded, {} dead-lettered",
            payloads.len(),
            broken + 1
        )),
        "{summary}"
    );

    let clean = consume_all(&brokers, "orders_clean");
    let ids: std::collections::BTreeSet<String> =
        clean.iter().filter_map(|(k, _, _)| k.clone()).collect();
    assert_eq!((clean.len(), ids.len()), (1_000, 1_000));
    let (key, value, _) = &clean[0];
    let value: serde_json::Value = serde_json::from_str(value).unwrap();
    assert_eq!(
        Some(value["id"].to_string()),
        *key,
        "keyed by the record's id"
    );

    let dead = consume_all(&brokers, "orders_dlq");
    assert_eq!(dead.len(), broken + 1);
    let unparsable = dead
        .iter()
        .find(|(_, payload, _)| payload == "not json at all")
        .expect("the raw payload as it was read");
    let headers = &unparsable.2;
    assert_eq!(headers["sluice.stream"], "orders_clean");
    assert_eq!(headers["sluice.topic"], "orders");
    assert_eq!(
        headers["sluice.offset"].parse::<usize>().unwrap(),
        (payloads.len() - 1) / PARTITIONS as usize
    );
    assert!(
        headers["sluice.reason"].starts_with("malformed JSON at line 1, column 2"),
        "{headers:?}"
    );
}
