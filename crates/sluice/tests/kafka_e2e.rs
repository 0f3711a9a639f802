//! End to end against a real Kafka-protocol broker (tansu) and the real PostgreSQL, with the
//! records produced by a real external client (Python's confluent-kafka): the article's two
//! streaming examples — "Kafka to Data Warehouse" and the hourly sales aggregation of "Flink
//! for Complex Streaming" — run as stream files, killed with SIGKILL again and again.

use crate::common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::TestProject;
use common::pg::Database;
use common::tansu::Broker;

const ORDERS: i64 = 100_000;
const PARTITIONS: i32 = 3;
const BASE_MS: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z
const CATEGORIES: [&str; 4] = ["books", "games", "tools", "garden"];

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn order(id: i64, ms: i64, category: &str) -> String {
    serde_json::json!({
        "id": id,
        "timestamp": iso(ms),
        "data": { "customer": id % 977, "channel": "web" },
        "product_category": category,
        "amount": id % 50 + 1,
    })
    .to_string()
}

/// The two stream files, as the article describes them: the loader validates the required
/// fields and loads every order once; the aggregation sums sales per category and event-time
/// hour with 30 s of out-of-orderness.
fn project(db: &Database, brokers: &str) -> TestProject {
    let p = TestProject::new();
    p.write("connections.yaml", &format!("dwh: {}\n", db.url));
    let kafka = |group: &str| {
        format!(
            "source:
  kafka:
    brokers: \"{brokers}\"
    topic: orders
    group: {group}
    start: earliest
    format: json
    # tansu ends a rebalance when its timeout (max.poll.interval.ms) runs out rather than
    # when a killed member's session expires: keep both short.
    properties: {{ session.timeout.ms: \"6000\", heartbeat.interval.ms: \"500\", max.poll.interval.ms: \"10000\" }}
"
        )
    };
    p.write(
        "pipelines/kafka_to_warehouse.yaml",
        &format!(
            "stream: kafka_to_warehouse
{}require: [id, timestamp, data]
sink: {{ into: dwh, table: raw.orders, mode: upsert, key: [id] }}
batch: {{ max_records: 1000, max_wait: 500ms }}
delivery: exactly_once
dead_letter: {{ into: dwh, table: raw.dead_letters }}
",
            kafka("warehouse-loader")
        ),
    );
    p.write(
        "pipelines/hourly_sales.yaml",
        &format!(
            "stream: hourly_sales
{}require: [id, timestamp, data]
event_time: {{ field: timestamp, max_out_of_orderness: 30s, idle_after: 1m, allowed_lateness: 0s }}
aggregate: {{ key: [product_category], window: {{ tumbling: 1h }}, compute: {{ total: sum(amount), orders: count() }} }}
sink: {{ into: dwh, table: agg.hourly_sales, mode: upsert, key: [product_category, window_start] }}
batch: {{ max_records: 1000, max_wait: 500ms }}
delivery: exactly_once
dead_letter: {{ into: dwh, table: agg.dead_letters }}
",
            kafka("hourly-sales")
        ),
    );
    p
}

/// Starts a stream; its messages go to a file (a pipe nobody reads while it runs could fill up
/// and block it).
fn start(p: &TestProject, stream: &str) -> Child {
    let log = std::fs::File::create(p.path().join(format!("{stream}.log"))).unwrap();
    p.command(&["stream", stream, "--stop-when-idle", "5s"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Runs both streams until each has gone through `kills` SIGKILLs at random moments, then lets
/// them finish; returns the last runs' logs. A killed stream starts again only once its dead
/// consumer's session (6 s) has expired: tansu 0.6.0 loses a new member's join when it comes
/// while the group still holds members killed moments before (the group reads STABLE with no
/// members and the join never returns).
fn run_with_kills(p: &TestProject, kills: usize, seed: &mut u64) -> Vec<String> {
    let streams = ["kafka_to_warehouse", "hourly_sales"];
    let mut children: Vec<Option<Child>> = streams.iter().map(|s| Some(start(p, s))).collect();
    let mut killed_at: [Option<Instant>; 2] = [None, None];
    let mut killed = [0usize; 2];
    let session = Duration::from_secs(7);
    while killed.iter().any(|k| *k < kills) || children.iter().any(Option::is_none) {
        // xorshift: repeatable and dependency-free.
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        std::thread::sleep(Duration::from_millis(700 + *seed % 2_300));
        for i in 0..2 {
            if children[i].is_none() && killed_at[i].is_some_and(|t| t.elapsed() >= session) {
                children[i] = Some(start(p, streams[i]));
            }
        }
        let i = (*seed >> 20) as usize % 2;
        if killed[i] < kills
            && let Some(mut child) = children[i].take()
        {
            let _ = child.kill();
            let _ = child.wait();
            killed[i] += 1;
            killed_at[i] = Some(Instant::now());
        }
    }
    let children: Vec<Child> = children.into_iter().flatten().collect();
    children
        .into_iter()
        .zip(streams)
        .map(|(mut c, stream)| {
            let deadline = Instant::now() + Duration::from_secs(120);
            let status = loop {
                if let Some(status) = c.try_wait().unwrap() {
                    break Some(status);
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    break None;
                }
                std::thread::sleep(Duration::from_millis(100));
            };
            let log = p.read(&format!("{stream}.log"));
            assert!(
                status.is_some_and(|s| s.success()),
                "{stream} ({status:?}): {log}"
            );
            log
        })
        .collect()
}

#[test]
fn the_articles_streams_load_100k_orders_exactly_once_through_kills() {
    let broker = Broker::start();
    broker.create_topic("orders", PARTITIONS);
    let db = Database::create("sluice_kafka_e2e");
    let p = project(&db, &broker.bootstrap);

    // 100,000 orders, one every 100 ms of event time (about 2.8 hours), round robin over the
    // partitions; every 997th record is followed by a broken one (malformed JSON or a missing
    // required field).
    let mut records: Vec<(i32, String)> = Vec::new();
    let mut broken = 0;
    for id in 0..ORDERS {
        let partition = (id % PARTITIONS as i64) as i32;
        let category = CATEGORIES[(id * 7 % 4) as usize];
        records.push((partition, order(id, BASE_MS + id * 100, category)));
        if id % 997 == 0 {
            broken += 1;
            let payload = if id % 2 == 0 {
                format!("{{\"id\": {id}, \"timestamp\": oops")
            } else {
                format!(r#"{{"id": {id}, "timestamp": "{}"}}"#, iso(BASE_MS))
            };
            records.push((partition, payload));
        }
    }
    // One order per partition four hours on: every partition's watermark passes the orders'
    // last hour, so all their windows fire.
    for partition in 0..PARTITIONS {
        let id = ORDERS + partition as i64;
        records.push((partition, order(id, BASE_MS + 4 * 3_600_000, "closing")));
    }
    broker.produce("orders", &records);

    let mut seed = 0x5eed_u64;
    let started = Instant::now();
    let summaries = run_with_kills(&p, 5, &mut seed);
    eprintln!("first pass ({:?}): {summaries:?}", started.elapsed());

    // Five orders of the first hour arrive now: far past the allowed lateness.
    let late: Vec<(i32, String)> = (0..5)
        .map(|i| {
            let id = ORDERS + 10 + i;
            ((i % 3) as i32, order(id, BASE_MS + 1_000 * i, "books"))
        })
        .collect();
    broker.produce("orders", &late);
    let summaries = run_with_kills(&p, 5, &mut seed);
    eprintln!("second pass: {summaries:?}");

    let produced = records.len() + late.len();
    let loaded = ORDERS as usize + PARTITIONS as usize + late.len();
    // The loader: each order exactly once; consumed = loaded + dead-lettered.
    assert_eq!(
        db.column("SELECT count(*) || '/' || count(DISTINCT id) FROM raw.orders"),
        [format!("{loaded}/{loaded}")]
    );
    assert_eq!(
        db.column("SELECT count(*) FROM raw.dead_letters"),
        [broken.to_string()]
    );
    assert_eq!(loaded + broken, produced);
    let reasons = db.column(
        "SELECT DISTINCT CASE WHEN reason LIKE 'malformed JSON%' THEN 'malformed'
                              WHEN reason LIKE 'missing required field(s): data' THEN 'missing'
                              ELSE reason END FROM raw.dead_letters ORDER BY 1",
    );
    assert_eq!(reasons, ["malformed", "missing"]);

    // The aggregation: every closed hour equals SQL over the loaded orders (the closing hour
    // is still open; the late orders are not in it but in the dead letters).
    let from_sql = db.column(&format!(
        "SELECT category || ' ' || to_char(hour AT TIME ZONE 'UTC', 'HH24') || ' ' || total || ' ' || n
         FROM (SELECT record->>'product_category' AS category,
                      date_trunc('hour', (record->>'timestamp')::timestamptz) AS hour,
                      sum((record->>'amount')::bigint) AS total, count(*) AS n
               FROM raw.orders WHERE id::bigint < {ORDERS} GROUP BY 1, 2) hours
         ORDER BY 1"
    ));
    let from_stream = db.column(
        "SELECT product_category || ' ' || to_char(window_start AT TIME ZONE 'UTC', 'HH24') || ' ' ||
                total::bigint || ' ' || orders::bigint
         FROM agg.hourly_sales ORDER BY 1",
    );
    assert_eq!(from_stream, from_sql);
    assert_eq!(from_sql.len(), 3 * CATEGORIES.len(), "{from_sql:?}");
    let dead = db.column(
        "SELECT kind || ' ' || count(*) FROM (
            SELECT CASE WHEN reason LIKE 'late:%' THEN 'late' ELSE 'broken' END AS kind
            FROM agg.dead_letters) d
         GROUP BY kind ORDER BY kind",
    );
    assert_eq!(dead, [format!("broken {broken}"), "late 5".to_string()]);
}
