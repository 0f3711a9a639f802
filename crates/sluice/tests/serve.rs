//! `sluice serve` as a real process on 127.0.0.1: scheduling with catchup, files changed while
//! it serves (a broken one is reported and keeps its last good version), the REST API (trigger,
//! clear, pause, logs, auth, bad input), and a restart that resumes an interrupted run.

use crate::common;

use common::TestProject;
use common::server::Server;
use serde_json::{Value, json};

fn hourly(name: &str, hours_back: i64, command: &str) -> String {
    let start = chrono::Utc::now() - chrono::Duration::hours(hours_back);
    format!(
        "pipeline: {name}\nschedule: \"@hourly\"\nstart_date: \"{}\"\ncatchup: true\nmax_active_runs: 2\ntasks:\n  first: {{ shell: {{ command: \"{command}\" }} }}\n  second: {{ after: [first], shell: {{ command: \"echo second\" }} }}\n",
        start.format("%Y-%m-%dT%H:00:00")
    )
}

fn states(runs: &[Value]) -> Vec<String> {
    runs.iter()
        .map(|r| r["state"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn serve_catches_up_picks_up_changed_files_and_obeys_the_api() {
    let p = TestProject::new();
    p.write(
        "pipelines/hourly.yaml",
        &hourly("hourly", 3, "echo {{ ds }}"),
    );
    let server = Server::start(&p, None);

    // Catchup: the three closed hours, two at a time.
    server.wait_for("three successful runs", || {
        let runs = server.runs("hourly");
        runs.len() == 3 && states(&runs).iter().all(|s| s == "success")
    });

    // Every try and run is measured, with bounded labels, in Prometheus' format.
    let (status, metrics) = server.request(reqwest::Method::GET, "/metrics", None, None);
    assert_eq!(status, 200);
    for line in [
        "pipeline_task_duration_seconds_bucket{pipeline=\"hourly\",task=\"first\",outcome=\"success\",le=\"",
        "pipeline_task_duration_seconds_count{pipeline=\"hourly\",task=\"second\",outcome=\"success\"} 3",
        "pipeline_task_handoff_seconds_count{pipeline=\"hourly\"} 3",
        "pipeline_run_duration_seconds_count{pipeline=\"hourly\",state=\"success\"} 3",
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }

    // A new file is picked up; a broken one is reported with its place and does not stop the
    // others — and a pipeline whose file breaks keeps its last good version.
    p.write("pipelines/second.yaml", &hourly("second", 1, "echo second"));
    p.write("pipelines/broken.yaml", "pipeline: broken\nschedule: \"@daily\"\nstart_date: 2024-01-01\ntasks:\n  a: { shel: { command: x } }\n");
    p.write("pipelines/hourly.yaml", "pipeline: hourly\ntasks: [oops\n");
    server.wait_for("the changed files", || {
        let all = server.get("/api/pipelines");
        let ids: Vec<&str> = all["pipelines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap())
            .collect();
        ids == ["hourly", "second"] && all["problems"].as_array().unwrap().len() >= 2
    });
    let problems = server.get("/api/pipelines")["problems"].clone();
    assert!(
        problems
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["file"] == "pipelines/broken.yaml"
                && d["line"] == 5
                && d["message"] == "unknown key `shel` in task `a`"),
        "{problems}"
    );
    assert!(
        problems
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["file"] == "pipelines/hourly.yaml")
    );
    server.wait_for("the new pipeline's run", || {
        states(&server.runs("second")) == ["success"]
    });

    // Trigger a run for a date; clear one task of it, with its downstream task.
    p.write(
        "pipelines/daily.yaml",
        "pipeline: daily\nschedule: \"@daily\"\nstart_date: 2024-01-01\ntasks:\n  first: { shell: { command: \"echo second\" } }\n  second: { after: [first], shell: { command: \"echo {{ ds }}\" } }\n",
    );
    server.wait_for("the daily pipeline", || {
        server
            .try_get("/api/pipelines/daily")
            .is_some_and(|p| p["id"] == "daily")
    });
    let (status, run) = server.post("/api/pipelines/daily/runs", json!({ "date": "2024-01-01" }));
    assert!(status == 201 || status == 200, "{status} {run}");
    let id = run["id"].as_i64().unwrap();
    server.wait_for("the triggered run", || {
        server.get(&format!("/api/runs/{id}"))["state"] == "success"
    });
    let (status, cleared) = server.post(
        &format!("/api/runs/{id}/clear"),
        json!({ "tasks": ["first"], "downstream": true }),
    );
    assert_eq!(status, 200, "{cleared}");
    assert_eq!(cleared["cleared"], json!(["first", "second"]));
    server.wait_for("the cleared tasks to run again", || {
        let run = server.get(&format!("/api/runs/{id}"));
        run["state"] == "success" && run["tasks"][0]["tries"] == 2
    });
    let tries = server.get(&format!("/api/runs/{id}/tasks/first/tries"));
    assert_eq!(tries["tries"].as_array().unwrap().len(), 2);
    let (status, log) = server.request(
        reqwest::Method::GET,
        &format!("/api/runs/{id}/tasks/first/tries/2/log"),
        None,
        None,
    );
    assert_eq!(status, 200);
    assert!(log.contains("echo second"), "{log}");

    // Pause is stored and reported.
    let (status, paused) = server.post("/api/pipelines/daily/pause", json!({}));
    assert_eq!((status, paused["paused"].clone()), (200, json!(true)));
    assert_eq!(server.get("/api/pipelines/daily")["paused"], true);

    assert_eq!(server.stop(), Some(0));
}

#[test]
fn the_api_wants_its_token_and_explains_bad_requests() {
    let p = TestProject::new();
    p.write("pipelines/hourly.yaml", &hourly("hourly", 1, "echo hi"));
    let server = Server::start(&p, Some("s3cret-token"));
    let get =
        |path: &str, token: Option<&str>| server.request(reqwest::Method::GET, path, None, token);

    let (status, body) = server.rt.block_on(async {
        let resp = reqwest::get(format!("{}/api/pipelines", server.base))
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    });
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("missing or wrong token"), "{body}");
    assert_eq!(get("/api/pipelines", Some("wrong-token!")).0, 401);
    assert_eq!(get("/api/pipelines", None).0, 200);

    let bad_json = server.request(
        reqwest::Method::POST,
        "/api/pipelines/hourly/runs",
        Some("{not json"),
        None,
    );
    assert_eq!(bad_json.0, 400, "{}", bad_json.1);
    assert!(bad_json.1.contains("\"error\""), "{}", bad_json.1);
    let (status, body) = server.post("/api/pipelines/hourly/runs", json!({ "date": "yesterday" }));
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        "`yesterday` is not a date; write YYYY-MM-DD, e.g. 2024-01-01"
    );
    assert_eq!(
        server
            .post("/api/pipelines/nope/runs", json!({ "date": "2024-01-01" }))
            .0,
        404
    );
    assert_eq!(get("/api/runs/abc", None).0, 400);
    assert_eq!(get("/api/runs/999999", None).0, 404);
    assert_eq!(get("/api/nothing/here", None).0, 404);
    assert_eq!(get("/api/pipelines/hourly/runs?limit=-1", None).0, 400);

    // The OpenAPI document describes every route the server answers.
    let doc = server.get("/api/openapi.json");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    for route in [
        "/api/pipelines",
        "/api/pipelines/{pipeline}",
        "/api/pipelines/{pipeline}/runs",
        "/api/pipelines/{pipeline}/pause",
        "/api/pipelines/{pipeline}/unpause",
        "/api/pipelines/{pipeline}/backfills",
        "/api/backfills",
        "/api/backfills/{backfill}",
        "/api/runs/{run}",
        "/api/runs/{run}/clear",
        "/api/runs/{run}/tasks/{task}/tries",
        "/api/runs/{run}/tasks/{task}/tries/{try_number}/log",
    ] {
        assert!(
            paths.iter().any(|p| *p == route),
            "{route} is not described"
        );
    }
    drop(server);

    // Off loopback, no token, no server.
    let refused = p.sluice(&["serve", "--addr", "0.0.0.0:0"]);
    assert_eq!(refused.code, 2, "{}", refused.explain());
    assert!(
        refused.stderr.contains("needs API tokens"),
        "{}",
        refused.explain()
    );
}

#[test]
fn a_restarted_server_resumes_the_interrupted_run() {
    let p = TestProject::new();
    p.write(
        "pipelines/slow.yaml",
        "pipeline: slow\nschedule: \"@daily\"\nstart_date: 2024-01-01\ntasks:\n  wait: { shell: { command: \"sleep 2\" } }\n  after_wait: { after: [wait], shell: { command: \"echo done\" } }\n",
    );
    let server = Server::start(&p, None);
    let (status, run) = server.post("/api/pipelines/slow/runs", json!({ "date": "2024-01-01" }));
    assert_eq!(status, 201, "{run}");
    let id = run["id"].as_i64().unwrap();
    server.wait_for("the slow task to start", || {
        server.get(&format!("/api/runs/{id}"))["tasks"][0]["state"] == "running"
    });
    assert_eq!(server.stop(), Some(0));

    let server = Server::start(&p, None);
    server.wait_for("the resumed run to finish", || {
        server.get(&format!("/api/runs/{id}"))["state"] == "success"
    });
    let outcomes = server.try_outcomes(id, "wait");
    assert_eq!(outcomes, ["interrupted", "success"]);
    assert_eq!(server.stop(), Some(0));
}

#[test]
fn a_backfill_handed_to_the_server_is_followed_and_kept() {
    let p = TestProject::new();
    p.write(
        "pipelines/daily.yaml",
        "pipeline: daily\nschedule: \"@daily\"\nstart_date: 2024-01-01\nmax_active_runs: 2\ntasks:\n  a: { shell: { command: \"echo {{ ds }} >> days.txt\" } }\n",
    );
    let server = Server::start(&p, None);
    let backfill = p.sluice(&[
        "backfill",
        "daily",
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-05",
        "--via-server",
        &server.base,
    ]);
    assert_eq!(backfill.code, 0, "{}", backfill.explain());
    assert!(
        backfill
            .stdout
            .contains("5 intervals: 5 done, 0 failed, 0 running, 0 pending"),
        "{}",
        backfill.explain()
    );
    let mut days: Vec<String> = p.read("days.txt").lines().map(String::from).collect();
    days.sort();
    days.dedup();
    assert!(
        days.starts_with(&[
            "2024-01-01".to_string(),
            "2024-01-02".into(),
            "2024-01-03".into(),
            "2024-01-04".into(),
            "2024-01-05".into()
        ]),
        "{days:?}"
    );

    let refused = p.sluice(&[
        "backfill",
        "daily",
        "--from",
        "2024-01-05",
        "--to",
        "2024-01-01",
        "--via-server",
        &server.base,
    ]);
    assert_eq!(refused.code, 2, "{}", refused.explain());
    assert!(
        refused.stderr.contains("is after `to`"),
        "{}",
        refused.explain()
    );

    // Kept across a restart, with its progress.
    assert_eq!(server.stop(), Some(0));
    let server = Server::start(&p, None);
    let list = server.get("/api/backfills");
    let b = &list["backfills"][0];
    assert_eq!(
        (
            b["pipeline"].clone(),
            b["intervals"].clone(),
            b["done"].clone(),
            b["finished"].clone()
        ),
        (json!("daily"), json!(5), json!(5), json!(true))
    );
    assert_eq!(server.stop(), Some(0));
}

/// `backfill --via-server` speaks to the server through the typed API client: the token from
/// SLUICE_API_TOKEN, the server's own progress printed with --json, a failed interval as exit
/// code 1, and the server's refusals and an unreachable server as usage errors with the reason.
#[test]
fn the_api_client_follows_a_backfill_and_reports_what_the_server_refuses() {
    let p = TestProject::new();
    p.write(
        "pipelines/daily.yaml",
        "pipeline: daily\nschedule: \"@daily\"\nstart_date: 2024-01-01\ntasks:\n  a: { shell: { command: \"test {{ ds }} != 2024-01-02\" } }\n",
    );
    let server = Server::start(&p, Some("the-token"));
    let base = server.base.clone();
    let backfill = |pipeline: &str, token: Option<&str>, json: bool| {
        let mut args = vec![
            "backfill",
            pipeline,
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-03",
            "--via-server",
            &base,
        ];
        if json {
            args.push("--json");
        }
        let mut cmd = p.command(&args);
        cmd.env_remove("SLUICE_API_TOKEN");
        if let Some(t) = token {
            cmd.env("SLUICE_API_TOKEN", t);
        }
        common::outcome(&args, cmd.output().expect("run sluice"))
    };

    let followed = backfill("daily", Some("the-token"), true);
    assert_eq!(followed.code, 1, "{}", followed.explain());
    let progress = followed.json();
    assert_eq!(
        (
            progress["pipeline"].clone(),
            progress["from"].clone(),
            progress["to"].clone(),
            progress["intervals"].clone(),
            progress["done"].clone(),
            progress["failed"].clone(),
            progress["running"].clone(),
            progress["pending"].clone(),
            progress["finished"].clone(),
        ),
        (
            json!("daily"),
            json!("2024-01-01"),
            json!("2024-01-03"),
            json!(3),
            json!(2),
            json!(1),
            json!(0),
            json!(0),
            json!(true)
        ),
        "{}",
        followed.explain()
    );
    // What the client printed is the server's answer, field for field.
    let id = progress["id"].as_i64().expect("a backfill id");
    assert_eq!(server.get(&format!("/api/backfills/{id}")), progress);

    // The same range again: its runs exist, so it is finished at once; people read lines.
    let again = backfill("daily", Some("the-token"), false);
    assert_eq!(again.code, 1, "{}", again.explain());
    assert!(
        again
            .stdout
            .contains(&format!("backfill {} of daily started on {base}", id + 1))
            && again
                .stdout
                .contains("3 intervals: 2 done, 1 failed, 0 running, 0 pending"),
        "{}",
        again.explain()
    );

    for (token, pipeline, status, message) in [
        (
            Some("a-wrong-token"),
            "daily",
            "401 Unauthorized",
            "missing or wrong token",
        ),
        (None, "daily", "401 Unauthorized", "missing or wrong token"),
        (
            Some("the-token"),
            "nope",
            "404 Not Found",
            "no pipeline `nope`",
        ),
    ] {
        let refused = backfill(pipeline, token, false);
        assert_eq!(refused.code, 2, "{}", refused.explain());
        assert!(
            refused
                .stderr
                .contains(&format!("error: the server refused ({status}): {message}")),
            "{}",
            refused.explain()
        );
    }

    assert_eq!(server.stop(), Some(0));
    let unreachable = backfill("daily", Some("the-token"), false);
    assert_eq!(unreachable.code, 2, "{}", unreachable.explain());
    assert!(
        unreachable
            .stderr
            .contains(&format!("error: cannot reach {base}")),
        "{}",
        unreachable.explain()
    );
}

#[test]
fn a_scheduled_run_past_its_sla_is_reported_while_it_runs() {
    let p = TestProject::new();
    p.write(
        "sluice.yaml",
        "name: test\nalerts:\n  cmd: { command: \"cat >> sla.jsonl; echo >> sla.jsonl\" }\n",
    );
    // The last closed hour ended minutes ago: with a 1s SLA its scheduled run is late at once.
    let start = chrono::Utc::now() - chrono::Duration::hours(1);
    p.write(
        "pipelines/hourly.yaml",
        &format!(
            "pipeline: hourly\nschedule: \"@hourly\"\nstart_date: \"{}\"\nsla: 1s\nalert: {{ sla_miss: cmd }}\ntasks:\n  \
             slow: {{ shell: {{ command: \"sleep 3\" }} }}\n  after_slow: {{ after: [slow], shell: {{ command: \"true\" }} }}\n",
            start.format("%Y-%m-%dT%H:00:00")
        ),
    );
    let server = Server::start(&p, None);
    server.wait_for("the SLA alert", || !p.read("sla.jsonl").trim().is_empty());
    let runs = server.runs("hourly");
    assert_eq!(
        runs[0]["state"], "running",
        "reported while the run still works"
    );
    let miss: Value = serde_json::from_str(p.read("sla.jsonl").lines().next().unwrap()).unwrap();
    let text = miss["error"].as_str().unwrap();
    assert!(
        text.starts_with("the run missed its SLA of 1s after the interval's end"),
        "{text}"
    );
    assert!(
        text.contains("late: slow (running); after_slow (none), blocked by slow (running)"),
        "{text}"
    );
    assert_eq!(server.stop(), Some(0));
}

/// Alert channels changed in sluice.yaml while the server runs are used from then on.
#[test]
fn changed_alert_channels_are_picked_up_without_a_restart() {
    let (first, got_first) = common::json_receiver("/first");
    let (second, got_second) = common::json_receiver("/second");
    let settings = |url: &str| format!("name: test\nalerts:\n  ops: {{ webhook: \"{url}\" }}\n");
    let p = TestProject::new();
    p.write("sluice.yaml", &settings(&first));
    p.write(
        "pipelines/broken.yaml",
        "pipeline: broken\nschedule: none\nstart_date: 2024-01-01\nalert: { failure: ops }\ntasks:\n  fail: { retries: 0, shell: { command: \"exit 1\" } }\n",
    );
    let server = Server::start(&p, None);
    let trigger = |date: &str| {
        let (status, run) = server.post("/api/pipelines/broken/runs", json!({ "date": date }));
        assert_eq!(status, 201, "{run}");
    };
    trigger("2024-01-01");
    server.wait_for("the alert on the first channel", || {
        !got_first.lock().unwrap().is_empty()
    });
    p.write("sluice.yaml", &settings(&second));
    // The server reloads changed files on its next tick; a second run's alert goes to the new URL.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    trigger("2024-01-02");
    server.wait_for("the alert on the changed channel", || {
        !got_second.lock().unwrap().is_empty()
    });
    assert_eq!(
        got_first.lock().unwrap().len(),
        1,
        "nothing more to the old URL"
    );
    assert_eq!(server.stop(), Some(0));
}
