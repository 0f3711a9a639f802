//! The web UI in real browsers: headless Chromium and Firefox (Debian's `chromium` and
//! `firefox-esr`, driven through ChromeDriver and geckodriver, installed by
//! scripts/browser-tools) against a real `sluice serve` with a token.
//! A user signs in, sees the pipelines and a broken file with its position, triggers a run from
//! the pipeline page, follows it until it fails, opens the failing task's error and log, clears
//! it, reads the data-quality report, the lineage and the dead letters, pauses the pipeline —
//! and the REST API reports each of these. Screenshots of every page
//! go to `target/…/ui-screenshots/` (and to docs/ui/ with SLUICE_SCREENSHOTS_TO_DOCS=1).

use crate::common;

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
  validate_orders:
    validate: { suite: suites/orders.json, data: "lake://orders.csv", on_failure: warn }
    after: [extract]
"#,
    );
    p.write(
        "lake/orders.csv",
        "order_id,total,status\n1,10.5,paid\n2,-3,paid\n3,7,lost\n",
    );
    p.write(
        "suites/orders.json",
        r#"{"expectation_suite_name": "orders", "expectations": [
  {"expectation_type": "expect_column_values_to_be_between", "kwargs": {"column": "total", "min_value": 0}},
  {"expectation_type": "expect_column_values_to_be_in_set", "kwargs": {"column": "status", "value_set": ["paid"]}}
]}"#,
    );
    p.write(
        "pipelines/broken.yaml",
        "pipeline: broken\ntasks:\n  a: { shel: { command: \"true\" } }\n",
    );
    p
}

#[derive(Clone, Copy, PartialEq)]
enum Browser {
    Chromium,
    Firefox,
}

impl Browser {
    /// Its WebDriver server (ChromeDriver from Debian, geckodriver from scripts/browser-tools).
    fn driver_program(self) -> String {
        match self {
            Browser::Chromium => "chromedriver".into(),
            Browser::Firefox => std::env::var("SLUICE_GECKODRIVER")
                .unwrap_or_else(|_| "/var/cache/sluice/geckodriver/bin/geckodriver".into()),
        }
    }

    fn capabilities(self) -> serde_json::Map<String, serde_json::Value> {
        let mut caps = serde_json::Map::new();
        match self {
            Browser::Chromium => caps.insert(
                "goog:chromeOptions".into(),
                serde_json::json!({
                    "binary": "/usr/bin/chromium",
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage"],
                }),
            ),
            Browser::Firefox => caps.insert(
                "moz:firefoxOptions".into(),
                serde_json::json!({ "binary": "/usr/bin/firefox-esr", "args": ["-headless"] }),
            ),
        };
        caps
    }
}

/// A WebDriver server on a free port, stopped when dropped.
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

fn driver(browser: Browser) -> Driver {
    let port = free_port();
    let program = browser.driver_program();
    let child = Command::new(&program)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e} (scripts/browser-tools installs it)"));
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{program} did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    driver
}

async fn session(browser: Browser, driver: &Driver) -> Client {
    let c = ClientBuilder::rustls()
        .expect("rustls")
        .capabilities(browser.capabilities())
        .connect(&driver.url)
        .await
        .expect("a browser session");
    c.set_window_size(1280, 800).await.unwrap();
    c
}

/// Where a browser's screenshots go: the test's artifacts, and docs/ui for Chromium's with
/// SLUICE_SCREENSHOTS_TO_DOCS=1.
fn screenshot_dirs(browser: Browser) -> Vec<PathBuf> {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    match browser {
        Browser::Chromium => {
            let mut dirs = vec![tmp.join("ui-screenshots/chromium")];
            if std::env::var_os("SLUICE_SCREENSHOTS_TO_DOCS").is_some() {
                dirs.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/ui"));
            }
            dirs
        }
        Browser::Firefox => vec![tmp.join("ui-screenshots/firefox")],
    }
}

async fn screenshot(c: &Client, browser: Browser, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    for dir in screenshot_dirs(browser) {
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
    let body = api_text(http, base, path).await;
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}\n{body}"))
}

/// A page's body as the API's client gets it (with the token).
async fn api_text(http: &reqwest::Client, base: &str, path: &str) -> String {
    http.get(format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .text()
        .await
        .unwrap()
}

/// Waits until `check_totals` of run `run_id` has at least `n` tries, the last one finished, and
/// returns how many it has.
async fn finished_tries(http: &reqwest::Client, base: &str, run_id: &str, n: usize) -> usize {
    let path = format!("/api/runs/{run_id}/tasks/check_totals/tries");
    let started = Instant::now();
    loop {
        let body = api(http, base, &path).await;
        let tries = body["tries"].as_array().unwrap();
        let last = tries
            .last()
            .map(|t| t["outcome"].as_str().unwrap_or_default());
        if tries.len() >= n && last.is_some_and(|o| o != "running") {
            return tries.len();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "waited for try {n} to finish: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs a browser flow to its end; a stuck step fails the test with a message instead of
/// hanging the suite.
fn drive(flow: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(240), flow)
                .await
                .expect("the browser flow took more than 4 minutes")
        });
}

/// Clicks the element `css` finds.
async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}`: {e}"))
        .click()
        .await
        .unwrap();
}

/// Signs in with the token on the login page every page sends an anonymous user to (its
/// screenshot taken when `browser` is given).
async fn sign_in(c: &Client, base: &str, browser: Option<Browser>) {
    c.goto(&format!("{base}/")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/login"));
    if let Some(browser) = browser {
        screenshot(c, browser, "login").await;
    }
    c.find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(TOKEN)
        .await
        .unwrap();
    click(c, "form button").await;
}

/// Triggers a run of `pipeline` for `date` from its page; returns the path of the run page it
/// opens.
async fn trigger(c: &Client, base: &str, pipeline: &str, date: &str) -> String {
    c.goto(&format!("{base}/pipelines/{pipeline}"))
        .await
        .unwrap();
    c.execute(
        &format!("document.querySelector('input[name=date]').value = '{date}'"),
        vec![],
    )
    .await
    .unwrap();
    click(c, "form[data-api$='/runs'] button").await;
    let within = Duration::from_secs(20);
    wait_for_path(c, "the run page", within, |path| path.starts_with("/runs/")).await
}

/// Waits until the browser is at a path that `wanted` accepts (`within` at most); returns it.
async fn wait_for_path(
    c: &Client,
    what: &str,
    within: Duration,
    wanted: impl Fn(&str) -> bool,
) -> String {
    let started = Instant::now();
    loop {
        let path = c.current_url().await.unwrap().path().to_string();
        if wanted(&path) {
            return path;
        }
        assert!(
            started.elapsed() < within,
            "{what} did not open (at {path})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Opens the lineage of `pipeline` from its page and returns the graph's labels.
async fn lineage_of(c: &Client, base: &str, pipeline: &str) -> String {
    c.goto(&format!("{base}/pipelines/{pipeline}"))
        .await
        .unwrap();
    click(c, &format!("a[href='/lineage?pipeline={pipeline}']")).await;
    let graph = wait_for(c, "svg[aria-label=lineage]", "the lineage graph").await;
    graph.text().await.unwrap()
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
fn in_chromium_a_user_follows_a_run_finds_the_failing_task_and_steers() {
    user_follows_a_run_finds_the_failing_task_and_steers(Browser::Chromium);
}

#[test]
fn in_firefox_a_user_follows_a_run_finds_the_failing_task_and_steers() {
    user_follows_a_run_finds_the_failing_task_and_steers(Browser::Firefox);
}

fn user_follows_a_run_finds_the_failing_task_and_steers(browser: Browser) {
    let p = project();
    let server = Server::start(&p, Some(TOKEN));
    let driver = driver(browser);
    let flow = async {
        let user = User {
            c: session(browser, &driver).await,
            base: server.base.as_str(),
            http: reqwest::Client::new(),
            browser,
        };
        // Signing in: the pages want the token, like the API.
        sign_in(&user.c, user.base, Some(browser)).await;
        wait_for(&user.c, "a[href='/pipelines/orders']", "the pipelines").await;
        user.sees_the_pipelines_and_the_broken_file().await;
        let (run_path, run_id) = user.triggers_a_run().await;
        user.follows_the_run_until_it_fails().await;
        user.reads_the_failing_task().await;
        user.sees_the_states_in_the_grid_and_the_graph().await;
        user.walks_the_grid_by_keyboard().await;
        user.reads_the_quality_report(&run_path).await;
        user.reads_the_lineage().await;
        let tries = user.replays_the_dead_letter(&run_id).await;
        user.looks_at_the_streams().await;
        user.clears_the_failed_task(&run_path, &run_id, tries).await;
        user.pauses_the_pipeline().await;
        user.reads_in_a_narrow_window().await;
        user.c.close().await.unwrap();
    };
    drive(flow);
    assert_eq!(server.stop(), Some(0));
}

/// A signed-in user of the orders project, in one browser; each step checks what the pages
/// show against the REST API.
struct User<'a> {
    c: Client,
    base: &'a str,
    http: reqwest::Client,
    browser: Browser,
}

impl User<'_> {
    /// The pipelines, and the broken file at the position the API reports.
    async fn sees_the_pipelines_and_the_broken_file(&self) {
        let pipelines = api(&self.http, self.base, "/api/pipelines").await;
        let problem = &pipelines["problems"][0];
        let place = format!(
            "{}:{}:{}",
            problem["file"].as_str().unwrap(),
            problem["line"],
            problem["col"]
        );
        let page = text(&self.c).await;
        assert!(page.contains(&place), "`{place}` not on the page:\n{page}");
        assert!(
            page.contains(problem["message"].as_str().unwrap()),
            "{page}"
        );
        assert!(page.contains("0 6 * * *"), "{page}");
        screenshot(&self.c, self.browser, "pipelines").await;
    }

    /// Triggers a run for a date from the pipeline page: it opens the run (its path and id
    /// returned).
    async fn triggers_a_run(&self) -> (String, String) {
        let run_path = trigger(&self.c, self.base, "orders", "2024-03-05").await;
        let run_id = run_path.trim_start_matches("/runs/").to_string();
        let run = api(&self.http, self.base, &format!("/api/runs/{run_id}")).await;
        assert_eq!(run["logical_date"].as_str().unwrap()[..10], *"2024-03-05");
        (run_path, run_id)
    }

    /// Followed live: the run page refreshes itself until the run fails.
    async fn follows_the_run_until_it_fails(&self) {
        wait_for(&self.c, "h1 .badge.failed", "the run to fail").await;
        let page = text(&self.c).await;
        assert!(page.contains("exit status 3"), "{page}");
        screenshot(&self.c, self.browser, "run").await;
    }

    /// The failing task: its error, its log and its configuration as the run rendered it.
    async fn reads_the_failing_task(&self) {
        let c = &self.c;
        click(c, "table a[href$='/tasks/check_totals']").await;
        wait_for(c, "pre.log", "the log").await;
        let page = text(c).await;
        assert!(page.contains("exit status 3"), "{page}");
        assert!(page.contains("checking totals of 2024-03-05"), "{page}");
        assert!(page.contains("totals do not match: 41 != 42"), "{page}");
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
        screenshot(c, self.browser, "task").await;
    }

    /// The grid and the graph show the run's states.
    async fn sees_the_states_in_the_grid_and_the_graph(&self) {
        let c = &self.c;
        c.goto(&format!("{}/pipelines/orders", self.base))
            .await
            .unwrap();
        wait_for(c, "tr[data-task='check_totals'] td.f", "a failed cell").await;
        wait_for(c, "tr[data-task='extract'] td.s", "a successful cell").await;
        wait_for(c, "tr[data-task='publish'] td.x", "an upstream_failed cell").await;
        wait_for(c, "svg.graph .node.failed", "the failed task in the graph").await;
        screenshot(c, self.browser, "pipeline").await;
    }

    /// The grid by keyboard: it takes the focus, the arrows move (announced), Enter opens.
    /// "\u{E015}" and "\u{E007}" are WebDriver's ArrowDown and Enter.
    async fn walks_the_grid_by_keyboard(&self) {
        let c = &self.c;
        let row = c
            .execute(
                "return [...document.querySelectorAll('table.grid tbody tr')]
                     .findIndex(r => r.dataset.task === 'check_totals')",
                vec![],
            )
            .await
            .unwrap()
            .as_u64()
            .unwrap() as usize;
        let grid = c.find(Locator::Css(".grid-box")).await.unwrap();
        grid.send_keys(&"\u{E015}".repeat(row)).await.unwrap();
        let said = c
            .find(Locator::Css("output.grid-cursor"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(said.starts_with("check_totals · "), "{said}");
        grid.send_keys("\u{E007}").await.unwrap();
        let within = Duration::from_secs(10);
        wait_for_path(c, "check_totals by Enter", within, |path| {
            path.ends_with("/tasks/check_totals")
        })
        .await;
    }

    /// The data-quality report of the validation, on its task page and on the quality page.
    async fn reads_the_quality_report(&self, run_path: &str) {
        let (c, base) = (&self.c, self.base);
        c.goto(&format!("{base}{run_path}/tasks/validate_orders"))
            .await
            .unwrap();
        wait_for(c, "iframe.report", "the validation's report").await;
        let report = api_text(
            &self.http,
            base,
            &format!("/ui{run_path}/tasks/validate_orders/tries/1/report"),
        )
        .await;
        assert!(
            report.contains("expect_column_values_to_be_between"),
            "{report}"
        );
        screenshot(c, self.browser, "validation").await;
        c.goto(&format!("{base}/quality")).await.unwrap();
        let page = text(c).await;
        assert!(page.contains("validate_orders"), "{page}");
        screenshot(c, self.browser, "quality").await;
    }

    /// The lineage: the lake file the validation reads, in the pipeline's graph.
    async fn reads_the_lineage(&self) {
        let labels = lineage_of(&self.c, self.base, "orders").await;
        assert!(labels.contains("orders.csv"), "{labels}");
        screenshot(&self.c, self.browser, "lineage").await;
    }

    /// The dead letters: the failed task with its error, ready to replay. Replaying our run's
    /// entry makes the server try the task again; it fails again, so the entry is not marked
    /// replayed (only a re-run that succeeds is). Returns the tries finished since.
    async fn replays_the_dead_letter(&self, run_id: &str) -> usize {
        let (c, base) = (&self.c, self.base);
        c.goto(&format!("{base}/dead-letters")).await.unwrap();
        let page = text(c).await;
        assert!(page.contains("check_totals"), "{page}");
        assert!(page.contains("exit status 3"), "{page}");
        screenshot(c, self.browser, "dead-letters").await;
        let before = finished_tries(&self.http, base, run_id, 1).await;
        c.find(Locator::XPath(
            "//tr[contains(., 'run of 2024-03-05')]//form[contains(@data-api, '/replay')]/button",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
        let after = finished_tries(&self.http, base, run_id, before + 1).await;
        c.goto(&format!("{base}/dead-letters")).await.unwrap();
        let row = c
            .find(Locator::XPath("//tr[contains(., 'run of 2024-03-05')]"))
            .await
            .unwrap()
            .html(false)
            .await
            .unwrap();
        assert!(!row.contains("replayed"), "{row}");
        after
    }

    async fn looks_at_the_streams(&self) {
        self.c
            .goto(&format!("{}/streams", self.base))
            .await
            .unwrap();
        screenshot(&self.c, self.browser, "streams").await;
    }

    /// Clears the failed task from the run page: the server tries it again.
    async fn clears_the_failed_task(&self, run_path: &str, run_id: &str, tries: usize) {
        self.c
            .goto(&format!("{}{run_path}", self.base))
            .await
            .unwrap();
        let clear = "tr:has(a[href$='/tasks/check_totals']) form[data-api$='/clear'] button";
        click(&self.c, clear).await;
        finished_tries(&self.http, self.base, run_id, tries + 1).await;
    }

    /// Pauses from the pipeline page: the API reports it paused, the page shows it.
    async fn pauses_the_pipeline(&self) {
        self.c
            .goto(&format!("{}/pipelines/orders", self.base))
            .await
            .unwrap();
        click(&self.c, "form[data-api$='/pause'] button").await;
        let started = Instant::now();
        while api(&self.http, self.base, "/api/pipelines/orders").await["paused"] != true {
            assert!(started.elapsed() < Duration::from_secs(10), "not paused");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        wait_for(&self.c, "h1 .badge.paused", "the paused badge").await;
    }

    /// A narrow window still reads.
    async fn reads_in_a_narrow_window(&self) {
        self.c.set_window_size(420, 800).await.unwrap();
        self.c.goto(&format!("{}/", self.base)).await.unwrap();
        screenshot(&self.c, self.browser, "pipelines-narrow").await;
    }
}

/// The issue's new user: `sluice serve` in the demo project (`sluice init`), a run of the
/// article's daily_sales_etl triggered from its page and followed live until it succeeds, its
/// validation's report, and the lineage of what it reads and loads.
#[test]
fn in_chromium_a_new_user_runs_the_demo_from_the_browser() {
    let p = TestProject::new();
    std::fs::remove_file(p.path().join("sluice.yaml")).unwrap();
    std::fs::remove_dir_all(p.path().join("pipelines")).unwrap();
    common::init_demo(p.path());
    let server = Server::start(&p, Some(TOKEN));
    let driver = driver(Browser::Chromium);
    let flow = async {
        let c = session(Browser::Chromium, &driver).await;
        let base = server.base.as_str();
        let http = reqwest::Client::new();
        sign_in(&c, base, None).await;
        wait_for(
            &c,
            "a[href='/pipelines/daily_sales_etl']",
            "the demo's pipelines",
        )
        .await;
        let run_path = trigger(&c, base, "daily_sales_etl", "2024-01-01").await;
        wait_for(&c, "h1 .badge.success", "the demo run to succeed").await;
        let run = api(&http, base, &format!("/api{run_path}")).await;
        assert_eq!(run["state"], "success", "{run}");
        screenshot(&c, Browser::Chromium, "demo-run").await;
        click(&c, "table a[href$='/tasks/validate_data']").await;
        wait_for(&c, "iframe.report", "the validation's report").await;
        screenshot(&c, Browser::Chromium, "demo-validation").await;
        let labels = lineage_of(&c, base, "daily_sales_etl").await;
        assert!(labels.contains("warehouse.staging.orders"), "{labels}");
        screenshot(&c, Browser::Chromium, "demo-lineage").await;
        c.close().await.unwrap();
    };
    drive(flow);
    assert_eq!(server.stop(), Some(0));
}

/// Serves `html` at `/` on a port of its own: another origin than the server's.
fn serve_page(html: String) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = axum::Router::new().route(
                "/",
                axum::routing::get(move || async move { axum::response::Html(html) }),
            );
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    url
}

/// A page on another port, open in the same browser as a fresh server's UI (no token, on
/// loopback), tries to pause a pipeline three ways: a no-CORS `text/plain` fetch, a JSON
/// fetch (which needs a preflight the server never grants) and a posted form. None does.
#[test]
fn in_chromium_a_page_on_another_port_cannot_change_anything() {
    let p = project();
    let server = Server::start(&p, None);
    let target = format!("{}/api/pipelines/orders/pause", server.base);
    let page = serve_page(format!(
        r#"<!doctype html><html><body>
<form id="forged" method="post" action="{target}" enctype="text/plain">
  <input name='{{"a":"' value='"}}'>
</form>
<script>
const post = (headers, mode) => fetch("{target}", {{ method: "POST", mode, headers, body: "{{}}" }})
  .catch(() => null);
post({{ "content-type": "text/plain" }}, "no-cors")
  .then(() => post({{ "content-type": "application/json" }}, "cors"))
  .then(() => document.getElementById("forged").submit());
</script></body></html>"#
    ));
    let driver = driver(Browser::Chromium);
    let flow = async {
        let c = session(Browser::Chromium, &driver).await;
        let http = reqwest::Client::new();
        let base = server.base.as_str();
        // The server's own page first, as a user who has it open would.
        c.goto(&format!("{base}/")).await.unwrap();
        wait_for(&c, "a[href='/pipelines/orders']", "the pipelines page").await;
        c.goto(&page).await.unwrap();
        // The form's navigation lands on the server's answer.
        let started = Instant::now();
        while c.current_url().await.unwrap().as_str() != target {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the forged form was not submitted"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let answer = c.source().await.unwrap();
        assert!(answer.contains("refused"), "{answer}");
        // The server has no token: the API answers anyone on loopback.
        let pipeline: serde_json::Value = http
            .get(format!("{base}/api/pipelines/orders"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(pipeline["paused"], false, "{pipeline}");
        c.close().await.unwrap();
    };
    drive(flow);
    assert_eq!(server.stop(), Some(0));
}
