//! `shell`: run a templated command with templated environment variables.
//!
//! ```yaml
//! notify:
//!   shell: { command: "echo loaded {{ ds }}", env: { DAY: "{{ ds }}" } }
//! ```

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use sluice_core::decode::Fields;
use sluice_core::task::CompileContext;
use sluice_core::yaml::{Node, Value};
use sluice_core::{Diagnostic, TaskAction, TaskError, TaskKind, TaskOutput, TaskRun};
use tokio::process::Command;

use crate::process;

/// `inherited`: what the processes inherit of Sluice's environment.
pub struct ShellKind {
    pub inherited: Arc<Vec<(OsString, OsString)>>,
}

#[derive(Debug)]
struct ShellAction {
    inherited: Arc<Vec<(OsString, OsString)>>,
    command: String,
    env: Vec<(String, String)>,
    cwd: Option<String>,
}

impl TaskKind for ShellKind {
    fn name(&self) -> &'static str {
        "shell"
    }

    fn compile(&self, config: &Node, cx: &mut CompileContext<'_>) -> Option<Arc<dyn TaskAction>> {
        if let Some(command) = config.as_str() {
            cx.check_template(config, command);
            return Some(Arc::new(ShellAction {
                inherited: self.inherited.clone(),
                command: command.to_string(),
                env: Vec::new(),
                cwd: None,
            }));
        }
        let fields = Fields::new(config, "`shell`", &["command", "env", "cwd"], cx.diags)?;
        let command_node = fields.required("command", "`shell`", cx.diags)?;
        let Some(command) = command_node.as_str() else {
            cx.diags.push(Diagnostic::new(
                &command_node.span,
                "`command` must be a string",
            ));
            return None;
        };
        let mut ok = cx.check_template(command_node, command);
        let mut env = Vec::new();
        if let Some(env_node) = fields.get("env") {
            match &env_node.value {
                Value::Map(entries) => {
                    for (k, v) in entries {
                        match (k.as_str(), v.scalar_text()) {
                            (Some(name), Some(value)) => {
                                ok &= cx.check_template(v, &value);
                                env.push((name.to_string(), value));
                            }
                            _ => {
                                ok = false;
                                cx.diags.push(Diagnostic::new(
                                    &k.span,
                                    "`env` entries must be NAME: value strings",
                                ));
                            }
                        }
                    }
                }
                _ => {
                    ok = false;
                    cx.diags.push(Diagnostic::new(
                        &env_node.span,
                        "`env` must be a mapping of NAME: value",
                    ));
                }
            }
        }
        let cwd = fields.string("cwd", cx.diags);
        ok.then(|| {
            Arc::new(ShellAction {
                inherited: self.inherited.clone(),
                command: command.to_string(),
                env,
                cwd,
            }) as Arc<dyn TaskAction>
        })
    }
}

impl TaskAction for ShellAction {
    fn secrets(&self) -> Vec<String> {
        crate::configured_secrets(&self.env)
    }

    fn run<'a>(&'a self, run: &'a TaskRun) -> BoxFuture<'a, Result<TaskOutput, TaskError>> {
        Box::pin(async move {
            let command = run.render(&self.command)?;
            let mut cmd = Command::new("/bin/sh");
            cmd.arg("-c").arg(&command);
            let cwd = match &self.cwd {
                Some(dir) => run.project.root.join(run.render(dir)?),
                None => PathBuf::from(&run.project.root),
            };
            cmd.current_dir(cwd);
            process::task_env(&mut cmd, &self.inherited, run);
            for (name, value) in &self.env {
                cmd.env(name, run.render(value)?);
            }
            run.log.line(format!("$ {command}"));
            let status = process::run(cmd, run, None).await?;
            if status.success() {
                Ok(TaskOutput::default())
            } else {
                Err(TaskError::failed(format!(
                    "command failed with {}",
                    process::describe_status(&status)
                )))
            }
        })
    }
}
