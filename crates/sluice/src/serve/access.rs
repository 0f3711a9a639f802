//! Who is asking, what their role lets them do, and the audit log of what they changed.
//!
//! A request is identified by a bearer token (`SLUICE_API_TOKEN`, an admin, or a named token
//! of `sluice token create`) or by a signed-in browser's session cookie (a random id; the
//! sessions live in the store and expire). A server with neither kind of token configured —
//! loopback only — lets everyone be an admin, as before tokens existed. Reading needs `viewer`,
//! changing `operator`, tokens and the audit log `admin`. Every request that changes something
//! is recorded with its principal, address, parameters (secrets masked) and status.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sluice_store::{Role, Store};

use crate::api_types::ErrorBody;

/// The cookie that carries a signed-in browser's session id.
pub const SESSION_COOKIE: &str = "sluice_session";
/// How long a browser stays signed in.
pub const SESSION_HOURS: i64 = 12;
/// The largest request body the server reads.
pub const MAX_BODY: usize = 1024 * 1024;

/// The address a connection comes from, plain or TLS.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, super::tls::TlsListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, super::tls::TlsListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

/// Who a request comes from.
#[derive(Debug, Clone)]
pub struct Principal {
    /// A token's name, `SLUICE_API_TOKEN`, or `anonymous`.
    pub name: String,
    pub role: Role,
}

pub struct Access {
    /// `SLUICE_API_TOKEN`: an admin token that lives outside the store.
    admin_token: Option<String>,
    store: Arc<Store>,
    /// The server speaks HTTPS: its cookies are `Secure`.
    https: bool,
}

/// Why a request has no principal.
enum Unknown {
    /// Sent nothing, on a server that wants a token.
    Missing,
    /// Sent a token or session that is not (or no longer) valid.
    Wrong,
}

impl Access {
    pub fn new(admin_token: Option<String>, store: Arc<Store>, https: bool) -> Access {
        Access {
            admin_token,
            store,
            https,
        }
    }

    /// What a session cookie adds to `HttpOnly; SameSite=Strict`.
    pub fn cookie_flags(&self) -> &'static str {
        if self.https { "; Secure" } else { "" }
    }

    /// The principal a token (bearer, or typed into the sign-in form) stands for.
    pub fn by_token(&self, token: &str) -> Result<Option<Principal>, sluice_store::StoreError> {
        if self.admin_token.as_deref().is_some_and(|t| same(token, t)) {
            return Ok(Some(Principal {
                name: "SLUICE_API_TOKEN".into(),
                role: Role::Admin,
            }));
        }
        Ok(self.store.token_by_secret(token)?.map(|t| Principal {
            name: t.name,
            role: t.role,
        }))
    }

    fn identify(
        &self,
        headers: &HeaderMap,
    ) -> Result<Result<Principal, Unknown>, sluice_store::StoreError> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if let Some(token) = bearer {
            return Ok(self.by_token(token.trim())?.ok_or(Unknown::Wrong));
        }
        if let Some(id) = cookie(headers, SESSION_COOKIE) {
            return Ok(match self.store.session(&id)? {
                Some(s) => Ok(Principal {
                    name: s.principal,
                    role: s.role,
                }),
                None => Err(Unknown::Wrong),
            });
        }
        if self.admin_token.is_none() && !self.store.has_tokens()? {
            return Ok(Ok(Principal {
                name: "anonymous".into(),
                role: Role::Admin,
            }));
        }
        Ok(Err(Unknown::Missing))
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// Constant-time comparison, so a token cannot be guessed byte by byte.
fn same(given: &str, token: &str) -> bool {
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// A cookie's value.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    cookies.split(';').find_map(|c| {
        let value = c.trim().strip_prefix(name)?.strip_prefix('=')?;
        (!value.is_empty()).then(|| value.to_string())
    })
}

/// The role a request needs.
fn needed(method: &Method, path: &str) -> Role {
    if path.starts_with("/api/tokens") || path.starts_with("/api/audit") || path == "/audit" {
        Role::Admin
    } else if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        Role::Viewer
    } else {
        Role::Operator
    }
}

fn refuse(status: StatusCode, message: String) -> Response {
    let mut response = (status, axum::Json(ErrorBody { error: message })).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static"));
    }
    response
}

/// The middleware: identifies the request, checks its role, and records what it changed.
pub async fn access(
    State(access): State<Arc<Access>>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    if path == "/login" || path == "/logout" || path.starts_with("/ui/assets/") {
        return next.run(request).await;
    }
    let principal = match access.identify(request.headers()) {
        Ok(Ok(p)) => p,
        Ok(Err(why)) => {
            if !path.starts_with("/api/") && path != "/metrics" {
                return axum::response::Redirect::to("/login").into_response();
            }
            let message = match why {
                Unknown::Missing => {
                    "missing or wrong token: none was sent; send `Authorization: Bearer <token>` \
                     (SLUICE_API_TOKEN, or one of `sluice token create`)"
                }
                Unknown::Wrong => {
                    "missing or wrong token: this one is wrong, revoked or expired; send \
                     `Authorization: Bearer <token>` (SLUICE_API_TOKEN, or one of `sluice token \
                     create`)"
                }
            };
            return refuse(StatusCode::UNAUTHORIZED, message.into());
        }
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let method = request.method().clone();
    let role = needed(&method, &path);
    let changes = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    if principal.role < role {
        let a = |r: Role| if r == Role::Viewer { "a" } else { "an" };
        if changes {
            // A refused change is on the record too.
            record(
                &access,
                &principal,
                peer,
                &format!("{method} {path}"),
                &serde_json::json!({}),
                403,
            );
        }
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "`{}` is {} {} and {method} {path} needs {} {role}",
                principal.name,
                a(principal.role),
                principal.role,
                a(role)
            ),
        );
    }
    if !changes {
        let mut request = request;
        request.extensions_mut().insert(principal);
        return next.run(request).await;
    }
    // A change: its body is read (bounded) to be recorded, then handed on.
    let (mut parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than {MAX_BODY} bytes"),
            );
        }
    };
    let mut parameters = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(v) => v,
        Err(_) if bytes.is_empty() => serde_json::json!({}),
        // The sign-in form and other text: kept as text, masked below.
        Err(_) => serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned()),
    };
    if let Some(query) = parts.uri.query() {
        parameters = serde_json::json!({ "body": parameters, "query": query });
    }
    crate::secrets::redactor().redact_json(&mut parameters);
    parts.extensions.insert(principal.clone());
    let response = next
        .run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await;
    let action = format!("{method} {path}");
    record(
        &access,
        &principal,
        peer,
        &action,
        &parameters,
        response.status().as_u16(),
    );
    response
}

fn record(
    access: &Access,
    principal: &Principal,
    peer: SocketAddr,
    action: &str,
    parameters: &serde_json::Value,
    status: u16,
) {
    let recorded = access.store.add_audit(
        &principal.name,
        &peer.ip().to_string(),
        action,
        parameters,
        status,
    );
    if let Err(e) = recorded {
        tracing::error!(
            "the audit log could not record {action} by {}: {e}",
            principal.name
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_needs_a_viewer_changing_an_operator_and_access_an_admin() {
        assert_eq!(needed(&Method::GET, "/api/runs/1"), Role::Viewer);
        assert_eq!(needed(&Method::GET, "/"), Role::Viewer);
        assert_eq!(
            needed(&Method::POST, "/api/pipelines/p/pause"),
            Role::Operator
        );
        assert_eq!(
            needed(&Method::POST, "/api/failed-tasks/3/replay"),
            Role::Operator
        );
        assert_eq!(needed(&Method::GET, "/api/audit"), Role::Admin);
        assert_eq!(needed(&Method::GET, "/audit"), Role::Admin);
        assert_eq!(needed(&Method::POST, "/api/tokens"), Role::Admin);
    }

    #[test]
    fn cookies_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; sluice_session=xyz; b=".parse().unwrap(),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&headers, "b"), None);
        assert_eq!(cookie(&headers, "c"), None);
    }
}
