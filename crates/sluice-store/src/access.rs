//! Who may use `sluice serve`: named API tokens with a role, signed-in browser sessions, and
//! the audit log of every change made through the server.
//!
//! Secrets are never stored: a token or a session id is 32 random bytes shown once, and the
//! store keeps its SHA-256. A slow password hash (argon2) protects guessable secrets; these
//! are not guessable, and a fast hash lets every request be checked with one indexed lookup.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{Result, Store, StoreError, parse_opt_ts, parse_ts, ts};

/// What a principal may do; each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read pipelines, runs, logs, reports.
    Viewer,
    /// Also trigger, clear, backfill, pause and replay.
    Operator,
    /// Everything, including tokens and the audit log.
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Role, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "`{other}` is not a role; use viewer, operator or admin"
            )),
        }
    }
}

/// A named API token (its secret is not kept).
#[derive(Debug, Clone, Serialize)]
pub struct TokenRecord {
    pub name: String,
    pub role: Role,
    /// Pipeline id patterns (`finance_*`) the token is limited to; empty: every pipeline.
    pub pipelines: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Who a signed-in browser is.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub principal: String,
    pub role: Role,
    pub pipelines: Vec<String>,
    pub expires_at: DateTime<Utc>,
}

/// One change made through the server.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// The token's name, `SLUICE_API_TOKEN`, or `anonymous` (a server without tokens).
    pub principal: String,
    pub address: String,
    /// `POST /api/pipelines/daily/pause`.
    pub action: String,
    /// The request's body and query, secrets masked.
    pub parameters: serde_json::Value,
    pub status: u16,
}

/// A new secret: `prefix` and 43 characters of base64url (32 random bytes).
pub fn new_secret(prefix: &str) -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Randomness(e.to_string()))?;
    Ok(format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// What the store keeps of a secret.
fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn patterns(text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("pipelines `{text}`: {e}")))
}

fn role(text: &str) -> Result<Role> {
    text.parse().map_err(StoreError::Corrupt)
}

impl Store {
    /// Creates a token; returns its secret, which nothing can show again. A name in use (even
    /// revoked) is refused: the audit log names tokens, and a name must keep meaning one token.
    pub fn create_token(&self, name: &str, role: Role, pipelines: &[String]) -> Result<String> {
        let secret = new_secret("sluice_")?;
        let patterns = serde_json::to_string(pipelines).expect("strings serialize");
        self.tx(|c| {
            if c.query_opt("SELECT 1 FROM api_tokens WHERE name = ?1", params![name])?
                .is_some()
            {
                return Err(StoreError::Conflict(format!(
                    "a token named `{name}` exists already (revoked tokens keep their names)"
                )));
            }
            c.execute(
                "INSERT INTO api_tokens (name, role, pipelines, secret_hash, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![name, role.name(), patterns, digest(&secret), ts(Utc::now())],
            )?;
            Ok(())
        })?;
        Ok(secret)
    }

    /// Every token, revoked ones too, by name.
    pub fn tokens(&self) -> Result<Vec<TokenRecord>> {
        let rows = self.conn().query(
            "SELECT name, role, pipelines, created_at, revoked_at FROM api_tokens ORDER BY name",
            params![],
        )?;
        rows.iter()
            .map(|r| {
                Ok(TokenRecord {
                    name: r.text(0)?,
                    role: role(&r.text(1)?)?,
                    pipelines: patterns(&r.text(2)?)?,
                    created_at: parse_ts(&r.text(3)?)?,
                    revoked_at: parse_opt_ts(r.opt_text(4)?)?,
                })
            })
            .collect()
    }

    /// Whether any token is in force: then the server asks every request for one.
    pub fn has_tokens(&self) -> Result<bool> {
        Ok(self
            .conn()
            .query_opt(
                "SELECT 1 FROM api_tokens WHERE revoked_at IS NULL",
                params![],
            )?
            .is_some())
    }

    /// The token in force whose secret this is.
    pub fn token_by_secret(&self, secret: &str) -> Result<Option<TokenRecord>> {
        let row = self.conn().query_opt(
            "SELECT name, role, pipelines, created_at FROM api_tokens
             WHERE secret_hash = ?1 AND revoked_at IS NULL",
            params![digest(secret)],
        )?;
        row.map(|r| {
            Ok(TokenRecord {
                name: r.text(0)?,
                role: role(&r.text(1)?)?,
                pipelines: patterns(&r.text(2)?)?,
                created_at: parse_ts(&r.text(3)?)?,
                revoked_at: None,
            })
        })
        .transpose()
    }

    /// Revokes a token and ends its sessions; false when no token in force has that name.
    pub fn revoke_token(&self, name: &str) -> Result<bool> {
        self.tx(|c| {
            let n = c.execute(
                "UPDATE api_tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
                params![name, ts(Utc::now())],
            )?;
            c.execute("DELETE FROM sessions WHERE principal = ?1", params![name])?;
            Ok(n > 0)
        })
    }

    /// Starts a browser session; returns its id (for the cookie), which the store does not keep.
    pub fn create_session(
        &self,
        principal: &str,
        role: Role,
        pipelines: &[String],
        lasts: Duration,
    ) -> Result<String> {
        let id = new_secret("")?;
        let now = Utc::now();
        let patterns = serde_json::to_string(pipelines).expect("strings serialize");
        let mut c = self.conn();
        // Expired sessions go as new ones come.
        c.execute(
            "DELETE FROM sessions WHERE expires_at < ?1",
            params![ts(now)],
        )?;
        c.execute(
            "INSERT INTO sessions (id_hash, principal, role, pipelines, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                digest(&id),
                principal,
                role.name(),
                patterns,
                ts(now),
                ts(now + lasts)
            ],
        )?;
        Ok(id)
    }

    /// The unexpired session with this id.
    pub fn session(&self, id: &str) -> Result<Option<SessionRecord>> {
        let row = self.conn().query_opt(
            "SELECT principal, role, pipelines, expires_at FROM sessions
             WHERE id_hash = ?1 AND expires_at > ?2",
            params![digest(id), ts(Utc::now())],
        )?;
        row.map(|r| {
            Ok(SessionRecord {
                principal: r.text(0)?,
                role: role(&r.text(1)?)?,
                pipelines: patterns(&r.text(2)?)?,
                expires_at: parse_ts(&r.text(3)?)?,
            })
        })
        .transpose()
    }

    pub fn end_session(&self, id: &str) -> Result<()> {
        self.conn().execute(
            "DELETE FROM sessions WHERE id_hash = ?1",
            params![digest(id)],
        )?;
        Ok(())
    }

    /// Records a change made through the server.
    pub fn add_audit(
        &self,
        principal: &str,
        address: &str,
        action: &str,
        parameters: &serde_json::Value,
        status: u16,
    ) -> Result<()> {
        self.conn().execute(
            "INSERT INTO audit_log (at, principal, address, action, parameters, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                ts(Utc::now()),
                principal,
                address,
                action,
                parameters.to_string(),
                i64::from(status)
            ],
        )?;
        Ok(())
    }

    /// The audit log, newest first: at most `limit` entries older than entry `before`.
    pub fn audit(&self, limit: u32, before: Option<i64>) -> Result<Vec<AuditEntry>> {
        let rows = self.conn().query(
            "SELECT id, at, principal, address, action, parameters, status FROM audit_log
             WHERE CAST(?1 AS BIGINT) IS NULL OR id < ?1 ORDER BY id DESC LIMIT ?2",
            params![before, i64::from(limit)],
        )?;
        rows.iter()
            .map(|r| {
                let parameters = r.text(5)?;
                Ok(AuditEntry {
                    id: r.int(0)?,
                    at: parse_ts(&r.text(1)?)?,
                    principal: r.text(2)?,
                    address: r.text(3)?,
                    action: r.text(4)?,
                    parameters: serde_json::from_str(&parameters).map_err(|e| {
                        StoreError::Corrupt(format!("audit parameters `{parameters}`: {e}"))
                    })?,
                    status: u16::try_from(r.int(6)?).unwrap_or_default(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_only_their_digest_is_kept() {
        let a = new_secret("sluice_").unwrap();
        let b = new_secret("sluice_").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), "sluice_".len() + 43);
        assert_eq!(digest(&a).len(), 64);
        assert_ne!(digest(&a), digest(&b));
        assert_eq!("operator".parse::<Role>(), Ok(Role::Operator));
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        assert!(
            "root"
                .parse::<Role>()
                .unwrap_err()
                .contains("viewer, operator or admin")
        );
    }
}
