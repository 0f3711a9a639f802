//! The boundary between the executor and the kinds of task (`sql`, `shell`, `python`, …).
//!
//! A [`TaskKind`] reads its own section of a task (`sql: {...}`) at load time, reports problems
//! as diagnostics, and returns a [`TaskAction`]: the checked, ready-to-run work. The executor only
//! ever sees `TaskAction`s, so a new kind is added by implementing these two traits and
//! registering the kind in a [`KindRegistry`]; the executor does not change.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::diag::{Diagnostic, Diagnostics};
use crate::secrets::Redactor;
use crate::settings::ProjectPaths;
use crate::template::{self, TemplateContext, TemplateError};
use crate::yaml::{Node, Span};

/// A kind of task, registered by name (the key that selects it in a task: `sql:`, `shell:`).
pub trait TaskKind: Send + Sync {
    fn name(&self) -> &'static str;

    /// Reads and checks this kind's configuration. Problems go to `cx.diags`; `None` means the
    /// configuration is unusable.
    fn compile(&self, config: &Node, cx: &mut CompileContext<'_>) -> Option<Arc<dyn TaskAction>>;
}

/// The checked work of one task.
pub trait TaskAction: Send + Sync + fmt::Debug {
    /// Runs one try. Must stop promptly (killing processes, interrupting queries) when
    /// `run.cancel` fires or when the returned future is dropped.
    fn run<'a>(&'a self, run: &'a TaskRun) -> BoxFuture<'a, Result<TaskOutput, TaskError>>;

    /// What the task reads and writes. With a context, names are rendered for that try;
    /// without, templated names stay as written (the shape of the graph across runs).
    fn lineage(&self, _template: Option<&TemplateContext>) -> crate::lineage::Lineage {
        crate::lineage::Lineage::default()
    }

    /// Credentials written into the task's configuration (an API key in a header, a token in
    /// an environment variable), so that the process's [`Redactor`] masks them wherever they
    /// turn up. Templated values are left out: they are known only when a try renders them.
    fn secrets(&self) -> Vec<String> {
        Vec::new()
    }
}

/// What a kind sees while checking its configuration.
pub struct CompileContext<'a> {
    pub project: &'a ProjectPaths,
    pub pipeline: &'a str,
    pub task: &'a str,
    /// Placeholder values to try-render templates with.
    pub sample: &'a TemplateContext,
    /// Every task of the pipeline as written (id, body), for kinds that read a sibling's
    /// configuration (a load from an extract's output).
    pub tasks: &'a [(Node, Node)],
    pub diags: &'a mut Diagnostics,
}

impl<'a> CompileContext<'a> {
    /// The value of `key` in the body of task `task`, as written.
    pub fn task_key(&self, task: &str, key: &str) -> Option<&'a Node> {
        let (_, body) = self
            .tasks
            .iter()
            .find(|(id, _)| id.scalar_text().as_deref() == Some(task))?;
        match &body.value {
            crate::yaml::Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The ids of every task of the pipeline.
    pub fn task_ids(&self) -> impl Iterator<Item = String> + '_ {
        self.tasks.iter().filter_map(|(id, _)| id.scalar_text())
    }
}

impl CompileContext<'_> {
    /// Checks a template held in a YAML scalar; reports problems at their place in the file.
    pub fn check_template(&mut self, node: &Node, source: &str) -> bool {
        self.check_template_at(&node.content_span(), source)
    }

    /// Checks a template whose first character is at `span` (a SQL file starts at 1:1).
    pub fn check_template_at(&mut self, span: &Span, source: &str) -> bool {
        match template::check(source, self.sample) {
            Ok(()) => true,
            Err(e) => {
                self.diags.push(template_diagnostic(span, source, &e));
                false
            }
        }
    }
}

/// Places a template error inside the file that holds the template.
pub fn template_diagnostic(span: &Span, source: &str, e: &TemplateError) -> Diagnostic {
    let at = match (e.offset, e.line) {
        (Some(offset), _) if offset <= source.len() => {
            let before = &source[..offset];
            let line = before.matches('\n').count();
            let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count());
            if line == 0 {
                span.shifted(0, col)
            } else {
                span.shifted(line, col + 1)
            }
        }
        (_, Some(line)) if line > 1 => span.shifted(line - 1, 1),
        _ => span.clone(),
    };
    let d = Diagnostic::new(&at, e.message.clone());
    match &e.hint {
        Some(h) => d.hint(h.clone()),
        None => d,
    }
}

/// One try of one task, as its action sees it.
pub struct TaskRun {
    pub project: Arc<ProjectPaths>,
    pub template: TemplateContext,
    pub log: TaskLog,
    pub cancel: CancellationToken,
    /// The task's high-water mark as of the last successful run (incremental extraction).
    pub watermark: Option<String>,
    /// Where the try records bad records and schema changes as they happen.
    pub ledger: Arc<dyn Ledger>,
}

/// Records of a try that must outlive it even when it fails: bad records (the dead-letter
/// store) and schema changes applied to a target.
pub trait Ledger: Send + Sync {
    fn dead_letters(&self, records: &[DeadLetter]) -> Result<(), String>;
    fn schema_changes(&self, changes: &[SchemaChange]) -> Result<(), String>;
}

/// A record that could not be parsed or cast, with where it came from and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The file or URL it was read from.
    pub source: String,
    /// 1-based line in the file, when the format has lines.
    pub line: Option<u64>,
    /// 1-based record number within the source.
    pub row: Option<u64>,
    pub reason: String,
    /// The record as read (raw text).
    pub record: String,
}

/// One change applied to a target table's schema on purpose.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaChange {
    /// `connection:schema.table`.
    pub target: String,
    /// `add_column` or `widen_column`.
    pub change: String,
    pub column: String,
    pub from_type: Option<String>,
    pub to_type: String,
}

/// A ledger that keeps nothing, for tries outside a run (tests, `sluice check`).
#[derive(Debug, Default)]
pub struct NoLedger;

impl Ledger for NoLedger {
    fn dead_letters(&self, _: &[DeadLetter]) -> Result<(), String> {
        Ok(())
    }
    fn schema_changes(&self, _: &[SchemaChange]) -> Result<(), String> {
        Ok(())
    }
}

impl TaskRun {
    pub fn render(&self, source: &str) -> Result<String, TaskError> {
        template::render(source, &self.template).map_err(|e| TaskError::config(e.to_string()))
    }

    /// Renders a template whose text runs on a database of `dialect`: its `sql` and `ident`
    /// filters write that database's SQL.
    pub fn render_for(
        &self,
        dialect: crate::sql::Dialect,
        source: &str,
    ) -> Result<String, TaskError> {
        let context = self.template.clone().in_dialect(dialect);
        template::render(source, &context).map_err(|e| TaskError::config(e.to_string()))
    }
}

#[derive(Debug, Default, Clone)]
pub struct TaskOutput {
    /// Rows the task processed, when it knows.
    pub rows: Option<u64>,
    /// Rows it set aside instead (quarantined, or sent to the dead-letter store).
    pub rejected: Option<u64>,
    /// The new high-water mark; committed only when the whole run succeeds, so a failed run
    /// re-reads the same rows next time.
    pub watermark: Option<String>,
}

/// Why a try failed, and whether trying again can help.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TaskError {
    pub message: String,
    /// `false` for the user's mistakes in configuration (a template that cannot render): retrying
    /// cannot fix them, so the task fails at once.
    pub retryable: bool,
}

impl TaskError {
    pub fn failed(message: impl Into<String>) -> Self {
        TaskError {
            message: message.into(),
            retryable: true,
        }
    }

    pub fn config(message: impl Into<String>) -> Self {
        TaskError {
            message: message.into(),
            retryable: false,
        }
    }
}

/// A try's log file. Actions (and the output of their child processes) write lines to it.
#[derive(Clone)]
pub struct TaskLog {
    path: PathBuf,
    file: Arc<Mutex<File>>,
    redactor: Arc<Redactor>,
}

impl TaskLog {
    /// Opens (appending) a try's log; every line written through it has secrets masked.
    pub fn create(path: PathBuf, redactor: Arc<Redactor>) -> std::io::Result<TaskLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = File::options().create(true).append(true).open(&path)?;
        Ok(TaskLog {
            path,
            file: Arc::new(Mutex::new(file)),
            redactor,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn line(&self, text: impl AsRef<str>) {
        let stamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
        if let Ok(mut f) = self.file.lock() {
            // A log write that fails must not fail the task; the outcome is recorded elsewhere.
            let _ = writeln!(f, "[{stamp}] {}", self.redactor.redact(text.as_ref()));
        }
    }
}

impl fmt::Debug for TaskLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskLog").field("path", &self.path).finish()
    }
}

/// The kinds a project can use, by name.
#[derive(Default, Clone)]
pub struct KindRegistry {
    kinds: BTreeMap<&'static str, Arc<dyn TaskKind>>,
}

impl KindRegistry {
    pub fn register(&mut self, kind: Arc<dyn TaskKind>) {
        self.kinds.insert(kind.name(), kind);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn TaskKind>> {
        self.kinds.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.keys().copied()
    }
}
