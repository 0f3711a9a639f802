//! A client of `sluice serve`'s REST API, for commands that hand work to a server. It sends and
//! reads the API's own types (`api_types`), so it cannot drift from the server.

use serde::de::DeserializeOwned;

use crate::api_types::{BackfillProgress, BackfillRequest, ErrorBody};
use crate::usage;

pub struct Client {
    http: reqwest::Client,
    /// The server's URL, without a trailing slash.
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client of the server at `url`, sending the token in SLUICE_API_TOKEN when it is set.
    pub fn new(url: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: url.trim_end_matches('/').to_string(),
            token: sluice_core::Environment::process()
                .api_token()
                .map(String::from),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Starts a backfill of `pipeline`; the server keeps it (and its progress) across restarts.
    pub async fn start_backfill(
        &self,
        pipeline: &str,
        request: &BackfillRequest,
    ) -> anyhow::Result<BackfillProgress> {
        let url = format!("{}/api/pipelines/{pipeline}/backfills", self.base);
        let sent = self
            .authorized(self.http.post(url).json(request))
            .send()
            .await;
        let response = sent.or_else(|e| usage(format!("cannot reach {}: {e}", self.base)))?;
        self.answer(response).await
    }

    /// A backfill's progress.
    pub async fn backfill(&self, id: i64) -> anyhow::Result<BackfillProgress> {
        let url = format!("{}/api/backfills/{id}", self.base);
        let sent = self.authorized(self.http.get(url)).send().await;
        let response = sent.or_else(|e| usage(format!("lost {}: {e}", self.base)))?;
        self.answer(response).await
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => request.bearer_auth(t),
            None => request,
        }
    }

    /// The answer's body, or the server's refusal as a usage error with its message.
    async fn answer<T: DeserializeOwned>(&self, response: reqwest::Response) -> anyhow::Result<T> {
        let status = response.status();
        let body = response
            .bytes()
            .await
            .or_else(|e| usage(format!("lost {}: {e}", self.base)))?;
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorBody>(&body)
                .map_or_else(|_| "no message".to_string(), |b| b.error);
            return usage(format!("the server refused ({status}): {message}"));
        }
        serde_json::from_slice(&body).map_err(|e| {
            anyhow::anyhow!(
                "{} answered {status} with a body this sluice cannot read ({e}); is it the same version?",
                self.base
            )
        })
    }
}
