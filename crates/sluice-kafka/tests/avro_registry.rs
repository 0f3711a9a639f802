//! Avro in the Confluent wire format against a tiny Confluent-compatible schema registry (an
//! axum server on a free port of 127.0.0.1, counting the requests for each schema id): records
//! decode into JSON objects, each schema id is asked for once, an unknown id dead-letters its
//! records, and a registry that is down or failing is waited for — never a reason to dead-letter.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apache_avro::Schema;
use apache_avro::types::Value as Avro;
use apache_avro::writer::datum::GenericDatumWriter;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::json;
use sluice_kafka::{Decoder, Record, StreamError};
use tokio_util::sync::CancellationToken;

const ORDER_V1: &str = r#"{"type": "record", "name": "Order", "fields": [
    {"name": "id", "type": ["null", "long"]},
    {"name": "amount", "type": "double"}]}"#;
const ORDER_V2: &str = r#"{"type": "record", "name": "Order", "fields": [
    {"name": "id", "type": ["null", "long"]},
    {"name": "amount", "type": "double"},
    {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}"#;
/// Ids the registry answers 503 for, the first time each is asked.
const FLAKY: u32 = 7;
const FAILING: u32 = 503;
/// An id the registry takes 30 s to answer.
const SLOW: u32 = 99;

type Requests = Arc<Mutex<BTreeMap<u32, usize>>>;

/// The registry's one endpoint, as Confluent's answers it.
async fn schema_by_id(
    State(requests): State<Requests>,
    Path(id): Path<u32>,
) -> (StatusCode, Json<serde_json::Value>) {
    let asked = {
        let mut requests = requests.lock().unwrap();
        let n = requests.entry(id).or_default();
        *n += 1;
        *n
    };
    if id == SLOW {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    match id {
        1 => (StatusCode::OK, Json(json!({ "schema": ORDER_V1 }))),
        2 => (StatusCode::OK, Json(json!({ "schema": ORDER_V2 }))),
        FLAKY if asked > 1 => (StatusCode::OK, Json(json!({ "schema": ORDER_V1 }))),
        FLAKY | FAILING => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error_code": 50003, "message": "Error while forwarding the request" })),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error_code": 40403, "message": "Schema not found" })),
        ),
    }
}

struct Registry {
    url: String,
    requests: Requests,
    shutdown: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

impl Registry {
    async fn start() -> Registry {
        let requests = Requests::default();
        let app = axum::Router::new()
            .route("/schemas/ids/{id}", axum::routing::get(schema_by_id))
            .with_state(requests.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Registry {
            url,
            requests,
            shutdown,
            server,
        }
    }

    fn requests(&self) -> BTreeMap<u32, usize> {
        self.requests.lock().unwrap().clone()
    }

    /// Stops listening and closes every connection (kept-alive ones too).
    async fn stop(self) -> String {
        let _ = self.shutdown.send(());
        self.server.await.unwrap();
        self.url
    }
}

fn decoder(registry: &str) -> Decoder {
    let text = format!(
        "stream: orders
source: {{ kafka: {{ brokers: b, topic: orders, group: g, format: avro, schema_registry: \"{registry}\" }} }}
require: [id]
sink: {{ into: warehouse, table: orders }}
"
    );
    let mut diags = sluice_core::diag::Diagnostics::default();
    let connections = sluice_core::connections::Connections::default();
    let stream =
        sluice_core::stream::load_file("pipelines/orders.yaml", &text, &connections, &mut diags);
    assert!(diags.is_empty(), "{:#?}", diags.0);
    Decoder::new(&stream.unwrap()).unwrap()
}

/// An order in the Confluent wire format: magic byte 0, the schema id, the Avro datum.
fn order(schema_id: u32, id: Option<i64>, amount: f64) -> Record {
    let schema = Schema::parse_str(if schema_id == 2 { ORDER_V2 } else { ORDER_V1 }).unwrap();
    let id = match id {
        Some(id) => Avro::Union(1, Box::new(Avro::Long(id))),
        None => Avro::Union(0, Box::new(Avro::Null)),
    };
    let mut fields = vec![
        ("id".to_string(), id),
        ("amount".to_string(), Avro::Double(amount)),
    ];
    if schema_id == 2 {
        // 2024-05-01T12:00:00.250Z
        fields.push(("ts".to_string(), Avro::TimestampMillis(1_714_564_800_250)));
    }
    let datum = GenericDatumWriter::builder(&schema)
        .build()
        .unwrap()
        .write_value_to_vec(Avro::Record(fields))
        .unwrap();
    let mut payload = vec![0];
    payload.extend(schema_id.to_be_bytes());
    payload.extend(datum);
    Record {
        topic: "orders".into(),
        partition: 0,
        offset: 0,
        payload,
    }
}

fn json_record(text: &str) -> Record {
    Record {
        topic: "orders".into(),
        partition: 0,
        offset: 0,
        payload: text.as_bytes().to_vec(),
    }
}

#[tokio::test]
async fn records_decode_with_their_schema_asked_for_once_per_id() {
    let registry = Registry::start().await;
    let mut decoder = decoder(&registry.url);
    let batch = [
        order(1, Some(1), 9.5),
        order(2, Some(2), 20.0),
        order(1, Some(3), 1.25),
        order(42, Some(4), 0.0),
        json_record(r#"{"id": 5}"#),
        order(1, None, 3.0),
    ];
    let decoded = decoder.decode(&batch).await.unwrap();
    let expected: [Result<serde_json::Value, String>; 6] = [
        Ok(json!({"id": 1, "amount": 9.5})),
        Ok(json!({"id": 2, "amount": 20.0, "ts": "2024-05-01T12:00:00.250Z"})),
        Ok(json!({"id": 3, "amount": 1.25})),
        Err(format!(
            "schema registry {}: schema id 42 not found (404)",
            registry.url
        )),
        Err(
            "Avro: payload does not start with the Confluent magic byte 0 (found 0x7b at offset 0)"
                .into(),
        ),
        Err("missing required field(s): id".into()),
    ];
    for (i, (got, want)) in decoded.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "record {i}");
    }
    assert_eq!(decoded.len(), expected.len());

    // A later batch: known ids are not asked again; an unknown one is, once per batch (a
    // registry replica may learn an id late).
    let decoded = decoder
        .decode(&[
            order(2, Some(6), 1.0),
            order(1, Some(7), 2.0),
            order(42, Some(8), 3.0),
        ])
        .await
        .unwrap();
    assert!(decoded[0].is_ok() && decoded[1].is_ok(), "{decoded:?}");
    assert!(decoded[2].is_err(), "{decoded:?}");
    assert_eq!(
        registry.requests(),
        BTreeMap::from([(1, 1), (2, 1), (42, 2)])
    );

    // Stopping does not wait for a slow registry: the batch is left undecoded, and as its
    // offsets are not committed, the next run reads it again.
    let stopping = CancellationToken::new();
    let stopper = stopping.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stopper.cancel();
    });
    let started = Instant::now();
    let decoded = decoder
        .decode_until_done(&[order(SLOW, Some(9), 9.0)], &stopping)
        .await
        .unwrap();
    assert_eq!(decoded, None);
    assert!(started.elapsed() < Duration::from_secs(5));
    // The server goes with the test's runtime (a graceful stop would wait for the slow answer).
}

#[tokio::test]
async fn a_registry_that_is_down_or_failing_is_waited_for_never_dead_lettered() {
    let registry = Registry::start().await;
    let mut decoder = decoder(&registry.url);

    // An error status other than 404 is the registry's trouble, not the record's.
    match decoder.decode(&[order(FAILING, Some(1), 1.0)]).await {
        Err(StreamError::Source(why)) => assert!(
            why.starts_with(&format!(
                "schema registry {}: schema id 503: HTTP 503 Service Unavailable",
                registry.url
            )),
            "{why}"
        ),
        other => panic!("expected the source's transient error, got {other:?}"),
    }

    // A registry that fails once: the batch is tried again after a backoff, and decodes.
    let stop = CancellationToken::new();
    let decoded = decoder
        .decode_until_done(&[order(FLAKY, Some(1), 1.0)], &stop)
        .await
        .unwrap()
        .expect("decoded, not stopped");
    assert_eq!(decoded, [Ok(json!({"id": 1, "amount": 1.0}))]);
    assert_eq!(registry.requests()[&FLAKY], 2);

    assert!(decoder.decode(&[order(1, Some(1), 1.0)]).await.is_ok());
    let url = registry.stop().await;

    // Cached schemas need no registry...
    let decoded = decoder.decode(&[order(1, Some(2), 2.0)]).await.unwrap();
    assert_eq!(decoded, [Ok(json!({"id": 2, "amount": 2.0}))]);

    // ...a schema not seen yet does: the whole batch is left undecoded, to be tried again.
    match decoder
        .decode(&[order(1, Some(3), 3.0), order(2, Some(4), 4.0)])
        .await
    {
        Err(StreamError::Source(why)) => assert!(
            why.starts_with(&format!(
                "schema registry {url}: cannot ask for schema id 2: "
            )),
            "{why}"
        ),
        other => panic!("expected the source's transient error, got {other:?}"),
    }

    // A stream that is stopping still decodes what needs no request.
    let stopping = CancellationToken::new();
    stopping.cancel();
    let decoded = decoder
        .decode_until_done(&[order(1, Some(5), 5.0)], &stopping)
        .await
        .unwrap();
    assert_eq!(decoded, Some(vec![Ok(json!({"id": 5, "amount": 5.0}))]));

    // Trying again goes on until the stream is stopped, and then the registry's failure is the
    // error.
    let stop = CancellationToken::new();
    let stopper = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stopper.cancel();
    });
    let started = Instant::now();
    let outcome = decoder
        .decode_until_done(&[order(2, Some(5), 5.0)], &stop)
        .await;
    assert!(
        matches!(&outcome, Err(StreamError::Source(_))),
        "{outcome:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(1400));
}
