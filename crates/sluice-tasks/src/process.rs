//! Child processes for `shell` and `python` tasks: one process group per try, output into the
//! try's log (secrets masked), and the whole group stopped when the try is cancelled or abandoned.

use std::ffi::OsString;
use std::process::ExitStatus;
use std::time::Duration;

use sluice_core::{TaskError, TaskLog, TaskRun};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

/// How long a process group has to exit after SIGTERM before it gets SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);

/// Kills the process group when dropped while armed: a try whose future is dropped never leaves
/// processes behind.
struct GroupGuard {
    pgid: Option<i32>,
}

impl GroupGuard {
    fn signal(&self, sig: i32) {
        if let Some(pgid) = self.pgid {
            // SAFETY: kill(2) with a negative pid signals a process group; it has no memory effects.
            #[allow(unsafe_code, reason = "libc::kill: the process group has no safe API")]
            unsafe {
                libc::kill(-pgid, sig);
            }
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
    }
}

/// Copies a child's output into the try's log line by line, through the log's redactor: a
/// script that prints a connection URI does not leak its password into the log.
fn copy_lines(
    pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    log: TaskLog,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf);
                    log.line(text.trim_end_matches(['\n', '\r']));
                }
            }
        }
    })
}

/// Runs `cmd` to completion with stdout and stderr appended to the try's log. On cancellation,
/// the process group gets SIGTERM, then SIGKILL after a grace period.
pub async fn run(
    mut cmd: Command,
    run: &TaskRun,
    stdin: Option<Vec<u8>>,
) -> Result<ExitStatus, TaskError> {
    cmd.process_group(0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| TaskError::failed(format!("cannot start the process: {e}")))?;
    let mut guard = GroupGuard {
        pgid: child.id().map(|id| id as i32),
    };
    let readers = [
        child.stdout.take().map(|p| copy_lines(p, run.log.clone())),
        child.stderr.take().map(|p| copy_lines(p, run.log.clone())),
    ];
    // Output still in the pipes when the process exits is copied; a background process that
    // keeps the pipes open does not hold the task.
    let drain = || async {
        for reader in readers.into_iter().flatten() {
            let abort = reader.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), reader)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    };
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(&bytes)
            .await
            .map_err(|e| TaskError::failed(format!("cannot write to the process's input: {e}")))?;
        drop(pipe);
    }
    tokio::select! {
        status = child.wait() => {
            let status = status.map_err(|e| TaskError::failed(format!("lost the process: {e}")))?;
            guard.pgid = None;
            drain().await;
            Ok(status)
        }
        _ = run.cancel.cancelled() => {
            run.log.line("stopping: sending SIGTERM to the task's processes");
            guard.signal(libc::SIGTERM);
            if tokio::time::timeout(TERM_GRACE, child.wait()).await.is_err() {
                run.log.line(format!("still running after {}s: sending SIGKILL", TERM_GRACE.as_secs()));
            }
            drop(guard);
            drain().await;
            Err(TaskError::failed("stopped"))
        }
    }
}

/// `exit status 3` / `killed by signal 9`.
pub fn describe_status(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "an unknown status".into(),
    }
}

/// The environment every process task gets, so scripts can read the run's context without
/// templating (Airflow sets `AIRFLOW_CTX_*` the same way).
/// A task process's whole environment: what it inherits (`inherited`, from
/// [`sluice_core::settings::inherited_env`]) and the run's variables — nothing else of Sluice's
/// own environment (its API token, metadata URL, connections).
pub fn task_env(cmd: &mut Command, inherited: &[(OsString, OsString)], run: &TaskRun) {
    cmd.env_clear();
    cmd.envs(inherited.iter().map(|(k, v)| (k, v)));
    cmd.envs(context_env(run));
}

fn context_env(run: &TaskRun) -> Vec<(String, String)> {
    let t = &run.template;
    vec![
        ("SLUICE_PIPELINE".into(), t.pipeline.clone()),
        ("SLUICE_TASK".into(), t.task.clone()),
        ("SLUICE_RUN_ID".into(), t.run_id.clone()),
        ("SLUICE_TRY_NUMBER".into(), t.try_number.to_string()),
        ("SLUICE_DS".into(), t.ds.clone()),
        ("SLUICE_LOGICAL_DATE".into(), t.logical_date.clone()),
        (
            "SLUICE_DATA_INTERVAL_START".into(),
            t.data_interval_start.clone(),
        ),
        (
            "SLUICE_DATA_INTERVAL_END".into(),
            t.data_interval_end.clone(),
        ),
        ("SLUICE_PROJECT_DIR".into(), t.project_dir.clone()),
        ("SLUICE_LAKE_ROOT".into(), t.lake_root.clone()),
    ]
}
