//! Paged HTTP reads against a real local server that counts every request it receives, so the
//! tests can check not only what arrives but how many requests it took.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use sluice_io::IoError;
use sluice_io::http::{Auth, HttpSource, PageClient, Pagination, pages};
use url::Url;

const TOTAL: u64 = 250;
/// Page size of the next-link endpoints: 7 pages, the last one with 10 records.
const PER_PAGE: u64 = 40;
const TOKEN: &str = "s3cr3t-token-123";
/// `alice:wonderland`
const BASIC: &str = "Basic YWxpY2U6d29uZGVybGFuZA==";

#[derive(Default)]
struct Counters {
    hits: Mutex<HashMap<String, u32>>,
}

impl Counters {
    /// Counts a request to `route` for `page` and returns how many it has seen, this one included.
    fn hit(&self, route: &str, page: impl std::fmt::Display) -> u32 {
        let mut hits = self.hits.lock().unwrap();
        let count = hits.entry(format!("{route}:{page}")).or_default();
        *count += 1;
        *count
    }

    fn of(&self, route: &str, page: impl std::fmt::Display) -> u32 {
        let hits = self.hits.lock().unwrap();
        hits.get(&format!("{route}:{page}")).copied().unwrap_or(0)
    }

    fn total(&self, route: &str) -> u32 {
        let prefix = format!("{route}:");
        let hits = self.hits.lock().unwrap();
        hits.iter()
            .filter(|(key, _)| key.starts_with(&prefix))
            .map(|(_, count)| count)
            .sum()
    }
}

type Shared = Arc<Counters>;
type Params = Query<HashMap<String, String>>;

fn record(n: u64) -> Value {
    json!({"id": n, "name": format!("customer {n}")})
}

/// Records after `offset`, at most `size` of them.
fn slice(offset: u64, size: u64) -> Vec<Value> {
    (offset + 1..=(offset + size).min(TOTAL))
        .map(record)
        .collect()
}

fn number(params: &HashMap<String, String>, name: &str, default: u64) -> u64 {
    params
        .get(name)
        .map_or(default, |value| value.parse().expect("a number"))
}

/// `{"data": {"items": [...]}, "next": "/path?page=N+1…"}` for 1-based `page`.
fn nested_page(path: &str, page: u64, extra_query: &str) -> Value {
    let next = if page * PER_PAGE < TOTAL {
        json!(format!("{path}?page={}{extra_query}", page + 1))
    } else {
        Value::Null
    };
    json!({"data": {"items": slice((page - 1) * PER_PAGE, PER_PAGE)}, "next": next})
}

fn authorization(headers: &HeaderMap) -> String {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Echoes the credentials it got, as careless servers do, so masking is put to the test.
fn unauthorized(got: &str) -> Response {
    let body = json!({"error": format!("bad credentials: {got}")});
    (StatusCode::UNAUTHORIZED, Json(body)).into_response()
}

async fn orders(State(counters): State<Shared>, Query(params): Params) -> Json<Value> {
    let page = number(&params, "page", 1);
    counters.hit("orders", page);
    Json(nested_page("/orders", page, ""))
}

async fn cursor(State(counters): State<Shared>, Query(params): Params) -> Json<Value> {
    let limit = number(&params, "limit", 25);
    let offset = match params.get("cursor") {
        None => 0,
        Some(cursor) => {
            let offset = cursor.strip_prefix("after-").expect("a cursor we issued");
            offset.parse().expect("a cursor we issued")
        }
    };
    counters.hit("cursor", offset);
    let records = slice(offset, limit);
    let end = offset + records.len() as u64;
    let next = if end < TOTAL {
        json!(format!("after-{end}"))
    } else if params.contains_key("empty_end") {
        json!("")
    } else {
        Value::Null
    };
    Json(json!({"records": records, "meta": {"next_cursor": next}}))
}

/// A bare array; `p` is 1-based unless `zero` is given.
async fn numbered(State(counters): State<Shared>, Query(params): Params) -> Json<Value> {
    let zero_based = params.contains_key("zero");
    let p = number(&params, "p", if zero_based { 0 } else { 1 });
    let per_page = number(&params, "per_page", 50);
    counters.hit("numbered", p);
    let index = if zero_based { p } else { p - 1 };
    Json(Value::Array(slice(index * per_page, per_page)))
}

/// A bare array with the next page in a `Link` header among other relations.
async fn linked(
    State(counters): State<Shared>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    let page = number(&params, "page", 1);
    counters.hit("linked", page);
    let host = headers[header::HOST].to_str().unwrap();
    let mut links = vec![r#"</linked?page=1>; rel="first"; title="first, page""#.to_string()];
    if page * PER_PAGE < TOTAL {
        links.push(format!(
            "<http://{host}/linked?page={}>; rel=\"next\"",
            page + 1
        ));
    }
    links.push("</linked?page=7>; rel=last".to_string());
    let records = Json(Value::Array(slice((page - 1) * PER_PAGE, PER_PAGE)));
    ([(header::LINK, links.join(", "))], records).into_response()
}

async fn secure(
    State(counters): State<Shared>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    let page = number(&params, "page", 1);
    counters.hit("secure", page);
    let got = authorization(&headers);
    if got != format!("Bearer {TOKEN}") {
        return unauthorized(&got);
    }
    if params.contains_key("gone") {
        let body = json!({"error": format!("nothing here for {got}")});
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    }
    Json(nested_page("/secure/orders", page, "")).into_response()
}

async fn basic(
    State(counters): State<Shared>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    let page = number(&params, "page", 1);
    counters.hit("basic", page);
    let got = authorization(&headers);
    if got != BASIC {
        return unauthorized(&got);
    }
    Json(nested_page("/basic/orders", page, "")).into_response()
}

/// The first two requests for every page fail with 503 (with `Retry-After: 0` when `ra` is set).
async fn flaky(State(counters): State<Shared>, Query(params): Params) -> Response {
    let page = number(&params, "page", 1);
    let with_retry_after = params.contains_key("ra");
    if counters.hit("flaky", page) <= 2 {
        let mut response = (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response();
        if with_retry_after {
            let headers = response.headers_mut();
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("0"));
        }
        return response;
    }
    let extra = if with_retry_after { "&ra=1" } else { "" };
    Json(nested_page("/flaky", page, extra)).into_response()
}

async fn broken(State(counters): State<Shared>) -> Response {
    counters.hit("broken", 1);
    (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance").into_response()
}

async fn slow(State(counters): State<Shared>) -> Json<Value> {
    counters.hit("slow", 1);
    tokio::time::sleep(Duration::from_secs(10)).await;
    Json(json!([]))
}

async fn ratelimited(State(counters): State<Shared>) -> Response {
    if counters.hit("ratelimited", 1) == 1 {
        let headers = [(header::RETRY_AFTER, "1")];
        return (StatusCode::TOO_MANY_REQUESTS, headers, "slow down").into_response();
    }
    Json(Value::Array(slice(0, TOTAL))).into_response()
}

/// Page 1 is fine; its next link leads to a page that does not exist.
async fn dangling(State(counters): State<Shared>) -> Json<Value> {
    counters.hit("dangling", 1);
    Json(json!({"data": {"items": slice(0, 10)}, "next": "/gone?page=2&api_key=hunter2"}))
}

async fn gone(State(counters): State<Shared>, Query(params): Params) -> Response {
    counters.hit("gone", number(&params, "page", 1));
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": "no such page"})),
    )
        .into_response()
}

/// Pages 1 and 2 are fine; page 3 has an object where the records should be.
async fn shapeshift(State(counters): State<Shared>, Query(params): Params) -> Json<Value> {
    let page = number(&params, "page", 1);
    counters.hit("shapeshift", page);
    if page == 3 {
        return Json(json!({"data": {"items": {"id": 81}}, "next": "/shapeshift?page=4"}));
    }
    Json(nested_page("/shapeshift", page, ""))
}

/// Always hands out the same cursor.
async fn stuck(State(counters): State<Shared>, Query(params): Params) -> Json<Value> {
    let cursor = params.get("cursor").cloned().unwrap_or_default();
    counters.hit("stuck", cursor);
    Json(json!({"records": [record(1)], "meta": {"next_cursor": "same"}}))
}

/// One record, then a next link to wherever `to` says (another server, in the tests).
async fn hop(Query(params): Params) -> Json<Value> {
    Json(json!({"data": {"items": [record(1)]}, "next": params["to"]}))
}

/// A redirect to wherever `to` says.
async fn redirect(Query(params): Params) -> Response {
    (
        StatusCode::FOUND,
        [(header::LOCATION, params["to"].clone())],
    )
        .into_response()
}

/// One record; counts the request by the `X-Api-Key` and `Authorization` it carried.
async fn peek(State(counters): State<Shared>, headers: HeaderMap) -> Json<Value> {
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none");
    counters.hit("peek", format!("{key} {}", authorization(&headers)));
    Json(json!([record(1)]))
}

async fn serve() -> (Url, Shared) {
    let counters = Shared::default();
    let app = Router::new()
        .route("/orders", get(orders))
        .route("/cursor", get(cursor))
        .route("/numbered", get(numbered))
        .route("/linked", get(linked))
        .route("/secure/orders", get(secure))
        .route("/basic/orders", get(basic))
        .route("/flaky", get(flaky))
        .route("/broken", get(broken))
        .route("/slow", get(slow))
        .route("/ratelimited", get(ratelimited))
        .route("/dangling", get(dangling))
        .route("/gone", get(gone))
        .route("/shapeshift", get(shapeshift))
        .route("/stuck", get(stuck))
        .route("/hop", get(hop))
        .route("/redirect", get(redirect))
        .route("/peek", get(peek))
        .with_state(counters.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (Url::parse(&format!("http://{address}/")).unwrap(), counters)
}

fn source(base: &Url, path: &str) -> HttpSource {
    let mut source = HttpSource::new(base.join(path).unwrap());
    source.retry_delay = Duration::from_millis(1);
    source.timeout = Duration::from_secs(5);
    source
}

fn path(segments: &[&str]) -> Vec<String> {
    segments.iter().map(|s| s.to_string()).collect()
}

fn next_link_in_body() -> Pagination {
    Pagination::NextLink {
        path: path(&["next"]),
    }
}

async fn read_all(source: HttpSource) -> Result<Vec<Vec<Value>>, IoError> {
    pages(PageClient::new(), source).try_collect().await
}

/// Reads until the stream ends, returning the pages before the error and the error.
async fn read_until_error(source: HttpSource) -> (Vec<Vec<Value>>, IoError) {
    let mut stream = pages(PageClient::new(), source);
    let mut good = Vec::new();
    while let Some(page) = stream.next().await {
        match page {
            Ok(records) => good.push(records),
            Err(error) => {
                assert!(
                    stream.next().await.is_none(),
                    "the stream ends after an error"
                );
                return (good, error);
            }
        }
    }
    panic!("expected an error, got {} good pages", good.len());
}

fn ids(pages: &[Vec<Value>]) -> Vec<u64> {
    pages
        .iter()
        .flatten()
        .map(|record| record["id"].as_u64().expect("an id"))
        .collect()
}

#[track_caller]
fn assert_all_records_once_in_order(pages: &[Vec<Value>]) {
    assert_eq!(ids(pages), (1..=TOTAL).collect::<Vec<_>>());
    let first = &pages[0][0];
    assert_eq!(first["name"], "customer 1");
}

fn page_sizes(pages: &[Vec<Value>]) -> Vec<usize> {
    pages.iter().map(Vec::len).collect()
}

#[tokio::test]
async fn next_link_in_body_reads_every_record_once() {
    let (base, counters) = serve().await;
    let mut source = source(&base, "orders");
    source.records_path = path(&["data", "items"]);
    source.pagination = next_link_in_body();

    let pages = read_all(source).await.unwrap();

    assert_all_records_once_in_order(&pages);
    assert_eq!(page_sizes(&pages), [40, 40, 40, 40, 40, 40, 10]);
    assert_eq!(counters.total("orders"), 7);
}

#[tokio::test]
async fn link_header_reads_every_record_once() {
    let (base, counters) = serve().await;
    let mut source = source(&base, "linked");
    source.pagination = Pagination::NextLink { path: Vec::new() };

    let pages = read_all(source).await.unwrap();

    assert_all_records_once_in_order(&pages);
    assert_eq!(pages.len(), 7);
    assert_eq!(counters.total("linked"), 7);
}

#[tokio::test]
async fn cursor_repeats_the_first_request_with_the_cursor() {
    let (base, counters) = serve().await;
    let mut source = source(&base, "cursor");
    // The server's default is 25; 9 pages prove the limit went out with every request.
    source.params = vec![("limit".into(), "30".into())];
    source.records_path = path(&["records"]);
    source.pagination = Pagination::Cursor {
        param: "cursor".into(),
        path: path(&["meta", "next_cursor"]),
    };

    let pages = read_all(source.clone()).await.unwrap();
    assert_all_records_once_in_order(&pages);
    assert_eq!(page_sizes(&pages), [30, 30, 30, 30, 30, 30, 30, 30, 10]);
    assert_eq!(counters.total("cursor"), 9);

    source.params.push(("empty_end".into(), "1".into()));
    let pages = read_all(source).await.unwrap();
    assert_all_records_once_in_order(&pages);
    assert_eq!(
        counters.total("cursor"),
        18,
        "an empty cursor ends the read"
    );
}

#[tokio::test]
async fn page_numbers_stop_at_the_first_empty_page() {
    let (base, counters) = serve().await;
    let mut source = source(&base, "numbered");
    source.params = vec![("per_page".into(), "50".into())];
    source.pagination = Pagination::PageNumber {
        param: "p".into(),
        start: 1,
        size: None,
    };

    let pages = read_all(source).await.unwrap();

    assert_all_records_once_in_order(&pages);
    assert_eq!(page_sizes(&pages), [50, 50, 50, 50, 50, 0]);
    assert_eq!(counters.total("numbered"), 6);
}

#[tokio::test]
async fn page_numbers_with_a_size_stop_at_a_short_page() {
    let (base, counters) = serve().await;
    let mut source = source(&base, "numbered");
    source.pagination = Pagination::PageNumber {
        param: "p".into(),
        start: 1,
        size: Some(("per_page".into(), 40)),
    };

    let pages = read_all(source).await.unwrap();

    assert_all_records_once_in_order(&pages);
    assert_eq!(page_sizes(&pages), [40, 40, 40, 40, 40, 40, 10]);
    assert_eq!(
        counters.total("numbered"),
        7,
        "no request after the short page"
    );
}

#[tokio::test]
async fn page_numbers_can_start_at_zero() {
    let (base, counters) = serve().await;
    let mut source = source(&base, "numbered");
    source.params = vec![("zero".into(), "1".into())];
    source.pagination = Pagination::PageNumber {
        param: "p".into(),
        start: 0,
        size: Some(("per_page".into(), 100)),
    };

    let pages = read_all(source).await.unwrap();

    assert_all_records_once_in_order(&pages);
    assert_eq!(page_sizes(&pages), [100, 100, 50]);
    assert_eq!(
        [0, 1, 2].map(|p| counters.of("numbered", p)),
        [1, 1, 1],
        "pages 0, 1 and 2, once each"
    );
}

#[tokio::test]
async fn no_pagination_reads_one_page() {
    let (base, counters) = serve().await;
    let mut source = source(&base, "numbered");
    source.params = vec![("per_page".into(), "1000".into())];

    let pages = read_all(source).await.unwrap();

    assert_all_records_once_in_order(&pages);
    assert_eq!(pages.len(), 1);
    assert_eq!(counters.total("numbered"), 1);
}

#[tokio::test]
async fn bearer_auth_is_sent_and_never_shown() {
    let (base, counters) = serve().await;
    let mut source = source(&base, "secure/orders");
    source.records_path = path(&["data", "items"]);
    source.pagination = next_link_in_body();
    source.auth = Some(Auth::Bearer(TOKEN.into()));

    let pages = read_all(source.clone()).await.unwrap();
    assert_all_records_once_in_order(&pages);
    assert_eq!(counters.total("secure"), 7);

    // A right token and a 404 whose body echoes the Authorization header.
    let mut gone = source.clone();
    gone.params = vec![("gone".into(), "1".into())];
    let (_, error) = read_until_error(gone).await;
    let message = error.to_string();
    assert!(message.contains("404"), "{message}");
    assert!(message.contains("page 1"), "{message}");
    assert!(message.contains("nothing here for Bearer ***"), "{message}");
    assert!(!message.contains(TOKEN), "{message}");
    assert!(!format!("{error:?}").contains(TOKEN));

    let mut wrong = source.clone();
    wrong.auth = Some(Auth::Bearer("wrong-token-456".into()));
    let (good, error) = read_until_error(wrong).await;
    assert!(good.is_empty());
    let message = error.to_string();
    assert!(message.contains("401 Unauthorized"), "{message}");
    assert!(message.contains("page 1"), "{message}");
    assert!(!message.contains("wrong-token-456"), "{message}");
    assert!(!error.retryable(), "a 401 does not go away by retrying");

    let mut none = source;
    none.auth = None;
    let (_, error) = read_until_error(none).await;
    assert!(error.to_string().contains("401"), "{error}");

    let debug = format!(
        "{:?} {:?}",
        Auth::Bearer(TOKEN.into()),
        Some(Auth::Bearer(TOKEN.into()))
    );
    assert!(!debug.contains(TOKEN), "{debug}");
}

#[tokio::test]
async fn basic_auth_is_sent_and_never_shown() {
    let (base, counters) = serve().await;
    let mut source = source(&base, "basic/orders");
    source.records_path = path(&["data", "items"]);
    source.pagination = next_link_in_body();
    source.auth = Some(Auth::Basic {
        user: "alice".into(),
        password: Some("wonderland".into()),
    });

    let pages = read_all(source.clone()).await.unwrap();
    assert_all_records_once_in_order(&pages);
    assert_eq!(counters.total("basic"), 7);

    source.auth = Some(Auth::Basic {
        user: "alice".into(),
        password: Some("looking-glass".into()),
    });
    let debug = format!("{source:?}");
    assert!(debug.contains("alice"), "{debug}");
    assert!(!debug.contains("looking-glass"), "{debug}");
    let (_, error) = read_until_error(source).await;
    let message = error.to_string();
    assert!(message.contains("401"), "{message}");
    assert!(message.contains("page 1"), "{message}");
    assert!(message.contains("bad credentials: Basic ***"), "{message}");
    // The base64 of alice:looking-glass, which the server echoed.
    assert!(!message.contains("YWxpY2U6bG9va2luZy1nbGFzcw"), "{message}");
}

#[tokio::test]
async fn transient_failures_are_retried_with_backoff() {
    let (base, counters) = serve().await;
    let mut source = source(&base, "flaky");
    source.records_path = path(&["data", "items"]);
    source.pagination = next_link_in_body();
    source.retries = 2;

    let started = Instant::now();
    let pages = read_all(source).await.unwrap();

    assert_all_records_once_in_order(&pages);
    for page in 1..=7 {
        assert_eq!(
            counters.of("flaky", page),
            3,
            "page {page}: 2 failures, 1 success"
        );
    }
    // 7 pages × (1 ms + 2 ms) of backoff, with room for a slow machine.
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn transient_failures_honour_retry_after_zero() {
    let (base, counters) = serve().await;
    let mut source = source(&base, "flaky?ra=1");
    source.records_path = path(&["data", "items"]);
    source.pagination = next_link_in_body();
    source.retries = 2;
    // Were Retry-After ignored, 14 retries of 2+ seconds would blow the bound below.
    source.retry_delay = Duration::from_secs(2);

    let started = Instant::now();
    let pages = read_all(source).await.unwrap();

    assert_all_records_once_in_order(&pages);
    assert_eq!(counters.total("flaky"), 21);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn too_few_retries_fail_on_the_flaky_page() {
    let (base, counters) = serve().await;
    let mut source = source(&base, "flaky");
    source.records_path = path(&["data", "items"]);
    source.pagination = next_link_in_body();
    source.retries = 1;

    let (good, error) = read_until_error(source).await;

    assert!(good.is_empty());
    assert!(error.retryable());
    let message = error.to_string();
    assert!(message.contains("page 1"), "{message}");
    assert!(message.contains("2 attempts"), "{message}");
    assert_eq!(counters.of("flaky", 1), 2);
}

#[tokio::test]
async fn a_503_forever_fails_after_retries_plus_one_attempts() {
    let (base, counters) = serve().await;
    let mut source = source(&base, "broken");
    source.retries = 3;

    let (_, error) = read_until_error(source).await;

    assert!(
        matches!(error, IoError::Remote { system: "HTTP", .. }),
        "{error:?}"
    );
    assert!(error.retryable());
    let message = error.to_string();
    assert!(message.contains("page 1"), "{message}");
    assert!(message.contains("503 Service Unavailable"), "{message}");
    assert!(message.contains("down for maintenance"), "{message}");
    assert!(message.contains("4 attempts"), "{message}");
    assert_eq!(counters.of("broken", 1), 4);
}

#[tokio::test]
async fn timeouts_are_transient() {
    let (base, counters) = serve().await;
    let mut source = source(&base, "slow");
    source.retries = 1;
    source.timeout = Duration::from_millis(100);

    let started = Instant::now();
    let (_, error) = read_until_error(source).await;

    assert!(error.retryable());
    let message = error.to_string();
    assert!(message.contains("page 1"), "{message}");
    assert!(message.contains("timed out"), "{message}");
    assert_eq!(counters.of("slow", 1), 2);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn connection_refused_is_transient() {
    // Bind and drop to get a port nothing listens on.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let base = Url::parse(&format!("http://{address}/")).unwrap();
    let mut source = source(&base, "orders?token=abc123");
    source.retries = 2;

    let (_, error) = read_until_error(source).await;

    assert!(error.retryable());
    let message = error.to_string();
    assert!(message.contains("page 1"), "{message}");
    assert!(message.contains("3 attempts"), "{message}");
    assert!(message.contains("token=…"), "{message}");
    assert!(!message.contains("abc123"), "{message}");
}

#[tokio::test]
async fn rate_limits_wait_as_long_as_retry_after_says() {
    let (base, counters) = serve().await;
    let source = source(&base, "ratelimited");

    let started = Instant::now();
    let pages = read_all(source).await.unwrap();

    assert_all_records_once_in_order(&pages);
    assert_eq!(counters.of("ratelimited", 1), 2);
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn a_404_fails_at_once_naming_status_page_and_path_without_query_values() {
    let (base, counters) = serve().await;
    let mut source = source(&base, "dangling");
    source.records_path = path(&["data", "items"]);
    source.pagination = next_link_in_body();
    source.retries = 3;

    let (good, error) = read_until_error(source).await;

    assert_eq!(page_sizes(&good), [10]);
    assert!(!error.retryable());
    let message = error.to_string();
    assert!(message.contains("page 2"), "{message}");
    assert!(message.contains("404 Not Found"), "{message}");
    assert!(message.contains("/gone?page=…&api_key=…"), "{message}");
    assert!(message.contains("no such page"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    assert_eq!(counters.of("gone", 2), 1, "a 404 is not retried");
}

#[tokio::test]
async fn secret_query_parameters_stay_out_of_messages() {
    let (base, _) = serve().await;
    let mut source = source(&base, "gone");
    source.params = vec![("api_key".into(), "hunter2".into())];

    let debug = format!("{source:?}");
    assert!(debug.contains("api_key"), "{debug}");
    assert!(!debug.contains("hunter2"), "{debug}");

    let (_, error) = read_until_error(source).await;
    let message = error.to_string();
    assert!(message.contains("page 1"), "{message}");
    assert!(message.contains("api_key=…"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test]
async fn records_that_are_not_an_array_are_reported_with_their_page() {
    let (base, counters) = serve().await;
    let mut source = source(&base, "shapeshift");
    source.records_path = path(&["data", "items"]);
    source.pagination = next_link_in_body();

    let (good, error) = read_until_error(source).await;

    assert_eq!(page_sizes(&good), [40, 40]);
    assert!(!error.retryable());
    assert_eq!(
        error.to_string(),
        "page 3: `data.items` is an object with keys `id`, expected an array of records"
    );
    assert_eq!(counters.total("shapeshift"), 3);
}

#[tokio::test]
async fn a_missing_records_path_says_what_is_there() {
    let (base, _) = serve().await;
    let mut source = source(&base, "orders");
    source.records_path = path(&["data", "rows"]);

    let (_, error) = read_until_error(source.clone()).await;
    assert_eq!(
        error.to_string(),
        "page 1: `data.rows` is missing, expected an array of records \
         (`data` is an object with keys `items`)"
    );

    source.records_path = Vec::new();
    let (_, error) = read_until_error(source).await;
    assert_eq!(
        error.to_string(),
        "page 1: the response body is an object with keys `data`, `next`, \
         expected an array of records"
    );
}

#[tokio::test]
async fn max_pages_stops_early() {
    let (base, counters) = serve().await;
    let mut source = source(&base, "orders");
    source.records_path = path(&["data", "items"]);
    source.pagination = next_link_in_body();
    source.max_pages = Some(2);

    let pages = read_all(source).await.unwrap();

    assert_eq!(ids(&pages), (1..=80).collect::<Vec<_>>());
    assert_eq!(counters.total("orders"), 2);
}

#[tokio::test]
async fn pages_are_requested_only_when_consumed() {
    let (base, counters) = serve().await;
    let mut source = source(&base, "orders");
    source.records_path = path(&["data", "items"]);
    source.pagination = next_link_in_body();

    let mut stream = pages(PageClient::new(), source);
    assert_eq!(counters.total("orders"), 0, "nothing before the first poll");
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.len(), 40);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(counters.total("orders"), 1);
    stream.next().await.unwrap().unwrap();
    assert_eq!(counters.total("orders"), 2);
}

#[tokio::test]
async fn a_cursor_that_does_not_move_is_an_error_not_a_loop() {
    let (base, counters) = serve().await;
    let mut source = source(&base, "stuck");
    source.records_path = path(&["records"]);
    source.pagination = Pagination::Cursor {
        param: "cursor".into(),
        path: path(&["meta", "next_cursor"]),
    };

    let (good, error) = read_until_error(source).await;

    assert_eq!(good.len(), 1, "page 2 repeats the cursor it was asked with");
    let message = error.to_string();
    assert!(message.contains("page 2"), "{message}");
    assert!(message.contains("did not change"), "{message}");
    assert_eq!(counters.total("stuck"), 2);
}

/// A source whose next link points at `other`'s `/secure/orders?page=2`.
fn hopping(first: &Url, other: &Url) -> HttpSource {
    let target = other.join("secure/orders?page=2").unwrap();
    let mut source = source(first, "hop");
    source.params = vec![("to".into(), target.to_string())];
    source.records_path = path(&["data", "items"]);
    source.pagination = next_link_in_body();
    source.auth = Some(Auth::Bearer(TOKEN.into()));
    source
}

#[tokio::test]
async fn a_next_link_to_another_origin_is_refused_before_any_request() {
    let (first, _) = serve().await;
    let (other, other_counters) = serve().await;

    let (good, error) = read_until_error(hopping(&first, &other)).await;

    assert_eq!(page_sizes(&good), [1]);
    let message = error.to_string();
    assert!(
        message.contains("page 2: the next-page link points at another origin"),
        "{message}"
    );
    assert!(message.contains("follow_cross_origin: true"), "{message}");
    assert_eq!(other_counters.total("secure"), 0);
}

#[tokio::test]
async fn credentials_are_not_sent_to_another_origin_when_following_it() {
    let (first, _) = serve().await;
    let (other, other_counters) = serve().await;
    let mut source = hopping(&first, &other);
    source.follow_cross_origin = true;

    let (good, error) = read_until_error(source).await;

    assert_eq!(page_sizes(&good), [1]);
    let message = error.to_string();
    assert!(message.contains("page 2"), "{message}");
    assert!(message.contains("401"), "{message}");
    assert!(message.contains("credentials are sent only"), "{message}");
    assert!(message.contains("bad credentials: \""), "{message}");
    assert_eq!(other_counters.of("secure", 2), 1);
}

#[tokio::test]
async fn redirects_keep_secrets_at_the_sources_origin() {
    let (first, first_counters) = serve().await;
    let (other, other_counters) = serve().await;
    let via = |to: &Url| {
        let mut source = source(&first, "redirect");
        source.params = vec![("to".into(), to.join("peek").unwrap().to_string())];
        source.headers = vec![("X-Api-Key".into(), "key-77".into())];
        source.auth = Some(Auth::Bearer(TOKEN.into()));
        source
    };
    // To the same origin: followed, with the key and the token.
    let same = read_all(via(&first)).await.unwrap();
    assert_eq!(page_sizes(&same), [1]);
    assert_eq!(
        first_counters.of("peek", format!("key-77 Bearer {TOKEN}")),
        1
    );
    // To another origin: refused before anything is sent there.
    let (_, error) = read_until_error(via(&other)).await;
    let message = error.to_string();
    assert!(message.contains("redirects to another origin"), "{message}");
    assert!(message.contains("follow_cross_origin"), "{message}");
    assert_eq!(other_counters.total("peek"), 0);
    // Followed on purpose: without the key and the token.
    let mut source = via(&other);
    source.follow_cross_origin = true;
    assert_eq!(page_sizes(&read_all(source).await.unwrap()), [1]);
    assert_eq!(other_counters.total("peek"), 1);
    assert_eq!(
        other_counters.of("peek", "none "),
        1,
        "{:?}",
        other_counters.hits
    );
}

#[tokio::test]
async fn an_invalid_header_is_reported_before_any_request() {
    let (base, counters) = serve().await;
    let mut source = source(&base, "orders");
    source.headers = vec![("bad header".into(), "x".into())];

    let (_, error) = read_until_error(source).await;

    assert_eq!(
        error.to_string(),
        "page 1: `bad header` is not a valid HTTP header name"
    );
    assert_eq!(counters.total("orders"), 0);
}
