//! The lake on S3: Parquet and CSV files written to and read from a real S3-compatible server
//! (moto, started by `scripts/s3-server` on 127.0.0.1), through `Lake::s3` exactly as a project
//! with an `s3://` lake connection uses it.

use std::path::Path;
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use sluice_core::task::NoLedger;
use sluice_core::{DeadLetter, Ledger, SchemaChange};
use sluice_io::arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use sluice_io::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use sluice_io::arrow::util::display::array_value_to_string;
use sluice_io::bad::BadRecords;
use sluice_io::files::{self, FileRead, Format};
use sluice_io::lake::Lake;
use sluice_io::{BatchStream, IoError};
use sluice_testkit::s3;
use url::Url;

const ACCESS_KEY: &str = "sluice-test-key";
/// Distinctive, so that finding it in an error message means it leaked.
const SECRET: &str = "s3cr3t-Zq8vW2-never-show";
const BUCKET: &str = "sluice-lake";

/// A moto server of this test's own; stopped when dropped, whether the test passed or not.
struct Server(s3::Server);

impl Server {
    fn start() -> Server {
        Server(s3::Server::start())
    }

    fn endpoint(&self) -> String {
        self.0.endpoint()
    }

    /// Creates a bucket: object_store has no call for it, S3 does (`PUT /bucket`).
    async fn create_bucket(&self, bucket: &str) {
        let resp = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint()))
            .send()
            .await
            .expect("PUT bucket");
        assert!(resp.status().is_success(), "create bucket: {resp:?}");
    }

    /// The keys in a bucket, listed straight from the server (not through the lake).
    async fn keys(&self, bucket: &str) -> Vec<String> {
        let body = reqwest::get(format!("{}/{bucket}?list-type=2", self.endpoint()))
            .await
            .expect("list bucket")
            .text()
            .await
            .unwrap();
        body.split("<Key>")
            .skip(1)
            .map(|s| s.split("</Key>").next().unwrap().to_string())
            .collect()
    }

    fn lake(&self, bucket: &str, prefix: &str) -> Lake {
        let url = Url::parse(&format!(
            "s3://{bucket}/{prefix}?endpoint={}&region=us-east-1&access_key_id={ACCESS_KEY}&secret_access_key={SECRET}",
            self.endpoint()
        ))
        .unwrap();
        let shown = format!(
            "s3://{bucket}/{prefix}?endpoint={}&region=us-east-1&access_key_id={ACCESS_KEY}&secret_access_key=***",
            self.endpoint()
        );
        Lake::s3(&url, shown, Path::new("/nonexistent-project")).expect("Lake::s3")
    }
}

/// A ledger that keeps the dead letters it is given.
#[derive(Default)]
struct Collect(Mutex<Vec<DeadLetter>>);

impl Ledger for Collect {
    fn dead_letters(&self, records: &[DeadLetter]) -> Result<(), String> {
        self.0.lock().unwrap().extend_from_slice(records);
        Ok(())
    }
    fn schema_changes(&self, _: &[SchemaChange]) -> Result<(), String> {
        Ok(())
    }
}

fn orders_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("customer", DataType::Utf8, true),
    ]))
}

fn orders(ids: std::ops::Range<i64>) -> RecordBatch {
    let customers: Vec<Option<String>> = ids
        .clone()
        .map(|i| (i % 7 != 0).then(|| format!("customer-{i}")))
        .collect();
    RecordBatch::try_new(
        orders_schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(ids)),
            Arc::new(StringArray::from(customers)),
        ],
    )
    .unwrap()
}

fn stream(batches: Vec<RecordBatch>) -> BatchStream {
    futures::stream::iter(batches.into_iter().map(Ok)).boxed()
}

/// Every row as its values shown as text (`None` for null), whatever the column types.
fn rows(batches: &[RecordBatch]) -> Vec<Vec<Option<String>>> {
    let mut out = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            out.push(
                b.columns()
                    .iter()
                    .map(|c| (!c.is_null(r)).then(|| array_value_to_string(c, r).unwrap()))
                    .collect(),
            );
        }
    }
    out
}

fn no_bad() -> Arc<BadRecords> {
    Arc::new(BadRecords::new(Arc::new(NoLedger), 0))
}

async fn read_all(
    files: Vec<sluice_io::lake::Location>,
    read: FileRead,
) -> Result<(SchemaRef, Vec<RecordBatch>), IoError> {
    let (schema, stream) = files::read(files, read).await?;
    Ok((schema, stream.try_collect().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_round_trip_through_s3_lake() {
    let server = Server::start();
    server.create_bucket(BUCKET).await;
    let lake = server.lake(BUCKET, "warehouse/v1");

    let days = [
        ("2024-01-01", vec![orders(0..3), orders(3..10)]),
        ("2024-01-02", vec![orders(10..25)]),
    ];
    for (day, batches) in &days {
        let target = lake
            .resolve(&format!("lake://orders/{day}/data.parquet"))
            .unwrap();
        assert!(target.local.is_none(), "an S3 lake has no local files");
        let written = files::write_parquet(&target, orders_schema(), stream(batches.clone()))
            .await
            .unwrap();
        let expected: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(written, expected as u64);
    }
    // A file beside them that the glob must not pick up.
    let other = lake.resolve("lake://orders/2024-01-01/other.csv").unwrap();
    other
        .store
        .put(&other.path, b"id\n1\n".to_vec().into())
        .await
        .unwrap();

    // The objects are under the lake's prefix in the bucket.
    let mut keys = server.keys(BUCKET).await;
    keys.sort();
    assert_eq!(
        keys,
        [
            "warehouse/v1/orders/2024-01-01/data.parquet",
            "warehouse/v1/orders/2024-01-01/other.csv",
            "warehouse/v1/orders/2024-01-02/data.parquet",
        ]
    );

    let found = lake
        .expand(&lake.resolve("lake://orders/*/data.parquet").unwrap())
        .await
        .unwrap();
    let shown: Vec<String> = found.iter().map(|f| f.shown.clone()).collect();
    assert_eq!(
        shown,
        [
            "lake://orders/2024-01-01/data.parquet",
            "lake://orders/2024-01-02/data.parquet",
        ]
    );

    let (schema, batches) = read_all(
        found,
        FileRead {
            format: Format::Parquet,
            schema: None,
            bad: no_bad(),
        },
    )
    .await
    .unwrap();
    assert_eq!(schema.fields(), orders_schema().fields());
    let expected: Vec<RecordBatch> = days.iter().flat_map(|(_, b)| b.clone()).collect();
    assert_eq!(rows(&batches), rows(&expected));
    assert_eq!(rows(&batches).len(), 25);
    assert_eq!(
        rows(&batches)[7],
        [Some("7".to_string()), None],
        "nulls survive"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_with_a_bad_row_from_s3_lake() {
    let server = Server::start();
    server.create_bucket(BUCKET).await;
    let lake = server.lake(BUCKET, "raw");

    let location = lake.resolve("lake://sales/2024-01-01.csv").unwrap();
    let csv = "id,region,amount\n1,north,10.5\n2,south,20.25\n3,east\n4,west,40\n";
    location
        .store
        .put(&location.path, csv.as_bytes().to_vec().into())
        .await
        .unwrap();

    let files = lake
        .expand(&lake.resolve("lake://sales/*.csv").unwrap())
        .await
        .unwrap();
    assert_eq!(files.len(), 1);
    let ledger = Arc::new(Collect::default());
    let (schema, batches) = read_all(
        files,
        FileRead {
            format: Format::Csv { delimiter: b',' },
            schema: None,
            bad: Arc::new(BadRecords::new(ledger.clone(), 5)),
        },
    )
    .await
    .unwrap();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "region", "amount"]);
    let got: Vec<Vec<String>> = rows(&batches)
        .into_iter()
        .map(|r| r.into_iter().map(|v| v.unwrap_or_default()).collect())
        .collect();
    assert_eq!(got.len(), 3);
    assert_eq!(
        got.iter().map(|r| r[..2].join(",")).collect::<Vec<_>>(),
        ["1,north", "2,south", "4,west"]
    );
    let amounts: Vec<f64> = got.iter().map(|r| r[2].parse().unwrap()).collect();
    assert_eq!(amounts, [10.5, 20.25, 40.0]);

    let dead = ledger.0.lock().unwrap().clone();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].source, "lake://sales/2024-01-01.csv");
    assert_eq!(dead[0].line, Some(4));
    assert_eq!(dead[0].row, Some(3));
    assert_eq!(dead[0].record, "3,east");
    assert!(dead[0].reason.contains("expected 3 fields"), "{dead:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_objects_are_named_by_lake_uri_without_secrets() {
    let server = Server::start();
    server.create_bucket(BUCKET).await;
    let lake = server.lake(BUCKET, "prefix");
    assert!(!format!("{lake:?}").contains(SECRET));

    let check = |what: &str, err: IoError, uri: &str| {
        let text = err.to_string();
        assert!(text.contains(uri), "{what}: `{text}` should name {uri}");
        assert!(!text.contains(SECRET), "{what}: `{text}` shows the secret");
        assert!(!format!("{err:?}").contains(SECRET), "{what}: {err:?}");
    };

    let missing = "lake://orders/2024-01-03/data.parquet";
    let err = lake
        .expand(&lake.resolve(missing).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), format!("{missing}: no such file"));
    check("expand a missing file", err, missing);

    let glob = "lake://orders/*/data.parquet";
    let err = lake.expand(&lake.resolve(glob).unwrap()).await.unwrap_err();
    check("expand a glob that matches nothing", err, glob);

    let err = read_all(
        vec![lake.resolve(missing).unwrap()],
        FileRead {
            format: Format::Parquet,
            schema: None,
            bad: no_bad(),
        },
    )
    .await
    .unwrap_err();
    check("read a missing Parquet file", err, missing);

    let csv = "lake://sales/none.csv";
    let err = read_all(
        vec![lake.resolve(csv).unwrap()],
        FileRead {
            format: Format::Csv { delimiter: b',' },
            schema: None,
            bad: no_bad(),
        },
    )
    .await
    .unwrap_err();
    check("read a missing CSV file", err, csv);
}
