//! Paged reads from JSON HTTP APIs.
//!
//! [`pages`] yields one page of records at a time and requests the next page only when the
//! previous one has been consumed, so a long listing never sits in memory as a whole.
//!
//! Error messages and `Debug` output are written to be pasted into tickets and logs: they name
//! the page number, the status and the URL path with the names of its query parameters, but
//! never query values, credentials or secret-looking header values (API keys often travel in
//! the query string).

use std::fmt;
use std::time::Duration;

use futures::stream::{self, BoxStream, StreamExt};
use reqwest::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue, LINK, RETRY_AFTER};
use reqwest::{Client, StatusCode};
use serde_json::Value;
use sluice_core::Redactor;
use sluice_core::secrets::{self, Masked, is_secret_name};
use url::Url;

use crate::IoError;

const SYSTEM: &str = "HTTP";
/// Backoff ceiling: beyond this, waiting longer rarely helps and only stalls the pipeline.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A server asking for a longer pause than this is down for maintenance or rate-limiting for
/// the day; failing with its answer beats a pipeline that hangs silently.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
const SNIPPET_CHARS: usize = 200;
/// Only the start of an error body is shown; masking looks at a bit more so that a secret
/// straddling the cut is still caught.
const SNIPPET_SCAN_BYTES: usize = 8 * 1024;

/// A paged JSON API read.
#[derive(Clone)]
pub struct HttpSource {
    /// Full URL of the first page (base connection URL joined with the path).
    pub url: Url,
    /// Query parameters added to the first request (and, for cursor and page-number
    /// pagination, to every request).
    pub params: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub auth: Option<Auth>,
    /// Where the records are inside a response body: [] = the body itself is the array;
    /// ["data","items"] = body.data.items. A segment that is a number indexes an array.
    pub records_path: Vec<String>,
    pub pagination: Pagination,
    /// Stop after this many pages (safety bound).
    pub max_pages: Option<u64>,
    /// Extra attempts per page on transient failures.
    pub retries: u32,
    /// First delay, doubled each attempt, capped at 30s; `Retry-After` on 429/503 wins.
    pub retry_delay: Duration,
    /// Per request, including reading the body.
    pub timeout: Duration,
    /// Follow redirects and next-page links to another origin, without the credentials and
    /// secret headers (which go only to the origin of `url`). Off: such a hop is an error.
    pub follow_cross_origin: bool,
}

impl HttpSource {
    /// A single unpaged GET of `url` whose body is the array of records, with moderate retry
    /// defaults; set the other fields as needed.
    pub fn new(url: Url) -> HttpSource {
        HttpSource {
            url,
            params: Vec::new(),
            headers: Vec::new(),
            auth: None,
            records_path: Vec::new(),
            pagination: Pagination::None,
            max_pages: None,
            retries: 3,
            retry_delay: Duration::from_millis(500),
            timeout: Duration::from_secs(30),
            follow_cross_origin: false,
        }
    }
}

/// Redirects followed for one request (as browsers and reqwest's default).
const MAX_REDIRECTS: usize = 10;

/// The HTTP client of [`pages`] (cheap to clone; connections are pooled). It follows no
/// redirect itself: [`pages`] checks each hop against the source's origin before anything is
/// sent there.
#[derive(Clone)]
pub struct PageClient(Client);

impl PageClient {
    pub fn new() -> PageClient {
        PageClient(
            Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        )
    }
}

impl Default for PageClient {
    fn default() -> PageClient {
        PageClient::new()
    }
}

impl fmt::Debug for HttpSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params: Vec<&str> = self.params.iter().map(|(k, _)| k.as_str()).collect();
        let headers: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("HttpSource")
            .field("url", &format_args!("{}", secrets::outline_url(&self.url)))
            .field("params", &params)
            .field("headers", &headers)
            .field("auth", &self.auth)
            .field("records_path", &self.records_path)
            .field("pagination", &self.pagination)
            .field("max_pages", &self.max_pages)
            .field("retries", &self.retries)
            .field("retry_delay", &self.retry_delay)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    Bearer(String),
    Basic {
        user: String,
        password: Option<String>,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Bearer(_) => f.debug_tuple("Bearer").field(&Masked).finish(),
            Auth::Basic { user, password } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("password", &password.as_ref().map(|_| Masked))
                .finish(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pagination {
    None,
    /// The next page's URL is in the body at `path` (absolute or relative to the current URL);
    /// when `path` is empty, use the `Link: <…>; rel="next"` response header. Stops when
    /// absent/null/empty.
    NextLink {
        path: Vec<String>,
    },
    /// The body holds a cursor at `path`; the next request repeats the first one with
    /// `param=<cursor>`. Stops when the cursor is absent, null or "" (or the page has no
    /// records).
    Cursor {
        param: String,
        path: Vec<String>,
    },
    /// `param` = start, start+1, …; optional page size parameter; stops at the first page with
    /// no records (or fewer records than the page size when a size is given).
    PageNumber {
        param: String,
        start: u64,
        size: Option<(String, u64)>,
    },
}

/// Streams the records page by page (each item = one page's records). Lazy: a page is requested
/// only when the previous one has been consumed, so memory holds one page.
///
/// The stream ends after the first error. Credentials and secret-looking headers are sent only
/// to the origin of `source.url`, so a next link pointing at another host does not receive them.
pub fn pages(
    client: PageClient,
    source: HttpSource,
) -> BoxStream<'static, Result<Vec<Value>, IoError>> {
    let pager = Pager::new(client.0, source);
    stream::unfold(pager, |mut pager| async move {
        let item = pager.step().await?;
        Some((item, pager))
    })
    .boxed()
}

/// What the next request is, as decided by the previous page.
enum Next {
    First,
    Url(Url),
    Cursor(String),
    Page(u64),
}

/// A failure that another attempt may fix.
struct Transient {
    reason: String,
    retry_after: Option<Duration>,
}

/// What one request got: the page, or where it was redirected.
enum Hop {
    Fetched(Fetched),
    Redirect(Url),
}

struct Fetched {
    /// After redirects: relative next links resolve against where the page really came from.
    url: Url,
    headers: HeaderMap,
    body: bytes::Bytes,
}

struct Pager {
    client: Client,
    source: HttpSource,
    headers: HeaderMap,
    /// Masks the credentials out of error bodies, because servers do echo them back.
    redactor: Redactor,
    /// 1-based number of the page about to be requested.
    page: u64,
    next: Option<Next>,
    setup_error: Option<IoError>,
}

impl Pager {
    fn new(client: Client, source: HttpSource) -> Pager {
        let (headers, setup_error) = match build_headers(&source.headers) {
            Ok(headers) => (headers, None),
            Err(message) => (
                HeaderMap::new(),
                Some(IoError::invalid(format!("page 1: {message}"))),
            ),
        };
        let next = match &source.pagination {
            Pagination::PageNumber { start, .. } => Next::Page(*start),
            _ => Next::First,
        };
        Pager {
            redactor: redactor_of(&source),
            client,
            source,
            headers,
            page: 1,
            next: Some(next),
            setup_error,
        }
    }

    async fn step(&mut self) -> Option<Result<Vec<Value>, IoError>> {
        if let Some(error) = self.setup_error.take() {
            self.next = None;
            return Some(Err(error));
        }
        let next = self.next.take()?;
        if let Some(max) = self.source.max_pages
            && self.page > max
        {
            tracing::warn!(
                url = %secrets::outline_url(&self.source.url),
                max_pages = max,
                "stopped at the max_pages bound; the API has more pages"
            );
            return None;
        }
        let url = self.request_url(&next);
        if matches!(next, Next::Url(_))
            && let Err(error) = self.may_visit(&url, "the next-page link points at")
        {
            return Some(Err(error));
        }
        let result = match self.fetch(&url).await {
            Ok(fetched) => self.read_page(fetched, &url, &next),
            Err(error) => Err(error),
        };
        match result {
            Ok((records, following)) => {
                self.next = following;
                self.page += 1;
                Some(Ok(records))
            }
            // `next` stays `None`: the stream ends with the error.
            Err(error) => Some(Err(error)),
        }
    }

    fn request_url(&self, next: &Next) -> Url {
        let overrides: Vec<(String, String)> = match (next, &self.source.pagination) {
            (Next::Url(url), _) => return url.clone(),
            (Next::Cursor(cursor), Pagination::Cursor { param, .. }) => {
                vec![(param.clone(), cursor.clone())]
            }
            (Next::Page(number), Pagination::PageNumber { param, size, .. }) => {
                let mut pairs = vec![(param.clone(), number.to_string())];
                if let Some((size_param, size)) = size {
                    pairs.push((size_param.clone(), size.to_string()));
                }
                pairs
            }
            _ => Vec::new(),
        };
        with_query(&self.source.url, &self.source.params, &overrides)
    }

    async fn fetch(&self, url: &Url) -> Result<Fetched, IoError> {
        let attempts = self.source.retries.saturating_add(1);
        let mut delay = self.source.retry_delay.min(MAX_BACKOFF);
        let mut attempt = 1;
        loop {
            let Transient {
                reason,
                retry_after,
            } = match self.attempt(url).await? {
                Ok(fetched) => return Ok(fetched),
                Err(transient) => transient,
            };
            if attempt >= attempts {
                let tries = if attempts == 1 { "attempt" } else { "attempts" };
                return Err(IoError::remote(
                    SYSTEM,
                    format!(
                        "page {}: GET {} failed after {attempts} {tries}: {reason}",
                        self.page,
                        secrets::outline_url(url)
                    ),
                ));
            }
            let wait = match retry_after {
                Some(wait) if wait > MAX_RETRY_AFTER => {
                    return Err(IoError::remote(
                        SYSTEM,
                        format!(
                            "page {}: GET {}: {reason}; the server asks to retry after {}s, \
                             longer than the {}s this reader waits",
                            self.page,
                            secrets::outline_url(url),
                            wait.as_secs(),
                            MAX_RETRY_AFTER.as_secs()
                        ),
                    ));
                }
                Some(wait) => wait,
                None => delay,
            };
            tracing::warn!(
                page = self.page,
                attempt,
                url = %secrets::outline_url(url),
                "{reason}; retrying in {wait:?}"
            );
            tokio::time::sleep(wait).await;
            delay = (delay * 2).min(MAX_BACKOFF);
            attempt += 1;
        }
    }

    /// Whether `url` may be requested: the source's origin, or any with `follow_cross_origin`.
    fn may_visit(&self, url: &Url, how: &str) -> Result<(), IoError> {
        if url.origin() == self.source.url.origin() || self.source.follow_cross_origin {
            return Ok(());
        }
        Err(IoError::invalid(format!(
            "page {}: {how} another origin ({}); credentials and secret headers go only to {} — \
             set `follow_cross_origin: true` on the source to follow it without them",
            self.page,
            secrets::outline_url(url),
            self.source.url.origin().ascii_serialization()
        )))
    }

    /// One request, following redirects hop by hop. The outer error is final, the inner one is
    /// worth another attempt.
    async fn attempt(&self, url: &Url) -> Result<Result<Fetched, Transient>, IoError> {
        let mut url = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            match self.attempt_once(&url).await? {
                Ok(Hop::Fetched(fetched)) => return Ok(Ok(fetched)),
                Ok(Hop::Redirect(next)) => {
                    self.may_visit(
                        &next,
                        &format!("GET {} redirects to", secrets::outline_url(&url)),
                    )?;
                    url = next;
                }
                Err(transient) => return Ok(Err(transient)),
            }
        }
        Err(IoError::invalid(format!(
            "page {}: more than {MAX_REDIRECTS} redirects, the last to {}",
            self.page,
            secrets::outline_url(&url)
        )))
    }

    async fn attempt_once(&self, url: &Url) -> Result<Result<Hop, Transient>, IoError> {
        let trusted = url.origin() == self.source.url.origin();
        let mut headers = self.headers.clone();
        if !trusted {
            let secret: Vec<HeaderName> = headers
                .keys()
                .filter(|name| is_secret_name(name.as_str()))
                .cloned()
                .collect();
            for name in secret {
                headers.remove(name);
            }
        }
        let mut request = self
            .client
            .get(url.clone())
            .timeout(self.source.timeout)
            .headers(headers);
        if trusted {
            request = match &self.source.auth {
                Some(Auth::Bearer(token)) => request.bearer_auth(token),
                Some(Auth::Basic { user, password }) => request.basic_auth(user, password.as_ref()),
                None => request,
            };
        }

        let response = match request.send().await {
            Ok(response) => response,
            Err(error) if is_transient(&error) => {
                return Ok(Err(Transient {
                    reason: describe_error(error),
                    retry_after: None,
                }));
            }
            Err(error) => {
                return Err(IoError::invalid(format!(
                    "page {}: GET {}: {}",
                    self.page,
                    secrets::outline_url(url),
                    describe_error(error)
                )));
            }
        };

        let status = response.status();
        if status.is_redirection()
            && let Some(location) = response.headers().get(reqwest::header::LOCATION)
        {
            let next = location
                .to_str()
                .ok()
                .and_then(|l| url.join(l).ok())
                .ok_or_else(|| {
                    IoError::invalid(format!(
                        "page {}: GET {} answered {status} with a Location that is not a URL",
                        self.page,
                        secrets::outline_url(url)
                    ))
                })?;
            return Ok(Ok(Hop::Redirect(next)));
        }
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            let retry_after = match status {
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                    parse_retry_after(response.headers())
                }
                _ => None,
            };
            let body = self.snippet(&response.bytes().await.unwrap_or_default());
            return Ok(Err(Transient {
                reason: format!("server answered {status}{body}"),
                retry_after,
            }));
        }
        if !status.is_success() {
            let withheld = !trusted
                && self.source.auth.is_some()
                && matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
            let hint = if withheld {
                " (credentials are sent only to the origin of the source URL, and \
                 `follow_cross_origin` led this request elsewhere)"
            } else {
                ""
            };
            let body = self.snippet(&response.bytes().await.unwrap_or_default());
            return Err(IoError::invalid(format!(
                "page {}: GET {} returned {status}{hint}{body}",
                self.page,
                secrets::outline_url(url)
            )));
        }

        let final_url = response.url().clone();
        let headers = response.headers().clone();
        match response.bytes().await {
            Ok(body) => Ok(Ok(Hop::Fetched(Fetched {
                url: final_url,
                headers,
                body,
            }))),
            Err(error) => Ok(Err(Transient {
                reason: format!("reading the response failed: {}", describe_error(error)),
                retry_after: None,
            })),
        }
    }

    fn read_page(
        &self,
        fetched: Fetched,
        url: &Url,
        sent: &Next,
    ) -> Result<(Vec<Value>, Option<Next>), IoError> {
        let page = self.page;
        let mut body: Value = serde_json::from_slice(&fetched.body).map_err(|error| {
            IoError::invalid(format!(
                "page {page}: the response from {} is not JSON ({error}){}",
                secrets::outline_url(url),
                self.snippet(&fetched.body)
            ))
        })?;
        let records = take_records(&mut body, &self.source.records_path, page)?;
        let following = self.following(&body, &records, &fetched, url, sent)?;
        Ok((records, following))
    }

    /// Decides the request after this page, or `None` when this was the last one.
    fn following(
        &self,
        body: &Value,
        records: &[Value],
        fetched: &Fetched,
        url: &Url,
        sent: &Next,
    ) -> Result<Option<Next>, IoError> {
        let page = self.page;
        match &self.source.pagination {
            Pagination::None => Ok(None),
            Pagination::NextLink { path } => {
                let link = if path.is_empty() {
                    next_link_header(&fetched.headers)
                } else {
                    match lookup(body, path) {
                        Ok(Value::String(link)) => Some(link.clone()),
                        Ok(Value::Null) | Err(_) => None,
                        Ok(other) => {
                            return Err(IoError::invalid(format!(
                                "page {page}: the next link at `{}` is {}, expected a URL string",
                                path.join("."),
                                describe(other)
                            )));
                        }
                    }
                };
                let Some(link) = link.filter(|link| !link.trim().is_empty()) else {
                    return Ok(None);
                };
                let next = fetched.url.join(link.trim()).map_err(|error| {
                    // Only the part before the query: the link may carry a token.
                    let shown = link.split('?').next().unwrap_or_default();
                    IoError::invalid(format!(
                        "page {page}: the next link `{shown}` is not a valid URL ({error})"
                    ))
                })?;
                if next == *url || next == fetched.url {
                    return Err(IoError::invalid(format!(
                        "page {page}: the next link points back to the same page ({}); \
                         stopping instead of looping forever",
                        secrets::outline_url(&next)
                    )));
                }
                Ok(Some(Next::Url(next)))
            }
            Pagination::Cursor { path, .. } => {
                if records.is_empty() {
                    return Ok(None);
                }
                let cursor = match lookup(body, path) {
                    Ok(Value::String(cursor)) if !cursor.is_empty() => cursor.clone(),
                    Ok(Value::Number(number)) => number.to_string(),
                    Ok(Value::String(_) | Value::Null) | Err(_) => return Ok(None),
                    Ok(other) => {
                        return Err(IoError::invalid(format!(
                            "page {page}: the cursor at `{}` is {}, expected a string or a number",
                            path.join("."),
                            describe(other)
                        )));
                    }
                };
                if matches!(sent, Next::Cursor(previous) if *previous == cursor) {
                    return Err(IoError::invalid(format!(
                        "page {page}: the cursor at `{}` did not change; stopping instead of \
                         looping forever",
                        path.join(".")
                    )));
                }
                Ok(Some(Next::Cursor(cursor)))
            }
            Pagination::PageNumber { start, size, .. } => {
                let number = match sent {
                    Next::Page(number) => *number,
                    _ => *start,
                };
                let short = size
                    .as_ref()
                    .is_some_and(|(_, size)| (records.len() as u64) < *size);
                if records.is_empty() || short {
                    return Ok(None);
                }
                Ok(number.checked_add(1).map(Next::Page))
            }
        }
    }

    /// The start of an error body, with known secrets masked, prefixed with ": " when not empty.
    fn snippet(&self, body: &[u8]) -> String {
        let scanned = &body[..body.len().min(SNIPPET_SCAN_BYTES)];
        let text = self.redactor.redact(&String::from_utf8_lossy(scanned));
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() {
            return String::new();
        }
        let mut shown: String = text.chars().take(SNIPPET_CHARS).collect();
        if shown.len() < text.len() {
            shown.push('…');
        }
        format!(": {shown}")
    }
}

fn build_headers(pairs: &[(String, String)]) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    for (name, value) in pairs {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("`{name}` is not a valid HTTP header name"))?;
        // The value is not shown: it may be an API key.
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| format!("the value of header `{name}` is not a valid header value"))?;
        value.set_sensitive(is_secret_name(name));
        headers.insert(header, value);
    }
    Ok(headers)
}

/// What this source sends that is secret: its credentials and secret-named headers and
/// parameters, and the `Authorization: Basic` value a server may echo.
fn redactor_of(source: &HttpSource) -> Redactor {
    let mut secrets = Vec::new();
    match &source.auth {
        Some(Auth::Bearer(token)) => secrets.push(token.clone()),
        Some(Auth::Basic { user, password }) => {
            let credentials = format!("{user}:{}", password.as_deref().unwrap_or_default());
            secrets.push(base64(credentials.as_bytes()));
            secrets.extend(password.clone());
        }
        None => {}
    }
    let named = source.headers.iter().chain(&source.params);
    secrets.extend(
        named
            .filter(|(name, _)| is_secret_name(name))
            .flat_map(|(_, value)| secrets::value_secrets(value)),
    );
    Redactor::new(secrets)
}

/// Standard base64, only to recognise an echoed `Authorization: Basic …` header.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, byte)| n | (u32::from(*byte) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `base` with `params` added and `overrides` replacing any parameter of the same name.
fn with_query(base: &Url, params: &[(String, String)], overrides: &[(String, String)]) -> Url {
    let overridden = |name: &str| overrides.iter().any(|(o, _)| o == name);
    let mut url = base.clone();
    if base.query_pairs().any(|(name, _)| overridden(&name)) {
        let kept: Vec<(String, String)> = base
            .query_pairs()
            .filter(|(name, _)| !overridden(name))
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    let added: Vec<&(String, String)> = params
        .iter()
        .filter(|(name, _)| !overridden(name))
        .chain(overrides)
        .collect();
    if !added.is_empty() {
        url.query_pairs_mut()
            .extend_pairs(added.iter().map(|(name, value)| (name, value)));
    }
    url
}

fn is_transient(error: &reqwest::Error) -> bool {
    error.is_timeout() || error.is_connect() || error.is_request() || error.is_body()
}

/// The error and its causes, without the URL reqwest would print (it includes query values).
fn describe_error(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some layers repeat their cause's message; once is enough.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    // The HTTP-date form, e.g. `Wed, 21 Oct 2015 07:28:00 GMT`.
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// The target of the first `rel="next"` entry of the `Link` headers (RFC 8288).
fn next_link_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(parse_next_link)
}

fn parse_next_link(value: &str) -> Option<String> {
    let mut rest = value;
    loop {
        let open = rest.find('<')?;
        let close = open + rest[open..].find('>')?;
        let target = &rest[open + 1..close];
        rest = &rest[close + 1..];
        // Parameters run to the next comma outside quotes (a title may contain commas).
        let mut in_quotes = false;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                if c == '"' {
                    in_quotes = !in_quotes;
                }
                c == ',' && !in_quotes
            })
            .map_or(rest.len(), |(i, _)| i);
        let (params, remaining) = rest.split_at(end);
        let is_next = params.split(';').any(|param| {
            param.split_once('=').is_some_and(|(name, value)| {
                name.trim().eq_ignore_ascii_case("rel")
                    && value
                        .trim()
                        .trim_matches('"')
                        .split_whitespace()
                        .any(|rel| rel.eq_ignore_ascii_case("next"))
            })
        });
        if is_next {
            return Some(target.trim().to_string());
        }
        rest = remaining;
    }
}

/// The value at `path`, or the depth at which the path stops existing.
fn lookup<'a>(value: &'a Value, path: &[String]) -> Result<&'a Value, usize> {
    let mut current = value;
    for (depth, segment) in path.iter().enumerate() {
        let child = match current {
            Value::Object(map) => map.get(segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        current = child.ok_or(depth)?;
    }
    Ok(current)
}

fn take_records(body: &mut Value, path: &[String], page: u64) -> Result<Vec<Value>, IoError> {
    if let Some(Value::Array(records)) = lookup_mut(body, path) {
        return Ok(std::mem::take(records));
    }
    let name = if path.is_empty() {
        "the response body".to_string()
    } else {
        format!("`{}`", path.join("."))
    };
    let message = match lookup(body, path) {
        Ok(found) => format!(
            "{name} is {}, expected an array of records",
            describe(found)
        ),
        Err(depth) => {
            let parent_path = &path[..depth];
            let parent = lookup(body, parent_path).unwrap_or(&Value::Null);
            let parent_name = if parent_path.is_empty() {
                "the response body".to_string()
            } else {
                format!("`{}`", parent_path.join("."))
            };
            format!(
                "{name} is missing, expected an array of records ({parent_name} is {})",
                describe(parent)
            )
        }
    };
    Err(IoError::invalid(format!("page {page}: {message}")))
}

fn lookup_mut<'a>(value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut current = value;
    for segment in path {
        current = match current {
            Value::Object(map) => map.get_mut(segment)?,
            Value::Array(items) => items.get_mut(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// What a JSON value is, for messages that explain why it was not what was expected.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(_) => "a boolean".to_string(),
        Value::Number(_) => "a number".to_string(),
        Value::String(_) => "a string".to_string(),
        Value::Array(items) => format!("an array of {} items", items.len()),
        Value::Object(map) if map.is_empty() => "an empty object".to_string(),
        Value::Object(map) => {
            const SHOWN: usize = 10;
            let mut keys: Vec<String> = map.keys().take(SHOWN).map(|k| format!("`{k}`")).collect();
            if map.len() > SHOWN {
                keys.push(format!("… ({} keys in all)", map.len()));
            }
            format!("an object with keys {}", keys.join(", "))
        }
    }
}
