//! Secrets of every kind a process holds — a connection's password, a secret query parameter, the
//! metadata URL's password, the API token, an alert webhook's URL, an HTTP header's value and a
//! schema registry's password — driven through real failures (a refused connection, an API that
//! echoes the key it was sent, a script that prints its environment, SQL that quotes them, a
//! webhook nobody answers, a registry URL that does not parse), then looked for in everything
//! Sluice prints, logs, stores, serves and sends. Each place is also checked to hold the masked
//! text, so a secret that never got there cannot make the test pass.

use crate::common;

use std::collections::HashMap;
use std::path::Path;

use common::TestProject;
use common::pg::Database;
use common::server::Server;
use serde_json::json;

const CONN_PW: &str = "conn-Pw-7c1e";
const PARAM: &str = "param-Tok-93b2";
const META_PW: &str = "meta-Pw-4f0a";
const API_TOKEN: &str = "api-Tok-58d1";
/// The distinctive part of the webhook nobody answers (its whole URL is the secret).
const HOOK_PATH: &str = "hook-Path-b7e3";
const HEADER: &str = "hdr-Key-2a6c";
const REGISTRY_PW: &str = "reg-Pw-61f9";

/// What the runs' tasks do: print their environment, read an API that echoes its key, connect
/// where nothing listens, and run SQL that quotes every secret it is given.
fn leaky_pipeline(quoted: &[&str], dead_hook: &str) -> String {
    format!(
        r#"
pipeline: leaky
schedule: "@daily"
start_date: 2024-01-01
alert: {{ failure: [ops, dead, cmd] }}
tasks:
  dump:
    shell: {{ command: "env | sort; echo 'header {HEADER} hook {dead_hook}'; exit 3" }}
  pull:
    extract:
      from: {{ connection: api, path: /orders, headers: {{ X-Api-Key: "{HEADER}", X-Tenant: tenant-lit-77 }}, retries: 0 }}
      to: "lake://orders/{{{{ ds }}}}.parquet"
  read_src:
    extract:
      from: {{ connection: src, query: "select 1 as one" }}
      to: "lake://src/{{{{ ds }}}}.parquet"
  leak:
    sql: "CREATE TABLE leaked AS SELECT error('cannot go on: {}') AS x"
"#,
        quoted.join(" ")
    )
}

/// An Avro stream whose registry URL holds a password and a port no URL may have.
const STREAM: &str = r#"
stream: events
source:
  kafka:
    brokers: "127.0.0.1:1"
    topic: events
    group: g
    format: avro
    schema_registry: "http://reg:reg-Pw-61f9@127.0.0.1:99999"
require: [id]
sink: { into: warehouse, table: events }
"#;

/// An API that refuses every request and echoes the key it was sent, as careless servers do.
fn echoing_api(rt: &tokio::runtime::Runtime) -> String {
    use axum::extract::Query;
    use axum::http::{HeaderMap, StatusCode};
    let app = axum::Router::new().route(
        "/v1/orders",
        axum::routing::get(
            |Query(q): Query<HashMap<String, String>>, headers: HeaderMap| async move {
                let header = headers.get("x-api-key").and_then(|v| v.to_str().ok());
                let param = q.get("api_key").map(String::as_str);
                (
                    StatusCode::UNAUTHORIZED,
                    format!(
                        "bad credentials: api_key={} x-api-key={}",
                        param.unwrap_or_default(),
                        header.unwrap_or_default()
                    ),
                )
            },
        ),
    );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/v1?api_key={PARAM}")
}

/// What was looked at, by name, and the secrets none of it may hold.
struct Evidence {
    secrets: Vec<String>,
    seen: Vec<(String, Vec<u8>)>,
}

impl Evidence {
    fn new(secrets: &[&str]) -> Evidence {
        Evidence {
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
            seen: Vec::new(),
        }
    }

    fn keep(&mut self, what: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.seen.push((what.into(), bytes.into()));
    }

    fn keep_outcome(&mut self, what: &str, out: &common::Outcome) {
        self.keep(format!("{what}: stdout"), out.stdout.clone());
        self.keep(format!("{what}: stderr"), out.stderr.clone());
    }

    fn keep_files(&mut self, dir: &Path) {
        for file in common::files_under(dir) {
            let bytes = std::fs::read(&file).unwrap_or_default();
            self.keep(file.display().to_string(), bytes);
        }
    }

    /// Everything kept under names containing `what`, as text.
    fn text_of(&self, what: &str) -> String {
        self.seen
            .iter()
            .filter(|(name, _)| name.contains(what))
            .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `what` holds `masked`: the secret got there, and was masked.
    fn shows(&self, what: &str, masked: &str) {
        let text = self.text_of(what);
        assert!(
            text.contains(masked),
            "{what} does not show `{masked}`:\n{text}"
        );
    }

    /// `what` (which must exist) holds none of `names`.
    fn lacks(&self, what: &str, names: &[&str]) {
        let text = self.text_of(what);
        assert!(!text.is_empty(), "nothing kept as {what}");
        for name in names {
            assert!(!text.contains(name), "{what} holds `{name}`:\n{text}");
        }
    }

    fn assert_clean(&self) {
        assert!(!self.seen.is_empty());
        for (what, bytes) in &self.seen {
            for secret in &self.secrets {
                let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
                assert!(
                    !found,
                    "{what} holds the secret `{secret}`:\n{}",
                    String::from_utf8_lossy(bytes)
                );
            }
        }
    }
}

#[test]
fn no_secret_reaches_output_logs_store_api_lineage_alerts_or_stream_errors() {
    let leaky = Leaky::new();
    // `sluice run` with its metadata in SQLite: every kind but the metadata URL's password.
    let held = [
        CONN_PW,
        PARAM,
        API_TOKEN,
        HOOK_PATH,
        leaky.hook.as_str(),
        HEADER,
        REGISTRY_PW,
    ];
    let quoted = [
        CONN_PW,
        PARAM,
        API_TOKEN,
        leaky.dead_hook.as_str(),
        leaky.hook.as_str(),
        HEADER,
    ];
    leaky.write_pipeline(&quoted);
    let seen = leaky.cli_evidence(&held);
    cli_shows_masked(&seen);
    seen.assert_clean();

    // `sluice serve` with its metadata on PostgreSQL, behind the token: every kind.
    let db = Database::create("secrets");
    let metadata = db.url.replace("postgres@", &format!("postgres:{META_PW}@"));
    let all = [held.as_slice(), &[META_PW]].concat();
    let quoted = [quoted.as_slice(), &[metadata.as_str()]].concat();
    leaky.write_pipeline(&quoted);
    let served = leaky.served_evidence(&all, &db, &metadata);
    served.assert_clean();
}

/// The project whose runs fail with secrets at hand, the servers its tasks and alerts reach,
/// and the environment that holds the secrets.
struct Leaky {
    /// Serves the echoing API.
    _rt: tokio::runtime::Runtime,
    p: TestProject,
    env: Vec<(&'static str, String)>,
    /// The webhook that answers, and the bodies it received.
    hook: String,
    received: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    /// The webhook nobody answers.
    dead_hook: String,
}

impl Leaky {
    fn new() -> Leaky {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .worker_threads(2)
            .build()
            .unwrap();
        let api = echoing_api(&rt);
        let (hook, received) = common::json_receiver("/hook");
        let dead_hook = format!("http://127.0.0.1:1/hook/{HOOK_PATH}");
        let p = TestProject::new();
        p.write(
            "sluice.yaml",
            &format!(
                "name: test\ntask_env: [LEAKY_ALLOWED]\nlineage: {{ file: lineage.ndjson }}\nalerts:\n  ops: {{ webhook: \"{hook}\", slack: true }}\n  dead: {{ webhook: \"{dead_hook}\" }}\n  cmd: {{ command: \"mkdir -p alerts && env > alerts/env-$$.txt && cat > alerts/$$.json\" }}\n"
            ),
        )
        .write("pipelines/events.yaml", STREAM);
        let src = format!("postgres://postgres:{CONN_PW}@127.0.0.1:1/test");
        let env = vec![
            ("SLUICE_CONN_SRC", src),
            ("SLUICE_CONN_API", api),
            ("SLUICE_API_TOKEN", API_TOKEN.to_string()),
            // Tasks and alert commands inherit the first (`task_env:`), never the second.
            ("LEAKY_ALLOWED", "allowed-9d2".to_string()),
            ("LEAKY_WITHHELD", "withheld-3c7".to_string()),
        ];
        Leaky {
            _rt: rt,
            p,
            env,
            hook,
            received,
            dead_hook,
        }
    }

    fn env(&self) -> Vec<(&str, &str)> {
        self.env.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    fn write_pipeline(&self, quoted: &[&str]) {
        self.p.write(
            "pipelines/leaky.yaml",
            &leaky_pipeline(quoted, &self.dead_hook),
        );
    }

    /// Runs sluice with the secrets' environment and no metadata URL (SQLite).
    fn sluice(&self, args: &[&str]) -> common::Outcome {
        let output = self
            .p
            .command(args)
            .envs(self.env())
            .env_remove("SLUICE_METADATA")
            .output()
            .unwrap();
        common::outcome(args, output)
    }

    /// `sluice run` (every task fails), its logs, runs, dead letters and a stream whose registry
    /// URL does not parse; the metadata database, try logs and lineage events they left.
    fn cli_evidence(&self, held: &[&str]) -> Evidence {
        let mut seen = Evidence::new(held);
        let run = self.sluice(&["run", "leaky", "--date", "2024-01-01"]);
        assert_eq!(run.code, 1, "every task fails:\n{}", run.explain());
        seen.keep_outcome("sluice run", &run);
        let date = ["--date", "2024-01-01"];
        for task in ["dump", "pull", "read_src", "leak"] {
            let args = [&["logs", "leaky"][..], &date, &["--task", task]].concat();
            seen.keep_outcome(&format!("sluice logs {task}"), &self.sluice(&args));
        }
        seen.keep_outcome("sluice runs", &self.sluice(&["runs", "leaky", "--json"]));
        seen.keep_outcome("sluice dlq", &self.sluice(&["dlq", "list", "--json"]));
        let stream = self.sluice(&["stream", "events"]);
        assert_eq!(stream.code, 2, "{}", stream.explain());
        seen.keep_outcome("sluice stream", &stream);
        // The metadata database (with its WAL) and the try logs, byte for byte.
        seen.keep_files(&self.p.path().join(".sluice"));
        seen.keep("lineage events", self.p.read("lineage.ndjson"));
        for file in common::files_under(&self.p.path().join("alerts")) {
            if file.extension().is_some_and(|e| e == "txt") {
                seen.keep("alert command env", std::fs::read_to_string(&file).unwrap());
            }
        }
        seen
    }

    /// `sluice serve` with its metadata at `metadata`: a run triggered through the API until it
    /// failed, then every API and UI page about it, the server's standard error, every metadata
    /// table, the try logs, lineage events and the alerts delivered.
    fn served_evidence(&self, secrets: &[&str], db: &Database, metadata: &str) -> Evidence {
        let mut served = Evidence::new(secrets);
        let stderr = self.p.path().join("serve.stderr");
        let server = serve(&self.p, &self.env(), metadata, &stderr);
        let (status, run) =
            server.post("/api/pipelines/leaky/runs", json!({ "date": "2024-01-02" }));
        assert_eq!(status, 201, "{run}");
        let id = run["id"].as_i64().unwrap();
        server.wait_for("the triggered run to fail", || {
            server.get(&format!("/api/runs/{id}"))["state"] == "failed"
        });
        keep_pages(&server, id, &mut served);
        // The server's own environment (its metadata URL, token, connections) stays its own.
        let dump_log = format!("GET /api/runs/{id}/tasks/dump/tries/1/log");
        served.shows(&dump_log, "SLUICE_TASK=dump");
        served.lacks(
            &dump_log,
            &["SLUICE_METADATA", "SLUICE_API_TOKEN", "SLUICE_CONN_"],
        );
        served.shows(&format!("GET /runs/{id}/tasks/leak"), "cannot go on: ***");
        // Alerts are sent in the background; the server waits for them when it stops.
        assert_eq!(server.stop(), Some(0));
        served.keep("sluice serve: stderr", std::fs::read(&stderr).unwrap());
        served.shows(
            "sluice serve: stderr",
            "stream events: `schema_registry: http://reg:***@",
        );
        served.shows(
            "sluice serve: stderr",
            "alert channel `dead`: attempt 1 failed",
        );
        keep_metadata_tables(db, &mut served);
        served.shows("metadata table", "cannot go on: ***");
        served.keep_files(&self.p.path().join(".sluice"));
        served.keep("lineage events", self.p.read("lineage.ndjson"));
        served.keep_files(&self.p.path().join("alerts"));
        let bodies = self.received.lock().unwrap().clone();
        served.keep(
            "the webhook's deliveries",
            serde_json::to_vec(&bodies).unwrap(),
        );
        served.shows("the webhook's deliveries", "cannot go on: ***");
        served.shows("alerts", "\"error\":\"command failed with exit status 3");
        served
    }
}

/// Each secret the command line's evidence holds was there, masked.
fn cli_shows_masked(seen: &Evidence) {
    // A task's process and an alert command get the run's variables, the base ones and
    // `task_env:`'s — none of Sluice's own settings, whatever they hold.
    for what in ["sluice logs dump", "alert command env"] {
        seen.shows(what, "PATH=/");
        seen.shows(what, "LEAKY_ALLOWED=allowed-9d2");
        seen.lacks(
            what,
            &[
                "SLUICE_CONN_",
                "SLUICE_API_TOKEN",
                "SLUICE_METADATA",
                "LEAKY_WITHHELD",
            ],
        );
    }
    seen.shows("sluice logs dump", "SLUICE_TASK=dump");
    // A header's value is never displayed in a configuration, whatever its name.
    seen.shows("sluice dlq", "\"X-Tenant\": \"***\"");
    seen.lacks("sluice dlq", &["tenant-lit-77"]);
    seen.shows("sluice logs dump", "header *** hook ***");
    seen.shows(
        "sluice logs pull",
        "bad credentials: api_key=*** x-api-key=***",
    );
    seen.shows("sluice logs leak", "cannot go on: *** *** *** *** *** ***");
    seen.shows(
        "sluice run: stderr",
        "alert channel `dead`: attempt 1 failed",
    );
    seen.shows("sluice stream: stderr", "http://reg:***@127.0.0.1:99999");
    seen.shows("metadata.db", "cannot go on: ***");
    seen.shows("lineage events", "cannot go on: ***");
}

/// Every API and UI page about run `id` and its tasks' tries (each must answer 200).
fn keep_pages(server: &Server, id: i64, served: &mut Evidence) {
    let mut pages = vec![
        "/api/pipelines".to_string(),
        "/api/pipelines/leaky".into(),
        "/api/pipelines/leaky/runs".into(),
        format!("/api/runs/{id}"),
        "/".into(),
        "/pipelines/leaky".into(),
        format!("/runs/{id}"),
        "/dead-letters".into(),
        "/lineage".into(),
        "/streams".into(),
        "/quality".into(),
    ];
    for task in ["dump", "pull", "read_src", "leak"] {
        pages.push(format!("/api/runs/{id}/tasks/{task}/tries"));
        pages.push(format!("/api/runs/{id}/tasks/{task}/tries/1/log"));
        pages.push(format!("/runs/{id}/tasks/{task}"));
        pages.push(format!("/ui/runs/{id}/tasks/{task}/tries/1/log"));
    }
    for page in &pages {
        let (status, body) = server.request(reqwest::Method::GET, page, None, None);
        assert_eq!(status, 200, "GET {page}: {body}");
        served.keep(format!("GET {page}"), body);
    }
}

/// Every row of every table in the metadata database, as text.
fn keep_metadata_tables(db: &Database, served: &mut Evidence) {
    let tables = db.column(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    );
    assert!(tables.len() > 3, "{tables:?}");
    for table in tables {
        let rows = db.column(&format!("SELECT t::text FROM \"{table}\" t"));
        served.keep(format!("metadata table {table}"), rows.join("\n"));
    }
}

/// `sluice serve` on a free port with its standard error in `stderr`.
fn serve(p: &TestProject, env: &[(&str, &str)], metadata: &str, stderr: &Path) -> Server {
    let port = common::free_port();
    let mut cmd = Server::command(p, port);
    cmd.envs(env.iter().copied())
        .env("SLUICE_METADATA", metadata)
        .stderr(std::fs::File::create(stderr).unwrap());
    Server::spawn(cmd, port, Some(API_TOKEN))
}
