//! Secrets: which names hold credentials, what a URI gives away, and the one [`Redactor`] that
//! masks them in every text that leaves the process (errors, log lines, the metadata store,
//! the API and UI, lineage events, alerts).
//!
//! Every piece of code that hides a secret goes through this module: it decides which query
//! parameters, headers and properties are secret ([`is_secret_name`]), which strings of a URI
//! must not be shown ([`uri_secrets`]), how a URI is shown ([`redact_url`]), and masks known
//! secrets in free text, longest first ([`Redactor::redact`]).
//!
//! **Invariant:** a leaf module — it imports nothing else of sluice-core, so every other module
//! (and every crate) can use it without an import circle.

use std::fmt;

use url::Url;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Stands in for a secret in `Debug` and `Display` output: shows `***`.
#[derive(Clone, Copy)]
pub struct Masked;

impl fmt::Debug for Masked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Masked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// Secrets shorter than this are not hunted for in free text: a 3-character password would
/// garble every word that happens to contain it. (They are still masked where they stand in a
/// URI, by [`redact_url`].)
const MIN_HUNTED_LEN: usize = 4;

/// Words that make a name a credential's wherever they stand in it (`sasl.password`,
/// `client_secret`, `X-Auth-Token`, `Proxy-Authorization`).
const SECRET_WORDS: &[&str] = &[
    "apikey",
    "auth",
    "authorization",
    "cookie",
    "credential",
    "credentials",
    "passphrase",
    "passwd",
    "password",
    "pwd",
    "secret",
    "sig",
    "signature",
    "token",
];

/// `key` alone is too common a word (sort keys, partition keys, upsert keys): it marks a
/// credential when it is the whole name or follows one of these (`api_key`, `X-Api-Key`,
/// `private_key`, `Ocp-Apim-Subscription-Key`).
const KEY_QUALIFIERS: &[&str] = &[
    "access",
    "account",
    "api",
    "app",
    "auth",
    "client",
    "encryption",
    "master",
    "private",
    "secret",
    "session",
    "signing",
    "subscription",
];

/// A name ending in one of these names or describes a credential rather than holding it:
/// `access_key_id`, `token_type`, `ssl.key.location`, `token_url`.
const DESCRIPTIVE_ENDINGS: &[&str] = &[
    "endpoint", "expires", "expiry", "file", "id", "location", "name", "path", "type", "uri", "url",
];

/// Whether a query parameter, HTTP header, Kafka property or environment variable of this name
/// carries a credential. The name's words are compared (split at punctuation and at case
/// changes, so `X-Api-Key`, `apiKey` and `API_KEY` read alike), not its substrings: `author`
/// and `monkey` are harmless.
pub fn is_secret_name(name: &str) -> bool {
    let words = words(name);
    let Some(last) = words.last() else {
        return false;
    };
    if DESCRIPTIVE_ENDINGS.contains(&last.as_str()) {
        return false;
    }
    words.iter().enumerate().any(|(i, word)| {
        SECRET_WORDS.contains(&word.as_str())
            || (word == "key"
                && (words.len() == 1 || i > 0 && KEY_QUALIFIERS.contains(&words[i - 1].as_str())))
    })
}

/// The lower-case words of a name: split at anything not alphanumeric, and where a lower-case
/// letter or digit meets an upper-case one (`apiKey`) or an acronym ends (`HTTPToken`).
fn words(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut out = Vec::new();
    let mut word = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            continue;
        }
        let boundary = i > 0
            && c.is_uppercase()
            && (chars[i - 1].is_lowercase()
                || chars[i - 1].is_ascii_digit()
                || chars[i - 1].is_uppercase()
                    && chars.get(i + 1).is_some_and(|n| n.is_lowercase()));
        if boundary && !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        word.extend(c.to_lowercase());
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// The strings of a credential's value that must never be shown: the value, and for the
/// `Scheme credentials` form of an `Authorization` header (`Bearer abc…`) the credentials
/// alone, which a server may echo without the scheme.
pub fn value_secrets(value: &str) -> Vec<String> {
    let mut secrets = vec![value.to_string()];
    if let Some((scheme, credentials)) = value.trim().split_once(' ')
        && !scheme.is_empty()
        && scheme.chars().all(|c| c.is_ascii_alphabetic())
    {
        secrets.push(credentials.trim().to_string());
    }
    secrets.retain(|s| !s.is_empty());
    secrets
}

/// The strings of a URI that must never be shown: its password and the values of its secret
/// query parameters, each as written (percent-encoded) and decoded, since an error message may
/// quote either. A PostgreSQL key/value string (`host=… password=…`) gives its password, and a
/// URI the parser refuses still gives the password of its `user:password@` part.
pub fn uri_secrets(uri: &str) -> Vec<String> {
    let uri = uri.trim();
    let mut secrets = Vec::new();
    match Url::parse(uri) {
        Ok(url) => {
            if let Some(password) = url.password() {
                push_encoded_and_decoded(&mut secrets, password);
            }
            if let Some(query) = url.query() {
                for pair in query.split('&') {
                    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                    if is_secret_name(&decode(name)) {
                        push_encoded_and_decoded(&mut secrets, value);
                        // `+` is a space in a query; an error may quote either.
                        secrets.push(decode(&value.replace('+', " ")));
                    }
                }
            }
        }
        Err(_) if uri.contains("://") => {
            let rest = uri.split_once("://").map_or("", |(_, rest)| rest);
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            if let Some((userinfo, _)) = authority.rsplit_once('@')
                && let Some((_, password)) = userinfo.split_once(':')
            {
                push_encoded_and_decoded(&mut secrets, password);
            }
        }
        Err(_) => {
            for pair in uri.split_whitespace() {
                if let Some((name, value)) = pair.split_once('=')
                    && is_secret_name(name)
                {
                    secrets.push(value.trim_matches('\'').to_string());
                }
            }
        }
    }
    secrets.retain(|s| !s.is_empty());
    secrets.sort();
    secrets.dedup();
    secrets
}

fn push_encoded_and_decoded(secrets: &mut Vec<String>, value: &str) {
    secrets.push(value.to_string());
    secrets.push(decode(value));
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// The URI as people may see it: the password and the values of secret query parameters
/// replaced by `***`, everything else as written.
pub fn redact_url(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        // Fails only for URIs that cannot have a password, which then have none to hide.
        let _ = shown.set_password(Some(MASK));
    }
    if let Some(query) = url.query() {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if is_secret_name(&decode(name)) => format!("{name}={MASK}"),
                _ => pair.to_string(),
            })
            .collect();
        shown.set_query(Some(&pairs.join("&")));
    }
    shown.to_string()
}

/// A URI as written, with its secrets ([`uri_secrets`]) masked however short they are: for
/// messages that quote a URI as the user wrote it, also one the parser refuses.
pub fn redact_uri_text(uri: &str) -> String {
    let mut secrets = uri_secrets(uri);
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.iter().fold(uri.to_string(), |text, secret| {
        text.replace(secret.as_str(), MASK)
    })
}

/// The outline of a URL, for messages about requests to APIs, which take keys in so many
/// parameter names that no query value is shown: no credentials, no fragment, the query's
/// parameter names each with `…` for its value.
pub fn outline_url(url: &Url) -> String {
    let mut shown = url.clone();
    // Fails only for URLs without a host, which have no credentials to hide.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_fragment(None);
    shown.set_query(None);
    let names: Vec<String> = url
        .query_pairs()
        .map(|(name, _)| format!("{name}=…"))
        .collect();
    if names.is_empty() {
        shown.to_string()
    } else {
        format!("{shown}?{}", names.join("&"))
    }
}

/// Replaces every secret it knows with `***`, longest first (so a secret that contains another
/// is masked whole). A process builds one from everything it holds — connections, the metadata
/// URL, API tokens, alert webhooks, HTTP headers — and every text that leaves it passes through.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, no duplicates, none shorter than [`MIN_HUNTED_LEN`].
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Redactor {
        Redactor::default().with(secrets)
    }

    /// This redactor, knowing `secrets` as well.
    pub fn with(mut self, secrets: impl IntoIterator<Item = String>) -> Redactor {
        self.secrets.extend(
            secrets
                .into_iter()
                .filter(|s| s.chars().count() >= MIN_HUNTED_LEN),
        );
        self.secrets
            .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        self.secrets.dedup();
        self
    }

    /// This redactor, knowing the secrets of `uri` as well ([`uri_secrets`]).
    pub fn with_uri(self, uri: &str) -> Redactor {
        self.with(uri_secrets(uri))
    }

    /// This redactor, knowing `other`'s secrets as well.
    pub fn merged(self, other: &Redactor) -> Redactor {
        self.with(other.secrets.iter().cloned())
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every known secret replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        out
    }

    /// Masks every string inside a JSON value (an event, a payload, a configuration).
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::String(s) => {
                if self
                    .secrets
                    .iter()
                    .any(|secret| s.contains(secret.as_str()))
                {
                    *s = self.redact(s);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            Value::Object(fields) => fields.values_mut().for_each(|v| self.redact_json(v)),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

/// Shows how many secrets it knows, never which.
impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_are_read_by_their_words() {
        for name in [
            "password",
            "passwd",
            "PASSWORD",
            "token",
            "access_token",
            "session_token",
            "api_key",
            "apikey",
            "apiKey",
            "X-Api-Key",
            "x-api-key",
            "key",
            "secret",
            "client_secret",
            "clientSecret",
            "secret_access_key",
            "AWS_SECRET_ACCESS_KEY",
            "sig",
            "signature",
            "Authorization",
            "Proxy-Authorization",
            "Cookie",
            "X-Auth-Token",
            "sasl.password",
            "ssl.key.password",
            "sasl.oauthbearer.client.secret",
            "private_key",
            "Ocp-Apim-Subscription-Key",
            "HTTPToken",
            "pwd",
        ] {
            assert!(is_secret_name(name), "{name} should be secret");
        }
        for name in [
            "page",
            "page_size",
            "limit",
            "cursor",
            "region",
            "endpoint",
            "access_key_id",
            "token_type",
            "ssl.key.location",
            "sort_key",
            "partition_key",
            "keyword",
            "monkey",
            "author",
            "Accept",
            "Content-Type",
            "sslmode",
            "application_name",
            "user",
            "",
        ] {
            assert!(!is_secret_name(name), "{name} should not be secret");
        }
    }

    #[test]
    fn a_uri_gives_its_password_and_secret_parameters_in_both_spellings() {
        let cases: &[(&str, &[&str])] = &[
            (
                "postgres://loader:p%40ss-word@127.0.0.1:5432/shop",
                &["p%40ss-word", "p@ss-word"],
            ),
            (
                "https://api.example.com/v1?token=tok%2B123&page_size=100&X-Api-Key=k+ey-9",
                &["k ey-9", "k+ey-9", "tok%2B123", "tok+123"],
            ),
            ("mysql://root@127.0.0.1:3306/test", &[]),
            (
                "s3://bucket/p?endpoint=http://x&access_key_id=AKIA1&secret_access_key=wJal-rXUt",
                &["wJal-rXUt"],
            ),
            // A port out of range: the parser refuses it, the password is still known.
            ("http://reg:hunter22@127.0.0.1:99999/x", &["hunter22"]),
            (
                "host=127.0.0.1 user=postgres password='pg-secret' dbname=test",
                &["pg-secret"],
            ),
        ];
        for (uri, expected) in cases {
            let expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
            assert_eq!(uri_secrets(uri), expected, "{uri}");
        }
    }

    #[test]
    fn a_header_value_gives_its_credentials_without_the_scheme() {
        assert_eq!(
            value_secrets("Bearer t0ken-XYZ"),
            ["Bearer t0ken-XYZ", "t0ken-XYZ"]
        );
        assert_eq!(value_secrets("k3y-123"), ["k3y-123"]);
        assert_eq!(value_secrets("a b:c d"), ["a b:c d", "b:c d"]);
        assert!(value_secrets("").is_empty());
    }

    #[test]
    fn urls_are_shown_with_their_secrets_masked() {
        let cases = [
            (
                "postgres://loader:s3cret-pw@127.0.0.1:5432/shop",
                "postgres://loader:***@127.0.0.1:5432/shop",
            ),
            (
                "https://api.example.com/v1?token=tok-123456&page_size=100",
                "https://api.example.com/v1?token=***&page_size=100",
            ),
            (
                "s3://b/p?endpoint=http://127.0.0.1:9000&region=us-east-1&access_key_id=AK&secret_access_key=S",
                "s3://b/p?endpoint=http://127.0.0.1:9000&region=us-east-1&access_key_id=AK&secret_access_key=***",
            ),
            (
                "http://127.0.0.1:8080/hook?a=1",
                "http://127.0.0.1:8080/hook?a=1",
            ),
        ];
        for (uri, shown) in cases {
            assert_eq!(redact_url(&Url::parse(uri).unwrap()), shown, "{uri}");
        }
        for (written, shown) in [
            (
                "postgres://sluice:hunter2@db:5432/meta",
                "postgres://sluice:***@db:5432/meta",
            ),
            (
                "postgres://u:pw@db:99999/meta",
                "postgres://u:***@db:99999/meta",
            ),
            ("ftp://x", "ftp://x"),
            ("127.0.0.1:8081", "127.0.0.1:8081"),
        ] {
            assert_eq!(redact_uri_text(written), shown, "{written}");
        }
        assert_eq!(
            outline_url(
                &Url::parse("https://u:p@api.example.com/v1/x?page=2&api_key=k#f").unwrap()
            ),
            "https://api.example.com/v1/x?page=…&api_key=…"
        );
    }

    #[test]
    fn the_longest_secret_is_masked_first_and_short_ones_are_left() {
        let r = Redactor::new([
            "abcd".to_string(),
            "abcdefgh".to_string(),
            "xyz".to_string(),
        ])
        .with_uri("postgres://u:s3cret-pw@h/db");
        assert_eq!(
            r.redact("abcdefgh, abcd and xyz; postgres://u:s3cret-pw@h/db"),
            "***, *** and xyz; postgres://u:***@h/db"
        );
        assert_eq!(format!("{r:?}"), "Redactor(3 secrets)");
        let mut event = serde_json::json!({"sql": "SELECT 'abcd'", "n": 1, "list": ["abcdefgh"]});
        r.redact_json(&mut event);
        assert_eq!(
            event,
            serde_json::json!({"sql": "SELECT '***'", "n": 1, "list": ["***"]})
        );
        assert!(Redactor::default().is_empty());
        let merged = Redactor::new(["tok-1234".to_string()]).merged(&r);
        assert_eq!(merged.redact("tok-1234 abcd"), "*** ***");
    }
}
