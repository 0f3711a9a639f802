//! What only the binary's tests share: a `sluice serve` process, Kafka brokers and producers,
//! run JSON readers; projects, databases and ports come from sluice-testkit.
#![allow(
    dead_code,
    reason = "each topic file uses a part of the shared helpers"
)]

pub mod kafka;
pub mod server;
pub mod tansu;

use std::path::Path;
use std::process::Command;

pub use sluice_testkit::net::free_port;
pub use sluice_testkit::pg;
pub use sluice_testkit::project::{Outcome, TestProject, outcome, sluice_bin};

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

/// Every file under `dir`, recursively (none when it does not exist).
pub fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}
