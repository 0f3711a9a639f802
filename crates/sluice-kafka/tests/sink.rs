//! The exactly-once table sinks against the real PostgreSQL (127.0.0.1:5432) and MariaDB
//! (127.0.0.1:3306): a batch written twice (a replay after a crash between the database commit
//! and the Kafka commit, or a stale owner after a rebalance) writes nothing the second time.

use std::collections::BTreeMap;

use sluice_core::connections::ConnectionKind;
use sluice_core::stream::{
    Batch, Delivery, Format, KafkaSource, Sink, SinkMode, StartPosition, Stream, Target,
};
use sluice_kafka::{MySqlSink, PgSink, Record, Rejected, Sink as TableSink, SinkBatch};
use sluice_testkit::{mariadb, pg};

fn stream(mode: SinkMode, kind: ConnectionKind) -> Stream {
    Stream {
        id: "s".into(),
        file: "pipelines/s.yaml".into(),
        span: sluice_core::yaml::Span::new("pipelines/s.yaml".into(), 1, 1),
        description: None,
        source: KafkaSource {
            brokers: "unused".into(),
            topics: vec!["t".into()],
            group: "g".into(),
            start: StartPosition::Earliest,
            format: Format::Json,
            schema_registry: None,
            properties: BTreeMap::new(),
        },
        require: vec![],
        suite: None,
        event_time: None,
        aggregate: None,
        sink: Sink {
            target: Target::Table {
                connection: "db".into(),
                kind,
                table: "out".into(),
            },
            mode,
            key: if mode == SinkMode::Upsert {
                vec!["id".into()]
            } else {
                vec![]
            },
        },
        batch: Batch {
            max_records: 10,
            max_wait: std::time::Duration::from_secs(1),
        },
        delivery: Delivery::ExactlyOnce,
        dead_letter: None,
    }
}

fn record(partition: i32, offset: i64, payload: &str) -> Record {
    Record {
        topic: "t".into(),
        partition,
        offset,
        payload: payload.as_bytes().to_vec(),
    }
}

#[tokio::test]
async fn a_replayed_batch_writes_nothing_twice_in_postgres() {
    let db = pg::Database::create("sluice_kafka_sink");
    // Append mode: the table's key is (topic, partition, offset), but the offsets decide first.
    let stream = stream(SinkMode::Append, ConnectionKind::Postgres);
    let sink = PgSink::connect(&db.url, &stream).await.unwrap();
    replay_writes_nothing_twice(Box::new(sink)).await;
}

#[tokio::test]
async fn a_replayed_batch_writes_nothing_twice_in_mariadb() {
    let db = mariadb::Database::create("sluice_kafka_sink");
    let stream = stream(SinkMode::Append, ConnectionKind::MySql);
    let sink = MySqlSink::connect(&db.url, &stream).await.unwrap();
    replay_writes_nothing_twice(Box::new(sink)).await;
    assert_eq!(
        db.column(
            "SELECT CONCAT(`partition`, ':', `offset`, ' ', reason) FROM sluice_stream_dead_letters"
        ),
        ["0:4 malformed JSON"]
    );
    assert_eq!(
        db.column("SELECT GROUP_CONCAT(_offset ORDER BY _offset) FROM `out` WHERE _partition = 1"),
        ["1,3,4,5,6"]
    );
}

async fn replay_writes_nothing_twice(mut sink: Box<dyn TableSink>) {
    let good: Vec<(Record, serde_json::Value)> = (0..4)
        .map(|o| {
            (
                record(o as i32 % 2, o, "{}"),
                serde_json::json!({ "id": o }),
            )
        })
        .collect();
    let bad = vec![Rejected {
        record: record(0, 4, "oops"),
        reason: "malformed JSON".into(),
    }];
    let next: BTreeMap<(String, i32), i64> =
        [(("t".to_string(), 0), 5), (("t".to_string(), 1), 4)].into();
    let first = sink
        .write(&SinkBatch::rows(&good, &bad), &next, true)
        .await
        .unwrap();
    assert_eq!(
        (first.loaded, first.dead_lettered, first.skipped),
        (4, 1, 0)
    );
    let again = sink
        .write(&SinkBatch::rows(&good, &bad), &next, true)
        .await
        .unwrap();
    assert_eq!(
        (again.loaded, again.dead_lettered, again.skipped),
        (0, 0, 4)
    );
    // A batch straddling the stored offsets writes only what is new.
    let more: Vec<(Record, serde_json::Value)> = vec![
        (record(1, 3, "{}"), serde_json::json!({ "id": 3 })),
        (record(1, 4, "{}"), serde_json::json!({ "id": 40 })),
    ];
    let next: BTreeMap<(String, i32), i64> = [(("t".to_string(), 1), 5)].into();
    let w = sink
        .write(&SinkBatch::rows(&more, &[]), &next, true)
        .await
        .unwrap();
    assert_eq!((w.loaded, w.skipped), (1, 1));
    // Rows above the stored offsets already in the table (an earlier at_least_once run wrote
    // them): the exactly-once append keeps them and adds only the others.
    let early: Vec<(Record, serde_json::Value)> =
        vec![(record(1, 5, "{}"), serde_json::json!({ "id": 5 }))];
    let w = sink
        .write(&SinkBatch::rows(&early, &[]), &BTreeMap::new(), false)
        .await
        .unwrap();
    assert_eq!(w.loaded, 1);
    let both: Vec<(Record, serde_json::Value)> = vec![
        (record(1, 5, "{}"), serde_json::json!({ "id": 5 })),
        (record(1, 6, "{}"), serde_json::json!({ "id": 6 })),
    ];
    let next: BTreeMap<(String, i32), i64> = [(("t".to_string(), 1), 7)].into();
    let w = sink
        .write(&SinkBatch::rows(&both, &[]), &next, true)
        .await
        .unwrap();
    assert_eq!((w.loaded, w.skipped), (1, 0));
    assert_eq!(
        sink.stored_offsets().await.unwrap()[&("t".to_string(), 1)],
        7
    );
    drop(sink);
}
