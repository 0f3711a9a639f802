//! libpq's and MySQL's TLS modes against servers that speak only TLS, started by the test with
//! certificates it made: what connects, what is refused, and the words of each refusal.

use mysql_async::prelude::Queryable;
use sluice_connect::{MySqlTarget, PgTarget};
use sluice_testkit::tls::{TestCa, TlsMariaDb, TlsPostgres};

async fn pg_connects(uri: &str) -> Result<bool, String> {
    let client = PgTarget::parse(uri)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

fn refused(result: Result<bool, String>, uri: &str) -> String {
    match result {
        Ok(_) => panic!("{uri} connected"),
        Err(message) => {
            assert!(
                !message.contains("tls-test-pw"),
                "the password leaked: {message}"
            );
            message
        }
    }
}

#[tokio::test]
async fn postgres_tls_modes_against_a_tls_only_server() {
    let pg = TlsPostgres::start();
    let ca = pg.ca.cert_file.display().to_string();
    let other = TestCa::new(pg.folder(), "other");
    let other_ca = other.cert_file.display().to_string();

    // Encrypted without verification, and the default (prefer) upgrades to TLS.
    for params in ["sslmode=require", "", "sslmode=allow"] {
        let uri = pg.url("localhost", params);
        assert_eq!(pg_connects(&uri).await, Ok(true), "{params}");
    }
    // Verified: the right CA and the name the certificate holds.
    let uri = pg.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    assert_eq!(pg_connects(&uri).await, Ok(true));

    // A CA that did not sign the server's certificate.
    let uri = pg.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={other_ca}"),
    );
    let message = refused(pg_connects(&uri).await, &uri);
    assert!(
        message.contains("certificate verify failed for host localhost")
            && message.contains("set sslrootcert"),
        "{message}"
    );
    // `require` with a root certificate verifies the chain, as libpq does.
    let uri = pg.url(
        "localhost",
        &format!("sslmode=require&sslrootcert={other_ca}"),
    );
    let message = refused(pg_connects(&uri).await, &uri);
    assert!(message.contains("certificate verify failed"), "{message}");

    // A host name the certificate does not list: verify-full refuses, verify-ca accepts.
    let uri = pg.url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let message = refused(pg_connects(&uri).await, &uri);
    assert!(
        message.contains("certificate verify failed for host 127.0.0.1")
            && message.contains("does not name this host"),
        "{message}"
    );
    let uri = pg.url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}"));
    assert_eq!(pg_connects(&uri).await, Ok(true));

    // A plain connection finds no pg_hba.conf entry; the message says what to add.
    let uri = pg.url("localhost", "sslmode=disable");
    let message = refused(pg_connects(&uri).await, &uri);
    assert!(
        message.contains("server requires TLS") && message.contains("add sslmode=require"),
        "{message}"
    );

    // A wrong password: the server's words, the user, never the password.
    let uri = format!(
        "postgres://postgres:not-tls-test-pw@localhost:{}/postgres?sslmode=require",
        pg.port
    );
    let message = refused(pg_connects(&uri).await, &uri);
    assert!(
        message.contains("password authentication failed for user \"postgres\"")
            && !message.contains("not-tls-test-pw"),
        "{message}"
    );

    // A client certificate: `certuser` has no password, only its certificate.
    let uri = format!(
        "postgres://certuser@localhost:{}/postgres?sslmode=verify-full&sslrootcert={ca}\
         &sslcert={}&sslkey={}",
        pg.port,
        pg.client.cert_file.display(),
        pg.client.key_file.display()
    );
    assert_eq!(pg_connects(&uri).await, Ok(true));
    let uri = format!(
        "postgres://certuser@localhost:{}/postgres?sslmode=verify-full&sslrootcert={ca}",
        pg.port
    );
    let message = refused(pg_connects(&uri).await, &uri);
    assert!(message.contains("certuser"), "{message}");

    // A verifying mode needs a root certificate.
    let message = PgTarget::parse(&pg.url("localhost", "sslmode=verify-full"))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    if !std::path::Path::new(&format!("{}/.postgresql/root.crt", env!("HOME"))).exists() {
        assert!(message.contains("add sslrootcert="), "{message}");
    }
}

async fn mysql_cipher(uri: &str) -> Result<String, String> {
    let mut conn = MySqlTarget::parse(uri)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let cipher: Option<(String, String)> = conn
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .await
        .map_err(|e| e.to_string())?;
    let _ = conn.disconnect().await;
    Ok(cipher.map(|(_, c)| c).unwrap_or_default())
}

#[tokio::test]
async fn mariadb_tls_modes_against_a_tls_only_server() {
    let db = TlsMariaDb::start();
    let ca = db.ca.cert_file.display().to_string();
    let other = TestCa::new(
        std::env::temp_dir().as_path(),
        &sluice_testkit::unique_name("other"),
    );
    let other_ca = other.cert_file.display().to_string();

    for params in ["", "ssl-mode=REQUIRED"] {
        let uri = db.url("localhost", params);
        let cipher = mysql_cipher(&uri)
            .await
            .unwrap_or_else(|e| panic!("{params}: {e}"));
        assert!(!cipher.is_empty(), "{params}: not encrypted");
    }
    let uri = db.url(
        "localhost",
        &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"),
    );
    assert!(!mysql_cipher(&uri).await.unwrap().is_empty());
    // ssl-ca alone means VERIFY_CA. (mysql_async 0.37 checks the host name in VERIFY_CA too:
    // its name check is skipped only for an error text rustls 0.23 no longer writes. Stricter,
    // never weaker; see the crate docs.)
    let uri = db.url("localhost", &format!("ssl-ca={ca}"));
    assert!(!mysql_cipher(&uri).await.unwrap().is_empty());

    let uri = db.url(
        "localhost",
        &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={other_ca}"),
    );
    let message = mysql_cipher(&uri).await.unwrap_err();
    assert!(
        message.contains("certificate verify failed for host localhost")
            && message.contains("ssl-ca"),
        "{message}"
    );
    let uri = db.url(
        "127.0.0.1",
        &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"),
    );
    let message = mysql_cipher(&uri).await.unwrap_err();
    assert!(message.contains("does not name this host"), "{message}");

    let uri = db.url("localhost", "ssl-mode=DISABLED");
    let message = mysql_cipher(&uri).await.unwrap_err();
    assert!(
        message.contains("require_secure_transport") && message.contains("ssl-mode=REQUIRED"),
        "{message}"
    );
    assert!(!message.contains("tls-test-pw"), "{message}");
    let _ = std::fs::remove_file(&other.cert_file);
}
