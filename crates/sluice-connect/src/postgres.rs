//! PostgreSQL connections with libpq's TLS parameters.
//!
//! tokio-postgres parses `sslmode=disable|prefer|require` and never verifies a certificate by
//! itself; libpq's other modes and files are read here and turned into a rustls configuration:
//!
//! | sslmode | encrypted | certificate checked |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow` | if the server insists | no |
//! | `prefer` (default) | if the server can | no |
//! | `require` | always | only with a root certificate (`sslrootcert`, or `~/.postgresql/root.crt`): then as `verify-ca` |
//! | `verify-ca` | always | chain to `sslrootcert` |
//! | `verify-full` | always | chain and host name |
//!
//! `sslrootcert` is a PEM file or `system` (the OS store; as in libpq 16 it makes `verify-full`
//! the default and refuses weaker modes); without it the verifying modes read
//! `~/.postgresql/root.crt`. `sslcert`/`sslkey` present a client certificate. Connections over a
//! Unix socket are never encrypted (as in libpq).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use sluice_core::secrets::Redactor;
use tokio_postgres::config::SslMode as DriverSslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{CancelToken, Client, Config, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::ConnectError;
use crate::tls::{self, Identity, Roots, Trust};

/// The connection half tokio-postgres hands back, to be polled (or spawned) by the caller.
pub type PgConnection =
    tokio_postgres::Connection<Socket, <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream>;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Option<SslMode> {
        Some(match text {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        })
    }
}

/// A PostgreSQL server as a URI names it: the driver's configuration, the TLS it asks for, and
/// what may be shown of it. Cheap to clone; connect as often as needed.
#[derive(Clone)]
pub struct PgTarget {
    config: Config,
    mode: SslMode,
    tls: MakeRustlsConnect,
    redactor: Redactor,
    shown: String,
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTarget")
            .field("target", &self.shown)
            .field("sslmode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// The TLS parameters of a URI, taken out before the driver reads the rest.
#[derive(Default)]
struct TlsParams {
    mode: Option<SslMode>,
    root_cert: Option<String>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

impl TlsParams {
    /// Takes `key=value` if it is one of libpq's TLS parameters.
    fn take(&mut self, key: &str, value: &str) -> Result<bool, ConnectError> {
        match key {
            "sslmode" => {
                self.mode = Some(SslMode::parse(value).ok_or_else(|| {
                    ConnectError::Invalid(format!(
                        "unknown sslmode `{value}`; use disable, allow, prefer, require, \
                         verify-ca or verify-full"
                    ))
                })?);
            }
            "sslrootcert" => self.root_cert = Some(value.to_string()),
            "sslcert" => self.cert = Some(PathBuf::from(value)),
            "sslkey" => self.key = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The mode and what it trusts, by libpq's rules.
    fn resolve(self) -> Result<(SslMode, Trust, Option<Identity>), ConnectError> {
        let system = self.root_cert.as_deref() == Some("system");
        let mode = self.mode.unwrap_or(if system {
            SslMode::VerifyFull
        } else {
            SslMode::Prefer
        });
        if system && mode != SslMode::VerifyFull {
            return Err(ConnectError::Invalid(format!(
                "weak sslmode `{mode}` may not be used with sslrootcert=system; use \
                 sslmode=verify-full"
            )));
        }
        let roots = match self.root_cert {
            Some(_) if system => Some(Roots::System),
            Some(path) => Some(Roots::File(PathBuf::from(path))),
            None => None,
        };
        // libpq: `require` verifies the chain when a root certificate is given or
        // ~/.postgresql/root.crt exists.
        let roots = match (mode, roots) {
            (SslMode::Require, None) => home_root_cert().filter(|p| p.exists()).map(Roots::File),
            (_, roots) => roots,
        };
        let trust = match (mode, roots) {
            (SslMode::Require, Some(roots)) | (SslMode::VerifyCa, Some(roots)) => {
                Trust::Chain(roots)
            }
            (SslMode::VerifyFull, Some(roots)) => Trust::Full(roots),
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                let default = home_root_cert().filter(|p| p.exists()).ok_or_else(|| {
                    ConnectError::Invalid(format!(
                        "sslmode={mode} verifies the server's certificate, but no root \
                         certificate was given; add sslrootcert=/path/to/ca.pem (or \
                         sslrootcert=system for the operating system's store)"
                    ))
                })?;
                if mode == SslMode::VerifyCa {
                    Trust::Chain(Roots::File(default))
                } else {
                    Trust::Full(Roots::File(default))
                }
            }
            _ => Trust::Any,
        };
        let identity = match (self.cert, self.key) {
            (Some(cert), Some(key)) => Some(Identity { cert, key }),
            (None, None) => None,
            _ => {
                return Err(ConnectError::Invalid(
                    "sslcert and sslkey go together: give both, or neither".into(),
                ));
            }
        };
        Ok((mode, trust, identity))
    }
}

/// libpq's default root certificate file.
fn home_root_cert() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".postgresql/root.crt"))
}

impl PgTarget {
    /// Reads a `postgres://` URI (or a libpq key/value string). Errors never hold the password.
    pub fn parse(uri: &str) -> Result<PgTarget, ConnectError> {
        let redactor = Redactor::default().with_uri(uri);
        let mut params = TlsParams::default();
        let rest = strip_tls_params(uri, &mut params).map_err(|e| e.redacted(&redactor))?;
        let mut config: Config = rest.parse().map_err(|e: tokio_postgres::Error| {
            ConnectError::Invalid(
                redactor.redact(&format!("invalid PostgreSQL connection URI: {}", chain(&e))),
            )
        })?;
        // The password as the driver read it (a key/value string may quote it).
        let redactor = redactor.with(
            config
                .get_password()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
        );
        // Without a timeout an unreachable host (dropped packets) hangs for minutes.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(30));
        }
        let (mode, trust, identity) = params.resolve()?;
        let tls = MakeRustlsConnect::new(tls::client_config(&trust, identity.as_ref())?);
        config.ssl_mode(match mode {
            SslMode::Disable | SslMode::Allow => DriverSslMode::Disable,
            SslMode::Prefer => DriverSslMode::Prefer,
            _ => DriverSslMode::Require,
        });
        let shown = describe(&config);
        Ok(PgTarget {
            config,
            mode,
            tls,
            redactor,
            shown,
        })
    }

    /// "user@host:port/db", for messages.
    pub fn target(&self) -> &str {
        &self.shown
    }

    pub fn ssl_mode(&self) -> SslMode {
        self.mode
    }

    /// Knows the URI's password, for callers that word their own errors.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// The driver's configuration (for LISTEN loops and settings such as `application_name`).
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.config
    }

    /// Connects; the caller polls or spawns the connection half.
    pub async fn connect_raw(&self) -> Result<(Client, PgConnection), ConnectError> {
        let first = self.config.connect(self.tls.clone()).await;
        match first {
            // `allow`: plain first, TLS when the server refuses a plain connection.
            Err(e) if self.mode == SslMode::Allow && requires_encryption(&e) => {
                let mut config = self.config.clone();
                config.ssl_mode(DriverSslMode::Require);
                config
                    .connect(self.tls.clone())
                    .await
                    .map_err(|e| self.explain(&e))
            }
            other => other.map_err(|e| self.explain(&e)),
        }
    }

    /// Connects and spawns the connection half on the runtime.
    pub async fn connect(&self) -> Result<Client, ConnectError> {
        let (client, connection) = self.connect_raw().await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "PostgreSQL connection ended with an error");
            }
        });
        Ok(client)
    }

    /// Asks the server to cancel what `token`'s session is running (over TLS when it was).
    pub async fn cancel(&self, token: &CancelToken) -> Result<(), ConnectError> {
        token
            .cancel_query(self.tls.clone())
            .await
            .map_err(|e| self.explain(&e))
    }

    /// A connection error in words a person can act on, without the password.
    fn explain(&self, e: &tokio_postgres::Error) -> ConnectError {
        let target = &self.shown;
        let host = host_of(&self.config);
        let text = if let Some(db) = e.as_db_error() {
            let message = db.message();
            match db.code() {
                c if *c == SqlState::INVALID_PASSWORD => {
                    format!(
                        "could not connect to {target}: {message}; check the password of this \
                         connection"
                    )
                }
                c if *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                    && message.contains("no encryption") =>
                {
                    format!(
                        "could not connect to {target}: server requires TLS for this \
                         connection: add sslmode=require (or sslmode=verify-full with \
                         sslrootcert=your CA's file) to the URI ({message})"
                    )
                }
                _ => format!("could not connect to {target}: {message}"),
            }
        } else {
            let chain = chain(e);
            if let Some(advice) = tls::handshake_advice(&chain, &host, Some("sslmode=verify-ca")) {
                advice
            } else if chain.contains("server does not support TLS") {
                format!(
                    "could not connect to {target}: the server does not accept TLS, but \
                     sslmode={} requires it; turn `ssl` on in the server's postgresql.conf or \
                     use sslmode=prefer",
                    self.mode
                )
            } else if chain.contains("Connection refused") {
                format!(
                    "could not connect to {target}: connection refused; is PostgreSQL running \
                     and listening on that host and port?"
                )
            } else {
                format!("could not connect to {target}: {chain}")
            }
        };
        ConnectError::Connect(self.redactor.redact(&text))
    }
}

fn requires_encryption(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            && db.message().contains("no encryption")
    })
}

/// The URI without libpq's TLS parameters, which are read into `params`.
fn strip_tls_params(uri: &str, params: &mut TlsParams) -> Result<String, ConnectError> {
    let trimmed = uri.trim();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        return crate::strip_query_params(trimmed, |k, v| params.take(k, v));
    }
    // libpq's key/value form: `host=h port=5432 sslmode='verify-full'`.
    let mut kept = Vec::new();
    for (key, value) in key_values(trimmed)? {
        if !params.take(&key, &value)? {
            let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
            kept.push(format!("{key}='{quoted}'"));
        }
    }
    Ok(kept.join(" "))
}

/// Splits libpq's key/value form (values optionally single-quoted, `\` escapes).
fn key_values(text: &str) -> Result<Vec<(String, String)>, ConnectError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(ConnectError::Invalid(format!(
                "invalid PostgreSQL connection string: `{key}` has no `=value`; write \
                 key=value pairs or a postgres:// URI"
            )));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => {
                        return Err(ConnectError::Invalid(format!(
                            "invalid PostgreSQL connection string: the value of `{key}` has \
                             no closing quote"
                        )));
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
}

fn host_of(config: &Config) -> String {
    match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_string(),
    }
}

/// "user@host:port/db" for messages, without the password.
fn describe(config: &Config) -> String {
    let host = host_of(config);
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let db = config.get_dbname().unwrap_or(user);
    if user.is_empty() {
        format!("{host}:{port}/{db}")
    } else {
        format!("{user}@{host}:{port}/{db}")
    }
}

/// The error and its causes, each once.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(uri: &str) -> Result<(SslMode, Trust), String> {
        let mut params = TlsParams::default();
        strip_tls_params(uri, &mut params).map_err(|e| e.to_string())?;
        params
            .resolve()
            .map(|(m, t, _)| (m, t))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn libpq_modes_decide_what_is_checked() {
        assert_eq!(
            resolved("postgres://h/db").unwrap(),
            (SslMode::Prefer, Trust::Any)
        );
        assert_eq!(
            resolved("postgres://h/db?sslmode=require").unwrap(),
            (SslMode::Require, Trust::Any)
        );
        assert_eq!(
            resolved("postgres://h/db?sslmode=require&sslrootcert=/ca.pem").unwrap(),
            (
                SslMode::Require,
                Trust::Chain(Roots::File("/ca.pem".into()))
            )
        );
        assert_eq!(
            resolved("postgres://h/db?sslrootcert=%2Fca.pem&sslmode=verify-full").unwrap(),
            (
                SslMode::VerifyFull,
                Trust::Full(Roots::File("/ca.pem".into()))
            )
        );
        assert_eq!(
            resolved("postgres://h/db?sslrootcert=system").unwrap(),
            (SslMode::VerifyFull, Trust::Full(Roots::System))
        );
        let weak = resolved("postgres://h/db?sslrootcert=system&sslmode=require").unwrap_err();
        assert!(weak.contains("use sslmode=verify-full"), "{weak}");
        let bad = resolved("postgres://h/db?sslmode=verify").unwrap_err();
        assert!(bad.contains("unknown sslmode `verify`"), "{bad}");
        let half = resolved("postgres://h/db?sslcert=/c.pem").unwrap_err();
        assert!(half.contains("sslcert and sslkey go together"), "{half}");
    }

    #[test]
    fn other_parameters_reach_the_driver() {
        let mut params = TlsParams::default();
        let rest = strip_tls_params(
            "postgres://u:p@h:5433/db?application_name=x&sslmode=disable&connect_timeout=3",
            &mut params,
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://u:p@h:5433/db?application_name=x&connect_timeout=3"
        );
        assert_eq!(params.mode, Some(SslMode::Disable));
        let rest = strip_tls_params(
            "host=h password='a \\'b' sslmode=verify-ca sslrootcert=/ca.pem",
            &mut TlsParams::default(),
        )
        .unwrap();
        assert_eq!(rest, "host='h' password='a \\'b'");
    }

    #[test]
    fn errors_never_show_the_password() {
        let e = PgTarget::parse("postgres://u:s3cr3t-pw@h/db?sslmode=nope").unwrap_err();
        assert!(!e.to_string().contains("s3cr3t-pw"), "{e}");
        let e = PgTarget::parse("postgres://u:s3cr3t-pw@h/db?frobnicate=1").unwrap_err();
        assert!(!e.to_string().contains("s3cr3t-pw"), "{e}");
        assert!(e.to_string().contains("frobnicate"), "{e}");
    }
}
