//! Metrics against the real binary: Prometheus' `/metrics` while a run executes, and DogStatsD
//! datagrams (the article's names, `key:value` tags) caught by a UDP socket; and tasks that
//! exhaust their retries, kept in the dead-letter store and replayed.

use crate::common;

use common::TestProject;

#[test]
fn a_run_serves_its_metrics_while_it_executes() {
    let p = TestProject::new();
    p.write(
        "pipelines/p.yaml",
        "pipeline: p\nschedule: \"@daily\"\nstart_date: 2024-01-01\ntasks:\n  \
         quick: { shell: { command: \"true\" } }\n  \
         slow: { after: [quick], shell: { command: \"sleep 2\" } }\n",
    );
    let port = common::free_port();
    let mut child = p
        .command(&[
            "run",
            "p",
            "--date",
            "2024-01-01",
            "-q",
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let want =
        "pipeline_task_duration_seconds_count{pipeline=\"p\",task=\"quick\",outcome=\"success\"} 1";
    let mut seen = String::new();
    while std::time::Instant::now() < deadline && !seen.contains(want) {
        std::thread::sleep(std::time::Duration::from_millis(100));
        seen = rt.block_on(async {
            match reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            }
        });
    }
    assert!(seen.contains(want), "{seen}");
    assert!(
        seen.contains("pipeline_task_handoff_seconds_count{pipeline=\"p\"} 1"),
        "{seen}"
    );
    // Prometheus' own linter and parser accept the exposition as it is.
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/test installs it)");
    use std::io::Write as _;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(seen.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}\n{seen}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(child.wait().unwrap().success());
}

#[test]
fn statsd_datagrams_carry_the_article_names_and_tags() {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    let p = TestProject::new();
    p.write(
        "sluice.yaml",
        &format!("name: test\nstatsd: {{ host: 127.0.0.1, port: {port}, prefix: etl }}\n"),
    );
    p.write(
        "pipelines/p.yaml",
        "pipeline: p\nschedule: \"@daily\"\nstart_date: 2024-01-01\ntasks:\n  \
         ok: { shell: { command: \"true\" } }\n  \
         broken: { after: [ok], shell: { command: \"exit 3\" } }\n",
    );
    let run = p.sluice(&["run", "p", "--date", "2024-01-01", "-q"]);
    assert_eq!(run.code, 1, "{}", run.explain());
    let mut lines = Vec::new();
    let mut buf = [0u8; 65536];
    while let Ok(n) = socket.recv(&mut buf) {
        lines.extend(
            String::from_utf8_lossy(&buf[..n])
                .lines()
                .map(String::from)
                .collect::<Vec<_>>(),
        );
        if lines
            .iter()
            .any(|l| l.starts_with("etl.pipeline.run.duration:"))
        {
            break;
        }
    }
    let has = |prefix: &str, tags: &str| {
        lines
            .iter()
            .any(|l| l.starts_with(prefix) && l.ends_with(tags))
    };
    assert!(
        has(
            "etl.pipeline.task.duration:",
            "|#pipeline:p,task:ok,outcome:success"
        ),
        "{lines:#?}"
    );
    assert!(
        has(
            "etl.pipeline.task.failures:1|c",
            "|#pipeline:p,task:broken,error_type:failed"
        ),
        "{lines:#?}"
    );
    assert!(
        has("etl.pipeline.task.handoff:", "|#pipeline:p"),
        "{lines:#?}"
    );
    assert!(
        has("etl.pipeline.run.duration:", "|#pipeline:p,state:failed"),
        "{lines:#?}"
    );
}

#[test]
fn a_task_out_of_retries_goes_to_the_dead_letter_store_and_replays() {
    let p = TestProject::new();
    p.write(
        "connections.yaml",
        "api: \"https://user:hunter2-secret@api.example.com/v1\"\n",
    );
    p.write(
        "pipelines/p.yaml",
        "pipeline: p\nschedule: \"@daily\"\nstart_date: 2024-01-01\ntasks:\n  \
         fetch:\n    retries: 1\n    retry_delay: 0s\n    \
         shell: { command: \"test -f fixed.{{ ds_nodash }}\", env: { NOTE: \"hunter2-secret\" } }\n  \
         publish: { after: [fetch], shell: { command: \"echo published {{ ds }}\" } }\n",
    );
    let run = p.sluice(&["run", "p", "--date", "2024-01-01", "-q"]);
    assert_eq!(run.code, 1, "{}", run.explain());

    let listed = p.sluice(&["dlq", "list", "--json"]).json();
    let failed = &listed["failed_tasks"][0];
    assert_eq!(failed["task"], "fetch", "{listed}");
    assert_eq!(failed["error"], "command failed with exit status 1");
    // The configuration as rendered for the run, secrets masked; the whole try history.
    assert_eq!(
        failed["config"]["shell"]["command"],
        "test -f fixed.20240101"
    );
    assert_eq!(failed["config"]["shell"]["env"]["NOTE"], "***");
    assert_eq!(failed["tries"].as_array().unwrap().len(), 2);
    let number = failed["id"].as_i64().unwrap();
    let id = number.to_string();
    let shown = p.sluice(&["dlq", "show", &id]);
    assert!(
        shown
            .stdout
            .contains(&format!("replay with: sluice dlq replay {id}")),
        "{}",
        shown.explain()
    );
    assert!(!shown.stdout.contains("hunter2"), "{}", shown.explain());

    // Still broken: the replay fails and the entry stays unreplayed.
    assert_eq!(p.sluice(&["dlq", "replay", &id]).code, 1);
    p.write("fixed.20240101", "");
    let replay = p.sluice(&["dlq", "replay", &id]);
    assert_eq!(replay.code, 0, "{}", replay.explain());
    let runs = p.sluice(&["runs", "p", "--json"]).json();
    assert_eq!(runs[0]["state"], "success", "{runs}");
    let listed = p.sluice(&["dlq", "list", "--json"]).json();
    let entries = listed["failed_tasks"].as_array().unwrap();
    // The failed replay recorded itself too; the original entry is now marked replayed.
    let original = entries.iter().find(|e| e["id"] == number).unwrap();
    assert!(original["replayed_at"].is_string(), "{listed}");

    let purge = p.sluice(&["dlq", "purge", "--before", "2999-01-01"]);
    assert_eq!(purge.code, 0, "{}", purge.explain());
    assert!(
        p.sluice(&["dlq", "list", "--json"]).json()["failed_tasks"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// A webhook receiver on 127.0.0.1 that keeps every JSON body it gets.
fn webhook() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    common::json_receiver("/hook")
}

#[test]
fn failures_retries_and_recoveries_reach_their_channels() {
    let (url, got) = webhook();
    let p = TestProject::new();
    p.write(
        "sluice.yaml",
        &format!(
            "name: test\nalerts:\n  hook: {{ webhook: \"{url}\", slack: true }}\n  cmd: {{ command: \"mkdir -p alerts && cat > alerts/$$.json\" }}\n"
        ),
    );
    p.write(
        "pipelines/p.yaml",
        "pipeline: p\nschedule: \"@daily\"\nstart_date: 2024-01-01\nalert: { failure: [hook, cmd], retry: cmd, recovery: cmd }\ntasks:\n  \
         flaky:\n    retries: 1\n    retry_delay: 0s\n    \
         shell: { command: \"if [ -f once ]; then exit 0; else touch once; exit 1; fi\" }\n  \
         broken: { after: [flaky], shell: { command: \"echo about to fail; exit 3\" } }\n",
    );
    let run = p.sluice(&["run", "p", "--date", "2024-01-01", "-q"]);
    assert_eq!(run.code, 1, "{}", run.explain());

    // Deliveries run concurrently, so each alert has its own file; order by try.
    let mut events: Vec<serde_json::Value> = std::fs::read_dir(p.path().join("alerts"))
        .unwrap()
        .map(|e| {
            serde_json::from_str(&std::fs::read_to_string(e.unwrap().path()).unwrap()).unwrap()
        })
        .collect();
    events.sort_by_key(|e| (e["task"] != "flaky", e["try_number"].as_u64()));
    let seen: Vec<(String, String, u64)> = events
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_string(),
                e["task"].as_str().unwrap().to_string(),
                e["try_number"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("retry".to_string(), "flaky".to_string(), 1),
            ("recovery".into(), "flaky".into(), 2),
            ("failure".into(), "broken".into(), 1)
        ]
    );
    let failure = &events[2];
    assert_eq!(failure["rerun"], "sluice dlq replay 1");
    assert_eq!(failure["logical_date"], "2024-01-01T00:00:00+00:00");
    assert!(
        failure["log_tail"].to_string().contains("about to fail"),
        "{failure}"
    );

    // The Slack-style webhook got the failure only, readable as a message.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while got.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let bodies = got.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let text = bodies[0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("p.broken failed for 2024-01-01T00:00:00+00:00 (try 1): command failed with exit status 3")
            && text.contains("about to fail")
            && text.contains("re-run: `sluice dlq replay 1`"),
        "{text}"
    );

    // A channel that sluice.yaml does not define is reported.
    p.write(
        "pipelines/p.yaml",
        "pipeline: p\ntasks:\n  a: { alert: { failure: [pager] }, shell: { command: \"true\" } }\n",
    );
    let check = p.sluice(&["check"]);
    assert!(
        check
            .stdout
            .contains("task `a` alerts channel `pager`, which sluice.yaml does not define"),
        "{}",
        check.explain()
    );
}

#[test]
fn an_sla_miss_is_reported_while_the_work_still_runs() {
    let p = TestProject::new();
    p.write(
        "sluice.yaml",
        "name: test\nalerts:\n  cmd: { command: \"cat >> sla.jsonl; echo >> sla.jsonl\" }\n",
    );
    // The pipeline's own SLA counts for scheduled runs only: this manual run of an old interval
    // is judged by the task's SLA alone.
    p.write(
        "pipelines/p.yaml",
        "pipeline: p\nschedule: \"@daily\"\nstart_date: 2024-01-01\nsla: 1h\nalert: { sla_miss: cmd }\ntasks:\n  \
         first: { shell: { command: \"true\" } }\n  \
         slow: { after: [first], sla: 1s, shell: { command: \"sleep 4\" } }\n  \
         last: { after: [slow], shell: { command: \"true\" } }\n",
    );
    let mut child = p
        .command(&["run", "p", "--date", "2024-01-01", "-q"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut events: Vec<serde_json::Value> = Vec::new();
    while events.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        events = p
            .read("sla.jsonl")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    }
    // Known while `slow` is still sleeping.
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run ended before the SLA alert: {events:?}"
    );
    assert_eq!(events.len(), 1, "{events:?}");
    let miss = &events[0];
    assert_eq!(
        (miss["event"].as_str(), miss["task"].as_str()),
        (Some("sla_miss"), Some("slow"))
    );
    let text = miss["error"].as_str().unwrap();
    assert!(
        text.starts_with("task slow missed its SLA of 1s after the run's start"),
        "{text}"
    );
    assert!(text.contains("late: slow (running)"), "{text}");
    assert!(child.wait().unwrap().success());
    assert_eq!(
        p.read("sla.jsonl")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count(),
        1
    );
}

#[test]
fn a_sudden_drop_in_rows_raises_an_alert() {
    let p = TestProject::new();
    p.write(
        "sluice.yaml",
        "name: test\nalerts:\n  cmd: { command: \"cat >> drops.jsonl; echo >> drops.jsonl\" }\n",
    );
    for (day, rows) in [(1, 10), (2, 12), (3, 10), (4, 2)] {
        let mut csv = String::from("id\n");
        for i in 0..rows {
            csv.push_str(&format!("{i}\n"));
        }
        p.write(&format!("lake/raw/2024-01-0{day}.csv"), &csv);
    }
    p.write(
        "pipelines/p.yaml",
        "pipeline: p\nschedule: \"@daily\"\nstart_date: 2024-01-01\nrow_drop: 0.5\nalert: { row_drop: cmd }\ntasks:\n  \
         extract:\n    extract:\n      from: { files: \"lake://raw/{{ ds }}.csv\" }\n      to: \"lake://out/{{ ds }}.parquet\"\n",
    );
    let backfill = p.sluice(&[
        "backfill",
        "p",
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-03",
    ]);
    assert_eq!(backfill.code, 0, "{}", backfill.explain());
    assert_eq!(
        p.read("drops.jsonl"),
        "",
        "no alert while the rows are steady"
    );
    let run = p.sluice(&["run", "p", "--date", "2024-01-04"]);
    assert_eq!(run.code, 0, "{}", run.explain());
    let alert: serde_json::Value =
        serde_json::from_str(p.read("drops.jsonl").lines().next().unwrap()).unwrap();
    assert_eq!(alert["event"], "row_drop");
    assert_eq!(alert["task"], "extract");
    assert_eq!(
        alert["error"],
        "2 rows, against a median of 10 over the last 3 runs (row_drop: 0.5)"
    );
}

/// A minimal SMTP server on 127.0.0.1 that accepts one message and keeps its DATA.
fn smtp_server() -> (u16, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let _ = stream.write_all(b"220 test ESMTP\r\n");
            let mut data = String::new();
            let mut in_data = false;
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                let reply: &[u8] = if in_data {
                    if line == ".\r\n" {
                        in_data = false;
                        let _ = tx.send(std::mem::take(&mut data));
                        b"250 queued\r\n"
                    } else {
                        data.push_str(&line);
                        b""
                    }
                } else if line.starts_with("EHLO") || line.starts_with("HELO") {
                    b"250 test\r\n"
                } else if line.starts_with("DATA") {
                    in_data = true;
                    b"354 go ahead\r\n"
                } else if line.starts_with("QUIT") {
                    let _ = stream.write_all(b"221 bye\r\n");
                    break;
                } else {
                    b"250 ok\r\n"
                };
                let _ = stream.write_all(reply);
                line.clear();
            }
        }
    });
    (port, rx)
}

#[test]
fn a_failure_alert_arrives_by_email() {
    let (port, mail) = smtp_server();
    let p = TestProject::new();
    p.write(
        "sluice.yaml",
        &format!(
            "name: test\nalerts:\n  mail: {{ email: {{ smtp: \"smtp://127.0.0.1:{port}\", from: sluice@example.com, to: [oncall@example.com] }} }}\n"
        ),
    );
    p.write(
        "pipelines/p.yaml",
        "pipeline: p\nschedule: \"@daily\"\nstart_date: 2024-01-01\nalert: { failure: mail }\ntasks:\n  \
         broken: { shell: { command: \"echo disk full; exit 1\" } }\n",
    );
    let run = p.sluice(&["run", "p", "--date", "2024-01-01", "-q"]);
    assert_eq!(run.code, 1, "{}", run.explain());
    let data = mail
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("an e-mail");
    assert!(
        data.contains("Subject: p.broken failed for 2024-01-01T00:00:00+00:00 (try 1)"),
        "{data}"
    );
    assert!(data.contains("To: oncall@example.com"), "{data}");
    assert!(
        data.contains("disk full") && data.contains("sluice dlq replay 1"),
        "{data}"
    );
}

/// An alert channel that accepts connections and never answers holds each delivery attempt for
/// its whole timeout (10 s). The run must not notice: the retry, the hand-off to the next tasks
/// and the run's end go on at full speed while the alert waits in the background.
#[test]
fn a_dead_webhook_never_holds_up_the_run() {
    // Connections queue in the listen backlog and are never answered.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", black_hole.local_addr().unwrap());
    let p = TestProject::new();
    p.write(
        "sluice.yaml",
        &format!("name: test\nalerts:\n  dead: {{ webhook: \"{url}\" }}\n"),
    );
    p.write(
        "pipelines/p.yaml",
        "pipeline: p\nschedule: \"@daily\"\nstart_date: 2024-01-01\nalert: { retry: dead, recovery: dead }\ntasks:\n  \
         flaky:\n    retries: 1\n    retry_delay: 0s\n    \
         shell: { command: \"test -f tried || { touch tried; exit 1; }\" }\n  \
         a: { after: [flaky], shell: { command: \"true\" } }\n  \
         b: { after: [a], shell: { command: \"true\" } }\n  \
         c: { after: [b], shell: { command: \"true\" } }\n",
    );
    let run = p.sluice(&["run", "p", "--date", "2024-01-01", "--json"]);
    assert_eq!(run.code, 0, "{}", run.explain());
    let json = run.json();
    assert_eq!(json["state"], "success", "{json:#}");
    assert_eq!(common::state_of(&json, "flaky"), ("success".to_string(), 2));
    let took = json["duration_s"].as_f64().unwrap();
    assert!(
        took < 3.0,
        "the run took {took} s: a delivery attempt to the dead webhook held it up"
    );
    drop(black_hole);
}
