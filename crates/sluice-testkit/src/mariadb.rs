//! MariaDB databases of a test's own, on the server at 127.0.0.1:3306 (user `root`, empty
//! password), dropped when the value is dropped — also when the test panics.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

/// The server, without a database.
pub const SERVER: &str = "mysql://root@127.0.0.1:3306";
/// The database every test may use.
pub const TEST_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// A database of the test's own.
pub struct Database {
    pub name: String,
    pub url: String,
}

impl Database {
    /// A new, empty database named `prefix_…`.
    pub fn create(prefix: &str) -> Database {
        let name = crate::unique_name(prefix);
        execute(
            TEST_URL,
            &format!("DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}"),
        );
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
        let (url, sql) = (self.url.clone(), sql.to_string());
        crate::block_on(move || async move {
            let mut conn = Conn::from_url(url.as_str())
                .await
                .unwrap_or_else(|e| panic!("MariaDB at 127.0.0.1:3306 ({url}): {e}"));
            let rows: Vec<mysql_async::Row> = conn
                .query(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            let _ = conn.disconnect().await;
            rows.into_iter()
                .map(|row| match row.as_ref(0) {
                    None | Some(mysql_async::Value::NULL) => "NULL".to_string(),
                    Some(mysql_async::Value::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
                    Some(v) => v.as_sql(true).trim_matches('\'').to_string(),
                })
                .collect()
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // Not a panic while the test unwinds: that would abort and hide the test's message.
        let sql = format!("DROP DATABASE IF EXISTS {}", self.name);
        let shown = sql.clone();
        if std::thread::spawn(move || execute(TEST_URL, &sql))
            .join()
            .is_err()
        {
            eprintln!("sluice-testkit: cleaning up failed: {shown}");
        }
    }
}

/// Runs statements (a session of their own) in the database at `url`.
pub fn execute(url: &str, sql: &str) {
    let (url, sql) = (url.to_string(), sql.to_string());
    crate::block_on(move || async move {
        let mut conn = Conn::from_url(url.as_str())
            .await
            .unwrap_or_else(|e| panic!("MariaDB at 127.0.0.1:3306 ({url}): {e}"));
        conn.query_drop(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        conn.disconnect().await.unwrap();
    });
}
