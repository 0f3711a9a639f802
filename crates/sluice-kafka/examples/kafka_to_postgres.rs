//! bench/stream: Kafka → PostgreSQL with `exactly_once`, records/s sustained.
//!
//! Nexmark-shaped bids (JSON: auction, bidder, price, channel, date_time; the same LCG as the
//! windows bench) are produced into the topic `bids` of a real broker (bench/stream/run starts
//! tansu and creates the topic with 3 partitions; librdkafka's mock cluster keeps only 5 MB per
//! partition, too little for a million bids), then one stream loads them into a PostgreSQL table in micro-batches, rows and offsets in one
//! transaction per batch. The clock runs from the first committed batch to the last
//! (`Totals::sustained_rate`), so the consumer group's join (a few seconds on any broker) and
//! the idle wait at the end are not counted.
//!
//! Usage: cargo run --release -p sluice-kafka --example kafka_to_postgres -- BROKERS [EVENTS] [MAX_RECORDS] [MODE]
//!   EVENTS (default 1,000,000), MAX_RECORDS per batch (default 10,000), MODE append|upsert.
//! PostgreSQL: $SLUICE_BENCH_PG (default postgres://postgres@127.0.0.1:5432/test); a database
//! `sluice_bench_stream` is created afresh there. Prints one JSON line.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

const PARTITIONS: i32 = 3;

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL (set SLUICE_BENCH_PG)");
    tokio::spawn(conn);
    client
}

async fn pg(url: &str, sql: &str) {
    connect(url).await.batch_execute(sql).await.expect(sql);
}

/// The first column of a one-number query; None when the query fails (a table not created yet).
async fn number(client: &tokio_postgres::Client, sql: &str) -> Option<i64> {
    client
        .simple_query(sql)
        .await
        .ok()?
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0)?.parse().ok(),
            _ => None,
        })
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let brokers = args.get(1).expect("BROKERS (host:port)").clone();
    let events: i64 = args
        .get(2)
        .map_or(1_000_000, |a| a.parse().expect("EVENTS"));
    let max_records: u64 = args
        .get(3)
        .map_or(10_000, |a| a.parse().expect("MAX_RECORDS"));
    let mode = args.get(4).map_or("append", String::as_str);
    let admin = std::env::var("SLUICE_BENCH_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    pg(
        &admin,
        "DROP DATABASE IF EXISTS sluice_bench_stream WITH (FORCE)",
    )
    .await;
    pg(&admin, "CREATE DATABASE sluice_bench_stream").await;
    let url = match admin.rsplit_once('/') {
        Some((server, _)) => format!("{server}/sluice_bench_stream"),
        None => panic!("SLUICE_BENCH_PG is not a URL"),
    };

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    let mut lcg = Lcg(42);
    let produced = Instant::now();
    let mut sends = Vec::with_capacity(events as usize);
    for i in 0..events {
        let payload = format!(
            r#"{{"auction": {}, "bidder": {}, "price": {}, "channel": "channel-{}", "date_time": {}}}"#,
            lcg.next() % 1_000,
            lcg.next() % 10_000,
            lcg.next() % 10_000,
            i % 10,
            1_704_067_200_000 + i
        );
        let record = FutureRecord::<(), _>::to("bids")
            .payload(&payload)
            .partition((i % PARTITIONS as i64) as i32);
        sends.push(
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("queue"),
        );
        if sends.len() >= 100_000 {
            for s in sends.drain(..) {
                s.await.expect("delivery").expect("delivery");
            }
        }
    }
    for s in sends {
        s.await.expect("delivery").expect("delivery");
    }
    eprintln!("produced {events} bids in {:?}", produced.elapsed());

    let key = if mode == "upsert" {
        // Each bid once: auction, bidder and time identify it.
        "mode: upsert, key: [auction, bidder, date_time]"
    } else {
        "mode: append"
    };
    let file = format!(
        "stream: bids
source: {{ kafka: {{ brokers: \"{brokers}\", topic: bids, group: bench, start: earliest, format: json }} }}
require: [auction, bidder, price, date_time]
sink: {{ into: shop, table: bench.bids, {key} }}
batch: {{ max_records: {max_records}, max_wait: 200ms }}
delivery: exactly_once
dead_letter: {{ into: shop, table: bench.dead_letters }}
"
    );
    let mut diags = sluice_core::diag::Diagnostics::default();
    let connections = sluice_core::connections::Connections::load(
        std::path::Path::new("/nonexistent"),
        [("SLUICE_CONN_SHOP".to_string(), url.clone())],
        &mut diags,
    );
    let stream = sluice_core::stream::load_file("bids.yaml", &file, &connections, &mut diags)
        .unwrap_or_else(|| panic!("{diags:?}"));
    let setup = sluice_kafka::SinkSetup {
        connections,
        lake: Err("not used".into()),
        duckdb: None,
    };
    let totals = sluice_kafka::run(
        &stream,
        &setup,
        CancellationToken::new(),
        Some(Duration::from_secs(3)),
    )
    .await
    .expect("stream");
    let client = connect(&url).await;
    let rows = number(&client, "SELECT count(*) FROM bench.bids").await;
    assert_eq!(rows, Some(events), "every bid in the table once");
    println!(
        "{{\"engine\": \"sluice\", \"sink\": \"postgresql\", \"mode\": \"{mode}\", \"delivery\": \"exactly_once\", \"events\": {events}, \"max_records\": {max_records}, \"batches\": {}, \"records_per_s\": {:.0}}}",
        totals.batches,
        totals.sustained_rate().expect("more than one batch")
    );
    pg(
        &admin,
        "DROP DATABASE IF EXISTS sluice_bench_stream WITH (FORCE)",
    )
    .await;
}
