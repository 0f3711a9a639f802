//! Opening connections to PostgreSQL and MySQL/MariaDB the way their own clients do: the TLS
//! parameters of libpq (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`) and of MySQL's clients
//! (`ssl-mode`, `ssl-ca`, `ssl-cert`, `ssl-key`) over rustls, and connection errors that say
//! what to change — never with the password. Every crate that connects to either goes through
//! here.

pub mod mysql;
pub mod postgres;
pub mod tls;

pub use mysql::MySqlTarget;
pub use postgres::{PgConnection, PgTarget};

/// `base?query` with every parameter `take` claims (given decoded key and value) removed.
fn strip_query_params(
    uri: &str,
    mut take: impl FnMut(&str, &str) -> Result<bool, ConnectError>,
) -> Result<String, ConnectError> {
    let Some((base, query)) = uri.split_once('?') else {
        return Ok(uri.to_string());
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !take(&decode(key), &decode(value))? {
            kept.push(pair);
        }
    }
    Ok(if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    })
}

/// Why a connection could not be opened, in words a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URI is malformed or asks for something contradictory.
    #[error("{0}")]
    Invalid(String),
    /// Certificates or keys could not be read or used.
    #[error("{0}")]
    Tls(String),
    /// The server could not be reached or refused the connection.
    #[error("{0}")]
    Connect(String),
}

impl ConnectError {
    /// The same error with `redactor`'s secrets masked.
    pub fn redacted(self, redactor: &sluice_core::secrets::Redactor) -> ConnectError {
        match self {
            ConnectError::Invalid(m) => ConnectError::Invalid(redactor.redact(&m)),
            ConnectError::Tls(m) => ConnectError::Tls(redactor.redact(&m)),
            ConnectError::Connect(m) => ConnectError::Connect(redactor.redact(&m)),
        }
    }
}
