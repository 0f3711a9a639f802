//! `sluice_io::mysql` against the MariaDB at 127.0.0.1:3306 (user root, no password).
//!
//! Each test works in a database of its own, so the tests can run in parallel.

use std::time::{Duration, Instant};

use arrow::array::{
    Array, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array,
    Float64Array, Int8Array, Int16Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use futures::{StreamExt, TryStreamExt};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use sluice_io::IoError;
use sluice_io::mysql::extract;
use sluice_testkit::mariadb;

/// A database of the test's own (dropped with it) and a session in it.
struct TestDb {
    db: mariadb::Database,
    conn: Conn,
}

impl TestDb {
    async fn new() -> TestDb {
        let db = mariadb::Database::create("sluice_mysql");
        let conn = Conn::new(Opts::from_url(&db.url).unwrap()).await.unwrap();
        TestDb { db, conn }
    }

    fn uri(&self) -> String {
        self.db.url.clone()
    }

    async fn exec(&mut self, sql: &str) {
        self.conn.query_drop(sql).await.unwrap();
    }

    async fn extract(
        &self,
        query: &str,
        batch_rows: usize,
    ) -> Result<(SchemaRef, Vec<RecordBatch>), IoError> {
        let (schema, stream) = extract(&self.uri(), query, batch_rows).await?;
        let batches: Vec<RecordBatch> = stream.try_collect().await?;
        for batch in &batches {
            assert_eq!(
                batch.schema(),
                schema,
                "every batch has the announced schema"
            );
        }
        Ok((schema, batches))
    }

    /// Extracts into one batch, for tests that look at values.
    async fn extract_one(&self, query: &str) -> (SchemaRef, RecordBatch) {
        let (schema, batches) = self.extract(query, 1000).await.unwrap();
        assert_eq!(batches.len(), 1, "{query}");
        (schema, batches.into_iter().next().unwrap())
    }

    /// Ends the session; the database goes with `db`.
    async fn drop(self) {
        self.conn.disconnect().await.unwrap();
    }
}

async fn connect() -> Conn {
    Conn::new(Opts::from_url(mariadb::TEST_URL).unwrap())
        .await
        .unwrap()
}

fn types(schema: &SchemaRef) -> Vec<(String, DataType)> {
    schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect()
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> &'a T {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| {
            panic!(
                "column {name} has type {:?}",
                batch.column_by_name(name).unwrap().data_type()
            )
        })
}

fn invalid_message(result: Result<impl std::fmt::Debug, IoError>) -> String {
    match result {
        Err(IoError::Invalid(message)) => message,
        other => panic!("expected IoError::Invalid, got {other:?}"),
    }
}

fn remote_message(result: Result<impl std::fmt::Debug, IoError>) -> String {
    match result {
        Err(IoError::Remote { system, message }) => {
            assert_eq!(system, "MySQL");
            message
        }
        other => panic!("expected IoError::Remote, got {other:?}"),
    }
}

/// A column of every MariaDB type, its extremes in row 1 and 2, NULL in row 3.
const EVERY_TYPE_TABLE: &str = "CREATE TABLE t (
            id INT PRIMARY KEY,
            flag TINYINT(1), tiny TINYINT, tiny_u TINYINT UNSIGNED,
            small SMALLINT, small_u SMALLINT UNSIGNED,
            medium MEDIUMINT, medium_u MEDIUMINT UNSIGNED,
            regular INT, regular_u INT UNSIGNED,
            big BIGINT, big_u BIGINT UNSIGNED,
            f FLOAT, d DOUBLE, amount DECIMAL(12,4),
            vc VARCHAR(20), ch CHAR(5), tx TEXT, en ENUM('small','large'), st SET('x','y'),
            js JSON,
            vb VARBINARY(10), bn BINARY(3), bl BLOB,
            day DATE, moment DATETIME(6), tm TIME, tm3 TIME(3), yr YEAR, bits BIT(10)
        )";

const EVERY_TYPE_ROWS: &str = "INSERT INTO t VALUES
        (1, 1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
         -9223372036854775808, 18446744073709551615,
         1.2345679, 1.2345678901234567, -12345678.9012,
         'héllo ☃', 'ab', 'long text', 'large', 'x,y', '{\"a\": [1, 2]}',
         x'00ff10', 'abc', x'deadbeef',
         '2024-02-29', '2024-02-29 23:59:59.123456', '-838:59:59', '12:34:56.789', 2024,
         b'1000000001'),
        (2, 0, 127, 0, 32767, 0, 8388607, 0, 2147483647, 0,
         9223372036854775807, 0,
         -0.5, -1e300, 0.0001,
         '', 'abcde', '', 'small', '', '[]',
         x'', x'000000', x'',
         '1000-01-01', '9999-12-31 23:59:59.999999', '00:00:00', '838:59:59.000', 1901,
         b'0'),
        (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
         NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)";

/// The Arrow type each column of [`EVERY_TYPE_TABLE`] is read as.
fn every_type_expected() -> Vec<(String, DataType)> {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
    let expected = [
        ("id", DataType::Int32),
        ("flag", DataType::Boolean),
        ("tiny", DataType::Int8),
        ("tiny_u", DataType::Int16),
        ("small", DataType::Int16),
        ("small_u", DataType::Int32),
        ("medium", DataType::Int32),
        ("medium_u", DataType::Int32),
        ("regular", DataType::Int32),
        ("regular_u", DataType::Int64),
        ("big", DataType::Int64),
        ("big_u", DataType::Decimal128(20, 0)),
        ("f", DataType::Float32),
        ("d", DataType::Float64),
        ("amount", DataType::Decimal128(12, 4)),
        ("vc", DataType::Utf8),
        ("ch", DataType::Utf8),
        ("tx", DataType::Utf8),
        ("en", DataType::Utf8),
        ("st", DataType::Utf8),
        ("js", DataType::Utf8),
        ("vb", DataType::Binary),
        ("bn", DataType::Binary),
        ("bl", DataType::Binary),
        ("day", DataType::Date32),
        ("moment", ts),
        ("tm", DataType::Utf8),
        ("tm3", DataType::Utf8),
        ("yr", DataType::Int16),
        ("bits", DataType::Int64),
    ];
    expected
        .into_iter()
        .map(|(n, t)| (n.to_owned(), t))
        .collect()
}

#[tokio::test]
async fn maps_every_type_with_extremes_and_nulls() {
    let mut db = TestDb::new().await;
    db.exec(EVERY_TYPE_TABLE).await;
    db.exec(EVERY_TYPE_ROWS).await;

    let (schema, batch) = db.extract_one("SELECT * FROM t ORDER BY id").await;
    assert_eq!(types(&schema), every_type_expected());
    assert!(
        !schema.field_with_name("id").unwrap().is_nullable(),
        "a primary key is NOT NULL"
    );
    assert_eq!(batch.num_rows(), 3);

    every_type_integers(&batch);
    every_type_numbers(&batch);
    every_type_texts(&batch);
    every_type_binaries(&batch);
    every_type_times(&batch);
    db.drop().await;
}

/// An integer column's values, whatever its integer type.
fn ints(batch: &RecordBatch, name: &str) -> Vec<Option<i64>> {
    let array = batch.column_by_name(name).unwrap();
    let array = arrow::compute::cast(array, &DataType::Int64).unwrap();
    array
        .as_primitive::<arrow::datatypes::Int64Type>()
        .iter()
        .collect()
}

/// Booleans and integers of every width, signed and unsigned, at their extremes.
fn every_type_integers(batch: &RecordBatch) {
    let flag = column::<BooleanArray>(batch, "flag");
    assert_eq!(
        flag.iter().collect::<Vec<_>>(),
        [Some(true), Some(false), None]
    );
    assert_eq!(
        column::<Int8Array>(batch, "tiny").values()[..2],
        [-128, 127]
    );
    assert_eq!(ints(batch, "tiny_u"), [Some(255), Some(0), None]);
    assert_eq!(
        column::<Int16Array>(batch, "small").values()[..2],
        [-32768, 32767]
    );
    assert_eq!(ints(batch, "small_u"), [Some(65535), Some(0), None]);
    assert_eq!(
        column::<Int32Array>(batch, "medium").values()[..2],
        [-8388608, 8388607]
    );
    assert_eq!(ints(batch, "medium_u"), [Some(16777215), Some(0), None]);
    assert_eq!(
        column::<Int32Array>(batch, "regular").values()[..2],
        [i32::MIN, i32::MAX]
    );
    assert_eq!(ints(batch, "regular_u"), [Some(4294967295), Some(0), None]);
    assert_eq!(
        column::<Int64Array>(batch, "big")
            .iter()
            .collect::<Vec<_>>(),
        [Some(i64::MIN), Some(i64::MAX), None]
    );
    assert_eq!(
        column::<Decimal128Array>(batch, "big_u")
            .iter()
            .collect::<Vec<_>>(),
        [Some(i128::from(u64::MAX)), Some(0), None]
    );
}

/// Floating point numbers bit for bit, and decimals exactly.
fn every_type_numbers(batch: &RecordBatch) {
    // Bit for bit: the text protocol would have rounded FLOAT to six digits.
    assert_eq!(
        column::<Float32Array>(batch, "f")
            .iter()
            .collect::<Vec<_>>(),
        [Some(1.2345679f32), Some(-0.5), None]
    );
    assert_eq!(
        column::<Float64Array>(batch, "d")
            .iter()
            .collect::<Vec<_>>(),
        [Some(1.2345678901234567), Some(-1e300), None]
    );
    assert_eq!(
        column::<Decimal128Array>(batch, "amount")
            .iter()
            .collect::<Vec<_>>(),
        [Some(-123_456_789_012), Some(1), None]
    );
}

/// Text of every kind, and the times of day MariaDB allows beyond a day, as text.
fn every_type_texts(batch: &RecordBatch) {
    let texts = |name| -> Vec<Option<&str>> { column::<StringArray>(batch, name).iter().collect() };
    assert_eq!(texts("vc"), [Some("héllo ☃"), Some(""), None]);
    assert_eq!(texts("ch"), [Some("ab"), Some("abcde"), None]);
    assert_eq!(texts("tx"), [Some("long text"), Some(""), None]);
    assert_eq!(texts("en"), [Some("large"), Some("small"), None]);
    assert_eq!(texts("st"), [Some("x,y"), Some(""), None]);
    assert_eq!(texts("js"), [Some("{\"a\": [1, 2]}"), Some("[]"), None]);
    assert_eq!(texts("tm"), [Some("-838:59:59"), Some("00:00:00"), None]);
    assert_eq!(
        texts("tm3"),
        [Some("12:34:56.789"), Some("838:59:59.000"), None]
    );
}

fn every_type_binaries(batch: &RecordBatch) {
    let binaries =
        |name| -> Vec<Option<&[u8]>> { column::<BinaryArray>(batch, name).iter().collect() };
    assert_eq!(
        binaries("vb"),
        [Some(&[0x00, 0xff, 0x10][..]), Some(&[][..]), None]
    );
    assert_eq!(
        binaries("bn"),
        [Some(&b"abc"[..]), Some(&[0, 0, 0][..]), None]
    );
    assert_eq!(
        binaries("bl"),
        [Some(&[0xde, 0xad, 0xbe, 0xef][..]), Some(&[][..]), None]
    );
}

/// Dates and instants at the ends of their ranges, years, and bit fields.
fn every_type_times(batch: &RecordBatch) {
    let day = column::<Date32Array>(batch, "day");
    assert_eq!(
        (0..2)
            .map(|i| day.value_as_date(i).unwrap().to_string())
            .collect::<Vec<_>>(),
        ["2024-02-29", "1000-01-01"]
    );
    assert!(day.is_null(2));
    let moment = column::<TimestampMicrosecondArray>(batch, "moment");
    assert_eq!(
        (0..2)
            .map(|i| moment.value_as_datetime(i).unwrap().to_string())
            .collect::<Vec<_>>(),
        ["2024-02-29 23:59:59.123456", "9999-12-31 23:59:59.999999"]
    );
    assert!(moment.is_null(2));
    assert_eq!(
        column::<Int16Array>(batch, "yr").iter().collect::<Vec<_>>(),
        [Some(2024), Some(1901), None]
    );
    assert_eq!(
        column::<Int64Array>(batch, "bits")
            .iter()
            .collect::<Vec<_>>(),
        [Some(513), Some(0), None]
    );
}

#[tokio::test]
async fn decimals_are_exact_and_too_many_digits_are_an_error() {
    let mut db = TestDb::new().await;
    db.exec(
        "CREATE TABLE d (
            id INT PRIMARY KEY,
            small DECIMAL(12,4), fraction DECIMAL(4,4), positive DECIMAL(10,2) UNSIGNED,
            huge DECIMAL(65,0), wide DECIMAL(65,30)
        )",
    )
    .await;
    db.exec(
        "INSERT INTO d VALUES
        (1, -12345678.9012, -0.9999, 99999999.99, 12345678901234567890123456789012345678, -12345678.000000000000000000000000000001),
        (2, 0.0001, 0.0001, 0, -99999999999999999999999999999999999999, 0.000000000000000000000000000001),
        (3, 0, 0, 0.01, 0, 0),
        (4, -0.0001, NULL, NULL, NULL, NULL),
        (5, 99999999.9999, 0.1234, 12.5, 1, 1.5)",
    )
    .await;

    let (schema, batch) = db
        .extract_one("SELECT small, fraction, positive, huge, wide FROM d ORDER BY id")
        .await;
    assert_eq!(
        types(&schema),
        [
            ("small".to_owned(), DataType::Decimal128(12, 4)),
            ("fraction".to_owned(), DataType::Decimal128(4, 4)),
            ("positive".to_owned(), DataType::Decimal128(10, 2)),
            ("huge".to_owned(), DataType::Decimal128(38, 0)),
            ("wide".to_owned(), DataType::Decimal128(38, 30)),
        ]
    );
    let values = |name| -> Vec<Option<String>> {
        let array = column::<Decimal128Array>(&batch, name);
        (0..array.len())
            .map(|i| array.is_valid(i).then(|| array.value_as_string(i)))
            .collect()
    };
    let some = |v: &[&str]| -> Vec<Option<String>> {
        v.iter()
            .map(|s| (!s.is_empty()).then(|| s.to_string()))
            .collect()
    };
    assert_eq!(
        values("small"),
        some(&[
            "-12345678.9012",
            "0.0001",
            "0.0000",
            "-0.0001",
            "99999999.9999"
        ])
    );
    assert_eq!(
        values("fraction"),
        some(&["-0.9999", "0.0001", "0.0000", "", "0.1234"])
    );
    assert_eq!(
        values("positive"),
        some(&["99999999.99", "0.00", "0.01", "", "12.50"])
    );
    assert_eq!(
        values("huge"),
        some(&[
            "12345678901234567890123456789012345678",
            "-99999999999999999999999999999999999999",
            "0",
            "",
            "1"
        ])
    );
    assert_eq!(
        values("wide"),
        some(&[
            "-12345678.000000000000000000000000000001",
            "0.000000000000000000000000000001",
            "0.000000000000000000000000000000",
            "",
            "1.500000000000000000000000000000"
        ])
    );

    db.exec(&format!(
        "INSERT INTO d (id, huge) VALUES (6, {})",
        "9".repeat(65)
    ))
    .await;
    let message = invalid_message(db.extract("SELECT id, huge FROM d ORDER BY id", 2).await);
    assert!(message.contains("`huge`"), "{message}");
    assert!(message.contains("row 6"), "{message}");
    assert!(message.contains(&"9".repeat(65)), "{message}");
    assert!(message.contains("CAST(col AS CHAR)"), "{message}");
    db.drop().await;
}

#[tokio::test]
async fn tinyint_one_is_boolean_and_other_values_are_an_error() {
    let mut db = TestDb::new().await;
    db.exec("CREATE TABLE b (id INT, yes BOOLEAN, narrow TINYINT(2))")
        .await;
    db.exec("INSERT INTO b VALUES (1, TRUE, 1), (2, FALSE, 2), (3, NULL, NULL)")
        .await;
    let (schema, batch) = db
        .extract_one("SELECT yes, narrow FROM b ORDER BY id")
        .await;
    assert_eq!(
        types(&schema),
        [
            ("yes".to_owned(), DataType::Boolean),
            ("narrow".to_owned(), DataType::Int8)
        ]
    );
    assert_eq!(
        column::<BooleanArray>(&batch, "yes")
            .iter()
            .collect::<Vec<_>>(),
        [Some(true), Some(false), None]
    );

    db.exec("INSERT INTO b VALUES (4, 2, 0)").await;
    let message = invalid_message(db.extract("SELECT yes FROM b ORDER BY id", 1000).await);
    assert!(message.contains("`yes`"), "{message}");
    assert!(message.contains("row 4"), "{message}");
    db.drop().await;
}

/// Changes the server's global time zone for a moment, so no other test here reads TIMESTAMPs.
#[tokio::test]
async fn timestamp_is_utc_whatever_the_server_time_zone_and_datetime_is_unchanged() {
    let mut db = TestDb::new().await;
    db.exec("CREATE TABLE ts (id INT, instant TIMESTAMP(6) NULL, wall DATETIME)")
        .await;
    // 12:00 at +05:00 is 07:00 UTC.
    db.exec("SET time_zone = '+05:00'").await;
    db.exec(
        "INSERT INTO ts VALUES
            (1, '2024-03-01 12:00:00.250000', '2024-03-01 12:00:00'),
            (2, NULL, NULL)",
    )
    .await;

    let global: String = db
        .conn
        .query_first("SELECT @@GLOBAL.time_zone")
        .await
        .unwrap()
        .unwrap();
    // New sessions, such as the one extract opens, start in the global zone.
    db.exec("SET GLOBAL time_zone = '+05:00'").await;
    let result = db
        .extract("SELECT instant, wall FROM ts ORDER BY id", 1000)
        .await;
    db.exec(&format!("SET GLOBAL time_zone = '{global}'")).await;

    let (schema, batches) = result.unwrap();
    assert_eq!(
        types(&schema),
        [
            (
                "instant".to_owned(),
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            ),
            (
                "wall".to_owned(),
                DataType::Timestamp(TimeUnit::Microsecond, None)
            ),
        ]
    );
    let batch = &batches[0];
    let instant = column::<TimestampMicrosecondArray>(batch, "instant");
    assert_eq!(
        instant.value_as_datetime(0).unwrap().to_string(),
        "2024-03-01 07:00:00.250"
    );
    assert!(instant.is_null(1));
    let wall = column::<TimestampMicrosecondArray>(batch, "wall");
    assert_eq!(
        wall.value_as_datetime(0).unwrap().to_string(),
        "2024-03-01 12:00:00"
    );
    assert!(wall.is_null(1));
    db.drop().await;
}

#[tokio::test]
async fn zero_dates_are_null_and_zero_months_are_an_error() {
    let mut db = TestDb::new().await;
    db.exec("SET sql_mode = ''").await;
    db.exec("CREATE TABLE z (id INT, day DATE NOT NULL, moment DATETIME NOT NULL)")
        .await;
    db.exec(
        "INSERT INTO z VALUES
            (1, '0000-00-00', '0000-00-00 00:00:00'),
            (2, '2024-01-02', '2024-01-02 03:04:05')",
    )
    .await;
    let (schema, batch) = db
        .extract_one("SELECT day, moment FROM z ORDER BY id")
        .await;
    assert!(schema.fields().iter().all(|f| f.is_nullable()));
    let day = column::<Date32Array>(&batch, "day");
    assert!(day.is_null(0));
    assert_eq!(day.value_as_date(1).unwrap().to_string(), "2024-01-02");
    let moment = column::<TimestampMicrosecondArray>(&batch, "moment");
    assert!(moment.is_null(0));
    assert_eq!(
        moment.value_as_datetime(1).unwrap().to_string(),
        "2024-01-02 03:04:05"
    );

    db.exec("INSERT INTO z VALUES (3, '2024-00-00', '2024-01-01')")
        .await;
    let message = invalid_message(db.extract("SELECT id, day FROM z ORDER BY id", 1000).await);
    assert!(message.contains("`day`"), "{message}");
    assert!(message.contains("row 3"), "{message}");
    assert!(message.contains("2024-00-00"), "{message}");
    db.drop().await;
}

#[tokio::test]
async fn empty_result_keeps_its_schema() {
    let mut db = TestDb::new().await;
    db.exec("CREATE TABLE e (id BIGINT NOT NULL, name VARCHAR(10), price DECIMAL(8,2))")
        .await;
    let (schema, batches) = db
        .extract("SELECT id, name, price FROM e WHERE id > 0", 1000)
        .await
        .unwrap();
    assert!(batches.is_empty());
    assert_eq!(
        types(&schema),
        [
            ("id".to_owned(), DataType::Int64),
            ("name".to_owned(), DataType::Utf8),
            ("price".to_owned(), DataType::Decimal128(8, 2)),
        ]
    );
    assert!(!schema.field(0).is_nullable());
    assert!(schema.field(1).is_nullable());
    db.drop().await;
}

#[tokio::test]
async fn small_batch_rows_give_several_batches_in_order() {
    let db = TestDb::new().await;
    let (schema, batches) = db
        .extract(
            "SELECT CAST(seq AS SIGNED) AS n, CONCAT('row ', seq) AS label FROM seq_1_to_10 ORDER BY seq",
            3,
        )
        .await
        .unwrap();
    assert_eq!(schema.field(0).data_type(), &DataType::Int64);
    assert_eq!(
        batches
            .iter()
            .map(RecordBatch::num_rows)
            .collect::<Vec<_>>(),
        [3, 3, 3, 1]
    );
    let numbers: Vec<i64> = batches
        .iter()
        .flat_map(|b| column::<Int64Array>(b, "n").values().to_vec())
        .collect();
    assert_eq!(numbers, (1..=10).collect::<Vec<_>>());
    let last = column::<StringArray>(&batches[3], "label");
    assert_eq!(last.value(0), "row 10");
    db.drop().await;
}

#[tokio::test]
async fn syntax_error_carries_the_server_message() {
    let db = TestDb::new().await;
    let message = remote_message(db.extract("SELEC 1 FROM nowhere", 1000).await);
    assert!(message.contains("1064"), "{message}");
    assert!(
        message.contains("You have an error in your SQL syntax"),
        "{message}"
    );
    assert!(message.contains("SELEC 1"), "{message}");
    db.drop().await;
}

#[tokio::test]
async fn unsupported_types_name_the_column_and_suggest_a_cast() {
    let db = TestDb::new().await;
    let message = invalid_message(
        db.extract(
            "SELECT 1 AS fine, ST_GeomFromText('POINT(1 1)') AS shape",
            1000,
        )
        .await,
    );
    assert!(message.contains("`shape`"), "{message}");
    assert!(message.contains("GEOMETRY"), "{message}");
    assert!(message.contains("CAST(col AS CHAR)"), "{message}");

    let message = invalid_message(db.extract("SELECT NULL AS nothing", 1000).await);
    assert!(message.contains("`nothing`"), "{message}");

    let message = invalid_message(db.extract("DO 1", 1000).await);
    assert!(message.contains("no result set"), "{message}");
    db.drop().await;
}

#[tokio::test]
async fn connection_errors_do_not_show_the_password() {
    let refused = "mysql://root:s3cret@127.0.0.1:1/test";
    let message = remote_message(extract(refused, "SELECT 1", 1000).await.map(|_| ()));
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
    assert!(!message.contains(refused), "{message}");

    // root has no password, so this one is refused by the server itself.
    let denied = "mysql://root:s3cret@127.0.0.1:3306/test";
    let message = remote_message(extract(denied, "SELECT 1", 1000).await.map(|_| ()));
    assert!(message.contains("1045"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
}

#[tokio::test]
async fn dropping_the_stream_stops_the_query_on_the_server() {
    let db = TestDb::new().await;
    let marker = db.db.name.clone();
    let query = format!("SELECT seq, '{marker}' AS marker FROM seq_1_to_200000000");
    let (_, mut stream) = extract(&db.uri(), &query, 1000).await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.num_rows(), 1000);

    let mut watcher = connect().await;
    let running = format!(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST
         WHERE INFO LIKE '%{marker}%' AND ID <> CONNECTION_ID()"
    );
    let count: u64 = watcher.query_first(&running).await.unwrap().unwrap();
    assert_eq!(count, 1, "the query runs while the stream is alive");

    drop(stream);
    let start = Instant::now();
    loop {
        let count: u64 = watcher.query_first(&running).await.unwrap().unwrap();
        if count == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "the query still runs after the stream was dropped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watcher.disconnect().await.unwrap();
    db.drop().await;
}
