//! Errors of sources and sinks, written for the person who reads them: what failed, where, and
//! whether trying again can help.

#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// A server or store failed or could not be reached; a retry may succeed.
    #[error("{system}: {message}")]
    Remote {
        system: &'static str,
        message: String,
    },
    /// The data or the configuration is wrong; retrying cannot help.
    #[error("{0}")]
    Invalid(String),
    #[error("Arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("storage: {0}")]
    Storage(#[from] object_store::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl IoError {
    pub fn remote(system: &'static str, message: impl Into<String>) -> IoError {
        IoError::Remote {
            system,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> IoError {
        IoError::Invalid(message.into())
    }

    /// A connection that could not be opened: a server that cannot be reached or refuses is
    /// worth another try, a URI or certificate that is wrong is not.
    pub fn from_connect(system: &'static str, e: sluice_connect::ConnectError) -> IoError {
        match e {
            sluice_connect::ConnectError::Connect(message) => IoError::remote(system, message),
            other => IoError::invalid(format!("{system}: {other}")),
        }
    }

    /// Whether another try can succeed (a network blip) or not (a type the target cannot hold).
    pub fn retryable(&self) -> bool {
        !matches!(self, IoError::Invalid(_) | IoError::Arrow(_))
    }

    /// The same error with `redactor`'s secrets masked in its message: drivers and servers
    /// quote what they were given, passwords included.
    pub fn redacted(self, redactor: &sluice_core::Redactor) -> IoError {
        match self {
            IoError::Remote { system, message } => IoError::Remote {
                system,
                message: redactor.redact(&message),
            },
            IoError::Invalid(message) => IoError::Invalid(redactor.redact(&message)),
            other => other,
        }
    }
}
