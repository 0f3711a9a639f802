//! The helpers clean up after themselves: what a test creates is gone when its value drops,
//! from synchronous tests and from async ones.

use sluice_testkit::{mariadb, pg, unique_name};

fn pg_databases(name: &str) -> Vec<String> {
    pg::column(
        pg::TEST_URL,
        &format!("SELECT datname FROM pg_database WHERE datname = '{name}'"),
    )
}

fn pg_schemas(name: &str) -> Vec<String> {
    pg::column(
        pg::TEST_URL,
        &format!("SELECT nspname FROM pg_namespace WHERE nspname = '{name}'"),
    )
}

#[test]
fn names_differ_within_a_process() {
    assert_ne!(unique_name("t"), unique_name("t"));
}

#[test]
fn a_postgres_database_lives_as_long_as_its_value() {
    let db = pg::Database::create("testkit_db");
    db.execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1), (NULL)");
    assert_eq!(db.column("SELECT x FROM t ORDER BY x"), ["1", "NULL"]);
    let name = db.name.clone();
    assert_eq!(pg_databases(&name), [name.as_str()]);
    drop(db);
    assert!(pg_databases(&name).is_empty());
}

#[tokio::test]
async fn a_postgres_schema_is_dropped_from_an_async_test_too() {
    let schema = pg::Schema::create("testkit_schema");
    schema.execute("CREATE TABLE {s}.t (x int); INSERT INTO {s}.t VALUES (7)");
    assert_eq!(schema.column("SELECT x FROM {s}.t"), ["7"]);
    let name = schema.name.clone();
    drop(schema);
    assert!(pg_schemas(&name).is_empty());
}

#[test]
fn a_schema_is_dropped_when_its_test_panics() {
    let name = std::panic::catch_unwind(|| {
        let schema = pg::Schema::create("testkit_panic");
        std::panic::panic_any(schema.name.clone());
    })
    .unwrap_err()
    .downcast::<String>()
    .unwrap();
    assert!(pg_schemas(&name).is_empty());
}

#[test]
fn a_mariadb_database_lives_as_long_as_its_value() {
    let db = mariadb::Database::create("testkit_db");
    db.execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1)");
    let name = db.name.clone();
    // Fails (panics) when the database does not exist.
    let read = |name: &str| mariadb::execute(mariadb::TEST_URL, &format!("SELECT x FROM {name}.t"));
    read(&name);
    drop(db);
    assert!(
        std::panic::catch_unwind(|| read(&name)).is_err(),
        "{name} still exists"
    );
}
