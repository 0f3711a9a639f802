//! `sluice_io::mysql_load` against the MariaDB at 127.0.0.1:3306: every mode, through LOAD
//! DATA LOCAL INFILE and through INSERT, values that end or escape text in either format, and
//! a failed load that leaves the table as it was.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array,
    RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use futures::StreamExt;
use sluice_io::load::LoadMode;
use sluice_io::mysql_load::{Transfer, load_mysql, table_fields};
use sluice_io::schema::{Policy, plan};
use sluice_io::{BatchStream, IoError};
use sluice_testkit::mariadb;

const HOSTILE: &str = "tab\there, newline\nthere, back\\slash, quote' \"dq\", NUL\0, ünï, \\N";

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("day", DataType::Date32, true),
        Field::new("note", DataType::Utf8, true),
        Field::new("amount", DataType::Decimal128(12, 2), true),
        Field::new("ratio", DataType::Float64, true),
        Field::new("ok", DataType::Boolean, true),
        Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new("raw", DataType::Binary, true),
    ]))
}

/// Rows `ids`, all on day 19723 (2024-01-01) unless `day` says otherwise.
fn batch(ids: &[i64], day: i32, note: &str) -> RecordBatch {
    let n = ids.len();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.to_vec())),
        Arc::new(Date32Array::from(vec![day; n])),
        Arc::new(StringArray::from(
            (0..n).map(|i| (i > 0).then_some(note)).collect::<Vec<_>>(),
        )),
        Arc::new(
            Decimal128Array::from(vec![Some(-123_456); n])
                .with_precision_and_scale(12, 2)
                .unwrap(),
        ),
        Arc::new(Float64Array::from(vec![0.1 + 0.2; n])),
        Arc::new(BooleanArray::from(vec![Some(true); n])),
        Arc::new(TimestampMicrosecondArray::from(vec![
            1_704_067_200_123_456;
            n
        ])),
        Arc::new(BinaryArray::from(vec![Some(&b"\x00\xff\t\n"[..]); n])),
    ];
    RecordBatch::try_new(schema(), columns).unwrap()
}

fn stream(batches: Vec<Result<RecordBatch, IoError>>) -> BatchStream {
    futures::stream::iter(batches).boxed()
}

async fn load(
    db: &mariadb::Database,
    mode: LoadMode,
    batches: Vec<Result<RecordBatch, IoError>>,
    transfer: Transfer,
) -> Result<u64, IoError> {
    let (mut conn, _) = sluice_io::mysql::connect(&db.url).await?;
    let existing = table_fields(&mut conn, &db.name, "t").await?;
    let _ = sluice_io::mysql::disconnect(conn).await;
    let plan = plan(existing.as_deref(), &schema(), Policy::AddColumns, "t")?;
    load_mysql(
        &db.url,
        (&db.name, "t"),
        &plan,
        &mode,
        stream(batches),
        transfer,
    )
    .await
}

async fn every_mode(transfer: Transfer) {
    let db = mariadb::Database::create("sluice_myload");
    let rows = load(
        &db,
        LoadMode::Append,
        vec![Ok(batch(&[1, 2, 3], 19723, HOSTILE))],
        transfer,
    )
    .await
    .unwrap();
    assert_eq!(rows, 3);
    assert_eq!(
        db.column("SELECT note FROM t ORDER BY id"),
        vec!["NULL".to_string(), HOSTILE.to_string(), HOSTILE.to_string()]
    );
    assert_eq!(
        db.column(
            "SELECT CONCAT_WS('|', day, amount, ratio, ok, at, HEX(raw)) FROM t WHERE id = 2"
        ),
        vec!["2024-01-01|-1234.56|0.30000000000000004|1|2024-01-01 00:00:00.123456|00FF090A"]
    );
    // The table read back has the types it was created with.
    let (mut conn, _) = sluice_io::mysql::connect(&db.url).await.unwrap();
    let fields = table_fields(&mut conn, &db.name, "t")
        .await
        .unwrap()
        .unwrap();
    let _ = sluice_io::mysql::disconnect(conn).await;
    let types: Vec<String> = fields.iter().map(|f| f.data_type().to_string()).collect();
    assert_eq!(
        types,
        [
            "Int64",
            "Date32",
            "Utf8",
            "Decimal128(12, 2)",
            "Float64",
            "Boolean",
            "Timestamp(µs)",
            "Binary"
        ]
    );

    let partition = LoadMode::ReplacePartition {
        column: "day".into(),
        values: vec!["2024-01-01".into()],
    };
    load(
        &db,
        partition,
        vec![Ok(batch(&[7, 8], 19723, "x"))],
        transfer,
    )
    .await
    .unwrap();
    load(
        &db,
        LoadMode::Append,
        vec![Ok(batch(&[9], 19724, "y"))],
        transfer,
    )
    .await
    .unwrap();
    assert_eq!(db.column("SELECT id FROM t ORDER BY id"), ["7", "8", "9"]);
    load(
        &db,
        LoadMode::Replace,
        vec![Ok(batch(&[4], 19724, "z"))],
        transfer,
    )
    .await
    .unwrap();
    assert_eq!(db.column("SELECT id FROM t ORDER BY id"), ["4"]);

    // A failure in the second batch rolls the first back: the table is as it was.
    let broken = vec![
        Ok(batch(&[5, 6], 19724, "a")),
        Err(IoError::invalid("the source broke")),
    ];
    let e = load(&db, LoadMode::Replace, broken, transfer)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("the source broke"), "{e}");
    assert_eq!(db.column("SELECT id FROM t ORDER BY id"), ["4"]);

    // Merge needs a unique key on the keys; said so, table untouched.
    let merge = LoadMode::Merge {
        keys: vec!["id".into()],
    };
    let e = load(
        &db,
        merge.clone(),
        vec![Ok(batch(&[4], 19724, "m"))],
        transfer,
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("needs a PRIMARY KEY or UNIQUE index on exactly (id)"),
        "{e}"
    );
    db.execute("ALTER TABLE t ADD PRIMARY KEY (id)");
    load(
        &db,
        merge,
        vec![Ok(batch(&[3, 4], 19724, "merged"))],
        transfer,
    )
    .await
    .unwrap();
    assert_eq!(
        db.column("SELECT CONCAT(id, ':', COALESCE(note, 'null')) FROM t ORDER BY id"),
        ["3:null", "4:merged"]
    );
}

#[tokio::test]
async fn every_mode_through_load_data_local_infile() {
    every_mode(Transfer::Best).await;
}

#[tokio::test]
async fn every_mode_through_insert() {
    every_mode(Transfer::Insert).await;
}
