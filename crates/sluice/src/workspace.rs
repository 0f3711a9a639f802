//! The project a command works on: settings, pipelines, task kinds, store and warehouse.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use chrono::NaiveDate;
use sluice_core::diag::did_you_mean;
use sluice_core::{DataInterval, Metadata, Pipeline, Project};
use sluice_store::Store;

use crate::{Global, UsageError, usage};

pub struct Workspace {
    pub project: Project,
}

impl Workspace {
    /// Loads the project; unusable settings are a usage error (exit 2).
    pub fn load(global: &Global) -> anyhow::Result<Workspace> {
        let dir = global.project_dir();
        let project = load_project(&dir).map_err(|diags| {
            let text: Vec<String> = diags.iter().map(ToString::to_string).collect();
            UsageError(text.join("\n"))
        })?;
        Ok(Workspace { project })
    }

    pub fn store(&self) -> anyhow::Result<Arc<Store>> {
        Ok(Arc::new(open_store(&self.project.settings.metadata)?))
    }

    /// The named pipeline; a broken file, an unknown name or a problem with the project's own
    /// settings or connections (what `sluice check` reports outside the pipeline files) is a
    /// usage error: a run never proceeds on a configuration `check` rejects.
    pub fn pipeline(&self, id: &str) -> anyhow::Result<&Pipeline> {
        if let Some(p) = self.project.pipeline(id) {
            let project_wide = self.project_wide_problems();
            if !project_wide.is_empty() {
                return usage(format!(
                    "pipeline `{id}` cannot run: the project's settings have problems (see \
                     `sluice check`)\n{}",
                    project_wide.join("\n")
                ));
            }
            return Ok(p);
        }
        if let Some(file) = self.project.files.get(id) {
            let file = self.project.paths.display(file).into_owned();
            let problems: Vec<String> = self
                .project
                .errors()
                .filter(|d| d.file == file)
                .map(ToString::to_string)
                .collect();
            return usage(format!(
                "pipeline `{id}` cannot run: its file has problems\n{}",
                problems.join("\n")
            ));
        }
        let known: Vec<&str> = self
            .project
            .pipelines
            .iter()
            .map(|p| p.id.as_str())
            .collect();
        let hint = did_you_mean(id, known.iter().copied())
            .unwrap_or_else(|| format!("pipelines in this project: {}", known.join(", ")));
        usage(format!("unknown pipeline `{id}`\n  hint: {hint}"))
    }
}

impl Workspace {
    /// Problems outside the files under `pipelines/` (sluice.yaml, connections, the
    /// environment): they concern every pipeline.
    fn project_wide_problems(&self) -> Vec<String> {
        let project = &self.project;
        let pipelines = project.paths.root.join(sluice_core::project::PIPELINES_DIR);
        let pipelines = project.paths.display(&pipelines);
        project
            .errors()
            .filter(|d| !Path::new(&d.file).starts_with(pipelines.as_ref()))
            .map(ToString::to_string)
            .collect()
    }
}

/// Loads the project at `root` with every task kind; its secrets join the process's
/// redactor, whatever the command does next.
pub fn load_project(root: &Path) -> Result<Project, Vec<sluice_core::Diagnostic>> {
    let project = Project::load(root, sluice_tasks::registry)?;
    crate::secrets::learn(&project.redactor);
    Ok(project)
}

/// Opens the metadata database the settings name.
pub fn open_store(metadata: &Metadata) -> anyhow::Result<Store> {
    match metadata {
        Metadata::Sqlite(path) => Store::open(path)
            .with_context(|| format!("opening the metadata database {}", path.display())),
        // The store's errors name the URL with its password masked.
        Metadata::Postgres(url) => Ok(Store::connect(url)?),
    }
}

pub fn parse_date(text: &str) -> anyhow::Result<NaiveDate> {
    sluice_core::schedule::parse_date(text).or_else(usage)
}

/// The interval a command means by `--date` (a logical date in the pipeline's time zone), or
/// without it the latest complete one.
pub fn interval_for(p: &Pipeline, date: Option<&str>) -> anyhow::Result<DataInterval> {
    match date {
        Some(d) => {
            let day = parse_date(d)?;
            p.timetable.interval_for_date(day).or_else(|e| {
                usage(format!(
                    "{e}\n  hint: pick a date on which `{}` has a scheduled interval",
                    p.id
                ))
            })
        }
        None => match p.timetable.latest_complete(chrono::Utc::now()) {
            Some(i) => Ok(i),
            None => usage(format!(
                "`{}` has no complete interval yet ({})\n  hint: pass --date YYYY-MM-DD",
                p.id,
                p.timetable.schedule.describe()
            )),
        },
    }
}

/// Modification time and size of every file that defines the project: what `sluice serve` and
/// `sluice worker` compare to notice that the project must be loaded again.
pub type Fingerprint = Vec<(PathBuf, SystemTime, u64)>;

pub fn fingerprint(root: &Path) -> Fingerprint {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                // Data and state change all the time and define nothing.
                if dir != root || ["pipelines", "sql", "suites", "python"].contains(&name.as_ref())
                {
                    dirs.push(path);
                }
            } else if dir != root || name.ends_with(".yaml") || name.ends_with(".yml") {
                out.push((
                    path,
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    meta.len(),
                ));
            }
        }
    }
    out.sort();
    out
}
