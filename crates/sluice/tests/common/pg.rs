//! A PostgreSQL database of a test's own on the server at 127.0.0.1:5432 (trust auth), dropped
//! when the test ends.

/// The database tests connect through to create their own.
const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub struct Database {
    pub name: String,
    pub url: String,
}

impl Database {
    pub fn create(prefix: &str) -> Database {
        let name = format!("{prefix}_{}", std::process::id());
        admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        admin(&format!("CREATE DATABASE {name}"));
        Database {
            url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
            name,
        }
    }

    /// Runs statements in this database.
    pub fn execute(&self, sql: &str) {
        run(&self.url, sql);
    }

    /// The first column of a query's rows, as text.
    pub fn column(&self, sql: &str) -> Vec<String> {
        let rt = runtime();
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client
                .simple_query(sql)
                .await
                .unwrap()
                .into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        Some(r.get(0).unwrap_or("NULL").to_string())
                    }
                    _ => None,
                })
                .collect()
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        admin(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn admin(sql: &str) {
    run(ADMIN_URL, sql);
}

/// Runs statements in the database at `url` (for a session of its own, on another thread).
pub fn run(url: &str, sql: &str) {
    runtime().block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL at 127.0.0.1:5432");
        tokio::spawn(conn);
        client.batch_execute(sql).await.unwrap();
    });
}
