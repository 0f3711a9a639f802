//! Drives the real `sluice` binary against a project in a temporary folder.
#![allow(dead_code)]

pub mod kafka;
pub mod pg;
pub mod server;
pub mod tansu;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct TestProject {
    pub dir: tempfile::TempDir,
}

pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub command: String,
}

impl Outcome {
    /// Describes the command and its output, for assertion messages that diagnose themselves.
    pub fn explain(&self) -> String {
        format!(
            "command: {}\nexit code: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.explain()))
    }
}

pub fn sluice_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sluice"))
}

impl TestProject {
    /// An empty project: `sluice.yaml` and an empty `pipelines/`.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("sluice.yaml"), "name: test\n").unwrap();
        std::fs::create_dir_all(dir.path().join("pipelines")).unwrap();
        TestProject { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, content: &str) -> &Self {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
        self
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap_or_default()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(sluice_bin());
        cmd.args(args)
            .arg("--project")
            .arg(self.path())
            .env_remove("SLUICE_PROJECT");
        cmd
    }

    pub fn sluice(&self, args: &[&str]) -> Outcome {
        let output = self.command(args).output().expect("run sluice");
        outcome(args, output)
    }
}

pub fn outcome(args: &[&str], output: Output) -> Outcome {
    Outcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        command: format!("sluice {}", args.join(" ")),
    }
}

/// The state of each task in a run's JSON, as (task, state, tries).
pub fn task_states(run: &serde_json::Value) -> Vec<(String, String, u64)> {
    run["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| {
            (
                t["task"].as_str().unwrap().to_string(),
                t["state"].as_str().unwrap().to_string(),
                t["tries"].as_u64().unwrap(),
            )
        })
        .collect()
}

pub fn state_of(run: &serde_json::Value, task: &str) -> (String, u64) {
    task_states(run)
        .into_iter()
        .find(|(t, _, _)| t == task)
        .map(|(_, s, n)| (s, n))
        .unwrap_or_else(|| panic!("no task {task} in {run}"))
}

/// Whether a process is still running (a zombie waiting to be reaped has stopped running).
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X"))
        }
        Err(_) => false,
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago, for a server a test starts.
/// `sluice init DIR`: the demo project, as a new user creates it.
pub fn init_demo(dir: &Path) {
    let init = Command::new(sluice_bin())
        .arg("init")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTP server on 127.0.0.1 that keeps every JSON body POSTed to `path`; returns the URL of
/// `path` and the bodies received so far.
pub fn json_receiver(
    path: &'static str,
) -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    use std::sync::{Arc, Mutex};
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}{path}", listener.local_addr().unwrap());
    let sink = got.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = axum::Router::new().route(
                path,
                axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
                    let sink = sink.clone();
                    async move {
                        sink.lock().unwrap().push(body);
                        "ok"
                    }
                }),
            );
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (url, got)
}
