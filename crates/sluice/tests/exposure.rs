//! A fresh `sluice serve` on loopback, no token, against what a malicious page in the same
//! browser can send — a form posted from another port, a no-CORS fetch, a DNS-rebound name —
//! in real headless Chromium and as the raw requests; and against one request that asks for
//! too much work.

use crate::common;

use std::time::{Duration, Instant};

use common::TestProject;
use common::server::Server;
use serde_json::json;

fn hourly_project(settings: &str) -> TestProject {
    let p = TestProject::new();
    p.write("sluice.yaml", &format!("name: test\n{settings}"));
    p.write(
        "pipelines/hourly.yaml",
        "pipeline: hourly\nschedule: \"@hourly\"\nstart_date: 2000-01-01\ncatchup: false\ntasks:\n  t: { shell: \"true\" }\n",
    );
    p
}

/// A request with exactly these headers (reqwest adds none of its own that matter here).
fn send(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    // Redirects are answers to look at, not to follow.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut request = http
        .request(method, format!("{}{path}", server.base))
        .body(body.to_string());
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    server.rt.block_on(async {
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.text().await.unwrap_or_default())
    })
}

fn paused(server: &Server) -> bool {
    server.get("/api/pipelines/hourly")["paused"] == json!(true)
}

#[test]
fn a_fresh_server_refuses_forged_and_rebound_requests() {
    let p = hourly_project("serve: { allowed_hosts: [sluice.internal] }\n");
    let server = Server::start(&p, None);
    let port = server.base.rsplit(':').next().unwrap().to_string();
    let pause = "/api/pipelines/hourly/pause";
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;
    let evil = "http://127.0.0.1:1";

    // What an HTML form on another page sends, with and without the browser's Origin; a
    // no-CORS fetch's text/plain; JSON that the browser marks cross-site.
    let forged: &[&[(&str, &str)]] = &[
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", evil),
        ],
        &[("content-type", "application/x-www-form-urlencoded")],
        &[("content-type", "text/plain"), ("origin", "null")],
        &[("content-type", "text/plain")],
        &[
            ("content-type", "application/json"),
            ("sec-fetch-site", "cross-site"),
        ],
        &[("content-type", "application/json"), ("origin", evil)],
    ];
    for headers in forged {
        let (status, _, body) = send(&server, post.clone(), pause, headers, "{}");
        assert_eq!(status, 403, "{headers:?}: {body}");
        assert!(body.contains("refused"), "{body}");
        assert!(!paused(&server), "{headers:?} paused the pipeline");
    }

    // A rebound name is refused even for reading; the names the server answers to are not.
    let (status, _, body) = send(
        &server,
        get.clone(),
        "/api/pipelines",
        &[("host", &format!("attacker.example:{port}"))],
        "",
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("allowed_hosts"), "{body}");
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("sluice.internal:{port}"),
    ] {
        let (status, _, body) = send(
            &server,
            get.clone(),
            "/api/pipelines",
            &[("host", &host)],
            "",
        );
        assert_eq!(status, 200, "{host}: {body}");
    }

    // The server's own page and scripts get through: same-origin JSON, or the custom header.
    let own = format!("http://127.0.0.1:{port}");
    let (status, _, body) = send(
        &server,
        post.clone(),
        pause,
        &[
            ("content-type", "application/json"),
            ("origin", &own),
            ("sec-fetch-site", "same-origin"),
        ],
        "{}",
    );
    assert_eq!(status, 200, "{body}");
    assert!(paused(&server));
    let (status, _, body) = send(
        &server,
        post,
        "/api/pipelines/hourly/unpause",
        &[("x-sluice-request", "1")],
        "",
    );
    assert_eq!(status, 200, "{body}");
    assert!(!paused(&server));

    // Pages cannot be framed or sniffed and run no inline script.
    let (status, headers, _) = send(&server, get, "/", &[], "");
    assert_eq!(status, 200);
    let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_string();
    assert!(header("content-security-policy").contains("script-src 'self'"));
    assert!(header("content-security-policy").contains("frame-ancestors 'none'"));
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("referrer-policy"), "same-origin");
    assert_eq!(server.stop(), Some(0));
}

#[test]
fn one_request_cannot_make_the_server_unusable() {
    let p = hourly_project("serve: { max_backfill_intervals: 48 }\n");
    let server = Server::start(&p, None);
    let backfills = "/api/pipelines/hourly/backfills";

    // Centuries of hours: refused at once with the limit, nothing created.
    let asked = Instant::now();
    let (status, body) = server.post(
        backfills,
        json!({ "from": "2000-01-01", "to": "9999-12-31" }),
    );
    assert_eq!(status, 400, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("more than 48 intervals"), "{message}");
    assert!(message.contains("max_backfill_intervals"), "{message}");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(server.get("/api/backfills")["backfills"], json!([]));

    // Dates out of range are a 400, not a panic.
    for date in ["+262142-12-31", "0000-01-01", "2024-02-30"] {
        let (status, body) = server.post(backfills, json!({ "from": date, "to": date }));
        assert_eq!(status, 400, "{date}: {body}");
        let (status, body) = server.post("/api/pipelines/hourly/runs", json!({ "date": date }));
        assert_eq!(status, 400, "{date}: {body}");
    }

    // Within the limit: answered at once, its runs created in the background.
    let (status, body) = server.post(
        backfills,
        json!({ "from": "2000-01-01", "to": "2000-01-02" }),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["intervals"], 48, "{body}");
    let progress = format!("/api/backfills/{}", body["id"]);
    server.wait_for("the backfill's 48 runs to succeed", || {
        let b = server.get(&progress);
        b["finished"] == json!(true) && b["done"] == json!(48)
    });
    assert_eq!(server.stop(), Some(0));
}

/// The secret `sluice token create` prints (its only line on standard output).
fn create_token(p: &TestProject, name: &str, role: &str) -> String {
    let out = p.sluice(&["token", "create", name, "--role", role]);
    assert_eq!(out.code, 0, "{}", out.explain());
    out.stdout.trim().to_string()
}

#[test]
fn roles_decide_what_a_token_may_do_and_every_change_is_audited() {
    let p = hourly_project("");
    let viewer = create_token(&p, "dashboards", "viewer");
    let operator = create_token(&p, "on-call", "operator");
    assert!(viewer.starts_with("sluice_") && viewer != operator);
    let listed = p.sluice(&["token", "list"]);
    assert!(listed.stdout.contains("dashboards") && listed.stdout.contains("on-call"));
    assert!(!listed.stdout.contains(&viewer), "{}", listed.stdout);
    let taken = p.sluice(&["token", "create", "on-call", "--role", "admin"]);
    assert_eq!(taken.code, 2, "{}", taken.explain());

    // Tokens exist, so a server without SLUICE_API_TOKEN still wants one.
    let server = Server::start(&p, Some("admin-Tok-1"));
    let ask = |method: reqwest::Method, path: &str, token: &str| {
        server.request(method, path, Some("{}"), Some(token))
    };
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    assert_eq!(send(&server, get.clone(), "/api/pipelines", &[], "").0, 401);
    assert_eq!(ask(get.clone(), "/api/pipelines", "sluice_wrong").0, 401);
    assert_eq!(ask(get.clone(), "/api/pipelines", &viewer).0, 200);
    // The UI shows a viewer no action, an operator every one.
    let (status, page) = ask(get.clone(), "/pipelines/hourly", &viewer);
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("<h1>hourly") && !page.contains("data-api"),
        "{page}"
    );
    let (_, page) = ask(get.clone(), "/pipelines/hourly", &operator);
    assert!(
        page.contains("data-api=\"/api/pipelines/hourly/pause\""),
        "{page}"
    );
    let (status, body) = ask(post.clone(), "/api/pipelines/hourly/pause", &viewer);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("`dashboards` is a viewer"), "{body}");
    assert!(!paused(&server));
    let (status, body) = ask(post.clone(), "/api/pipelines/hourly/pause", &operator);
    assert_eq!(status, 200, "{body}");
    assert_eq!(ask(get.clone(), "/api/audit", &operator).0, 403);

    // The admin reads who did what, from where, with which result.
    let (status, body) = ask(get.clone(), "/api/audit", "admin-Tok-1");
    assert_eq!(status, 200, "{body}");
    let audit: serde_json::Value = serde_json::from_str(&body).unwrap();
    let entries: Vec<String> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {}",
                e["principal"], e["address"], e["action"], e["status"]
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            "\"on-call\" \"127.0.0.1\" \"POST /api/pipelines/hourly/pause\" 200",
            "\"dashboards\" \"127.0.0.1\" \"POST /api/pipelines/hourly/pause\" 403",
        ]
    );
    let (status, page) = ask(get.clone(), "/audit", "admin-Tok-1");
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("<code>POST /api/pipelines/hourly/pause</code>"),
        "{page}"
    );
    assert_eq!(ask(get.clone(), "/audit", &operator).0, 403);
    let cli = p.sluice(&["audit"]);
    assert!(cli.stdout.contains("on-call"), "{}", cli.explain());

    // A browser signs in with a token; its cookie holds a session id, never the token.
    let (status, headers, body) = send(
        &server,
        post.clone(),
        "/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        &format!("token={operator}"),
    );
    assert_eq!(status, 303, "{body}");
    let cookie = headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains(&operator), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_string();
    let with_session = [("cookie", session.as_str())];
    assert_eq!(
        send(&server, get.clone(), "/api/pipelines", &with_session, "").0,
        200
    );

    // Revoked: the token and its sessions stop working.
    let revoke = p.sluice(&["token", "revoke", "on-call"]);
    assert_eq!(revoke.code, 0, "{}", revoke.explain());
    assert_eq!(ask(get.clone(), "/api/pipelines", &operator).0, 401);
    assert_eq!(
        send(&server, get, "/api/pipelines", &with_session, "").0,
        401
    );
    assert_eq!(server.stop(), Some(0));
}

#[test]
fn off_loopback_the_server_speaks_tls_unless_told_otherwise() {
    let p = hourly_project("");
    let refused = p
        .command(&["serve", "--addr", "0.0.0.0:0"])
        .env("SLUICE_API_TOKEN", "admin-Tok-2")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("without TLS"), "{stderr}");
    assert!(stderr.contains("--insecure-http"), "{stderr}");

    // HTTPS with the certificate in sluice.yaml: the API answers, plain HTTP does not, and a
    // signed-in browser's cookie is `Secure`.
    let certs = p.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let ca = sluice_testkit::tls::TestCa::new(&certs, "ca");
    ca.sign(&certs, "server", &["127.0.0.1", "localhost"]);
    p.write(
        "sluice.yaml",
        "name: test\nserve: { tls: { cert: certs/server.crt, key: certs/server.key } }\n",
    );
    let port = common::free_port();
    let mut child = Server::command(&p, port)
        .env("SLUICE_API_TOKEN", "admin-Tok-2")
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ca_pem = std::fs::read(&ca.cert_file).unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("https://127.0.0.1:{port}");
    let started = Instant::now();
    let status = loop {
        let answer = rt.block_on(
            https
                .get(format!("{base}/api/pipelines"))
                .bearer_auth("admin-Tok-2")
                .send(),
        );
        match answer {
            Ok(response) => break response.status().as_u16(),
            Err(e) => {
                assert!(started.elapsed() < Duration::from_secs(30), "{e:?}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    assert_eq!(status, 200);
    let plain = rt.block_on(reqwest::get(format!(
        "http://127.0.0.1:{port}/api/pipelines"
    )));
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");
    let signed_in = rt
        .block_on(
            https
                .post(format!("{base}/login"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("token=admin-Tok-2")
                .send(),
        )
        .unwrap();
    assert_eq!(signed_in.status().as_u16(), 303);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    sluice_testkit::send_signal(child.id(), libc::SIGTERM);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
}
