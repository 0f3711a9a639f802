//! PostgreSQL databases and schemas of a test's own, on the server at 127.0.0.1:5432 (trust
//! auth, user `postgres`, database `test`), dropped when the value is dropped — also when the
//! test panics.

use tokio_postgres::{NoTls, SimpleQueryMessage};

/// The server, without a database.
pub const SERVER: &str = "postgres://postgres@127.0.0.1:5432";
/// The database every test may use, and the one new databases are created from.
pub const TEST_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A database of the test's own.
pub struct Database {
    pub name: String,
    pub url: String,
}

impl Database {
    /// A new, empty database named `prefix_…`.
    pub fn create(prefix: &str) -> Database {
        let name = crate::unique_name(prefix);
        // One statement each: PostgreSQL creates and drops databases outside transactions only.
        execute(
            TEST_URL,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
        execute(TEST_URL, &format!("CREATE DATABASE {name}"));
        Database {
            url: format!("{SERVER}/{name}"),
            name,
        }
    }

    /// Runs statements in this database.
    pub fn execute(&self, sql: &str) {
        execute(&self.url, sql);
    }

    /// The first column of a query's rows, as text (`NULL` for null).
    pub fn column(&self, sql: &str) -> Vec<String> {
        column(&self.url, sql)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // FORCE: connections the code under test left open must not keep the database.
        quietly(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// A schema of the test's own in the `test` database.
pub struct Schema {
    pub name: String,
}

impl Schema {
    /// A new, empty schema named `prefix_…`.
    pub fn create(prefix: &str) -> Schema {
        let name = crate::unique_name(prefix);
        execute(
            TEST_URL,
            &format!("DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"),
        );
        Schema { name }
    }

    /// Runs statements in the `test` database; `{s}` stands for this schema's name.
    pub fn execute(&self, sql: &str) {
        execute(TEST_URL, &sql.replace("{s}", &self.name));
    }

    /// The first column of a query's rows, as text; `{s}` stands for this schema's name.
    pub fn column(&self, sql: &str) -> Vec<String> {
        column(TEST_URL, &sql.replace("{s}", &self.name))
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        quietly(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

/// Runs statements (a session of their own) in the database at `url`.
pub fn execute(url: &str, sql: &str) {
    let (url, sql) = (url.to_string(), sql.to_string());
    crate::block_on(move || async move {
        connect(&url)
            .await
            .batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    });
}

/// The first column of a query's rows in the database at `url`, as text (`NULL` for null).
pub fn column(url: &str, sql: &str) -> Vec<String> {
    let (url, sql) = (url.to_string(), sql.to_string());
    crate::block_on(move || async move {
        connect(&url)
            .await
            .simple_query(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or("NULL").to_string()),
                _ => None,
            })
            .collect()
    })
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at 127.0.0.1:5432 ({url}): {e}"));
    tokio::spawn(connection);
    client
}

/// Cleans up without panicking: a panic in `drop` while the test unwinds would abort the run
/// and hide the test's own message.
fn quietly(sql: &str) {
    let owned = sql.to_string();
    let done = std::thread::spawn(move || execute(TEST_URL, &owned)).join();
    if done.is_err() {
        eprintln!("sluice-testkit: cleaning up failed: {sql}");
    }
}
