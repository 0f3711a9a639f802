//! The web UI in a real browser: headless Chromium (Debian's `chromium`, driven through
//! `chromedriver`, both installed by scripts/test) against a real `sluice serve` with a token.
//! A user signs in, sees the pipelines and a broken file with its position, triggers a run from
//! the pipeline page, follows it until it fails, opens the failing task's error and log, clears
//! it, pauses the pipeline — and the REST API reports each of these. Screenshots of every page
//! go to `target/…/ui-screenshots/` (and to docs/ui/ with SLUICE_SCREENSHOTS_TO_DOCS=1).

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::server::Server;
use common::{TestProject, free_port};
use fantoccini::{Client, ClientBuilder, Locator};

const TOKEN: &str = "ui-test-token";

fn project() -> TestProject {
    let p = TestProject::new();
    p.write(
        "pipelines/orders.yaml",
        r#"pipeline: orders
description: Orders from the shop into the warehouse
schedule: "0 6 * * *"
start_date: 2024-01-01
catchup: false
tasks:
  extract: { shell: { command: "echo extracting; echo '42 rows'" } }
  transform: { shell: { command: "echo transforming" }, after: [extract] }
  check_totals:
    shell: { command: "echo checking totals of {{ ds }}; echo 'totals do not match: 41 != 42' >&2; exit 3" }
    after: [transform]
  publish: { shell: { command: "echo publishing" }, after: [check_totals] }
"#,
    );
    p.write(
        "pipelines/broken.yaml",
        "pipeline: broken\ntasks:\n  a: { shel: { command: \"true\" } }\n",
    );
    p
}

/// ChromeDriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver() -> Driver {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian package chromium-driver; scripts/test installs it)");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    driver
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,800"],
        }),
    );
    ClientBuilder::rustls()
        .expect("rustls")
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

fn screenshots() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots")];
    if std::env::var_os("SLUICE_SCREENSHOTS_TO_DOCS").is_some() {
        dirs.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/ui"));
    }
    dirs
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    for dir in screenshots() {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
    }
}

/// Waits until `css` matches an element (the page refreshes its live regions by itself).
async fn wait_for(c: &Client, css: &str, what: &str) -> fantoccini::elements::Element {
    let started = Instant::now();
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            return e;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let source = c.source().await.unwrap_or_default();
            panic!("waited a minute for {what} (`{css}`); the page:\n{source}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the REST API says (with the token), as the check on what the browser did. The client is
/// made inside the test's runtime: `Server::http` keeps pooled connections whose tasks live on the
/// server helper's own runtime, which nothing drives while this test's runtime runs.
async fn api(http: &reqwest::Client, base: &str, path: &str) -> serde_json::Value {
    http.get(format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .json()
        .await
        .unwrap()
}

async fn text(c: &Client) -> String {
    c.find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[test]
fn a_user_follows_a_run_finds_the_failing_task_and_steers_from_the_browser() {
    let p = project();
    let server = Server::start(&p, Some(TOKEN));
    let driver = chromedriver();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let flow = async {
        let c = browser(&driver).await;
        let base = server.base.as_str();
        let http = reqwest::Client::new();

        // Signing in: the pages want the token, like the API.
        c.goto(&format!("{base}/")).await.unwrap();
        assert!(c.current_url().await.unwrap().path().ends_with("/login"));
        screenshot(&c, "login").await;
        c.find(Locator::Css("#token"))
            .await
            .unwrap()
            .send_keys(TOKEN)
            .await
            .unwrap();
        c.find(Locator::Css("form button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(&c, "a[href='/pipelines/orders']", "the pipelines").await;

        // The pipelines, and the broken file at the position the API reports.
        let pipelines = api(&http, base, "/api/pipelines").await;
        let problem = &pipelines["problems"][0];
        let place = format!(
            "{}:{}:{}",
            problem["file"].as_str().unwrap(),
            problem["line"],
            problem["col"]
        );
        let page = text(&c).await;
        assert!(page.contains(&place), "`{place}` not on the page:\n{page}");
        assert!(
            page.contains(problem["message"].as_str().unwrap()),
            "{page}"
        );
        assert!(page.contains("0 6 * * *"), "{page}");
        screenshot(&c, "pipelines").await;

        // Trigger a run for a date from the pipeline page: it opens the run.
        c.goto(&format!("{base}/pipelines/orders")).await.unwrap();
        c.execute(
            "document.querySelector('input[name=date]').value = '2024-03-05'",
            vec![],
        )
        .await
        .unwrap();
        c.find(Locator::Css("form[data-api$='/runs'] button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let started = Instant::now();
        while !c.current_url().await.unwrap().path().starts_with("/runs/") {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the run page did not open"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let run_path = c.current_url().await.unwrap().path().to_string();
        let run_id = run_path.trim_start_matches("/runs/").to_string();
        let run = api(&http, base, &format!("/api/runs/{run_id}")).await;
        assert_eq!(run["logical_date"].as_str().unwrap()[..10], *"2024-03-05");

        // Followed live: the run page refreshes itself until the run fails.
        wait_for(&c, "h1 .badge.failed", "the run to fail").await;
        let page = text(&c).await;
        assert!(page.contains("exit status 3"), "{page}");
        screenshot(&c, "run").await;

        // The failing task: its error and its log.
        c.find(Locator::Css("a[href$='/tasks/check_totals']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(&c, "pre.log", "the log").await;
        let page = text(&c).await;
        assert!(page.contains("exit status 3"), "{page}");
        assert!(page.contains("checking totals of 2024-03-05"), "{page}");
        assert!(page.contains("totals do not match: 41 != 42"), "{page}");
        // Its configuration as the run rendered it.
        let config = c
            .find(Locator::Css("pre.config"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            config.contains("\"command\": \"echo checking totals of 2024-03-05;"),
            "{config}"
        );
        screenshot(&c, "task").await;

        // The grid and the graph show the run's states.
        c.goto(&format!("{base}/pipelines/orders")).await.unwrap();
        wait_for(&c, "tr[data-task='check_totals'] td.f", "a failed cell").await;
        wait_for(&c, "tr[data-task='extract'] td.s", "a successful cell").await;
        wait_for(
            &c,
            "tr[data-task='publish'] td.x",
            "an upstream_failed cell",
        )
        .await;
        wait_for(&c, "svg.graph .node.failed", "the failed task in the graph").await;
        screenshot(&c, "pipeline").await;

        // The grid by keyboard: it takes the focus, the arrows move (announced), Enter opens.
        // "\u{E015}" and "\u{E007}" are WebDriver's ArrowDown and Enter.
        let grid = c.find(Locator::Css(".grid-box")).await.unwrap();
        grid.send_keys("\u{E015}\u{E015}").await.unwrap();
        let said = c
            .find(Locator::Css("output.grid-cursor"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(said.starts_with("check_totals · "), "{said}");
        grid.send_keys("\u{E007}").await.unwrap();
        let started = Instant::now();
        while !c
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/tasks/check_totals")
        {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "Enter opened nothing"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // Clear the failed task from the run page: the server tries it again.
        c.goto(&format!("{base}{run_path}")).await.unwrap();
        let clear = "tr:has(a[href$='/tasks/check_totals']) form[data-api$='/clear'] button";
        c.find(Locator::Css(clear))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let started = Instant::now();
        loop {
            let tries = api(
                &http,
                base,
                &format!("/api/runs/{run_id}/tasks/check_totals/tries"),
            )
            .await;
            if tries["tries"].as_array().unwrap().len() >= 2 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no second try: {tries}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        // Pause from the pipeline page.
        c.goto(&format!("{base}/pipelines/orders")).await.unwrap();
        c.find(Locator::Css("form[data-api$='/pause'] button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let started = Instant::now();
        while api(&http, base, "/api/pipelines/orders").await["paused"] != true {
            assert!(started.elapsed() < Duration::from_secs(10), "not paused");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        wait_for(&c, "h1 .badge.paused", "the paused badge").await;

        // A narrow window still reads.
        c.set_window_size(420, 800).await.unwrap();
        c.goto(&format!("{base}/")).await.unwrap();
        screenshot(&c, "pipelines-narrow").await;
        c.close().await.unwrap();
    };
    // A stuck step fails the test with a message instead of hanging the suite.
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(240), flow)
            .await
            .expect("the browser flow took more than 4 minutes")
    });
    assert_eq!(server.stop(), Some(0));
}
