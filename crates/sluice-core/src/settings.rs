//! The project's settings: `sluice.yaml`, where the project keeps its files ([`ProjectPaths`]),
//! and the `SLUICE_*` environment variables that override them ([`Environment`]).
//!
//! Each section of `sluice.yaml` has its own decoder below; [`Settings::load`] only calls them in
//! file-key order and applies the environment. The variables clap reads for its arguments
//! (`SLUICE_PROJECT`, `SLUICE_LOG`) stay with those arguments in the binary.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::connections::ENV_PREFIX as CONNECTION_ENV_PREFIX;
use crate::decode::Fields;
use crate::diag::{Diagnostic, Diagnostics};
use crate::yaml::{self, Node, Value};

pub const SETTINGS_FILE: &str = "sluice.yaml";

/// Overrides `metadata:` in sluice.yaml.
pub const METADATA_ENV: &str = "SLUICE_METADATA";
/// The Python interpreter when sluice.yaml names none (`python:` wins over it).
pub const PYTHON_ENV: &str = "SLUICE_PYTHON";
/// The REST API's bearer token: required by `sluice serve` off loopback, sent by the clients.
pub const API_TOKEN_ENV: &str = "SLUICE_API_TOKEN";

/// Where a project keeps its files.
#[derive(Debug, Clone)]
pub struct ProjectPaths {
    pub root: PathBuf,
    /// The data lake root (a local folder).
    pub lake: PathBuf,
    /// Internal state: metadata database, logs, locks.
    pub state: PathBuf,
    /// The embedded DuckDB warehouse file.
    pub warehouse: PathBuf,
}

impl ProjectPaths {
    /// The default layout of a project at `root`.
    pub fn new(root: &Path) -> ProjectPaths {
        ProjectPaths {
            lake: root.join("lake"),
            state: root.join(".sluice"),
            warehouse: root.join("warehouse.duckdb"),
            root: root.to_path_buf(),
        }
    }

    pub fn logs(&self) -> PathBuf {
        self.state.join("logs")
    }

    pub fn locks(&self) -> PathBuf {
        self.state.join("locks")
    }

    /// A path relative to the project root, for messages.
    pub fn display<'a>(&self, path: &'a Path) -> std::borrow::Cow<'a, str> {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .to_string_lossy()
    }

    /// `warehouse:` and `lake:`, relative to the root, with or without their URI scheme.
    fn decode(&mut self, fields: &Fields<'_>, diags: &mut Diagnostics) {
        let path_of = |text: &str, scheme: &str| -> PathBuf {
            self.root.join(text.strip_prefix(scheme).unwrap_or(text))
        };
        if let Some(w) = fields.string("warehouse", diags) {
            self.warehouse = path_of(&w, "duckdb://");
        }
        if let Some(l) = fields.string("lake", diags) {
            self.lake = path_of(&l, "file://");
        }
    }
}

/// The `SLUICE_*` variables that change what a project does, read from the process once
/// ([`Environment::process`]) or given as pairs ([`Environment::from_vars`], for tests).
/// A variable set to the empty string counts as unset, except `SLUICE_CONN_<NAME>`, where an
/// empty URI is a mistake worth a diagnostic.
#[derive(Clone, Default)]
pub struct Environment {
    metadata: Option<String>,
    python: Option<String>,
    api_token: Option<String>,
    /// `SLUICE_CONN_<NAME>` variables, whole, in the order given.
    connections: Vec<(String, String)>,
}

impl Environment {
    /// This process's environment, read on first use. Variables that are not UTF-8 are
    /// skipped, as a lookup by name would.
    pub fn process() -> &'static Environment {
        static PROCESS: OnceLock<Environment> = OnceLock::new();
        PROCESS.get_or_init(|| {
            Environment::from_vars(std::env::vars_os().filter_map(
                |(k, v): (OsString, OsString)| Some((k.into_string().ok()?, v.into_string().ok()?)),
            ))
        })
    }

    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Environment
    where
        K: Into<String>,
        V: Into<String>,
    {
        let mut env = Environment::default();
        for (name, value) in vars {
            let (name, value) = (name.into(), value.into());
            if name.starts_with(CONNECTION_ENV_PREFIX) {
                env.connections.push((name, value));
                continue;
            }
            let slot = match name.as_str() {
                METADATA_ENV => &mut env.metadata,
                PYTHON_ENV => &mut env.python,
                API_TOKEN_ENV => &mut env.api_token,
                _ => continue,
            };
            *slot = Some(value).filter(|v| !v.is_empty());
        }
        env
    }

    /// `SLUICE_API_TOKEN`.
    pub fn api_token(&self) -> Option<&str> {
        self.api_token.as_deref()
    }

    /// The `SLUICE_CONN_<NAME>` variables, for [`crate::connections::Connections::load`].
    pub fn connection_vars(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.connections.iter().cloned()
    }

    /// A redactor that knows the secrets of these variables: the API token and the passwords
    /// and secret parameters of the metadata and connection URIs.
    pub fn redactor(&self) -> crate::secrets::Redactor {
        let uris = self
            .metadata
            .iter()
            .chain(self.connections.iter().map(|(_, uri)| uri));
        crate::secrets::Redactor::new(self.api_token.clone())
            .with(uris.flat_map(|uri| crate::secrets::uri_secrets(uri)))
    }
}

/// Shows which variables are set, never a value that may hold a password or a token.
impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |v: &Option<String>| if v.is_some() { "set" } else { "unset" };
        f.debug_struct("Environment")
            .field("metadata", &set(&self.metadata))
            .field("python", &self.python)
            .field("api_token", &set(&self.api_token))
            .field(
                "connections",
                &self.connections.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// `sluice.yaml`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub name: String,
    pub paths: ProjectPaths,
    /// The Python interpreter for `python` tasks (`python:`, else `SLUICE_PYTHON`).
    pub python: String,
    /// Tasks one run may execute at the same time.
    pub parallelism: usize,
    /// Named pools and their slots: tasks naming a pool share its slots across runs.
    pub pools: BTreeMap<String, u32>,
    /// Where to send DogStatsD metrics, if anywhere.
    pub statsd: Option<Statsd>,
    /// Named alert channels (`alerts:`), chosen by `alert:` on pipelines and tasks.
    pub alert_channels: BTreeMap<String, AlertChannel>,
    /// The metadata database (`metadata:`, overridden by `SLUICE_METADATA`).
    pub metadata: Metadata,
    /// Where OpenLineage run events go (`lineage:`), if anywhere.
    pub lineage: Option<LineageSettings>,
    /// How `sluice serve` answers (`serve:`).
    pub serve: ServeSettings,
    /// Variables of Sluice's own environment that task processes and alert commands inherit
    /// besides [`TASK_ENV_BASE`] (`task_env:`; names, or prefixes ending in `*`).
    pub task_env: Vec<String>,
}

/// What every task process inherits from Sluice's environment: nothing that may be a secret.
pub const TASK_ENV_BASE: &[&str] = &[
    "PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME",
];

/// The variables of this process's environment a task process inherits: [`TASK_ENV_BASE`]
/// and those `allowed` names (an entry ending in `*` is a prefix), never a `SLUICE_` one.
pub fn inherited_env(allowed: &[String]) -> Vec<(OsString, OsString)> {
    let allows = |name: &str| {
        TASK_ENV_BASE.contains(&name)
            || allowed.iter().any(|a| match a.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => a == name,
            })
    };
    std::env::vars_os()
        .filter(|(name, _)| {
            name.to_str()
                .is_some_and(|n| !n.starts_with("SLUICE_") && allows(n))
        })
        .collect()
}

/// `serve: { allowed_hosts, max_backfill_intervals, tls }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeSettings {
    /// The server's certificate chain and key (PEM files): it speaks HTTPS.
    pub tls: Option<ServeTls>,
    /// Host names (besides IP addresses and `localhost`) the server answers to: a request whose
    /// `Host` is another name is refused, which stops DNS rebinding.
    pub allowed_hosts: Vec<String>,
    /// The most intervals one backfill request may create runs for.
    pub max_backfill_intervals: u32,
}

/// `tls: { cert: server.pem, key: server.key }`, resolved against the project folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for ServeSettings {
    fn default() -> ServeSettings {
        ServeSettings {
            tls: None,
            allowed_hosts: Vec::new(),
            max_backfill_intervals: 10_000,
        }
    }
}

/// `lineage: { file: … | url: …, namespace: … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineageSettings {
    /// The namespace of Sluice's jobs (default: the project's name).
    pub namespace: String,
    pub target: LineageTarget,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineageTarget {
    /// Appended to, one event per line (NDJSON).
    File(PathBuf),
    /// An OpenLineage HTTP endpoint (Marquez: events are POSTed to `/api/v1/lineage`).
    Http(String),
}

/// Where runs, tries and the dead-letter store are kept.
#[derive(Clone, PartialEq, Eq)]
pub enum Metadata {
    /// A SQLite file: one machine (the default, `.sluice/metadata.db`).
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://…`): shared by schedulers and workers on many machines.
    Postgres(String),
}

impl Metadata {
    /// `postgres://…` / `postgresql://…` is PostgreSQL; anything else a SQLite file, relative
    /// to the project root, with or without `sqlite://`.
    pub fn parse(text: &str, root: &Path) -> Metadata {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Metadata::Postgres(text.to_string())
        } else {
            Metadata::Sqlite(root.join(text.strip_prefix("sqlite://").unwrap_or(text)))
        }
    }
}

/// Never shows a password that the URL may hold.
impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metadata::Sqlite(p) => write!(f, "Sqlite({})", p.display()),
            Metadata::Postgres(_) => write!(f, "Postgres(…)"),
        }
    }
}

/// Where an alert goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertChannel {
    /// A JSON POST; `slack` sends `{"text": …}` (Slack-compatible incoming webhooks).
    Webhook { url: String, slack: bool },
    /// A program run with `sh -c`, the alert as JSON on its stdin.
    Command { command: String },
    /// Mail through an SMTP server: `smtp://host:port` (plain, for local relays),
    /// `smtp://host:587?tls=required` (STARTTLS) or `smtps://host:465`.
    Email {
        smtp: String,
        from: String,
        to: Vec<String>,
    },
}

/// `statsd: { host, port, prefix }`: a DogStatsD agent (UDP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statsd {
    pub host: String,
    pub port: u16,
    pub prefix: Option<String>,
}

const SETTINGS_KEYS: &[&str] = &[
    "name",
    "warehouse",
    "lake",
    "metadata",
    "python",
    "parallelism",
    "pools",
    "statsd",
    "alerts",
    "lineage",
    "serve",
    "task_env",
];

/// A section that is not a mapping at all: reading the settings stops there (its problem is
/// reported; the sections after it are not read).
struct Unusable;

impl Settings {
    /// Reads `sluice.yaml` from `root` and applies `env`. Problems are diagnostics; defaults
    /// fill what is missing.
    pub fn load(root: &Path, env: &Environment, diags: &mut Diagnostics) -> Option<Settings> {
        let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
        let node = read(&root, diags)?;
        let mut settings = Settings::defaults(&root, env);
        if !node.is_null() {
            settings.decode(&node, diags).ok()?;
        }
        if let Some(m) = &env.metadata {
            settings.metadata = Metadata::parse(m, &root);
        }
        Some(settings)
    }

    fn defaults(root: &Path, env: &Environment) -> Settings {
        Settings {
            name: root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "sluice".into()),
            paths: ProjectPaths::new(root),
            python: env.python.clone().unwrap_or_else(|| "python3".into()),
            parallelism: 16,
            pools: BTreeMap::new(),
            statsd: None,
            alert_channels: BTreeMap::new(),
            metadata: Metadata::Sqlite(root.join(".sluice").join("metadata.db")),
            lineage: None,
            serve: ServeSettings::default(),
            task_env: Vec::new(),
        }
    }

    fn decode(&mut self, node: &Node, diags: &mut Diagnostics) -> Result<(), Unusable> {
        let fields =
            Fields::new(node, "the project settings", SETTINGS_KEYS, diags).ok_or(Unusable)?;
        if let Some(name) = fields.string("name", diags) {
            self.name = name;
        }
        self.paths.decode(&fields, diags);
        if let Some(m) = fields.string("metadata", diags) {
            self.metadata = Metadata::parse(&m, &self.paths.root);
        }
        if let Some(p) = fields.string("python", diags) {
            self.python = p;
        }
        if let Some(n) = fields.uint("parallelism", diags) {
            self.parallelism = (n as usize).max(1);
        }
        if let Some(node) = fields.get("pools") {
            self.pools = pools(node, diags);
        }
        if let Some(node) = fields.get("alerts") {
            self.alert_channels = alert_channels(node, diags)?;
        }
        if let Some(node) = fields.get("statsd") {
            self.statsd = statsd(node, diags)?;
        }
        if let Some(node) = fields.get("lineage") {
            self.lineage = lineage(node, &self.paths.root, &self.name, diags)?;
        }
        if let Some(node) = fields.get("serve") {
            self.serve = serve(node, &self.paths.root, diags)?;
        }
        self.task_env = task_env(&fields, diags);
        Ok(())
    }
}

/// The settings file as a YAML tree.
fn read(root: &Path, diags: &mut Diagnostics) -> Option<Node> {
    let file = root.join(SETTINGS_FILE);
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => {
            diags.push(
                Diagnostic::file(
                    file.display().to_string(),
                    format!("cannot read the project settings: {e}"),
                )
                .hint(format!(
                    "run sluice in a project folder, pass --project DIR, or create one with `sluice init {}`",
                    root.display()
                )),
            );
            return None;
        }
    };
    match yaml::parse(SETTINGS_FILE.into(), &text) {
        Ok(n) => Some(n),
        Err(e) => {
            diags.push(e.diagnostic());
            None
        }
    }
}

/// `pools: { name: slots }`.
fn pools(node: &Node, diags: &mut Diagnostics) -> BTreeMap<String, u32> {
    let mut pools = BTreeMap::new();
    let Value::Map(entries) = &node.value else {
        diags.push(
            Diagnostic::new(&node.span, "`pools` maps pool names to their slots")
                .hint("e.g. `pools: { warehouse: 4, api: 2 }`"),
        );
        return pools;
    };
    for (k, v) in entries {
        let name = k.scalar_text().unwrap_or_default();
        match v.value {
            Value::Int(n) if n >= 1 && n <= u32::MAX as i64 => {
                pools.insert(name, n as u32);
            }
            _ => diags.push(
                Diagnostic::new(
                    &v.span,
                    format!("pool `{name}` must have a whole number of slots ≥ 1"),
                )
                .hint("e.g. `pools: { warehouse: 4 }`"),
            ),
        }
    }
    pools
}

/// `alerts: { name: channel }`; a channel with problems is left out.
fn alert_channels(
    node: &Node,
    diags: &mut Diagnostics,
) -> Result<BTreeMap<String, AlertChannel>, Unusable> {
    let Value::Map(entries) = &node.value else {
        diags.push(
            Diagnostic::new(
                &node.span,
                "`alerts` maps channel names to a webhook or a command",
            )
            .hint(
                "e.g. `alerts: { ops: { webhook: \"https://hooks.example.com/x\", slack: true } }`",
            ),
        );
        return Err(Unusable);
    };
    Ok(entries
        .iter()
        .filter_map(|(k, v)| {
            let name = k.scalar_text().unwrap_or_default();
            let channel = alert_channel(&name, v, diags)?;
            Some((name, channel))
        })
        .collect())
}

/// One channel: `{ webhook, slack }`, `{ command }` or `{ email: { smtp, from, to } }`.
fn alert_channel(name: &str, node: &Node, diags: &mut Diagnostics) -> Option<AlertChannel> {
    let what = format!("alert channel `{name}`");
    let f = Fields::new(
        node,
        &what,
        &["webhook", "slack", "command", "email"],
        diags,
    )?;
    match (
        f.string("webhook", diags),
        f.string("command", diags),
        f.get("email"),
    ) {
        (Some(url), None, None) => Some(AlertChannel::Webhook {
            url,
            slack: f.bool("slack", diags).unwrap_or(false),
        }),
        (None, Some(command), None) => Some(AlertChannel::Command { command }),
        (None, None, Some(email)) => email_channel(&what, email, diags),
        _ => {
            diags.push(
                Diagnostic::new(
                    &node.span,
                    format!("{what} needs one of `webhook`, `command` or `email`"),
                )
                .hint("e.g. `{ webhook: \"https://…\" }` or `{ command: \"notify-oncall\" }`"),
            );
            None
        }
    }
}

/// `email: { smtp, from, to }` of the channel `what`.
fn email_channel(what: &str, node: &Node, diags: &mut Diagnostics) -> Option<AlertChannel> {
    let e = Fields::new(
        node,
        &format!("{what}'s `email`"),
        &["smtp", "from", "to"],
        diags,
    )?;
    let to: Vec<String> = e
        .string_list("to", diags)
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    match (e.string("smtp", diags), e.string("from", diags)) {
        (Some(smtp), Some(from)) if !to.is_empty() => Some(AlertChannel::Email { smtp, from, to }),
        _ => {
            diags.push(
                Diagnostic::new(&node.span, format!("{what}'s `email` needs `smtp`, `from` and `to`"))
                    .hint("e.g. `email: { smtp: \"smtp://127.0.0.1:25\", from: sluice@example.com, to: [oncall@example.com] }`"),
            );
            None
        }
    }
}

/// `statsd: { host, port, prefix }`, host and port defaulting to a local agent.
fn task_env(fields: &Fields<'_>, diags: &mut Diagnostics) -> Vec<String> {
    let mut names = Vec::new();
    for (name, at) in fields.string_list("task_env", diags) {
        let bare = name.strip_suffix('*').unwrap_or(&name);
        let valid = bare
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
        if name.starts_with("SLUICE_") {
            diags.push(
                Diagnostic::new(&at.span, format!("`{name}` would give tasks Sluice's own settings and secrets"))
                    .hint("tasks get SLUICE_DS, SLUICE_RUN_ID and the other run variables anyway; pass a value a task needs through its `env:`"),
            );
        } else if !valid || (bare.is_empty() && !name.ends_with('*')) {
            diags.push(
                Diagnostic::new(&at.span, format!("`{name}` is not an environment variable name"))
                    .hint("e.g. `task_env: [AWS_PROFILE, PIP_*]` (a trailing `*` allows every name with that prefix)"),
            );
        } else {
            names.push(name);
        }
    }
    names
}

fn serve(node: &Node, root: &Path, diags: &mut Diagnostics) -> Result<ServeSettings, Unusable> {
    let f = Fields::new(
        node,
        "`serve`",
        &["allowed_hosts", "max_backfill_intervals", "tls"],
        diags,
    )
    .ok_or(Unusable)?;
    let mut serve = ServeSettings::default();
    if let Some(tls) = f.get("tls") {
        let t = Fields::new(tls, "`serve.tls`", &["cert", "key"], diags).ok_or(Unusable)?;
        match (t.string("cert", diags), t.string("key", diags)) {
            (Some(cert), Some(key)) => {
                serve.tls = Some(ServeTls {
                    cert: root.join(cert),
                    key: root.join(key),
                })
            }
            _ => diags.push(
                Diagnostic::new(&tls.span, "`serve.tls` needs `cert` and `key`")
                    .hint("PEM files: `tls: { cert: certs/server.pem, key: certs/server.key }` (the chain, then its private key)"),
            ),
        }
    }
    for (host, at) in f.string_list("allowed_hosts", diags) {
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if valid {
            serve.allowed_hosts.push(host.to_ascii_lowercase());
        } else {
            diags.push(
                Diagnostic::new(&at.span, format!("`{host}` is not a host name"))
                    .hint("give the name browsers use for the server, without scheme or port, e.g. `sluice.example.com`"),
            );
        }
    }
    if let Some(n) = f.uint("max_backfill_intervals", diags) {
        if n == 0 {
            diags.push(
                Diagnostic::new(
                    &f.get("max_backfill_intervals").expect("read").span,
                    "`max_backfill_intervals` must be at least 1",
                )
                .hint("the default is 10000"),
            );
        } else {
            serve.max_backfill_intervals = n;
        }
    }
    Ok(serve)
}

fn statsd(node: &Node, diags: &mut Diagnostics) -> Result<Option<Statsd>, Unusable> {
    let f = Fields::new(node, "`statsd`", &["host", "port", "prefix"], diags).ok_or(Unusable)?;
    let host = f
        .string("host", diags)
        .unwrap_or_else(|| "127.0.0.1".into());
    let port = f.uint("port", diags).unwrap_or(8125);
    match u16::try_from(port) {
        Ok(port) => Ok(Some(Statsd {
            host,
            port,
            prefix: f.string("prefix", diags),
        })),
        Err(_) => {
            diags.push(
                Diagnostic::new(
                    &f.get("port").expect("given").span,
                    "`port` must be at most 65535",
                )
                .hint("DogStatsD listens on 8125 by default"),
            );
            Ok(None)
        }
    }
}

/// `lineage: { file | url, namespace }`; the namespace defaults to `project`, the project's name.
fn lineage(
    node: &Node,
    root: &Path,
    project: &str,
    diags: &mut Diagnostics,
) -> Result<Option<LineageSettings>, Unusable> {
    let f = Fields::new(node, "`lineage`", &["file", "url", "namespace"], diags).ok_or(Unusable)?;
    let target = match (f.string("file", diags), f.string("url", diags)) {
        (Some(file), None) => LineageTarget::File(root.join(file)),
        (None, Some(url)) if url.starts_with("http://") || url.starts_with("https://") => {
            LineageTarget::Http(url)
        }
        (None, Some(url)) => {
            diags.push(
                Diagnostic::new(
                    &f.get("url").expect("given").span,
                    format!(
                        "`{}` is not an http:// or https:// URL",
                        crate::secrets::redact_uri_text(&url)
                    ),
                )
                .hint("e.g. `url: http://127.0.0.1:5000` for Marquez"),
            );
            return Ok(None);
        }
        _ => {
            diags.push(
                Diagnostic::new(
                    &node.span,
                    "`lineage` needs exactly one of `file` (NDJSON) or `url` (an OpenLineage endpoint)",
                )
                .hint("e.g. `lineage: { file: lineage.ndjson }` or `lineage: { url: http://127.0.0.1:5000 }`"),
            );
            return Ok(None);
        }
    };
    Ok(Some(LineageSettings {
        namespace: f
            .string("namespace", diags)
            .unwrap_or_else(|| project.to_string()),
        target,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connections::Connections;
    use crate::project::Project;
    use crate::task::KindRegistry;

    /// A project folder holding `sluice.yaml` (and `connections.yaml`, when given).
    fn project(settings: &str, connections: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SETTINGS_FILE), settings).unwrap();
        if let Some(c) = connections {
            std::fs::write(dir.path().join("connections.yaml"), c).unwrap();
        }
        dir
    }

    fn load(settings: &str, env: &[(&str, &str)]) -> (Option<Settings>, Vec<String>) {
        let dir = project(settings, None);
        let mut diags = Diagnostics::default();
        let loaded = Settings::load(
            dir.path(),
            &Environment::from_vars(env.iter().copied()),
            &mut diags,
        );
        (loaded, diags.0.iter().map(ToString::to_string).collect())
    }

    fn settings(text: &str, env: &[(&str, &str)]) -> Settings {
        let (settings, diags) = load(text, env);
        assert_eq!(diags, Vec::<String>::new(), "settings:\n{text}");
        settings.expect("no problems, so settings")
    }

    #[test]
    fn sluice_metadata_overrides_metadata_in_the_settings_file() {
        let url = "postgres://sluice:pw@db/meta";
        let s = settings("metadata: from_file.db\n", &[(METADATA_ENV, url)]);
        assert_eq!(s.metadata, Metadata::Postgres(url.into()));
        // Relative SQLite paths in the variable are under the project, like the file's.
        let s = settings(
            "metadata: from_file.db\n",
            &[(METADATA_ENV, "sqlite://env.db")],
        );
        assert_eq!(s.metadata, Metadata::Sqlite(s.paths.root.join("env.db")));
        // Unset or empty: the file decides, else the default.
        for env in [&[][..], &[(METADATA_ENV, "")][..]] {
            let s = settings("metadata: from_file.db\n", env);
            assert_eq!(
                s.metadata,
                Metadata::Sqlite(s.paths.root.join("from_file.db"))
            );
            let s = settings("name: x\n", env);
            assert_eq!(
                s.metadata,
                Metadata::Sqlite(s.paths.state.join("metadata.db"))
            );
        }
        // Also when sluice.yaml is empty.
        let s = settings("", &[(METADATA_ENV, url)]);
        assert_eq!(s.metadata, Metadata::Postgres(url.into()));
    }

    #[test]
    fn sluice_python_is_the_interpreter_unless_the_settings_file_names_one() {
        assert_eq!(
            settings("", &[(PYTHON_ENV, "/opt/py/bin/python")]).python,
            "/opt/py/bin/python"
        );
        assert_eq!(
            settings("name: x\n", &[(PYTHON_ENV, "/opt/py/bin/python")]).python,
            "/opt/py/bin/python"
        );
        assert_eq!(
            settings("python: py3.12\n", &[(PYTHON_ENV, "/opt/py/bin/python")]).python,
            "py3.12"
        );
        assert_eq!(settings("name: x\n", &[]).python, "python3");
        assert_eq!(settings("name: x\n", &[(PYTHON_ENV, "")]).python, "python3");
    }

    #[test]
    fn sluice_api_token_is_read_for_the_binary_and_changes_no_setting() {
        let env = Environment::from_vars([(API_TOKEN_ENV, "s3cret-token")]);
        assert_eq!(env.api_token(), Some("s3cret-token"));
        assert_eq!(
            Environment::from_vars([(API_TOKEN_ENV, "")]).api_token(),
            None
        );
        assert_eq!(Environment::from_vars([("PATH", "/bin")]).api_token(), None);
        let s = settings("name: x\n", &[(API_TOKEN_ENV, "s3cret-token")]);
        assert!(!format!("{s:?}").contains("s3cret-token"));
    }

    #[test]
    fn sluice_conn_variables_replace_connections_of_the_same_name() {
        let dir = project(
            "name: x\n",
            Some("shop: postgres://file@h/shop\nkeep: postgres://file@h/keep\n"),
        );
        let env = Environment::from_vars([
            ("SLUICE_CONN_SHOP", "postgres://env@h/shop"),
            ("SLUICE_CONN_NEW", "mysql://env@h/new"),
            ("SLUICE_PROJECT", "/elsewhere"),
        ]);
        let mut diags = Diagnostics::default();
        let conns = Connections::load(dir.path(), env.connection_vars(), &mut diags);
        assert!(diags.is_empty(), "{diags:?}");
        let uri = |name: &str| conns.get(name).map(|c| c.expose_uri().to_string());
        assert_eq!(uri("shop").as_deref(), Some("postgres://env@h/shop"));
        assert_eq!(uri("keep").as_deref(), Some("postgres://file@h/keep"));
        assert_eq!(uri("new").as_deref(), Some("mysql://env@h/new"));
        // An empty one is a mistake, not an unset variable.
        let env = Environment::from_vars([("SLUICE_CONN_SHOP", "")]);
        let mut diags = Diagnostics::default();
        Connections::load(dir.path(), env.connection_vars(), &mut diags);
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert_eq!(diags.0[0].file, "$SLUICE_CONN_SHOP");
    }

    #[test]
    fn a_warehouse_connection_from_the_environment_wins_over_the_settings_file() {
        let dir = project("warehouse: duckdb://file.duckdb\n", None);
        let kinds = |_: &Settings, _: &Connections| KindRegistry::default();
        let root = std::path::absolute(dir.path()).unwrap();
        let plain = Project::load_with(dir.path(), &Environment::default(), kinds)
            .ok()
            .unwrap();
        assert_eq!(plain.paths.warehouse, root.join("file.duckdb"));
        let env = Environment::from_vars([("SLUICE_CONN_WAREHOUSE", "duckdb://env.duckdb")]);
        let project = Project::load_with(dir.path(), &env, kinds).ok().unwrap();
        assert_eq!(project.paths.warehouse, root.join("env.duckdb"));
        assert_eq!(project.settings.paths.warehouse, root.join("env.duckdb"));
    }

    #[test]
    fn the_environment_debug_shows_no_value_that_may_be_secret() {
        let env = Environment::from_vars([
            (METADATA_ENV, "postgres://u:metapw@h/db"),
            (API_TOKEN_ENV, "tokenpw"),
            ("SLUICE_CONN_SHOP", "postgres://u:connpw@h/db"),
            (PYTHON_ENV, "/opt/python"),
        ]);
        let shown = format!("{env:?}");
        for secret in ["metapw", "tokenpw", "connpw"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(
            shown.contains("SLUICE_CONN_SHOP") && shown.contains("/opt/python"),
            "{shown}"
        );
    }

    #[test]
    fn every_section_decodes() {
        let s = settings(
            r#"name: full
warehouse: duckdb://w.duckdb
lake: file://lk
python: py3
parallelism: 0
pools: { a: 2 }
alerts:
  ops: { webhook: "http://x", slack: true }
  cmd: { command: echo }
  mail: { email: { smtp: "smtp://h:25", from: a@b, to: [c@d, e@f] } }
statsd: { host: h, port: 9, prefix: p }
lineage: { file: l.ndjson }
serve: { allowed_hosts: [Sluice.Example.com, dw-1], max_backfill_intervals: 50, tls: { cert: c.pem, key: k.pem } }
task_env: [AWS_PROFILE, PIP_*]
"#,
            &[],
        );
        let root = s.paths.root.clone();
        assert_eq!(s.name, "full");
        assert_eq!(s.paths.warehouse, root.join("w.duckdb"));
        assert_eq!(s.paths.lake, root.join("lk"));
        assert_eq!(s.paths.state, root.join(".sluice"));
        assert_eq!(s.python, "py3");
        assert_eq!(s.parallelism, 1);
        assert_eq!(s.pools, BTreeMap::from([("a".to_string(), 2)]));
        assert_eq!(
            s.alert_channels,
            BTreeMap::from([
                (
                    "cmd".to_string(),
                    AlertChannel::Command {
                        command: "echo".into()
                    }
                ),
                (
                    "mail".to_string(),
                    AlertChannel::Email {
                        smtp: "smtp://h:25".into(),
                        from: "a@b".into(),
                        to: vec!["c@d".into(), "e@f".into()],
                    }
                ),
                (
                    "ops".to_string(),
                    AlertChannel::Webhook {
                        url: "http://x".into(),
                        slack: true
                    }
                ),
            ])
        );
        assert_eq!(
            s.statsd,
            Some(Statsd {
                host: "h".into(),
                port: 9,
                prefix: Some("p".into())
            })
        );
        assert_eq!(
            s.lineage,
            Some(LineageSettings {
                namespace: "full".into(),
                target: LineageTarget::File(root.join("l.ndjson"))
            })
        );
        assert_eq!(s.task_env, ["AWS_PROFILE", "PIP_*"]);
        assert_eq!(
            s.serve,
            ServeSettings {
                allowed_hosts: vec!["sluice.example.com".into(), "dw-1".into()],
                max_backfill_intervals: 50,
                tls: Some(ServeTls {
                    cert: root.join("c.pem"),
                    key: root.join("k.pem")
                }),
            }
        );
        let s = settings(
            "lineage: { url: \"https://x\", namespace: n }\nstatsd: {}\n",
            &[],
        );
        assert_eq!(
            s.lineage,
            Some(LineageSettings {
                namespace: "n".into(),
                target: LineageTarget::Http("https://x".into())
            })
        );
        assert_eq!(
            s.statsd,
            Some(Statsd {
                host: "127.0.0.1".into(),
                port: 8125,
                prefix: None
            })
        );
    }

    #[test]
    fn problems_are_reported_at_their_place() {
        let cases: &[(&str, &[&str])] = &[
            (
                "nmae: x\npools: [1]\nalerts:\n  x: {}\n  y: { webhook: a, command: b }\n  z: { email: { smtp: s } }\n  w: 3\n  v: { webhook: a, slak: true }\nstatsd: { port: 70000 }\nlineage: { url: \"ftp://x\" }\n",
                &[
                    "sluice.yaml:1:1: error: unknown key `nmae` in the project settings\n  hint: did you mean `name`?",
                    "sluice.yaml:2:8: error: `pools` maps pool names to their slots\n  hint: e.g. `pools: { warehouse: 4, api: 2 }`",
                    "sluice.yaml:4:6: error: alert channel `x` needs one of `webhook`, `command` or `email`\n  hint: e.g. `{ webhook: \"https://…\" }` or `{ command: \"notify-oncall\" }`",
                    "sluice.yaml:5:6: error: alert channel `y` needs one of `webhook`, `command` or `email`\n  hint: e.g. `{ webhook: \"https://…\" }` or `{ command: \"notify-oncall\" }`",
                    "sluice.yaml:6:15: error: alert channel `z`'s `email` needs `smtp`, `from` and `to`\n  hint: e.g. `email: { smtp: \"smtp://127.0.0.1:25\", from: sluice@example.com, to: [oncall@example.com] }`",
                    "sluice.yaml:7:6: error: alert channel `w` must be a mapping of keys to values, found an integer",
                    "sluice.yaml:8:20: error: unknown key `slak` in alert channel `v`\n  hint: did you mean `slack`?",
                    "sluice.yaml:9:17: error: `port` must be at most 65535\n  hint: DogStatsD listens on 8125 by default",
                    "sluice.yaml:10:17: error: `ftp://x` is not an http:// or https:// URL\n  hint: e.g. `url: http://127.0.0.1:5000` for Marquez",
                ],
            ),
            // A section that is not a mapping ends the reading: `statsd` is not looked at.
            (
                "alerts: [a]\nstatsd: { port: 70000 }\n",
                &[
                    "sluice.yaml:1:9: error: `alerts` maps channel names to a webhook or a command\n  hint: e.g. `alerts: { ops: { webhook: \"https://hooks.example.com/x\", slack: true } }`",
                ],
            ),
            (
                "statsd: 3\nlineage: {}\n",
                &[
                    "sluice.yaml:1:9: error: `statsd` must be a mapping of keys to values, found an integer",
                ],
            ),
            (
                "serve: { allowed_hosts: [\"http://x.org\", \"\"], max_backfill_intervals: 0 }\n",
                &[
                    "sluice.yaml:1:26: error: `http://x.org` is not a host name\n  hint: give the name browsers use for the server, without scheme or port, e.g. `sluice.example.com`",
                    "sluice.yaml:1:42: error: `` is not a host name\n  hint: give the name browsers use for the server, without scheme or port, e.g. `sluice.example.com`",
                    "sluice.yaml:1:71: error: `max_backfill_intervals` must be at least 1\n  hint: the default is 10000",
                ],
            ),
            (
                "task_env: [SLUICE_API_TOKEN, \"9X\", \"A-B\"]\n",
                &[
                    "sluice.yaml:1:12: error: `SLUICE_API_TOKEN` would give tasks Sluice's own settings and secrets\n  hint: tasks get SLUICE_DS, SLUICE_RUN_ID and the other run variables anyway; pass a value a task needs through its `env:`",
                    "sluice.yaml:1:30: error: `9X` is not an environment variable name\n  hint: e.g. `task_env: [AWS_PROFILE, PIP_*]` (a trailing `*` allows every name with that prefix)",
                    "sluice.yaml:1:36: error: `A-B` is not an environment variable name\n  hint: e.g. `task_env: [AWS_PROFILE, PIP_*]` (a trailing `*` allows every name with that prefix)",
                ],
            ),
            (
                "lineage: { file: a, url: \"http://b\" }\n",
                &[
                    "sluice.yaml:1:10: error: `lineage` needs exactly one of `file` (NDJSON) or `url` (an OpenLineage endpoint)\n  hint: e.g. `lineage: { file: lineage.ndjson }` or `lineage: { url: http://127.0.0.1:5000 }`",
                ],
            ),
            (
                "pools: { a: 0, b: x, c: 5000000000, d: 1 }\n",
                &[
                    "sluice.yaml:1:13: error: pool `a` must have a whole number of slots ≥ 1\n  hint: e.g. `pools: { warehouse: 4 }`",
                    "sluice.yaml:1:19: error: pool `b` must have a whole number of slots ≥ 1\n  hint: e.g. `pools: { warehouse: 4 }`",
                    "sluice.yaml:1:25: error: pool `c` must have a whole number of slots ≥ 1\n  hint: e.g. `pools: { warehouse: 4 }`",
                ],
            ),
            (
                "name: [1]\nwarehouse: 3\nparallelism: -1\npython: {a: 1}\nmetadata: []\n",
                &[
                    "sluice.yaml:1:7: error: `name` must be a string, found a list",
                    "sluice.yaml:5:11: error: `metadata` must be a string, found a list",
                    "sluice.yaml:4:9: error: `python` must be a string, found a mapping",
                    "sluice.yaml:3:14: error: `parallelism` must be a whole number ≥ 0, found `-1`",
                ],
            ),
            (
                "- a\n",
                &[
                    "sluice.yaml:1:1: error: the project settings must be a mapping of keys to values, found a list",
                ],
            ),
            (
                "name: [a",
                &[
                    "sluice.yaml:2:1: error: YAML syntax error: while parsing a flow sequence, expected ',' or ']'\n  hint: check the indentation and that quotes and brackets are closed",
                ],
            ),
        ];
        for (text, expected) in cases {
            let (_, diags) = load(text, &[]);
            assert_eq!(&diags, expected, "settings:\n{text}");
        }
    }

    #[test]
    fn tasks_inherit_the_base_variables_and_the_allowed_ones_never_sluices() {
        // SAFETY: this test alone sets these names; no other thread reads them.
        #[allow(unsafe_code, reason = "set_var: a test's own variables")]
        unsafe {
            std::env::set_var("SLUICE_TEST_SECRET", "s");
            std::env::set_var("PIPX_TEST_ALLOWED", "a");
            std::env::set_var("OTHER_TEST_SECRET", "o");
        }
        let names = |allowed: &[String]| -> Vec<String> {
            inherited_env(allowed)
                .into_iter()
                .map(|(k, _)| k.to_string_lossy().into_owned())
                .collect()
        };
        let base = names(&[]);
        assert!(base.contains(&"PATH".to_string()), "{base:?}");
        assert!(
            !base
                .iter()
                .any(|n| n.ends_with("_TEST_SECRET") || n == "PIPX_TEST_ALLOWED")
        );
        let allowed = names(&["PIPX_*".into(), "SLUICE_TEST_SECRET".into()]);
        assert!(allowed.contains(&"PIPX_TEST_ALLOWED".to_string()));
        assert!(
            !allowed.iter().any(|n| n.ends_with("_TEST_SECRET")),
            "{allowed:?}"
        );
    }

    #[test]
    fn a_missing_settings_file_says_how_to_make_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut diags = Diagnostics::default();
        assert!(Settings::load(dir.path(), &Environment::default(), &mut diags).is_none());
        let d = &diags.0[0];
        assert_eq!((d.line, d.col), (1, 1));
        assert!(d.file.ends_with("sluice.yaml"), "{d}");
        assert!(
            d.message.starts_with("cannot read the project settings: "),
            "{d}"
        );
        assert!(
            d.hint
                .as_deref()
                .unwrap_or_default()
                .contains("sluice init"),
            "{d}"
        );
    }
}
