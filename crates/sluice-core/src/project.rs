//! A project: a folder with `sluice.yaml` and `pipelines/`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::connections::{ConnectionKind, Connections, WAREHOUSE};
use crate::diag::{Diagnostic, Diagnostics, did_you_mean};
use crate::pipeline::{self, LoadedFile, Pipeline};
use crate::secrets::{self, Redactor};
use crate::settings::{AlertChannel, Environment, LineageTarget, Metadata, ProjectPaths, Settings};
use crate::stream::{self, Stream};
use crate::task::KindRegistry;
use crate::yaml;

pub const PIPELINES_DIR: &str = "pipelines";

/// A loaded project: its settings, the pipelines that are valid, and every problem found.
pub struct Project {
    pub settings: Settings,
    pub paths: Arc<ProjectPaths>,
    pub connections: Connections,
    pub pipelines: Vec<Pipeline>,
    /// Valid stream files (`stream:`), run by `sluice stream` and `sluice serve`.
    pub streams: Vec<Stream>,
    pub diagnostics: Vec<Diagnostic>,
    /// Pipeline ids per file, including files that had problems (so `sluice run` can tell a
    /// broken pipeline from an unknown one).
    pub files: HashMap<String, PathBuf>,
    /// Knows every secret of this project and of the environment it was loaded under; every
    /// text the process prints, logs, stores, serves or sends passes through it.
    pub redactor: Arc<Redactor>,
}

impl Project {
    /// The diagnostics that are errors (the others are warnings).
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }

    /// Loads the settings, the connections and every pipeline file, with the task kinds
    /// `kinds` builds from them, under this process's environment. Fails only when the
    /// settings are unusable.
    pub fn load(
        root: &Path,
        kinds: impl FnOnce(&Settings, &Connections) -> KindRegistry,
    ) -> Result<Project, Vec<Diagnostic>> {
        Project::load_with(root, Environment::process(), kinds)
    }

    /// [`Project::load`] under the environment `env`.
    pub fn load_with(
        root: &Path,
        env: &Environment,
        kinds: impl FnOnce(&Settings, &Connections) -> KindRegistry,
    ) -> Result<Project, Vec<Diagnostic>> {
        let mut diags = Diagnostics::default();
        let Some(mut settings) = Settings::load(root, env, &mut diags) else {
            return Err(diags.0);
        };
        if !diags.is_empty() {
            return Err(diags.0);
        }
        let connections =
            Connections::load(&settings.paths.root, env.connection_vars(), &mut diags);
        use_warehouse_connection(&mut settings.paths, &connections, &mut diags);
        let kinds = kinds(&settings, &connections);
        let paths = Arc::new(settings.paths.clone());
        let mut contents = Contents::default();
        for file in pipeline_files(&paths.root.join(PIPELINES_DIR)) {
            let mut file_diags = Diagnostics::default();
            let loaded = contents.read(&file, &paths, &connections, &kinds, &mut file_diags);
            contents.claim_ids(&file, &loaded.ids, &paths, &mut file_diags);
            for p in &loaded.pipelines {
                undefined_alerts_and_pools(p, &settings, &mut file_diags);
            }
            if file_diags.is_empty() {
                contents.pipelines.extend(loaded.pipelines);
            }
            file_diags
                .0
                .sort_by_key(|d| (d.file.clone(), d.line, d.col));
            diags.0.extend(file_diags.0);
        }
        let redactor = known_secrets(&settings, env, &connections, &contents);
        Ok(Project {
            settings,
            paths,
            connections,
            pipelines: contents.pipelines,
            streams: contents.streams,
            diagnostics: diags.0,
            files: contents.ids,
            redactor: Arc::new(redactor),
        })
    }

    pub fn pipeline(&self, id: &str) -> Option<&Pipeline> {
        self.pipelines.iter().find(|p| p.id == id)
    }
}

/// Every secret a process that loaded this project holds: connection passwords and secret
/// parameters, the metadata URL's password, the API token, alert webhook URLs (a Slack-style
/// webhook's URL is itself the credential) and SMTP passwords, the lineage endpoint's
/// credentials, credentials written into task configurations (HTTP headers, environment
/// variables), and streams' (Kafka properties, the schema registry URL).
fn known_secrets(
    settings: &Settings,
    env: &Environment,
    connections: &Connections,
    contents: &Contents,
) -> Redactor {
    let mut redactor = connections.redactor().merged(&env.redactor());
    if let Metadata::Postgres(url) = &settings.metadata {
        redactor = redactor.with_uri(url);
    }
    for channel in settings.alert_channels.values() {
        redactor = match channel {
            AlertChannel::Webhook { url, .. } => redactor.with([url.clone()]).with_uri(url),
            AlertChannel::Email { smtp, .. } => redactor.with_uri(smtp),
            AlertChannel::Command { .. } => redactor,
        };
    }
    if let Some(LineageTarget::Http(url)) = settings.lineage.as_ref().map(|l| &l.target) {
        redactor = redactor.with_uri(url);
    }
    for task in contents.pipelines.iter().flat_map(|p| &p.tasks) {
        redactor = redactor.with(task.action.secrets());
    }
    for source in contents.streams.iter().map(|s| &s.source) {
        if let Some(registry) = &source.schema_registry {
            redactor = redactor.with_uri(registry);
        }
        let properties = source.properties.iter();
        redactor = redactor.with(
            properties
                .filter(|(name, _)| secrets::is_secret_name(name))
                .map(|(_, value)| value.clone()),
        );
    }
    redactor
}

/// A `warehouse` connection replaces the settings' warehouse: a duckdb:// one moves the
/// embedded warehouse; a PostgreSQL or MySQL one becomes the warehouse the task kinds use for
/// `warehouse` (loads, `sql` without `on:`, validation of tables, quarantine).
fn use_warehouse_connection(
    paths: &mut ProjectPaths,
    connections: &Connections,
    diags: &mut Diagnostics,
) {
    let Some(w) = connections.get(WAREHOUSE) else {
        return;
    };
    if let Some(path) = w.duckdb_path(&paths.root) {
        paths.warehouse = path;
    } else if !matches!(w.kind, ConnectionKind::Postgres | ConnectionKind::MySql) {
        diags.push(
            w.origin
                .diagnostic(format!(
                    "the `warehouse` connection is {}; a warehouse is DuckDB, PostgreSQL or \
                     MySQL/MariaDB",
                    w.kind.name()
                ))
                .hint("point `warehouse` at a duckdb://, postgres:// or mysql:// URI, or give this connection another name"),
        );
    }
}

/// The YAML files of `dir`, sorted; none when it cannot be read.
fn pipeline_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

/// What the files under `pipelines/` yielded so far.
#[derive(Default)]
struct Contents {
    pipelines: Vec<Pipeline>,
    streams: Vec<Stream>,
    /// Every pipeline and stream id, with the file that defines it first.
    ids: HashMap<String, PathBuf>,
}

impl Contents {
    /// Reads and parses `file` once, then decodes it as a stream file or a pipeline file. A
    /// valid stream is kept at once; the pipelines are returned for the checks that follow.
    fn read(
        &mut self,
        file: &Path,
        paths: &ProjectPaths,
        connections: &Connections,
        kinds: &KindRegistry,
        diags: &mut Diagnostics,
    ) -> LoadedFile {
        let display = paths.display(file).into_owned();
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                diags.push(Diagnostic::file(
                    display,
                    format!("cannot read the file: {e}"),
                ));
                return LoadedFile::default();
            }
        };
        let root = match yaml::parse(display.as_str().into(), &text) {
            Ok(root) => root,
            Err(e) => {
                diags.push(e.diagnostic());
                return LoadedFile::default();
            }
        };
        if !stream::is_stream_file(&root) {
            return pipeline::decode_file(&display, &root, paths, kinds, diags);
        }
        if let Some(stream) = stream::decode_file(&display, &root, connections, diags) {
            self.add_stream(stream, file, paths, diags);
        }
        LoadedFile::default()
    }

    fn add_stream(
        &mut self,
        stream: Stream,
        file: &Path,
        paths: &ProjectPaths,
        diags: &mut Diagnostics,
    ) {
        if let Some(other) = self.ids.get(&stream.id) {
            diags.push(
                Diagnostic::new(
                    &stream.span,
                    format!(
                        "`{}` is also the name of a pipeline or stream in {}",
                        stream.id,
                        paths.display(other)
                    ),
                )
                .hint("pipeline and stream names must be unique across the project"),
            );
            return;
        }
        self.ids.insert(stream.id.clone(), file.to_path_buf());
        self.streams.push(stream);
    }

    /// Records the pipeline ids `file` defines; an id another file defined first is reported.
    fn claim_ids(
        &mut self,
        file: &Path,
        ids: &[String],
        paths: &ProjectPaths,
        diags: &mut Diagnostics,
    ) {
        for id in ids {
            if let Some(other) = self.ids.get(id)
                && other != file
            {
                diags.push(
                    Diagnostic::file(
                        paths.display(file),
                        format!(
                            "pipeline `{id}` is also defined in {}",
                            paths.display(other)
                        ),
                    )
                    .hint("pipeline ids must be unique across the project"),
                );
                continue;
            }
            self.ids.insert(id.clone(), file.to_path_buf());
        }
    }
}

/// Alert channels and pools that tasks name but sluice.yaml does not define (a channel once
/// per pipeline).
fn undefined_alerts_and_pools(pipeline: &Pipeline, settings: &Settings, diags: &mut Diagnostics) {
    let mut reported = HashSet::new();
    for t in &pipeline.tasks {
        for channel in t.alert.channels() {
            if !settings.alert_channels.contains_key(channel) && reported.insert(channel.clone()) {
                let known = settings.alert_channels.keys().map(String::as_str);
                let hint = did_you_mean(channel, known).unwrap_or_else(|| {
                    format!("define it in sluice.yaml: `alerts: {{ {channel}: {{ webhook: \"https://…\" }} }}`")
                });
                diags.push(
                    Diagnostic::new(&t.span, format!("task `{}` alerts channel `{channel}`, which sluice.yaml does not define", t.id))
                        .hint(hint),
                );
            }
        }
        if let Some(pool) = t.pool.as_ref().filter(|n| !settings.pools.contains_key(*n)) {
            let known = settings.pools.keys().map(String::as_str);
            let hint = did_you_mean(pool, known)
                .unwrap_or_else(|| format!("define it in sluice.yaml: `pools: {{ {pool}: 4 }}`"));
            diags.push(
                Diagnostic::new(&t.span, format!("task `{}` takes a slot of pool `{pool}`, which sluice.yaml does not define", t.id))
                    .hint(hint),
            );
        }
    }
}
