//! A project: a folder with `sluice.yaml` and `pipelines/`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::connections::{Connections, WAREHOUSE};
use crate::decode::Fields;
use crate::diag::{Diagnostic, Diagnostics};
use crate::pipeline::{self, Pipeline};
use crate::task::KindRegistry;
use crate::yaml;

pub const SETTINGS_FILE: &str = "sluice.yaml";
pub const PIPELINES_DIR: &str = "pipelines";

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
}

/// `sluice.yaml`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub name: String,
    pub paths: ProjectPaths,
    /// The Python interpreter for `python` tasks.
    pub python: String,
    /// Tasks one run may execute at the same time.
    pub parallelism: usize,
    /// Named pools and their slots: tasks naming a pool share its slots across runs.
    pub pools: std::collections::BTreeMap<String, u32>,
    /// Where to send DogStatsD metrics, if anywhere.
    pub statsd: Option<Statsd>,
    /// Named alert channels (`alerts:`), chosen by `alert:` on pipelines and tasks.
    pub alert_channels: std::collections::BTreeMap<String, AlertChannel>,
    /// The metadata database (`metadata:`, overridden by `SLUICE_METADATA`).
    pub metadata: Metadata,
    /// Where OpenLineage run events go (`lineage:`), if anywhere.
    pub lineage: Option<LineageSettings>,
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
impl std::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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
];

impl Settings {
    /// Reads `sluice.yaml` from `root`. Problems are diagnostics; defaults fill what is missing.
    pub fn load(root: &Path, diags: &mut Diagnostics) -> Option<Settings> {
        let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
        let file = root.join(SETTINGS_FILE);
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                diags.push(
                    Diagnostic {
                        file: file.display().to_string(),
                        line: 1,
                        col: 1,
                        message: format!("cannot read the project settings: {e}"),
                        hint: None,
                    }
                    .hint(format!(
                        "run sluice in a project folder, pass --project DIR, or create one with `sluice init {}`",
                        root.display()
                    )),
                );
                return None;
            }
        };
        let node = match yaml::parse(SETTINGS_FILE.into(), &text) {
            Ok(n) => n,
            Err(e) => {
                diags.push(e.diagnostic());
                return None;
            }
        };
        let default_name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "sluice".into());
        let mut settings = Settings {
            name: default_name,
            paths: ProjectPaths {
                lake: root.join("lake"),
                state: root.join(".sluice"),
                warehouse: root.join("warehouse.duckdb"),
                root: root.clone(),
            },
            python: std::env::var("SLUICE_PYTHON").unwrap_or_else(|_| "python3".into()),
            parallelism: 16,
            pools: Default::default(),
            statsd: None,
            alert_channels: Default::default(),
            metadata: Metadata::Sqlite(root.join(".sluice").join("metadata.db")),
            lineage: None,
        };
        if node.is_null() {
            return Some(settings);
        }
        let fields = Fields::new(&node, "the project settings", SETTINGS_KEYS, diags)?;
        if let Some(name) = fields.string("name", diags) {
            settings.name = name;
        }
        let path_of = |text: &str, scheme: &str| -> PathBuf {
            let t = text.strip_prefix(scheme).unwrap_or(text);
            root.join(t)
        };
        if let Some(w) = fields.string("warehouse", diags) {
            settings.paths.warehouse = path_of(&w, "duckdb://");
        }
        if let Some(l) = fields.string("lake", diags) {
            settings.paths.lake = path_of(&l, "file://");
        }
        if let Some(m) = fields.string("metadata", diags) {
            settings.metadata = Metadata::parse(&m, &root);
        }
        if let Some(p) = fields.string("python", diags) {
            settings.python = p;
        }
        if let Some(n) = fields.uint("parallelism", diags) {
            settings.parallelism = (n as usize).max(1);
        }
        if let Some(node) = fields.get("pools") {
            match &node.value {
                crate::yaml::Value::Map(entries) => {
                    for (k, v) in entries {
                        let name = k.scalar_text().unwrap_or_default();
                        match v.value {
                            crate::yaml::Value::Int(n) if n >= 1 && n <= u32::MAX as i64 => {
                                settings.pools.insert(name, n as u32);
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
                }
                _ => diags.push(
                    Diagnostic::new(&node.span, "`pools` maps pool names to their slots")
                        .hint("e.g. `pools: { warehouse: 4, api: 2 }`"),
                ),
            }
        }
        if let Some(node) = fields.get("alerts") {
            let crate::yaml::Value::Map(entries) = &node.value else {
                diags.push(
                    Diagnostic::new(&node.span, "`alerts` maps channel names to a webhook or a command")
                        .hint("e.g. `alerts: { ops: { webhook: \"https://hooks.example.com/x\", slack: true } }`"),
                );
                return None;
            };
            for (k, v) in entries {
                let name = k.scalar_text().unwrap_or_default();
                let what = format!("alert channel `{name}`");
                let Some(f) =
                    Fields::new(v, &what, &["webhook", "slack", "command", "email"], diags)
                else {
                    continue;
                };
                let channel = match (
                    f.string("webhook", diags),
                    f.string("command", diags),
                    f.get("email"),
                ) {
                    (Some(url), None, None) => AlertChannel::Webhook {
                        url,
                        slack: f.bool("slack", diags).unwrap_or(false),
                    },
                    (None, Some(command), None) => AlertChannel::Command { command },
                    (None, None, Some(node)) => {
                        let Some(e) = Fields::new(
                            node,
                            &format!("{what}'s `email`"),
                            &["smtp", "from", "to"],
                            diags,
                        ) else {
                            continue;
                        };
                        let to: Vec<String> = e
                            .string_list("to", diags)
                            .into_iter()
                            .map(|(t, _)| t)
                            .collect();
                        match (e.string("smtp", diags), e.string("from", diags)) {
                            (Some(smtp), Some(from)) if !to.is_empty() => {
                                AlertChannel::Email { smtp, from, to }
                            }
                            _ => {
                                diags.push(
                                    Diagnostic::new(&node.span, format!("{what}'s `email` needs `smtp`, `from` and `to`"))
                                        .hint("e.g. `email: { smtp: \"smtp://127.0.0.1:25\", from: sluice@example.com, to: [oncall@example.com] }`"),
                                );
                                continue;
                            }
                        }
                    }
                    _ => {
                        diags.push(
                            Diagnostic::new(&v.span, format!("{what} needs one of `webhook`, `command` or `email`"))
                                .hint("e.g. `{ webhook: \"https://…\" }` or `{ command: \"notify-oncall\" }`"),
                        );
                        continue;
                    }
                };
                settings.alert_channels.insert(name, channel);
            }
        }
        if let Some(node) = fields.get("statsd") {
            let f = Fields::new(node, "`statsd`", &["host", "port", "prefix"], diags)?;
            let host = f
                .string("host", diags)
                .unwrap_or_else(|| "127.0.0.1".into());
            let port = f.uint("port", diags).unwrap_or(8125);
            match u16::try_from(port) {
                Ok(port) => {
                    settings.statsd = Some(Statsd {
                        host,
                        port,
                        prefix: f.string("prefix", diags),
                    })
                }
                Err(_) => diags.push(
                    Diagnostic::new(
                        &f.get("port").expect("given").span,
                        "`port` must be at most 65535",
                    )
                    .hint("DogStatsD listens on 8125 by default"),
                ),
            }
        }
        if let Some(node) = fields.get("lineage") {
            let f = Fields::new(node, "`lineage`", &["file", "url", "namespace"], diags)?;
            let target = match (f.string("file", diags), f.string("url", diags)) {
                (Some(file), None) => Some(LineageTarget::File(root.join(file))),
                (None, Some(url)) if url.starts_with("http://") || url.starts_with("https://") => {
                    Some(LineageTarget::Http(url))
                }
                (None, Some(url)) => {
                    diags.push(
                        Diagnostic::new(
                            &f.get("url").expect("given").span,
                            format!("`{url}` is not an http:// or https:// URL"),
                        )
                        .hint("e.g. `url: http://127.0.0.1:5000` for Marquez"),
                    );
                    None
                }
                _ => {
                    diags.push(
                        Diagnostic::new(
                            &node.span,
                            "`lineage` needs exactly one of `file` (NDJSON) or `url` (an OpenLineage endpoint)",
                        )
                        .hint("e.g. `lineage: { file: lineage.ndjson }` or `lineage: { url: http://127.0.0.1:5000 }`"),
                    );
                    None
                }
            };
            if let Some(target) = target {
                settings.lineage = Some(LineageSettings {
                    namespace: f
                        .string("namespace", diags)
                        .unwrap_or_else(|| settings.name.clone()),
                    target,
                });
            }
        }
        Some(settings)
    }
}

/// A loaded project: its settings, the pipelines that are valid, and every problem found.
pub struct Project {
    pub settings: Settings,
    pub paths: Arc<ProjectPaths>,
    pub connections: Connections,
    pub pipelines: Vec<Pipeline>,
    /// Valid stream files (`stream:`), run by `sluice stream` and `sluice serve`.
    pub streams: Vec<crate::stream::Stream>,
    pub diagnostics: Vec<Diagnostic>,
    /// Pipeline ids per file, including files that had problems (so `sluice run` can tell a
    /// broken pipeline from an unknown one).
    pub files: HashMap<String, PathBuf>,
}

impl Project {
    /// Loads the settings, the connections and every pipeline file, with the task kinds
    /// `kinds` builds from them. Fails only when the settings are unusable.
    pub fn load(
        root: &Path,
        kinds: impl FnOnce(&Settings, &Connections) -> KindRegistry,
    ) -> Result<Project, Vec<Diagnostic>> {
        let mut diags = Diagnostics::default();
        let Some(mut settings) = Settings::load(root, &mut diags) else {
            return Err(diags.0);
        };
        if !diags.is_empty() {
            return Err(diags.0);
        }
        if let Ok(m) = std::env::var("SLUICE_METADATA")
            && !m.is_empty()
        {
            settings.metadata = Metadata::parse(&m, &settings.paths.root);
        }
        let connections = Connections::load(&settings.paths.root, std::env::vars(), &mut diags);
        // A `warehouse` connection replaces the settings' warehouse.
        if let Some(w) = connections.get(WAREHOUSE) {
            match w.duckdb_path(&settings.paths.root) {
                Some(path) => settings.paths.warehouse = path,
                None => diags.push(
                    w.origin
                        .diagnostic(format!(
                            "the `warehouse` connection is {}; the embedded warehouse is DuckDB",
                            w.kind.name()
                        ))
                        .hint("point `warehouse` at a duckdb:// URI, or give this connection another name"),
                ),
            }
        }
        let kinds = kinds(&settings, &connections);
        let kinds = &kinds;
        let paths = Arc::new(settings.paths.clone());
        let dir = paths.root.join(PIPELINES_DIR);
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect(),
            Err(_) => Vec::new(),
        };
        files.sort();

        let mut pipelines: Vec<Pipeline> = Vec::new();
        let mut streams: Vec<crate::stream::Stream> = Vec::new();
        let mut ids: HashMap<String, PathBuf> = HashMap::new();
        for file in files {
            let display = paths.display(&file).into_owned();
            let mut file_diags = Diagnostics::default();
            let loaded = match std::fs::read_to_string(&file) {
                Ok(text)
                    if yaml::parse(display.as_str().into(), &text)
                        .is_ok_and(|root| crate::stream::is_stream_file(&root)) =>
                {
                    if let Some(stream) =
                        crate::stream::load_file(&display, &text, &connections, &mut file_diags)
                    {
                        if let Some(other) = ids.get(&stream.id) {
                            file_diags.push(
                                Diagnostic::new(
                                    &stream.span,
                                    format!(
                                        "`{}` is also the name of a pipeline or stream in {}",
                                        stream.id,
                                        paths.display(other)
                                    ),
                                )
                                .hint(
                                    "pipeline and stream names must be unique across the project",
                                ),
                            );
                        } else {
                            ids.insert(stream.id.clone(), file.clone());
                            streams.push(stream);
                        }
                    }
                    pipeline::LoadedFile::default()
                }
                Ok(text) => pipeline::load_file(&display, &text, &paths, kinds, &mut file_diags),
                Err(e) => {
                    file_diags.push(Diagnostic {
                        file: display.clone(),
                        line: 1,
                        col: 1,
                        message: format!("cannot read the file: {e}"),
                        hint: None,
                    });
                    pipeline::LoadedFile::default()
                }
            };
            for id in &loaded.ids {
                if let Some(other) = ids.get(id)
                    && other != &file
                {
                    file_diags.push(
                        Diagnostic {
                            file: display.clone(),
                            line: 1,
                            col: 1,
                            message: format!(
                                "pipeline `{id}` is also defined in {}",
                                paths.display(other)
                            ),
                            hint: None,
                        }
                        .hint("pipeline ids must be unique across the project"),
                    );
                    continue;
                }
                ids.insert(id.clone(), file.clone());
            }
            for p in &loaded.pipelines {
                let mut reported = std::collections::HashSet::new();
                for t in &p.tasks {
                    for channel in t.alert.channels() {
                        if !settings.alert_channels.contains_key(channel)
                            && reported.insert(channel.clone())
                        {
                            let known: Vec<&str> =
                                settings.alert_channels.keys().map(String::as_str).collect();
                            let hint = crate::diag::did_you_mean(channel, known.iter().copied()).unwrap_or_else(|| {
                                format!("define it in sluice.yaml: `alerts: {{ {channel}: {{ webhook: \"https://…\" }} }}`")
                            });
                            file_diags.push(
                                Diagnostic::new(&t.span, format!("task `{}` alerts channel `{channel}`, which sluice.yaml does not define", t.id))
                                    .hint(hint),
                            );
                        }
                    }
                    if let Some(pool) = t.pool.as_ref().filter(|n| !settings.pools.contains_key(*n))
                    {
                        let known: Vec<&str> = settings.pools.keys().map(String::as_str).collect();
                        let hint = crate::diag::did_you_mean(pool, known.iter().copied())
                            .unwrap_or_else(|| {
                                format!("define it in sluice.yaml: `pools: {{ {pool}: 4 }}`")
                            });
                        file_diags.push(
                            Diagnostic::new(&t.span, format!("task `{}` takes a slot of pool `{pool}`, which sluice.yaml does not define", t.id))
                                .hint(hint),
                        );
                    }
                }
            }
            if file_diags.is_empty() {
                pipelines.extend(loaded.pipelines);
            } else {
                file_diags
                    .0
                    .sort_by_key(|d| (d.file.clone(), d.line, d.col));
                diags.0.extend(file_diags.0);
            }
        }
        Ok(Project {
            settings,
            paths,
            connections,
            pipelines,
            streams,
            diagnostics: diags.0,
            files: ids,
        })
    }

    pub fn pipeline(&self, id: &str) -> Option<&Pipeline> {
        self.pipelines.iter().find(|p| p.id == id)
    }
}
