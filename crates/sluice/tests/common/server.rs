//! A `sluice serve` process driven through its REST API.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{TestProject, free_port, sluice_bin};

/// A `sluice serve` process, stopped with SIGTERM when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub token: Option<String>,
    pub rt: tokio::runtime::Runtime,
    pub http: reqwest::Client,
}

impl Server {
    pub fn start(p: &TestProject, token: Option<&str>) -> Server {
        Server::start_with(p, token, &[])
    }

    /// With more arguments for `sluice serve` (`--workers`).
    pub fn start_with(p: &TestProject, token: Option<&str>, args: &[&str]) -> Server {
        let port = free_port();
        let mut cmd = Server::command(p, port);
        cmd.args(args).env_remove("SLUICE_API_TOKEN");
        if let Some(t) = token {
            cmd.env("SLUICE_API_TOKEN", t);
        }
        Server::spawn(cmd, port, token)
    }

    /// `sluice serve` of project `p` on `port`, its output discarded: for a test to add its
    /// own environment or output files before `spawn`.
    pub fn command(p: &TestProject, port: u16) -> Command {
        let mut cmd = Command::new(sluice_bin());
        cmd.args(["serve", "--addr", &format!("127.0.0.1:{port}"), "--project"])
            .arg(p.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }

    /// Starts `cmd` (from `command`) and waits until its API answers; `token` is what the
    /// server was given, sent with every request.
    pub fn spawn(mut cmd: Command, port: u16, token: Option<&str>) -> Server {
        let server = Server {
            child: cmd.spawn().expect("start sluice serve"),
            base: format!("http://127.0.0.1:{port}"),
            token: token.map(String::from),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            http: reqwest::Client::new(),
        };
        server.wait_for("the API to answer", || {
            server.try_get("/api/openapi.json").is_some()
        });
        server
    }

    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> (u16, String) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token.or(self.token.as_deref()) {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        self.rt.block_on(async {
            let resp = req.send().await.expect("request");
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap_or_default())
        })
    }

    pub fn try_get(&self, path: &str) -> Option<Value> {
        let req = self.http.get(format!("{}{path}", self.base));
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        self.rt.block_on(async {
            let resp = req.send().await.ok()?;
            resp.json().await.ok()
        })
    }

    pub fn get(&self, path: &str) -> Value {
        let (status, text) = self.request(reqwest::Method::GET, path, None, None);
        assert_eq!(status, 200, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let (status, text) =
            self.request(reqwest::Method::POST, path, Some(&body.to_string()), None);
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub fn wait_for(&self, what: &str, ready: impl FnMut() -> bool) {
        self.wait_up_to(Duration::from_secs(30), what, ready)
    }

    pub fn wait_up_to(&self, limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !ready() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The outcomes of a task's tries in run `run` (by store id), oldest first.
    pub fn try_outcomes(&self, run: i64, task: &str) -> Vec<String> {
        self.get(&format!("/api/runs/{run}/tasks/{task}/tries"))["tries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["outcome"].as_str().unwrap().to_string())
            .collect()
    }

    pub fn runs(&self, pipeline: &str) -> Vec<Value> {
        self.get(&format!("/api/pipelines/{pipeline}/runs"))["runs"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Stops the server with SIGTERM and returns its exit code.
    pub fn stop(mut self) -> Option<i32> {
        sluice_testkit::send_signal(self.child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "sluice serve did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
