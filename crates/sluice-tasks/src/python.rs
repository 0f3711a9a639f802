//! `python`: call `module:function` from the project's Python files in a subprocess, with
//! rendered keyword arguments — the migration path for Airflow `PythonOperator` callables.
//!
//! ```yaml
//! extract:
//!   python: { callable: "sources:extract_from_source", kwargs: { config: "{{ item }}", day: "{{ ds }}" } }
//! ```
//!
//! Keyword arguments are rendered natively: a value that is exactly `{{ expression }}` passes the
//! expression's value (a mapping stays a mapping). Like Airflow, a callable that accepts
//! `**kwargs` also receives the template context (`ds`, `params`, …), and one that names a
//! context variable as a parameter receives it. Modules are looked up in `python/` and in the
//! project folder.

use std::ffi::OsString;
use std::sync::Arc;

use futures::future::BoxFuture;
use sluice_core::decode::Fields;
use sluice_core::task::CompileContext;
use sluice_core::template::render_native;
use sluice_core::yaml::{Node, Value};
use sluice_core::{Diagnostic, TaskAction, TaskError, TaskKind, TaskOutput, TaskRun};
use tokio::process::Command;

use crate::process;

/// Imports the callable, binds arguments the way Airflow does, and writes the return value (or
/// the exception) as JSON to `SLUICE_RESULT_FILE`.
const RUNNER: &str = r#"
import importlib, inspect, json, os, sys, traceback
req = json.load(sys.stdin)
sys.path[:0] = req["path"]
out = os.environ["SLUICE_RESULT_FILE"]
try:
    module_name, _, attr = req["callable"].partition(":")
    fn = importlib.import_module(module_name)
    for part in attr.split("."):
        fn = getattr(fn, part)
    kwargs = dict(req["kwargs"])
    params = inspect.signature(fn).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        for k, v in req["context"].items():
            kwargs.setdefault(k, v)
    else:
        for name in params:
            if name not in kwargs and name in req["context"]:
                kwargs[name] = req["context"][name]
    result = fn(**kwargs)
    with open(out, "w") as f:
        json.dump({"ok": result}, f, default=str)
except BaseException as e:
    traceback.print_exc()
    with open(out, "w") as f:
        json.dump({"error": "".join(traceback.format_exception_only(type(e), e)).strip()}, f)
    sys.exit(1)
"#;

pub struct PythonKind {
    pub interpreter: String,
    /// What the processes inherit of Sluice's environment.
    pub inherited: Arc<Vec<(OsString, OsString)>>,
}

#[derive(Debug)]
struct PythonAction {
    interpreter: String,
    inherited: Arc<Vec<(OsString, OsString)>>,
    callable: String,
    kwargs: serde_json::Value,
}

fn valid_callable(s: &str) -> bool {
    let ident = |p: &str| {
        !p.is_empty()
            && !p.starts_with(|c: char| c.is_ascii_digit())
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    match s.split_once(':') {
        Some((module, func)) => module.split('.').all(ident) && func.split('.').all(ident),
        None => false,
    }
}

impl TaskKind for PythonKind {
    fn name(&self) -> &'static str {
        "python"
    }

    fn compile(&self, config: &Node, cx: &mut CompileContext<'_>) -> Option<Arc<dyn TaskAction>> {
        let (callable_node, kwargs_node) = if config.as_str().is_some() {
            (config, None)
        } else {
            let fields = Fields::new(config, "`python`", &["callable", "kwargs"], cx.diags)?;
            (
                fields.required("callable", "`python`", cx.diags)?,
                fields.get("kwargs"),
            )
        };
        let callable = callable_node.as_str().unwrap_or_default().to_string();
        if !valid_callable(&callable) {
            cx.diags.push(
                Diagnostic::new(&callable_node.span, format!("`{callable}` is not a callable reference"))
                    .hint("write `module:function`, e.g. `etl.sources:extract_orders`, for python/etl/sources.py"),
            );
            return None;
        }
        let module = callable.split(':').next().unwrap_or_default();
        let rel = module.replace('.', "/");
        let roots = [cx.project.root.join("python"), cx.project.root.clone()];
        let found = roots.iter().any(|root| {
            root.join(format!("{rel}.py")).is_file()
                || root.join(&rel).join("__init__.py").is_file()
        });
        if !found {
            cx.diags.push(
                Diagnostic::new(&callable_node.span, format!("Python module `{module}` not found"))
                    .hint(format!("create python/{rel}.py (modules are looked up in python/ and the project folder)")),
            );
            return None;
        }
        let mut ok = true;
        let kwargs = match kwargs_node {
            None => serde_json::Value::Object(Default::default()),
            Some(node) if matches!(node.value, Value::Map(_)) => {
                ok &= check_templates(node, cx);
                node.to_json()
            }
            Some(node) => {
                cx.diags.push(Diagnostic::new(
                    &node.span,
                    "`kwargs` must be a mapping of argument names to values",
                ));
                return None;
            }
        };
        ok.then(|| {
            Arc::new(PythonAction {
                interpreter: self.interpreter.clone(),
                inherited: self.inherited.clone(),
                callable,
                kwargs,
            }) as Arc<dyn TaskAction>
        })
    }
}

fn check_templates(node: &Node, cx: &mut CompileContext<'_>) -> bool {
    // Every template is checked, not only up to the first bad one: all problems are reported.
    match &node.value {
        Value::Str { text, .. } => cx.check_template(node, text),
        Value::Seq(items) => {
            let mut ok = true;
            for item in items {
                ok &= check_templates(item, cx);
            }
            ok
        }
        Value::Map(entries) => {
            let mut ok = true;
            for (_, value) in entries {
                ok &= check_templates(value, cx);
            }
            ok
        }
        _ => true,
    }
}

impl TaskAction for PythonAction {
    fn run<'a>(&'a self, run: &'a TaskRun) -> BoxFuture<'a, Result<TaskOutput, TaskError>> {
        Box::pin(async move {
            let kwargs = render_native(&self.kwargs, &run.template)
                .map_err(|e| TaskError::config(e.to_string()))?;
            let context = serde_json::to_value(&run.template)
                .map_err(|e| TaskError::failed(e.to_string()))?;
            let root = &run.project.root;
            let request = serde_json::json!({
                "callable": self.callable,
                "kwargs": kwargs,
                "context": context,
                "path": [root.join("python"), root],
            });
            let result_file = run.log.path().with_extension("result.json");
            let _ = std::fs::remove_file(&result_file);
            let mut cmd = Command::new(&self.interpreter);
            cmd.arg("-c").arg(RUNNER).current_dir(root);
            process::task_env(&mut cmd, &self.inherited, run);
            cmd.env("SLUICE_RESULT_FILE", &result_file);
            cmd.env("PYTHONUNBUFFERED", "1");
            run.log
                .line(format!("calling {}({})", self.callable, kwargs));
            let status = process::run(cmd, run, Some(request.to_string().into_bytes()))
                .await
                .map_err(|e| {
                    if e.message.starts_with("cannot start") {
                        TaskError::failed(format!(
                            "{} (interpreter `{}`; set `python:` in sluice.yaml or SLUICE_PYTHON)",
                            e.message, self.interpreter
                        ))
                    } else {
                        e
                    }
                })?;
            let result: Option<serde_json::Value> = std::fs::read(&result_file)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            if let Some(err) = result
                .as_ref()
                .and_then(|r| r.get("error"))
                .and_then(|e| e.as_str())
            {
                return Err(TaskError::failed(format!("{} raised {err}", self.callable)));
            }
            if !status.success() {
                return Err(TaskError::failed(format!(
                    "{} failed with {}",
                    self.callable,
                    process::describe_status(&status)
                )));
            }
            let value = result.and_then(|mut r| r.get_mut("ok").map(serde_json::Value::take));
            if let Some(v) = value.as_ref().filter(|v| !v.is_null()) {
                run.log.line(format!("returned {v}"));
            }
            // A callable may report how many rows it handled by returning {"rows": N}.
            let rows = value
                .as_ref()
                .and_then(|v| v.get("rows"))
                .and_then(|r| r.as_u64());
            Ok(TaskOutput {
                rows,
                ..Default::default()
            })
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn callable_references() {
        assert!(super::valid_callable("etl:extract"));
        assert!(super::valid_callable("etl.sources:Loader.run"));
        assert!(!super::valid_callable("etl"));
        assert!(!super::valid_callable("etl:"));
        assert!(!super::valid_callable("1etl:x"));
        assert!(!super::valid_callable("os:system; rm"));
    }
}
