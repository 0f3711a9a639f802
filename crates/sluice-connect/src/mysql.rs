//! MySQL/MariaDB connections with the TLS parameters MySQL's own clients take.
//!
//! | ssl-mode | encrypted | certificate checked |
//! |---|---|---|
//! | `DISABLED` | never | — |
//! | `PREFERRED` (default) | if the server can | no |
//! | `REQUIRED` | always | no |
//! | `VERIFY_CA` (default when `ssl-ca` is given) | always | chain to `ssl-ca` |
//! | `VERIFY_IDENTITY` | always | chain and host name |
//!
//! Without `ssl-ca` the verifying modes trust the Mozilla roots (cloud databases). mysql_async
//! 0.37 checks the host name in `VERIFY_CA` as well (it skips its name check only for an error
//! text rustls 0.23 no longer writes): stricter than MySQL's client, never weaker. `ssl-cert`
//! and `ssl-key` present a client certificate. Parameters may be spelled with `-` or `_`, in any
//! case (`ssl-mode=verify_identity`).

use std::path::PathBuf;

use mysql_async::{ClientIdentity, Conn, DriverError, Opts, OptsBuilder, SslOpts};
use sluice_core::secrets::Redactor;

use crate::ConnectError;
use crate::tls;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disabled,
    Preferred,
    Required,
    VerifyCa,
    VerifyIdentity,
}

impl SslMode {
    fn parse(text: &str) -> Option<SslMode> {
        Some(match text.to_ascii_uppercase().replace('-', "_").as_str() {
            "DISABLED" => SslMode::Disabled,
            "PREFERRED" => SslMode::Preferred,
            "REQUIRED" => SslMode::Required,
            "VERIFY_CA" => SslMode::VerifyCa,
            "VERIFY_IDENTITY" => SslMode::VerifyIdentity,
            _ => return None,
        })
    }
}

/// A MySQL/MariaDB server as a `mysql://` URI names it.
#[derive(Debug, Clone)]
pub struct MySqlTarget {
    opts: Opts,
    mode: SslMode,
    redactor: Redactor,
    shown: String,
}

#[derive(Default)]
struct TlsParams {
    mode: Option<SslMode>,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

impl TlsParams {
    fn take(&mut self, key: &str, value: &str) -> Result<bool, ConnectError> {
        match key.to_ascii_lowercase().replace('_', "-").as_str() {
            "ssl-mode" => {
                self.mode = Some(SslMode::parse(value).ok_or_else(|| {
                    ConnectError::Invalid(format!(
                        "unknown ssl-mode `{value}`; use DISABLED, PREFERRED, REQUIRED, \
                         VERIFY_CA or VERIFY_IDENTITY"
                    ))
                })?);
            }
            "ssl-ca" => self.ca = Some(PathBuf::from(value)),
            "ssl-cert" => self.cert = Some(PathBuf::from(value)),
            "ssl-key" => self.key = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn ssl_opts(self) -> Result<(SslMode, Option<SslOpts>), ConnectError> {
        let mode = self.mode.unwrap_or(if self.ca.is_some() {
            SslMode::VerifyCa
        } else {
            SslMode::Preferred
        });
        if mode == SslMode::Disabled {
            return Ok((mode, None));
        }
        let mut opts = SslOpts::default();
        match mode {
            SslMode::Preferred | SslMode::Required => {
                opts = opts
                    .with_danger_accept_invalid_certs(true)
                    .with_danger_skip_domain_validation(true);
            }
            SslMode::VerifyCa => opts = opts.with_danger_skip_domain_validation(true),
            SslMode::VerifyIdentity | SslMode::Disabled => {}
        }
        if let Some(ca) = self.ca {
            if !ca.exists() {
                return Err(ConnectError::Tls(format!(
                    "the CA file {} does not exist; set ssl-ca to a PEM file",
                    ca.display()
                )));
            }
            opts = opts
                .with_root_certs(vec![ca.into()])
                .with_disable_built_in_roots(true);
        }
        match (self.cert, self.key) {
            (Some(cert), Some(key)) => {
                opts =
                    opts.with_client_identity(Some(ClientIdentity::new(cert.into(), key.into())));
            }
            (None, None) => {}
            _ => {
                return Err(ConnectError::Invalid(
                    "ssl-cert and ssl-key go together: give both, or neither".into(),
                ));
            }
        }
        Ok((mode, Some(opts)))
    }
}

impl MySqlTarget {
    /// Reads a `mysql://` URI. Errors never hold the password.
    pub fn parse(uri: &str) -> Result<MySqlTarget, ConnectError> {
        let redactor = Redactor::default().with_uri(uri);
        let mut params = TlsParams::default();
        let rest = crate::strip_query_params(uri, |k, v| params.take(k, v))?;
        let opts = Opts::from_url(&rest).map_err(|e| {
            ConnectError::Invalid(redactor.redact(&format!("invalid MySQL connection URI: {e}")))
        })?;
        let redactor = redactor.with(opts.pass().map(str::to_owned));
        let (mode, ssl) = params.ssl_opts()?;
        let shown = match opts.user() {
            Some(user) => format!("{user}@{}:{}", opts.ip_or_hostname(), opts.tcp_port()),
            None => format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port()),
        };
        let opts = OptsBuilder::from_opts(opts).ssl_opts(ssl).into();
        Ok(MySqlTarget {
            opts,
            mode,
            redactor,
            shown,
        })
    }

    /// The driver's options, TLS included (for pools and second connections).
    pub fn opts(&self) -> &Opts {
        &self.opts
    }

    /// "user@host:port", for messages.
    pub fn target(&self) -> &str {
        &self.shown
    }

    pub fn ssl_mode(&self) -> SslMode {
        self.mode
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Connects; `PREFERRED` falls back to a plain connection when the server has no TLS.
    pub async fn connect(&self) -> Result<Conn, ConnectError> {
        // mysql_async builds its rustls configuration with the process's default provider.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        match Conn::new(self.opts.clone()).await {
            Err(mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer))
                if self.mode == SslMode::Preferred =>
            {
                let plain: Opts = OptsBuilder::from_opts(self.opts.clone())
                    .ssl_opts(None::<SslOpts>)
                    .into();
                Conn::new(plain).await.map_err(|e| self.explain(&e))
            }
            other => other.map_err(|e| self.explain(&e)),
        }
    }

    /// A connection error in words a person can act on, without the password.
    pub fn explain(&self, e: &mysql_async::Error) -> ConnectError {
        let target = &self.shown;
        let host = self.opts.ip_or_hostname().to_string();
        let chain = crate::postgres::chain(e);
        let text = match e {
            mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer) => format!(
                "could not connect to {target}: the server does not accept TLS, but ssl-mode \
                 asks for it; enable TLS on the server or use ssl-mode=PREFERRED"
            ),
            // MariaDB answers a plain connection under `require_secure_transport` with the
            // same "access denied" as a wrong password.
            mysql_async::Error::Server(s) if s.code == 1045 && self.mode == SslMode::Disabled => {
                format!(
                    "could not connect to {target}: error 1045: {}; check the user and password \
                     of this connection — or, if the server requires TLS \
                     (require_secure_transport), use ssl-mode=REQUIRED instead of DISABLED",
                    s.message
                )
            }
            mysql_async::Error::Server(s) if s.code == 1045 => format!(
                "could not connect to {target}: error 1045: {}; check the user and password \
                 of this connection",
                s.message
            ),
            mysql_async::Error::Server(s)
                if s.code == 3159 || s.message.contains("secure transport") =>
            {
                format!(
                    "could not connect to {target}: server requires TLS: add \
                     ssl-mode=REQUIRED (or VERIFY_IDENTITY with ssl-ca) to the URI ({})",
                    s.message
                )
            }
            // mysql_async checks the name in VERIFY_CA too (see the module docs): no chain-only mode.
            _ => match tls::handshake_advice(&chain, &host, None) {
                Some(advice) => advice,
                None if chain.contains("Connection refused") => format!(
                    "could not connect to {target}: connection refused; is the server running \
                     and listening on that host and port?"
                ),
                None => format!("could not connect to {target}: {chain}"),
            },
        };
        ConnectError::Connect(self.redactor.redact(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_spellings_of_ssl_mode() {
        let t = MySqlTarget::parse("mysql://root@h:3306/db?ssl-mode=disabled").unwrap();
        assert_eq!(t.ssl_mode(), SslMode::Disabled);
        assert!(t.opts().ssl_opts().is_none());
        let t = MySqlTarget::parse("mysql://root@h/db?ssl_mode=verify-identity").unwrap();
        assert_eq!(t.ssl_mode(), SslMode::VerifyIdentity);
        let e = MySqlTarget::parse("mysql://root@h/db?ssl-mode=on").unwrap_err();
        assert!(e.to_string().contains("unknown ssl-mode `on`"), "{e}");
        let t = MySqlTarget::parse("mysql://root@h/db").unwrap();
        assert_eq!(t.ssl_mode(), SslMode::Preferred);
        let e = MySqlTarget::parse("mysql://root:pw-s3cr3t@h/db?ssl-ca=/nope.pem").unwrap_err();
        assert!(e.to_string().contains("/nope.pem does not exist"), "{e}");
        let e = MySqlTarget::parse("mysql://root:pw-s3cr3t@h/db?frob=1").unwrap_err();
        assert!(!e.to_string().contains("pw-s3cr3t"), "{e}");
    }
}
