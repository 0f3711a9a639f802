//! What keeps other web pages out of `sluice serve`, token or not: a malicious page open in the
//! same browser can neither read the server through a rebound DNS name nor change anything
//! with a forged form or fetch.
//!
//! - `Host` must be an IP address, `localhost`, or a name of `serve.allowed_hosts`: a page on
//!   `evil.example` whose name is rebound to 127.0.0.1 still sends `Host: evil.example`.
//! - A state-changing request (any method but GET, HEAD, OPTIONS) is refused when the browser
//!   says it comes from another site (`Sec-Fetch-Site`, or an `Origin` that is not this host),
//!   and must be JSON or carry `Authorization` or `X-Sluice-Request`: none of these can be sent
//!   cross-site without a CORS preflight, which this server never grants. The sign-in form is
//!   the one form, protected by the origin checks (and a `SameSite=Strict` cookie after it).
//! - Every response carries a content security policy without inline script, and refuses
//!   framing and sniffing; referrers stay on this origin (`same-origin`: with `no-referrer`,
//!   browsers would send `Origin: null` on this server's own form posts).

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api_types::ErrorBody;

/// The header a script sends to say a request is its own (any value).
pub const REQUEST_HEADER: &str = "x-sluice-request";

/// The pages' policy: scripts, styles and images from this server only.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub struct Guard {
    allowed_hosts: Vec<String>,
}

impl Guard {
    pub fn new(allowed_hosts: &[String]) -> Guard {
        Guard {
            allowed_hosts: allowed_hosts.to_vec(),
        }
    }

    /// Why the request is refused, if it is.
    fn refusal(&self, request: &Request) -> Option<String> {
        let headers = request.headers();
        let host = header_text(headers, header::HOST)
            .or_else(|| request.uri().authority().map(|a| a.as_str()));
        if let Some(host) = host
            && !self.allows(host)
        {
            return Some(format!(
                "refused: this server does not answer to the host `{host}`; if that is its \
                 name, add it to `serve: {{ allowed_hosts: [...] }}` in sluice.yaml"
            ));
        }
        if matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS
        ) {
            return None;
        }
        if let Some(site) = header_text(headers, "sec-fetch-site")
            && !matches!(site, "same-origin" | "none")
        {
            return Some(format!(
                "refused: a {site} request may not change anything here; use this server's own \
                 pages or its API"
            ));
        }
        if let Some(origin) = header_text(headers, header::ORIGIN)
            && !host.is_some_and(|h| same_host(origin, h))
        {
            return Some(format!(
                "refused: a request from the page at `{origin}` may not change anything here"
            ));
        }
        let json = header_text(headers, header::CONTENT_TYPE).is_some_and(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
        let scripted = headers.contains_key(header::AUTHORIZATION)
            || headers.contains_key(REQUEST_HEADER)
            || request.uri().path() == "/login";
        if !json && !scripted {
            return Some(
                "refused: a request that changes something must be JSON (Content-Type: \
                 application/json) or carry the header X-Sluice-Request: 1 — a form on another \
                 page can do neither"
                    .into(),
            );
        }
        None
    }

    fn allows(&self, host: &str) -> bool {
        let name = host_name(host);
        name.parse::<IpAddr>().is_ok()
            || name.eq_ignore_ascii_case("localhost")
            || self
                .allowed_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(name))
    }
}

fn header_text(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `host[:port]` split; an IPv6 address without its brackets.
fn split_authority(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        let (name, after) = rest.split_once(']').unwrap_or((rest, ""));
        return (name, after.strip_prefix(':'));
    }
    match authority.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => (name, Some(port)),
        _ => (authority, None),
    }
}

fn host_name(host: &str) -> &str {
    split_authority(host).0
}

/// Whether `origin` (`scheme://host[:port]`) names the same host and port as `host`.
fn same_host(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        // `null` (a sandboxed frame, a file) is never this server.
        return false;
    };
    let default_port = match scheme {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    let (origin_name, origin_port) = split_authority(authority);
    let (host_name, host_port) = split_authority(host);
    origin_name.eq_ignore_ascii_case(host_name)
        && origin_port.unwrap_or(default_port) == host_port.unwrap_or(default_port)
}

/// The middleware: refuses what [`Guard::refusal`] refuses, and adds the security headers.
pub async fn guard(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    if let Some(message) = guard.refusal(&request) {
        tracing::warn!(
            method = %request.method(),
            path = request.uri().path(),
            "{message}"
        );
        let mut response = (
            StatusCode::FORBIDDEN,
            axum::Json(ErrorBody { error: message }),
        )
            .into_response();
        secure(response.headers_mut());
        return response;
    }
    let mut response = next.run(request).await;
    secure(response.headers_mut());
    response
}

fn secure(headers: &mut HeaderMap) {
    // A route with a policy of its own (the quality report, framed by the task page) keeps it.
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    if !headers.contains_key(header::X_FRAME_OPTIONS) {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// The policy of a self-contained report: its own inline styles, nothing else; framed only by
/// this server's task page.
pub const REPORT_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'";

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, headers: &[(&str, &str)]) -> Request {
        let mut builder = Request::builder()
            .method(method)
            .uri("/api/pipelines/p/pause");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn hosts_by_address_localhost_or_the_allowed_names() {
        let g = Guard::new(&["sluice.example.com".into()]);
        for host in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST",
            "[::1]:8080",
            "10.0.0.7",
            "Sluice.Example.com:443",
        ] {
            let r = request(Method::GET, &[("host", host)]);
            assert_eq!(g.refusal(&r), None, "{host}");
        }
        for host in ["evil.example:8080", "localhost.evil.example", "example.com"] {
            let r = request(Method::GET, &[("host", host)]);
            assert!(g.refusal(&r).unwrap().contains("allowed_hosts"), "{host}");
        }
    }

    #[test]
    fn changes_only_from_this_origin_and_never_as_a_plain_form() {
        let g = Guard::new(&[]);
        let host = ("host", "127.0.0.1:8080");
        let json = ("content-type", "application/json; charset=utf-8");
        let allowed: &[&[(&str, &str)]] = &[
            &[host, json],
            &[host, json, ("origin", "http://127.0.0.1:8080")],
            &[host, json, ("sec-fetch-site", "same-origin")],
            &[host, ("authorization", "Bearer x")],
            &[host, ("x-sluice-request", "1")],
        ];
        for headers in allowed {
            assert_eq!(
                g.refusal(&request(Method::POST, headers)),
                None,
                "{headers:?}"
            );
        }
        let refused: &[&[(&str, &str)]] = &[
            &[host],
            &[host, ("content-type", "application/x-www-form-urlencoded")],
            &[host, ("content-type", "text/plain")],
            &[host, json, ("origin", "http://127.0.0.1:9999")],
            &[host, json, ("origin", "http://evil.example")],
            &[host, json, ("origin", "null")],
            &[host, json, ("sec-fetch-site", "cross-site")],
            &[host, json, ("sec-fetch-site", "same-site")],
        ];
        for headers in refused {
            assert!(
                g.refusal(&request(Method::POST, headers)).is_some(),
                "{headers:?}"
            );
        }
        // Reading needs none of it.
        assert_eq!(g.refusal(&request(Method::GET, &[host])), None);
    }

    #[test]
    fn origins_compare_with_default_ports() {
        assert!(same_host("http://127.0.0.1", "127.0.0.1:80"));
        assert!(same_host(
            "https://sluice.example.com",
            "sluice.example.com"
        ));
        assert!(same_host("http://[::1]:8080", "[::1]:8080"));
        assert!(!same_host("https://127.0.0.1:8080", "127.0.0.1"));
        assert!(!same_host("http://127.0.0.1:8081", "127.0.0.1:8080"));
    }
}
