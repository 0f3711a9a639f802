//! Against a real PostgreSQL at 127.0.0.1:5432 (trust auth, database `test`). Every test works in
//! its own schema so the tests can run in parallel.

use std::future::Future;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array,
    Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Decimal128Type, Field, Int64Type, Schema, TimeUnit};
use futures::{StreamExt, TryStreamExt};
use sluice_io::{BatchStream, IoError, postgres};
use sluice_testkit::pg;
use tokio_postgres::Client;
use tokio_postgres::types::Type;

const URI: &str = sluice_testkit::pg::TEST_URL;

/// Runs `body` with a fresh schema, dropped afterwards (also when `body` panics).
async fn with_schema<F, Fut>(body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let schema = pg::Schema::create("sluice_pg");
    body(schema.name.clone()).await;
}

async fn client() -> Client {
    postgres::connect(URI).await.expect("connect")
}

async fn extract_all(query: &str, batch_rows: usize) -> (Arc<Schema>, Vec<RecordBatch>) {
    let (schema, stream) = postgres::extract(client().await, query, batch_rows)
        .await
        .unwrap_or_else(|e| panic!("extract {query}: {e}"));
    let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
    for batch in &batches {
        assert_eq!(batch.schema(), schema);
    }
    (schema, batches)
}

fn one_batch(batches: Vec<RecordBatch>) -> RecordBatch {
    assert_eq!(batches.len(), 1, "expected one batch");
    batches.into_iter().next().unwrap()
}

fn stream_of(batches: Vec<RecordBatch>) -> BatchStream {
    futures::stream::iter(batches.into_iter().map(Ok)).boxed()
}

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn micros(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .timestamp_micros()
}

fn days(text: &str) -> i32 {
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap();
    (date - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32
}

#[tokio::test]
async fn extract_every_mapped_type_with_nulls() {
    let query = "SELECT b, i2, i4, i8, f4, f8, num::numeric(6,2) AS num, txt, vc, bp, nm, d, ts, \
        js, jsb, id, bin FROM (VALUES \
        (true, 1::int2, 2::int4, 3::int8, 1.5::float4, 2.25::float8, 12.34::numeric(6,2), \
         'text'::text, 'var'::varchar(10), 'ab'::char(4), 'pg_class'::name, '2024-02-29'::date, \
         '2024-02-29 12:34:56.789012'::timestamp, '{\"a\": 1}'::json, '{\"b\": [1, 2]}'::jsonb, \
         'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, '\\x00ff10'::bytea), \
        (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
         NULL, NULL)) AS t(b, i2, i4, i8, f4, f8, num, txt, vc, bp, nm, d, ts, js, jsb, id, bin)";
    let (schema, batches) = extract_all(query, 1024).await;
    let expected_types = [
        DataType::Boolean,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::Float32,
        DataType::Float64,
        DataType::Decimal128(6, 2),
        DataType::Utf8,
        DataType::Utf8,
        DataType::Utf8,
        DataType::Utf8,
        DataType::Date32,
        DataType::Timestamp(TimeUnit::Microsecond, None),
        DataType::Utf8,
        DataType::Utf8,
        DataType::Utf8,
        DataType::Binary,
    ];
    let types: Vec<DataType> = schema
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    assert_eq!(types, expected_types);
    assert_eq!(schema.field(0).name(), "b");

    let batch = one_batch(batches);
    assert_eq!(batch.num_rows(), 2);
    for column in batch.columns() {
        assert!(column.is_valid(0));
        assert!(column.is_null(1), "second row is all NULL");
    }
    let c = |i: usize| batch.column(i).clone();
    assert!(c(0).as_boolean().value(0));
    assert_eq!(
        c(1).as_any().downcast_ref::<Int16Array>().unwrap().value(0),
        1
    );
    assert_eq!(
        c(2).as_any().downcast_ref::<Int32Array>().unwrap().value(0),
        2
    );
    assert_eq!(
        c(3).as_any().downcast_ref::<Int64Array>().unwrap().value(0),
        3
    );
    assert_eq!(
        c(4).as_any()
            .downcast_ref::<Float32Array>()
            .unwrap()
            .value(0),
        1.5
    );
    assert_eq!(
        c(5).as_any()
            .downcast_ref::<Float64Array>()
            .unwrap()
            .value(0),
        2.25
    );
    assert_eq!(c(6).as_primitive::<Decimal128Type>().value(0), 1234);
    let text = |i: usize| c(i).as_string::<i32>().value(0).to_string();
    assert_eq!(text(7), "text");
    assert_eq!(text(8), "var");
    assert_eq!(text(9), "ab  ");
    assert_eq!(text(10), "pg_class");
    assert_eq!(
        c(11)
            .as_any()
            .downcast_ref::<Date32Array>()
            .unwrap()
            .value(0),
        days("2024-02-29")
    );
    assert_eq!(
        c(12)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap()
            .value(0),
        micros("2024-02-29T12:34:56.789012Z")
    );
    assert_eq!(text(13), "{\"a\": 1}");
    assert_eq!(text(14), "{\"b\": [1, 2]}");
    assert_eq!(text(15), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    assert_eq!(c(16).as_binary::<i32>().value(0), &[0x00, 0xff, 0x10]);
}

#[tokio::test]
async fn extract_numeric_edge_values() {
    let query = "SELECT v::numeric(38,4) AS fixed, v AS free FROM (VALUES \
        (0::numeric), (-1), (12345.6789), (0.0001), (-0.0001), (10000), (-98765432.1), \
        (1234567890123456789012345678.1234), (NULL)) AS t(v)";
    let (schema, batches) = extract_all(query, 100).await;
    assert_eq!(schema.field(0).data_type(), &DataType::Decimal128(38, 4));
    assert_eq!(schema.field(1).data_type(), &DataType::Decimal128(38, 10));
    let batch = one_batch(batches);
    let fixed = batch.column(0).as_primitive::<Decimal128Type>();
    let free = batch.column(1).as_primitive::<Decimal128Type>();
    let expected: [Option<i128>; 9] = [
        Some(0),
        Some(-10_000),
        Some(123_456_789),
        Some(1),
        Some(-1),
        Some(100_000_000),
        Some(-987_654_321_000),
        Some(12_345_678_901_234_567_890_123_456_781_234),
        None,
    ];
    for (row, want) in expected.iter().enumerate() {
        assert_eq!(
            fixed.is_valid(row).then(|| fixed.value(row)),
            *want,
            "row {row}"
        );
        let free_want = want.map(|v| v * 1_000_000);
        assert_eq!(
            free.is_valid(row).then(|| free.value(row)),
            free_want,
            "row {row}"
        );
    }

    // The full 38 digits of numeric(38,0), both signs.
    let big = "99999999999999999999999999999999999999";
    let (_, batches) = extract_all(
        &format!("SELECT {big}::numeric(38,0) AS p, (-{big})::numeric(38,0) AS n"),
        10,
    )
    .await;
    let batch = one_batch(batches);
    let max = 10i128.pow(38) - 1;
    assert_eq!(
        batch.column(0).as_primitive::<Decimal128Type>().value(0),
        max
    );
    assert_eq!(
        batch.column(1).as_primitive::<Decimal128Type>().value(0),
        -max
    );
}

#[tokio::test]
async fn extract_numeric_nan_names_the_column() {
    let (_, stream) = postgres::extract(client().await, "SELECT 'NaN'::numeric AS ratio", 10)
        .await
        .unwrap();
    let err = stream.try_collect::<Vec<_>>().await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, IoError::Invalid(_)), "{message}");
    assert!(
        message.contains("ratio") && message.contains("NaN"),
        "{message}"
    );
}

#[tokio::test]
async fn extract_timestamptz_is_utc() {
    let client = client().await;
    client
        .batch_execute("SET TIME ZONE 'Europe/Berlin'")
        .await
        .unwrap();
    let (schema, stream) = postgres::extract(
        client,
        "SELECT '2024-07-01 12:00:00+02'::timestamptz AS at, \
         '1969-12-31 23:59:59.5+00'::timestamptz AS before_epoch",
        10,
    )
    .await
    .unwrap();
    assert_eq!(schema.field(0).data_type(), &utc());
    let batch = one_batch(stream.try_collect().await.unwrap());
    let at = batch
        .column(0)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    assert_eq!(at.value(0), micros("2024-07-01T10:00:00Z"));
    let before = batch
        .column(1)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    assert_eq!(before.value(0), -500_000);
}

#[tokio::test]
async fn extract_empty_result_keeps_schema() {
    let (schema, batches) = extract_all(
        "SELECT 1::int8 AS id, 'x'::text AS name, 1.5::numeric(5,1) AS amount WHERE false;",
        10,
    )
    .await;
    assert!(batches.is_empty());
    let fields: Vec<(String, DataType)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("id".to_string(), DataType::Int64),
            ("name".to_string(), DataType::Utf8),
            ("amount".to_string(), DataType::Decimal128(5, 1)),
        ]
    );
}

#[tokio::test]
async fn extract_multiple_batches() {
    let (_, batches) = extract_all(
        "SELECT g AS n, repeat('x', g % 7) AS s FROM generate_series(1, 1000) AS g ORDER BY g",
        64,
    )
    .await;
    let sizes: Vec<usize> = batches.iter().map(RecordBatch::num_rows).collect();
    assert_eq!(sizes.len(), 16);
    assert!(sizes[..15].iter().all(|&n| n == 64), "{sizes:?}");
    assert_eq!(sizes[15], 1000 - 15 * 64);
    let numbers: Vec<i32> = batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<Int32Array>()
                .unwrap()
                .values()
                .to_vec()
        })
        .collect();
    assert_eq!(numbers, (1..=1000).collect::<Vec<_>>());
    let last = batches.last().unwrap();
    assert_eq!(
        last.column(1).as_string::<i32>().value(last.num_rows() - 1),
        "xxxxxx"
    );
}

#[tokio::test]
async fn extract_unsupported_type_names_column_and_hint() {
    let err = postgres::extract(client().await, "SELECT 1 AS ok, '<a/>'::xml AS doc", 10)
        .await
        .err()
        .expect("xml is not supported");
    let message = err.to_string();
    assert!(matches!(err, IoError::Invalid(_)), "{message}");
    assert!(message.contains("doc"), "{message}");
    assert!(message.contains("xml"), "{message}");
    assert!(message.contains("cast it in the query"), "{message}");
    assert!(message.contains("::text"), "{message}");

    let err = postgres::arrow_type(&Type::INTERVAL, -1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("interval") && err.contains("::text"), "{err}");
}

#[tokio::test]
async fn server_errors_carry_the_server_message() {
    let err = postgres::extract(client().await, "SELECT no_such_column FROM pg_class", 10)
        .await
        .err()
        .expect("bad query");
    let message = err.to_string();
    assert!(message.contains("no_such_column"), "{message}");
    assert!(message.contains("does not exist"), "{message}");
    assert!(message.contains("at character 8"), "{message}");
    assert!(!message.contains("db error"), "{message}");
    assert!(!err.retryable(), "{message}");
}

#[tokio::test]
async fn connect_error_hides_the_password() {
    let err = postgres::connect("postgres://postgres:s3cret@127.0.0.1:1/test")
        .await
        .expect_err("nothing listens on port 1");
    let message = err.to_string();
    assert!(!message.contains("s3cret"), "{message}");
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(message.to_lowercase().contains("refused"), "{message}");
    assert!(err.retryable(), "{message}");

    let err = postgres::connect("postgres://postgres:s3cret@127.0.0.1:5432/test?sslmode=bogus")
        .await
        .expect_err("bad sslmode");
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

#[tokio::test]
async fn table_fields_read_the_catalog() {
    with_schema(|schema| async move {
        let client = client().await;
        client
            .batch_execute(&format!(
                "CREATE TABLE {schema}.t (id int8 NOT NULL, amount numeric(12,3), free numeric, \
                 note varchar(20), at timestamptz, dropped int4); \
                 ALTER TABLE {schema}.t DROP COLUMN dropped; \
                 CREATE TABLE {schema}.\"Odd name\" (); \
                 CREATE TABLE {schema}.x (doc xml)"
            ))
            .await
            .unwrap();
        let fields = postgres::table_fields(&client, &schema, "t")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            fields,
            vec![
                Field::new("id", DataType::Int64, false),
                Field::new("amount", DataType::Decimal128(12, 3), true),
                Field::new("free", DataType::Decimal128(38, 10), true),
                Field::new("note", DataType::Utf8, true),
                Field::new("at", utc(), true),
            ]
        );
        assert_eq!(
            postgres::table_fields(&client, &schema, "Odd name")
                .await
                .unwrap(),
            Some(vec![])
        );
        assert_eq!(
            postgres::table_fields(&client, &schema, "missing")
                .await
                .unwrap(),
            None
        );
        let err = postgres::table_fields(&client, &schema, "x")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("doc") && err.contains("xml"), "{err}");
    })
    .await;
}

#[test]
fn pg_type_and_arrow_type_round_trip() {
    let cases = [
        (DataType::Boolean, Type::BOOL, -1),
        (DataType::Int16, Type::INT2, -1),
        (DataType::Int32, Type::INT4, -1),
        (DataType::Int64, Type::INT8, -1),
        (DataType::Float32, Type::FLOAT4, -1),
        (DataType::Float64, Type::FLOAT8, -1),
        // numeric(12,3): ((12 << 16) | 3) + 4
        (
            DataType::Decimal128(12, 3),
            Type::NUMERIC,
            ((12 << 16) | 3) + 4,
        ),
        (DataType::Utf8, Type::TEXT, -1),
        (DataType::Date32, Type::DATE, -1),
        (
            DataType::Timestamp(TimeUnit::Microsecond, None),
            Type::TIMESTAMP,
            -1,
        ),
        (utc(), Type::TIMESTAMPTZ, -1),
        (DataType::Binary, Type::BYTEA, -1),
    ];
    for (arrow, pg, typmod) in cases {
        assert_eq!(postgres::arrow_type(&pg, typmod).unwrap(), arrow, "{pg}");
        let name = postgres::pg_type(&arrow).unwrap();
        assert!(!name.is_empty());
    }
    assert_eq!(
        postgres::pg_type(&DataType::Decimal128(12, 3)).unwrap(),
        "numeric(12,3)"
    );
    assert_eq!(postgres::pg_type(&DataType::LargeUtf8).unwrap(), "text");
    assert_eq!(postgres::pg_type(&DataType::Utf8View).unwrap(), "text");
    assert_eq!(
        postgres::pg_type(&DataType::Timestamp(
            TimeUnit::Millisecond,
            Some("+02:00".into())
        ))
        .unwrap(),
        "timestamptz"
    );
    assert_eq!(
        postgres::arrow_type(&Type::NUMERIC, -1).unwrap(),
        DataType::Decimal128(38, 10)
    );
    assert_eq!(
        postgres::arrow_type(&Type::JSONB, -1).unwrap(),
        DataType::Utf8
    );
    assert_eq!(
        postgres::arrow_type(&Type::UUID, -1).unwrap(),
        DataType::Utf8
    );
    assert_eq!(
        postgres::arrow_type(&Type::BPCHAR, 8).unwrap(),
        DataType::Utf8
    );
    assert!(postgres::arrow_type(&Type::NUMERIC, ((50 << 16) | 2) + 4).is_err());
    assert!(postgres::pg_type(&DataType::Duration(TimeUnit::Second)).is_err());
}

/// The declared types of every mapped type, checked against the server: each pg_type must be a
/// type the server accepts and reads back as the same Arrow type.
#[tokio::test]
async fn pg_type_declares_columns_that_read_back_the_same() {
    with_schema(|schema| async move {
        let client = client().await;
        let types = [
            DataType::Boolean,
            DataType::Int16,
            DataType::Int32,
            DataType::Int64,
            DataType::Float32,
            DataType::Float64,
            DataType::Decimal128(20, 4),
            DataType::Utf8,
            DataType::Date32,
            DataType::Timestamp(TimeUnit::Microsecond, None),
            utc(),
            DataType::Binary,
        ];
        let columns: Vec<String> = types
            .iter()
            .enumerate()
            .map(|(i, t)| format!("c{i} {}", postgres::pg_type(t).unwrap()))
            .collect();
        client
            .batch_execute(&format!("CREATE TABLE {schema}.t ({})", columns.join(", ")))
            .await
            .unwrap();
        let fields = postgres::table_fields(&client, &schema, "t")
            .await
            .unwrap()
            .unwrap();
        let read: Vec<DataType> = fields.iter().map(|f| f.data_type().clone()).collect();
        assert_eq!(read, types);
    })
    .await;
}

fn all_types_batch() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("b", DataType::Boolean, true),
        Field::new("i2", DataType::Int16, true),
        Field::new("i4", DataType::Int32, true),
        Field::new("i8", DataType::Int64, true),
        Field::new("f4", DataType::Float32, true),
        Field::new("f8", DataType::Float64, true),
        Field::new("num", DataType::Decimal128(38, 4), true),
        Field::new("free", DataType::Decimal128(38, 10), true),
        Field::new("txt", DataType::Utf8, true),
        Field::new("vc", DataType::Utf8, true),
        Field::new("d", DataType::Date32, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new("tstz", utc(), true),
        Field::new("js", DataType::Utf8, true),
        Field::new("jsb", DataType::Utf8, true),
        Field::new("id2", DataType::Utf8, true),
        Field::new("bin", DataType::Binary, true),
    ]));
    let big = 10i128.pow(37) + 12_345;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(vec![1, 2, 3])),
        Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
        Arc::new(Int16Array::from(vec![Some(-32768), Some(32767), None])),
        Arc::new(Int32Array::from(vec![Some(i32::MIN), Some(7), None])),
        Arc::new(Int64Array::from(vec![Some(i64::MAX), Some(-1), None])),
        Arc::new(Float32Array::from(vec![
            Some(1.25),
            Some(f32::INFINITY),
            None,
        ])),
        Arc::new(Float64Array::from(vec![Some(-0.5), Some(1e300), None])),
        Arc::new(
            Decimal128Array::from(vec![Some(123_456_789), Some(-big), None])
                .with_precision_and_scale(38, 4)
                .unwrap(),
        ),
        Arc::new(
            Decimal128Array::from(vec![Some(1), Some(-123_000_000_000), None])
                .with_precision_and_scale(38, 10)
                .unwrap(),
        ),
        Arc::new(StringArray::from(vec![Some("héllo"), Some(""), None])),
        Arc::new(StringArray::from(vec![
            Some("with \"quotes\""),
            Some("tab\tnewline\n"),
            None,
        ])),
        Arc::new(Date32Array::from(vec![
            Some(days("2024-02-29")),
            Some(days("1901-01-01")),
            None,
        ])),
        Arc::new(TimestampMicrosecondArray::from(vec![
            Some(micros("2024-02-29T12:34:56.789012Z")),
            Some(micros("1969-07-20T20:17:40Z")),
            None,
        ])),
        Arc::new(
            TimestampMicrosecondArray::from(vec![
                Some(micros("2000-01-01T00:00:00Z")),
                Some(-1),
                None,
            ])
            .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from(vec![Some("{\"a\":1}"), Some("[]"), None])),
        Arc::new(StringArray::from(vec![
            Some("{\"a\": 1}"),
            Some("[1, \"x\"]"),
            None,
        ])),
        Arc::new(StringArray::from(vec![
            Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            Some("00000000-0000-0000-0000-000000000000"),
            None,
        ])),
        Arc::new(BinaryArray::from(vec![
            Some(&[0u8, 1, 255][..]),
            Some(&[][..]),
            None,
        ])),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

const ALL_TYPES_TABLE: &str = "(id int4 NOT NULL, b bool, i2 int2, i4 int4, i8 int8, f4 float4, \
    f8 float8, num numeric(38,4), free numeric, txt text, vc varchar(30), d date, ts timestamp, \
    tstz timestamptz, js json, jsb jsonb, id2 uuid, bin bytea)";

#[tokio::test]
async fn copy_in_round_trips_every_type() {
    with_schema(|schema| async move {
        let client = client().await;
        client
            .batch_execute(&format!(
                "CREATE TABLE {schema}.all_types {ALL_TYPES_TABLE}"
            ))
            .await
            .unwrap();
        let batch = all_types_batch();
        let columns: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        // Split into two batches to cover more than one incoming batch.
        let input = vec![batch.slice(0, 2), batch.slice(2, 1)];
        let written = postgres::copy_in(&client, &schema, "all_types", &columns, stream_of(input))
            .await
            .unwrap();
        assert_eq!(written, 3);

        let (_, batches) = extract_all(
            &format!("SELECT * FROM {schema}.all_types ORDER BY id"),
            1000,
        )
        .await;
        let read = one_batch(batches);
        assert_eq!(read.num_columns(), batch.num_columns());
        for (i, field) in batch.schema().fields().iter().enumerate() {
            assert_eq!(
                read.column(i).as_ref(),
                batch.column(i).as_ref(),
                "column {}",
                field.name()
            );
        }
        // What the server itself sees, for the types whose text form matters.
        let row = client
            .query_one(
                &format!(
                    "SELECT num::text, free::text, id2::text, jsb->>'a', tstz::text \
                     FROM {schema}.all_types WHERE id = 1"
                ),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "12345.6789");
        assert_eq!(row.get::<_, String>(1), "0.0000000001");
        assert_eq!(
            row.get::<_, String>(2),
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
        );
        assert_eq!(row.get::<_, String>(3), "1");
        let at = client
            .query_one(
                &format!(
                    "SELECT extract(epoch FROM tstz)::float8 FROM {schema}.all_types WHERE id = 1"
                ),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(at.get::<_, f64>(0), 946_684_800.0);
    })
    .await;
}

#[tokio::test]
async fn copy_in_casts_to_the_column_type() {
    with_schema(|schema| async move {
        let client = client().await;
        client
            .batch_execute(&format!(
                "CREATE TABLE {schema}.t (n int8, amount numeric(10,2), at timestamptz, d date)"
            ))
            .await
            .unwrap();
        let batch = RecordBatch::try_from_iter(vec![
            (
                "n",
                Arc::new(Int32Array::from(vec![Some(1), None, Some(i32::MAX)])) as ArrayRef,
            ),
            (
                "amount",
                Arc::new(Int16Array::from(vec![Some(5), Some(-3), None])) as ArrayRef,
            ),
            (
                "at",
                Arc::new(
                    arrow::array::TimestampMillisecondArray::from(vec![Some(1_500), None, None])
                        .with_timezone("+02:00"),
                ) as ArrayRef,
            ),
            (
                "d",
                Arc::new(StringArray::from(vec![Some("2024-01-31"), None, None])) as ArrayRef,
            ),
        ])
        .unwrap();
        let columns = ["n", "amount", "at", "d"].map(String::from);
        let written = postgres::copy_in(&client, &schema, "t", &columns, stream_of(vec![batch]))
            .await
            .unwrap();
        assert_eq!(written, 3);
        let (schema_read, batches) = extract_all(
            &format!("SELECT * FROM {schema}.t ORDER BY n NULLS LAST"),
            10,
        )
        .await;
        assert_eq!(schema_read.field(0).data_type(), &DataType::Int64);
        let read = one_batch(batches);
        let n = read.column(0).as_primitive::<Int64Type>();
        assert_eq!(n.value(0), 1);
        assert_eq!(n.value(1), i32::MAX as i64);
        assert!(n.is_null(2));
        let amount = read.column(1).as_primitive::<Decimal128Type>();
        assert_eq!(amount.value(0), 500);
        assert_eq!(amount.value(2), -300);
        let at = read
            .column(2)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(at.value(0), 1_500_000);
        let d = read
            .column(3)
            .as_any()
            .downcast_ref::<Date32Array>()
            .unwrap();
        assert_eq!(d.value(0), days("2024-01-31"));
    })
    .await;
}

#[tokio::test]
async fn copy_in_reports_the_value_that_cannot_be_cast() {
    with_schema(|schema| async move {
        let client = client().await;
        client
            .batch_execute(&format!("CREATE TABLE {schema}.t (n int8, id uuid)"))
            .await
            .unwrap();
        let first = RecordBatch::try_from_iter(vec![
            ("n", Arc::new(StringArray::from(vec!["1", "2"])) as ArrayRef),
            (
                "id",
                Arc::new(StringArray::from(vec![None::<&str>, None])) as ArrayRef,
            ),
        ])
        .unwrap();
        let second = RecordBatch::try_from_iter(vec![
            (
                "n",
                Arc::new(StringArray::from(vec!["3", "four"])) as ArrayRef,
            ),
            (
                "id",
                Arc::new(StringArray::from(vec![None::<&str>, None])) as ArrayRef,
            ),
        ])
        .unwrap();
        let columns = ["n", "id"].map(String::from);
        let err = postgres::copy_in(
            &client,
            &schema,
            "t",
            &columns,
            stream_of(vec![first, second]),
        )
        .await
        .unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, IoError::Invalid(_)), "{message}");
        assert!(message.contains("`n`"), "{message}");
        assert!(message.contains("row 4"), "{message}");
        assert!(message.contains("four"), "{message}");

        let bad_uuid = RecordBatch::try_from_iter(vec![
            ("n", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
            (
                "id",
                Arc::new(StringArray::from(vec![
                    "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                    "nope",
                ])) as ArrayRef,
            ),
        ])
        .unwrap();
        let err = postgres::copy_in(&client, &schema, "t", &columns, stream_of(vec![bad_uuid]))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`id`") && err.contains("row 2") && err.contains("nope"),
            "{err}"
        );

        // Aborted loads leave nothing behind.
        let count: i64 = client
            .query_one(&format!("SELECT count(*) FROM {schema}.t"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(count, 0);

        // A server-side rejection comes back with the server's words.
        let one_column = RecordBatch::try_from_iter(vec![(
            "n",
            Arc::new(Int64Array::from(vec![1])) as ArrayRef,
        )])
        .unwrap();
        let err = postgres::copy_in(
            &client,
            &schema,
            "t",
            &["nope".to_string()],
            stream_of(vec![one_column]),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("nope") && err.contains("does not exist"),
            "{err}"
        );
    })
    .await;
}

#[tokio::test]
async fn copy_in_reports_server_rejections() {
    with_schema(|schema| async move {
        let client = client().await;
        client
            .batch_execute(&format!(
                "CREATE TABLE {schema}.t (id int4 NOT NULL, doc jsonb)"
            ))
            .await
            .unwrap();
        let batch = RecordBatch::try_from_iter(vec![
            ("id", Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef),
            (
                "doc",
                Arc::new(StringArray::from(vec!["{}", "{not json"])) as ArrayRef,
            ),
        ])
        .unwrap();
        let columns = ["id", "doc"].map(String::from);
        let err = postgres::copy_in(&client, &schema, "t", &columns, stream_of(vec![batch]))
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("invalid input syntax for type json"),
            "{message}"
        );
        assert!(message.contains("line 2"), "{message}");
        assert!(!message.contains("db error"), "{message}");
        assert!(!err.retryable(), "{message}");
    })
    .await;
}

#[tokio::test]
async fn copy_in_rolled_back_transaction_leaves_table_unchanged() {
    with_schema(|schema| async move {
        let mut client = client().await;
        client
            .batch_execute(&format!(
                "CREATE TABLE {schema}.t (n int8); INSERT INTO {schema}.t VALUES (42)"
            ))
            .await
            .unwrap();
        let batch = RecordBatch::try_from_iter(vec![(
            "n",
            Arc::new(Int64Array::from((0..10_000).collect::<Vec<i64>>())) as ArrayRef,
        )])
        .unwrap();
        let columns = ["n".to_string()];

        let tx = client.transaction().await.unwrap();
        let written =
            postgres::copy_in(&tx, &schema, "t", &columns, stream_of(vec![batch.clone()]))
                .await
                .unwrap();
        assert_eq!(written, 10_000);
        let inside: i64 = tx
            .query_one(&format!("SELECT count(*) FROM {schema}.t"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(inside, 10_001);
        tx.rollback().await.unwrap();

        let after: Vec<i64> = client
            .query(&format!("SELECT n FROM {schema}.t"), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(after, vec![42]);

        // And a committed one keeps the rows.
        let tx = client.transaction().await.unwrap();
        postgres::copy_in(&tx, &schema, "t", &columns, stream_of(vec![batch]))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let count: i64 = client
            .query_one(&format!("SELECT count(*) FROM {schema}.t"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(count, 10_001);
    })
    .await;
}

#[tokio::test]
async fn copy_in_and_extract_large_volume() {
    with_schema(|schema| async move {
        let client = client().await;
        client
            .batch_execute(&format!(
                "CREATE TABLE {schema}.t (n int8, s text, amount numeric(18,6))"
            ))
            .await
            .unwrap();
        let rows = 200_000i64;
        let batches: Vec<RecordBatch> = (0..4)
            .map(|part| {
                let start = part * rows / 4;
                let n: Vec<i64> = (start..start + rows / 4).collect();
                let s: Vec<String> = n.iter().map(|v| format!("row-{v}")).collect();
                let amount: Vec<i128> = n.iter().map(|v| *v as i128 * 1_000_001).collect();
                RecordBatch::try_from_iter(vec![
                    ("n", Arc::new(Int64Array::from(n)) as ArrayRef),
                    ("s", Arc::new(StringArray::from(s)) as ArrayRef),
                    (
                        "amount",
                        Arc::new(
                            Decimal128Array::from(amount)
                                .with_precision_and_scale(18, 6)
                                .unwrap(),
                        ) as ArrayRef,
                    ),
                ])
                .unwrap()
            })
            .collect();
        let columns = ["n", "s", "amount"].map(String::from);
        let written = postgres::copy_in(&client, &schema, "t", &columns, stream_of(batches))
            .await
            .unwrap();
        assert_eq!(written, rows as u64);

        let (_, stream) = postgres::extract(
            client,
            &format!("SELECT n, s, amount FROM {schema}.t ORDER BY n"),
            postgres_batch_rows(),
        )
        .await
        .unwrap();
        let mut expected = 0i64;
        let mut stream = stream;
        while let Some(batch) = stream.next().await {
            let batch = batch.unwrap();
            assert!(batch.num_rows() <= postgres_batch_rows());
            let n = batch.column(0).as_primitive::<Int64Type>();
            let s = batch.column(1).as_string::<i32>();
            let amount = batch.column(2).as_primitive::<Decimal128Type>();
            for i in 0..batch.num_rows() {
                assert_eq!(n.value(i), expected);
                assert_eq!(s.value(i), format!("row-{expected}"));
                assert_eq!(amount.value(i), expected as i128 * 1_000_001);
                expected += 1;
            }
        }
        assert_eq!(expected, rows);
    })
    .await;
}

fn postgres_batch_rows() -> usize {
    sluice_io::BATCH_ROWS
}
