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
