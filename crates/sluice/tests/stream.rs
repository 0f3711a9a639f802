//! `sluice stream` against a Kafka-protocol broker (librdkafka's mock cluster, running in this
//! test process on a local port) and the real PostgreSQL: orders stream into a table, bad
//! records into the dead-letter table with their reasons, and a stream killed with SIGKILL again
//! and again still ends with every order exactly once and consumed = loaded + dead-lettered.

use crate::common;

use std::process::{Child, Stdio};
use std::time::Duration;

use common::TestProject;
use common::pg::Database;
use rdkafka::mocking::MockCluster;

const PARTITIONS: i32 = 3;

fn produce(brokers: &str, topic: &str, payloads: &[String]) {
    common::kafka::produce(brokers, topic, PARTITIONS, payloads);
}

fn project(db: &Database, brokers: &str) -> TestProject {
    let p = TestProject::new();
    p.write("connections.yaml", &format!("shop: {}\n", db.url));
    p.write(
        "pipelines/orders_raw.yaml",
        &format!(
            "stream: orders_raw
source:
  kafka:
    brokers: \"{brokers}\"
    topic: orders
    group: loader
    format: json
    # A killed consumer's partitions move on after its session times out.
    properties: {{ session.timeout.ms: \"6000\", heartbeat.interval.ms: \"500\" }}
require: [id, ts]
sink: {{ into: shop, table: raw.orders, mode: upsert, key: [id] }}
batch: {{ max_records: 50, max_wait: 200ms }}
delivery: exactly_once
dead_letter: {{ into: shop, table: raw.dead_letters }}
"
        ),
    );
    p
}

fn start(p: &TestProject) -> Child {
    p.command(&["stream", "orders_raw", "--stop-when-idle", "2s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A mock broker with an `orders` topic of three partitions, and its bootstrap servers.
fn orders_topic() -> (
    MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    String,
) {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("orders", PARTITIONS, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    (cluster, brokers)
}

/// Valid orders `from..to` as JSON.
fn orders(from: i32, to: i32) -> Vec<String> {
    (from..to)
        .map(|i| format!(r#"{{"id": {i}, "ts": "2024-01-01T00:00:00Z"}}"#))
        .collect()
}

/// Rows in `raw.orders`, or None while the stream has not created the table.
fn loaded_orders(db: &Database) -> Option<String> {
    let exists = db
        .column("SELECT count(*) FROM pg_tables WHERE schemaname = 'raw' AND tablename = 'orders'");
    (exists == ["1"]).then(|| db.column("SELECT count(*) FROM raw.orders")[0].clone())
}

#[test]
fn killed_again_and_again_a_stream_loads_every_order_once() {
    let (_cluster, brokers) = orders_topic();
    let mut payloads: Vec<String> = (0..20_000)
        .map(|i| {
            format!(
                r#"{{"id": {i}, "ts": "2024-01-01T00:00:{:02}Z", "amount": {}.5}}"#,
                i % 60,
                i % 100
            )
        })
        .collect();
    // Ten of each kind of bad record, spread over the partitions.
    for i in 0..10 {
        payloads.insert(i * 1_000 + 1, format!(r#"{{"id": "bad{i}"}}"#));
        payloads.insert(i * 1_000 + 2, "{\"id\": 1, ".to_string());
        payloads.insert(i * 1_000 + 3, "[1, 2]".to_string());
    }
    produce(&brokers, "orders", &payloads);

    let db = Database::create("sluice_stream_eo");
    let p = project(&db, &brokers);
    let mut kills = 0;
    for round in 0..10u64 {
        let mut child = start(&p);
        // Past the group join (the broker delays the first rebalance by 3 s), into the work.
        std::thread::sleep(Duration::from_millis(3_300 + (round * 397) % 1_500));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        let _ = child.wait();
    }
    let out = start(&p).wait_with_output().unwrap();
    let summary = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{summary}");

    assert_eq!(
        db.column("SELECT count(*) || '/' || count(DISTINCT id) FROM raw.orders"),
        ["20000/20000"],
        "every order once ({kills} kills); last run: {summary}"
    );
    // Every amount is something and a half: twice the sum is a whole number.
    let twice: i64 = (0..20_000).map(|i| 2 * (i % 100) + 1).sum();
    assert_eq!(
        db.column("SELECT (2 * sum((record->>'amount')::numeric))::bigint FROM raw.orders"),
        [twice.to_string()]
    );
    let reasons = db.column(
        "SELECT reason || ' ×' || count(*) FROM raw.dead_letters GROUP BY reason ORDER BY reason",
    );
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons[0].starts_with("expected a JSON object, found an array ×10"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].starts_with("malformed JSON at line 1"),
        "{reasons:?}"
    );
    assert_eq!(reasons[2], "missing required field(s): ts ×10");
    // Consumed = loaded + dead-lettered: the committed offsets cover every record produced.
    assert_eq!(
        db.column("SELECT sum(next_offset) FROM sluice_stream_offsets WHERE stream = 'orders_raw'"),
        [payloads.len().to_string()]
    );
    eprintln!("stream: {kills} kills; last run: {summary}");
    assert!(kills >= 5, "the stream was killed mid-way ({kills} times)");
}

/// The article's hourly sales per category as a stream file, into `db`.
fn hourly_sales(db: &Database, brokers: &str) -> TestProject {
    let p = TestProject::new();
    p.write("connections.yaml", &format!("shop: {}\n", db.url));
    p.write(
        "pipelines/hourly_sales.yaml",
        &format!(
            "stream: hourly_sales
source:
  kafka:
    brokers: \"{brokers}\"
    topic: sales
    group: hourly
    properties: {{ session.timeout.ms: \"6000\", heartbeat.interval.ms: \"500\" }}
require: [ts, category, amount]
event_time: {{ field: ts, max_out_of_orderness: 0s }}
aggregate: {{ key: [category], window: {{ tumbling: 1h }}, compute: {{ total: sum(amount), orders: count() }} }}
sink: {{ into: shop, table: agg.hourly_sales, mode: upsert, key: [category, window_start] }}
batch: {{ max_records: 50, max_wait: 200ms }}
delivery: exactly_once
dead_letter: {{ into: shop, table: agg.dead_letters }}
"
        ),
    );
    p
}

/// Produces 3,000 orders into `sales` — order i every 3.6 s from 2024-01-01T00:00Z, `behind(i)`
/// ms earlier, to partition i % 3 — and returns them as (event time ms, category, amount).
fn sales(brokers: &str, behind: impl Fn(i64) -> i64) -> Vec<(i64, &'static str, i64)> {
    let categories = ["books", "games", "tools"];
    let orders: Vec<(i64, &str, i64)> = (0..3_000i64)
        .map(|i| {
            (
                1_704_067_200_000 + i * 3_600 - behind(i),
                categories[(i % 7 % 3) as usize],
                i % 10 + 1,
            )
        })
        .collect();
    let payloads: Vec<String> = orders
        .iter()
        .map(|(t, c, a)| format!(r#"{{"ts": {t}, "category": "{c}", "amount": {a}}}"#))
        .collect();
    produce(brokers, "sales", &payloads);
    orders
}

/// The hours `closed` keeps, summed and counted per category from the orders, as `hourly_rows`
/// prints them.
fn expected_hours(orders: &[(i64, &str, i64)], closed: impl Fn(i64) -> bool) -> Vec<String> {
    let mut sums = std::collections::BTreeMap::new();
    for (t, c, a) in orders {
        let hour = (t - 1_704_067_200_000).div_euclid(3_600_000);
        if closed(hour) {
            let e = sums.entry((hour, c.to_string())).or_insert((0i64, 0i64));
            e.0 += a;
            e.1 += 1;
        }
    }
    sums.iter()
        .map(|((h, c), (total, n))| format!("{h} {c} {total} {n}"))
        .collect()
}

fn start_hourly(p: &TestProject, idle: &str) -> Child {
    p.command(&["stream", "hourly_sales", "--stop-when-idle", idle])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The hour windows in the table as "hour category total orders", hours counted from
/// 2024-01-01T00:00Z.
fn hourly_rows(db: &Database) -> Vec<String> {
    db.column(
        "SELECT ((extract(epoch FROM window_start)::bigint - 1704067200) / 3600) || ' ' || category
                || ' ' || total::bigint || ' ' || orders::bigint
         FROM agg.hourly_sales ORDER BY window_start, category",
    )
}

/// Two processes of one consumer group share an aggregating stream's partitions and its
/// window state: the watermark is the minimum over all partitions (one partition's orders run
/// 40 minutes behind the others, so a per-process watermark would close its hours early and
/// call its orders late), and neither process's state write loses the other's records.
#[test]
fn two_processes_share_an_aggregating_stream() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("sales", PARTITIONS, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let base: i64 = 1_704_067_200_000;
    // Record i goes to partition i % 3; partition 2's orders are 40 minutes older.
    let orders = sales(&brokers, |i| if i % 3 == 2 { 2_400_000 } else { 0 });
    let db = Database::create("sluice_stream_shared_windows");
    let p = hourly_sales(&db, &brokers);
    let (a, b) = (start_hourly(&p, "3s"), start_hourly(&p, "3s"));
    let summaries: Vec<String> = [a, b]
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(out.status.success(), "{text}");
            text
        })
        .collect();
    // Both took part: each consumed some of the orders.
    let consumed = |s: &str| -> u64 {
        let at = s
            .rfind(" consumed")
            .unwrap_or_else(|| panic!("no summary: {s}"));
        s[..at].rsplit(' ').next().unwrap().parse().unwrap()
    };
    let parts: Vec<u64> = summaries.iter().map(|s| consumed(s)).collect();
    assert!(
        parts.iter().all(|n| *n > 0),
        "one process did all: {summaries:?}"
    );
    assert_eq!(parts.iter().sum::<u64>(), 3_000, "{summaries:?}");
    // Expected: the hours the stream's watermark (the least of the partitions' latest order
    // times, minus 1 ms) closed.
    let watermark = (0..3)
        .map(|part| {
            orders
                .iter()
                .skip(part)
                .step_by(3)
                .map(|o| o.0)
                .max()
                .unwrap()
        })
        .min()
        .unwrap()
        - 1;
    let expected = expected_hours(&orders, |hour| {
        base + (hour + 1) * 3_600_000 - 1 <= watermark
    });
    assert_eq!(hourly_rows(&db), expected, "{summaries:?}");
    let dead = db.column("SELECT reason FROM agg.dead_letters");
    assert!(dead.is_empty(), "nothing is late: {dead:?}");
}

/// The article's hourly sales: a tumbling hour per product category, summed and counted, with
/// the window state checkpointed beside the offsets. Killed again and again, the results equal
/// the totals computed from the produced orders; orders later than their window are dead-
/// lettered with the reason, never dropped.
#[test]
fn hourly_totals_survive_kills_and_late_orders_are_dead_lettered() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("sales", PARTITIONS, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    // 3,000 orders over three hours (every 3.6 s), each partition in event-time order.
    let orders = sales(&brokers, |_| 0);

    let db = Database::create("sluice_stream_windows");
    let p = hourly_sales(&db, &brokers);
    let start = || start_hourly(&p, "2s");
    let mut kills = 0;
    for round in 0..5u64 {
        let mut child = start();
        std::thread::sleep(Duration::from_millis(3_300 + (round * 397) % 1_500));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        let _ = child.wait();
    }
    let out = start().wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Five orders of the first hour, sent once every partition's watermark passed it: late,
    // judged by the watermark the restarted stream restored from its checkpoint.
    let late: Vec<String> = (0..5)
        .map(|i| {
            format!(r#"{{"ts": "2024-01-01T00:00:1{i}Z", "category": "books", "amount": 100}}"#)
        })
        .collect();
    produce(&brokers, "sales", &late);
    let out = start().wait_with_output().unwrap();
    let summary = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{summary}");
    assert!(
        summary.contains("5 consumed, 0 loaded, 5 dead-lettered (5 late)"),
        "{summary}"
    );

    // Expected: the two hours the watermark closed (the third is still open).
    let expected = expected_hours(&orders, |hour| hour < 2);
    assert_eq!(hourly_rows(&db), expected, "({kills} kills) {summary}");
    let late = db.column("SELECT reason FROM agg.dead_letters ORDER BY \"offset\"");
    assert_eq!(late.len(), 5, "{late:?}");
    assert!(
        late.iter()
            .all(|r| r.starts_with("late: event time 2024-01-01T00:00:1")),
        "{late:?}"
    );
    eprintln!("windows: {kills} kills; last run: {summary}");
}

/// `sluice serve` keeps the project's streams running: records produced while it serves land
/// in the table, its figures are on `/metrics`, a changed stream file restarts its stream, and
/// SIGTERM stops the stream with the server.
#[test]
fn sluice_serve_keeps_the_streams_running() {
    let (_cluster, brokers) = orders_topic();
    produce(&brokers, "orders", &orders(0, 100));
    let db = Database::create("sluice_stream_serve");
    let p = project(&db, &brokers);
    let server = common::server::Server::start(&p, None);
    server.wait_up_to(Duration::from_secs(60), "the first orders to land", || {
        loaded_orders(&db).as_deref() == Some("100")
    });
    produce(&brokers, "orders", &orders(100, 150));
    server.wait_up_to(Duration::from_secs(30), "the later orders to land", || {
        loaded_orders(&db).as_deref() == Some("150")
    });
    // The stream's figures on /metrics: every record in and out, and each partition's lag
    // (from librdkafka's statistics, once a second) down to nothing.
    let scrape = || {
        server
            .request(reqwest::Method::GET, "/metrics", None, None)
            .1
    };
    let value = |text: &str, series: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    };
    server.wait_up_to(Duration::from_secs(10), "the lag to read 0 on every partition", || {
        let text = scrape();
        (0..PARTITIONS).all(|p| {
            value(
                &text,
                &format!(
                    "stream_partition_lag{{stream=\"orders_raw\",topic=\"orders\",partition=\"{p}\"}}"
                ),
            ) == Some(0.0)
        })
    });
    let text = scrape();
    assert_eq!(
        value(&text, "stream_records_in_total{stream=\"orders_raw\"}"),
        Some(150.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "stream_records_out_total{stream=\"orders_raw\"}"),
        Some(150.0),
        "{text}"
    );
    assert!(
        text.contains("stream_batch_duration_seconds_bucket{stream=\"orders_raw\""),
        "{text}"
    );
    // A changed stream file restarts its stream with the new definition (here: another
    // table); a broken one leaves the running stream as it was.
    let file = p.read("pipelines/orders_raw.yaml");
    p.write(
        "pipelines/orders_raw.yaml",
        "stream: orders_raw\nsource: [broken\n",
    );
    std::thread::sleep(Duration::from_secs(2));
    produce(&brokers, "orders", &orders(150, 160));
    server.wait_up_to(
        Duration::from_secs(30),
        "orders to land while the file is broken",
        || loaded_orders(&db).as_deref() == Some("160"),
    );
    p.write(
        "pipelines/orders_raw.yaml",
        &file.replace("table: raw.orders,", "table: raw.orders_v2,"),
    );
    std::thread::sleep(Duration::from_secs(2));
    produce(&brokers, "orders", &orders(160, 170));
    server.wait_up_to(
        Duration::from_secs(60),
        "orders to land in the new table",
        || {
            db.column("SELECT count(*) FROM pg_tables WHERE tablename = 'orders_v2'") == ["1"]
                && db.column("SELECT count(*) FROM raw.orders_v2") == ["10"]
        },
    );
    assert_eq!(loaded_orders(&db).as_deref(), Some("160"));
    assert_eq!(server.stop(), Some(0));
}

/// The sink stops accepting writes for 10 s (another session locks its table): the stream
/// stops consuming, retries the batch with backoff, and catches up once the lock is gone —
/// nothing lost, nothing twice.
#[test]
fn a_sink_outage_is_waited_out_without_losing_records() {
    let (_cluster, brokers) = orders_topic();
    produce(&brokers, "orders", &orders(0, 100));
    let db = Database::create("sluice_stream_outage");
    let p = project(&db, &brokers);
    let child = p
        .command(&["stream", "orders_raw", "--stop-when-idle", "4s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while loaded_orders(&db).as_deref() != Some("100") {
        assert!(
            std::time::Instant::now() < deadline,
            "the first orders never landed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // EXCLUSIVE blocks every write and still lets this test read.
    let lock = {
        let url = db.url.clone();
        std::thread::spawn(move || {
            common::pg::execute(
                &url,
                "BEGIN; LOCK TABLE raw.orders IN EXCLUSIVE MODE; SELECT pg_sleep(10); COMMIT",
            )
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    produce(&brokers, "orders", &orders(100, 300));
    for _ in 0..8 {
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(
            loaded_orders(&db).as_deref(),
            Some("100"),
            "written through the lock"
        );
    }
    lock.join().unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("the sink refused a batch") && stderr.contains("lock timeout"),
        "{stderr}"
    );
    assert_eq!(
        db.column("SELECT count(*) || '/' || count(DISTINCT id) FROM raw.orders"),
        ["300/300"],
        "{stderr}"
    );
}
