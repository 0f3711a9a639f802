//! Connections: named URIs from `connections.yaml` and `SLUICE_CONN_<NAME>` environment
//! variables (the environment wins), with their secrets kept out of everything printed.
//!
//! ```yaml
//! shop_db: postgres://loader:s3cret@127.0.0.1:5432/shop
//! legacy: { uri: "mysql://root@127.0.0.1:3306/test" }
//! ```
//!
//! **Invariant:** a connection's secrets (URI password, token-like query parameters) are known
//! to the [`Redactor`], and every text that leaves a task (errors, log lines) goes through it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use url::Url;

use crate::diag::{Diagnostic, Diagnostics};
use crate::secrets::{self, Redactor};
use crate::yaml::{self, Node, Value};

pub const CONNECTIONS_FILE: &str = "connections.yaml";
pub const ENV_PREFIX: &str = "SLUICE_CONN_";
/// The project's embedded warehouse, when no connection of that name is configured.
pub const WAREHOUSE: &str = "warehouse";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionKind {
    Postgres,
    MySql,
    DuckDb,
    Http,
    S3,
    File,
}

impl ConnectionKind {
    fn from_scheme(scheme: &str) -> Option<ConnectionKind> {
        Some(match scheme {
            "postgres" | "postgresql" => ConnectionKind::Postgres,
            "mysql" | "mariadb" => ConnectionKind::MySql,
            "duckdb" => ConnectionKind::DuckDb,
            "http" | "https" => ConnectionKind::Http,
            "s3" => ConnectionKind::S3,
            "file" => ConnectionKind::File,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ConnectionKind::Postgres => "PostgreSQL",
            ConnectionKind::MySql => "MySQL/MariaDB",
            ConnectionKind::DuckDb => "DuckDB",
            ConnectionKind::Http => "HTTP",
            ConnectionKind::S3 => "S3",
            ConnectionKind::File => "file",
        }
    }
}

/// Where a connection was defined, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File { line: usize, col: usize },
    Env(String),
}

impl Origin {
    /// A diagnostic placed where the connection was defined.
    pub fn diagnostic(&self, message: impl Into<String>) -> Diagnostic {
        let (file, line, col) = match self {
            Origin::File { line, col } => (CONNECTIONS_FILE.to_string(), *line, *col),
            Origin::Env(var) => (format!("${var}"), 1, 1),
        };
        Diagnostic::new(&crate::yaml::Span::new(file.into(), line, col), message)
    }
}

/// A named connection. Its `Debug` and `Display` show the URI with secrets masked.
#[derive(Clone)]
pub struct Connection {
    pub name: String,
    pub kind: ConnectionKind,
    pub origin: Origin,
    url: Url,
    secrets: Vec<String>,
}

impl Connection {
    /// Parses a connection URI; the error says what is wrong without repeating the URI (it
    /// may hold a password).
    pub fn parse(name: &str, uri: &str, origin: Origin) -> Result<Connection, String> {
        let url = Url::parse(uri.trim())
            .map_err(|e| format!("connection `{name}` is not a valid URI ({e})"))?;
        let kind = ConnectionKind::from_scheme(url.scheme()).ok_or_else(|| {
            format!(
                "connection `{name}` has the unknown scheme `{}`; use postgres://, mysql://, duckdb://, https://, s3:// or file://",
                url.scheme()
            )
        })?;
        let secrets = secrets::uri_secrets(uri);
        Ok(Connection {
            name: name.to_string(),
            kind,
            origin,
            url,
            secrets,
        })
    }

    /// The full URI, secrets included: for connecting only, never for printing.
    pub fn expose_uri(&self) -> &str {
        self.url.as_str()
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The URI with the password and secret query parameters replaced by `***`.
    pub fn redacted_uri(&self) -> String {
        secrets::redact_url(&self.url)
    }

    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }

    /// The database file of a DuckDB connection: `duckdb:///abs/path.duckdb`, or relative to
    /// the project with `duckdb://file.duckdb` or `duckdb:file.duckdb`.
    pub fn duckdb_path(&self, root: &Path) -> Option<std::path::PathBuf> {
        if self.kind != ConnectionKind::DuckDb {
            return None;
        }
        let rel = match self.url.host_str() {
            Some(host) if !host.is_empty() => format!("{host}{}", self.url.path()),
            _ => self.url.path().to_string(),
        };
        let decoded = percent_encoding::percent_decode_str(&rel)
            .decode_utf8_lossy()
            .into_owned();
        Some(root.join(decoded))
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("uri", &self.redacted_uri())
            .finish()
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.redacted_uri())
    }
}

/// The project's connections by name.
#[derive(Debug, Clone, Default)]
pub struct Connections {
    by_name: BTreeMap<String, Connection>,
}

impl Connections {
    /// Reads `connections.yaml` (if present) under `root`, then the `SLUICE_CONN_<NAME>`
    /// variables of `env`, which replace same-named entries. Names are lower case.
    pub fn load(
        root: &Path,
        env: impl IntoIterator<Item = (String, String)>,
        diags: &mut Diagnostics,
    ) -> Connections {
        let mut out = Connections::default();
        let path = root.join(CONNECTIONS_FILE);
        if let Ok(text) = std::fs::read_to_string(&path) {
            match yaml::parse(CONNECTIONS_FILE.into(), &text) {
                Ok(node) => out.read_file(&node, diags),
                Err(e) => diags.push(e.diagnostic()),
            }
        }
        for (var, value) in env {
            let Some(name) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let name = name.to_ascii_lowercase();
            match Connection::parse(&name, &value, Origin::Env(var.clone())) {
                Ok(c) => {
                    out.by_name.insert(name, c);
                }
                Err(msg) => diags.push(
                    Origin::Env(var.clone())
                        .diagnostic(msg)
                        .hint("set it to a URI such as postgres://user:password@127.0.0.1:5432/db"),
                ),
            }
        }
        out
    }

    fn read_file(&mut self, node: &Node, diags: &mut Diagnostics) {
        let entries = match &node.value {
            Value::Map(entries) => entries,
            Value::Null => return,
            _ => {
                diags.push(Diagnostic::new(
                    &node.span,
                    "connections.yaml must map connection names to URIs",
                ));
                return;
            }
        };
        for (key, value) in entries {
            let Some(name) = key.as_str() else {
                diags.push(Diagnostic::new(
                    &key.span,
                    "connection names must be strings",
                ));
                continue;
            };
            let uri_node = match &value.value {
                Value::Map(fields) => fields
                    .iter()
                    .find(|(k, _)| k.as_str() == Some("uri"))
                    .map(|(_, v)| v),
                _ => Some(value),
            };
            let Some(uri) = uri_node.and_then(Node::as_str) else {
                diags.push(
                    Diagnostic::new(&value.span, format!("connection `{name}` needs a URI"))
                        .hint("write `name: postgres://user@host:5432/db` or `name: { uri: ... }`"),
                );
                continue;
            };
            let at = uri_node.map_or(&value.span, |n| &n.span);
            match Connection::parse(
                &name.to_ascii_lowercase(),
                uri,
                Origin::File {
                    line: at.line,
                    col: at.col,
                },
            ) {
                Ok(c) => {
                    self.by_name.insert(c.name.clone(), c);
                }
                Err(msg) => diags.push(Diagnostic::new(at, msg)),
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&Connection> {
        self.by_name.get(&name.to_ascii_lowercase())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Connection> {
        self.by_name.values()
    }

    /// A redactor that knows every secret of these connections.
    pub fn redactor(&self) -> Redactor {
        Redactor::new(
            self.by_name
                .values()
                .flat_map(|c| c.secrets.iter().cloned()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn file_and_environment_with_environment_winning() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONNECTIONS_FILE),
            "shop_db: postgres://loader:s3cret-pw@127.0.0.1:5432/shop\nlegacy: { uri: \"mysql://root@127.0.0.1:3306/test\" }\napi: https://api.example.com/v1?token=tok-123456&page_size=100\n",
        )
        .unwrap();
        let mut diags = Diagnostics::default();
        let conns = Connections::load(
            dir.path(),
            env(&[
                (
                    "SLUICE_CONN_LEGACY",
                    "mysql://app:env-pass@127.0.0.1:3306/prod",
                ),
                ("PATH", "/bin"),
            ]),
            &mut diags,
        );
        assert!(diags.is_empty(), "{diags:?}");
        let shop = conns.get("shop_db").unwrap();
        assert_eq!(shop.kind, ConnectionKind::Postgres);
        assert_eq!(shop.origin, Origin::File { line: 1, col: 10 });
        assert_eq!(
            shop.redacted_uri(),
            "postgres://loader:***@127.0.0.1:5432/shop"
        );
        let legacy = conns.get("LEGACY").unwrap();
        assert_eq!(legacy.origin, Origin::Env("SLUICE_CONN_LEGACY".into()));
        assert_eq!(
            legacy.expose_uri(),
            "mysql://app:env-pass@127.0.0.1:3306/prod"
        );
        let api = conns.get("api").unwrap();
        assert_eq!(
            api.redacted_uri(),
            "https://api.example.com/v1?token=***&page_size=100"
        );
        assert!(!format!("{api:?} {api}").contains("tok-123456"));
        let root = Path::new("/p");
        for (uri, path) in [
            ("duckdb:///data/w.duckdb", "/data/w.duckdb"),
            ("duckdb://w.duckdb", "/p/w.duckdb"),
            ("duckdb:sub/w.duckdb", "/p/sub/w.duckdb"),
        ] {
            let c = Connection::parse("w", uri, Origin::Env("X".into())).unwrap();
            assert_eq!(c.duckdb_path(root).unwrap(), Path::new(path), "{uri}");
        }
        let r = conns.redactor();
        assert_eq!(
            r.redact("auth failed for loader:s3cret-pw and env-pass, token tok-123456"),
            "auth failed for loader:*** and ***, token ***"
        );
    }

    #[test]
    fn bad_uris_are_reported_without_their_secrets() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONNECTIONS_FILE),
            "a: ftp://u:hunter22@host/x\nb: { user: x }\n",
        )
        .unwrap();
        let mut diags = Diagnostics::default();
        let conns = Connections::load(
            dir.path(),
            env(&[("SLUICE_CONN_C", "not a uri with pw hunter33")]),
            &mut diags,
        );
        assert_eq!(conns.iter().count(), 0);
        let text: Vec<String> = diags.0.iter().map(ToString::to_string).collect();
        assert!(
            text[0].starts_with(
                "connections.yaml:1:4: error: connection `a` has the unknown scheme `ftp`"
            ),
            "{text:?}"
        );
        assert!(
            text[1].starts_with("connections.yaml:2:4: error: connection `b` needs a URI"),
            "{text:?}"
        );
        assert!(
            text[2].starts_with("$SLUICE_CONN_C:1:1: error: connection `c` is not a valid URI"),
            "{text:?}"
        );
        assert!(!text.join("\n").contains("hunter"), "{text:?}");
    }
}
