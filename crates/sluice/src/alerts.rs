//! Delivery of alerts to the channels of `alerts:` in sluice.yaml: webhooks (JSON, or Slack's
//! `{"text": …}`), e-mail (SMTP: plain for local relays, STARTTLS or TLS) and commands (the
//! alert as JSON on stdin). Each delivery runs in the
//! background and is retried with backoff; a channel that is down is logged and never holds up
//! a task. Commands wait for pending deliveries (a bounded time) before they exit.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use sluice_core::{AlertChannel, Settings};
use sluice_engine::alerts::{Alert, Notifier};
use sluice_io::reqwest;
use tokio::io::AsyncWriteExt;
use tokio_util::task::TaskTracker;

use crate::secrets::report;

/// Waits between attempts; the last failure is logged and the alert dropped.
const BACKOFF: &[Duration] = &[
    Duration::from_millis(500),
    Duration::from_secs(2),
    Duration::from_secs(5),
];
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Deliverer {
    /// Replaced when `sluice serve` reloads changed settings.
    channels: RwLock<BTreeMap<String, AlertChannel>>,
    /// `task_env:`, which alert commands inherit as task processes do (replaced likewise).
    task_env: RwLock<Vec<String>>,
    /// Commands run in the project folder.
    root: PathBuf,
    http: reqwest::Client,
    pending: TaskTracker,
}

static DELIVERER: OnceLock<Arc<Deliverer>> = OnceLock::new();

/// The process's deliverer, or `None` when the project has no alert channels. Called again with
/// other channels (the settings changed), it delivers to those from then on.
pub fn notifier(settings: &Settings) -> Option<Arc<dyn Notifier>> {
    let channels = &settings.alert_channels;
    if channels.is_empty() {
        return None;
    }
    let d = DELIVERER.get_or_init(|| {
        Arc::new(Deliverer {
            channels: RwLock::new(channels.clone()),
            task_env: RwLock::new(settings.task_env.clone()),
            root: settings.paths.root.clone(),
            http: reqwest::Client::new(),
            pending: TaskTracker::new(),
        })
    });
    {
        let mut current = d.channels.write().unwrap_or_else(|p| p.into_inner());
        if *current != *channels {
            *current = channels.clone();
        }
    }
    *d.task_env.write().unwrap_or_else(|p| p.into_inner()) = settings.task_env.clone();
    Some(d.clone())
}

/// Waits (at most `limit`) for alerts still being delivered.
pub async fn flush(limit: Duration) {
    if let Some(d) = DELIVERER.get() {
        d.pending.close();
        let _ = tokio::time::timeout(limit, d.pending.wait()).await;
    }
}

impl Notifier for Deliverer {
    fn send(&self, alert: Alert) {
        for name in &alert.channels {
            let channel = self
                .channels
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(name)
                .cloned();
            let Some(channel) = channel else {
                continue;
            };
            let (name, alert, http, root) = (
                name.clone(),
                alert.clone(),
                self.http.clone(),
                self.root.clone(),
            );
            let inherited = sluice_core::settings::inherited_env(
                &self.task_env.read().unwrap_or_else(|p| p.into_inner()),
            );
            self.pending.spawn(async move {
                for (attempt, wait) in std::iter::once(Duration::ZERO)
                    .chain(BACKOFF.iter().copied())
                    .enumerate()
                {
                    tokio::time::sleep(wait).await;
                    match tokio::time::timeout(
                        ATTEMPT_TIMEOUT,
                        deliver(&channel, &alert, &http, &root, &inherited),
                    )
                    .await
                    {
                        Ok(Ok(())) => return,
                        // A failed request names its URL, which may be the webhook's secret.
                        Ok(Err(e)) => report!(
                            "alert channel `{name}`: attempt {} failed: {e}",
                            attempt + 1
                        ),
                        Err(_) => {
                            eprintln!("alert channel `{name}`: attempt {} timed out", attempt + 1)
                        }
                    }
                }
                report!("alert channel `{name}`: gave up on: {}", alert.summary());
            });
        }
    }
}

fn payload(alert: &Alert) -> serde_json::Value {
    let mut v = serde_json::to_value(alert).unwrap_or_default();
    v["summary"] = alert.summary().into();
    v
}

/// Slack's message: the summary, the log's last lines, the command that re-runs the task.
fn slack_text(alert: &Alert) -> String {
    let mut text = alert.summary();
    if !alert.log_tail.is_empty() {
        text.push_str(&format!("\n```\n{}\n```", alert.log_tail.join("\n")));
    }
    text.push_str(&format!("\nre-run: `{}`", alert.rerun));
    text
}

async fn deliver(
    channel: &AlertChannel,
    alert: &Alert,
    http: &reqwest::Client,
    root: &Path,
    inherited: &[(OsString, OsString)],
) -> Result<(), String> {
    // What leaves the process passes through its redactor, whatever the alert quotes.
    let redactor = crate::secrets::redactor();
    match channel {
        AlertChannel::Webhook { url, slack } => {
            let mut body = if *slack {
                serde_json::json!({ "text": slack_text(alert) })
            } else {
                payload(alert)
            };
            redactor.redact_json(&mut body);
            let resp = http
                .post(url)
                .json(&body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if resp.status().is_success() {
                Ok(())
            } else {
                Err(format!("the webhook answered {}", resp.status()))
            }
        }
        AlertChannel::Email { smtp, from, to } => {
            use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
            let mut message = Message::builder()
                .from(from.parse().map_err(|e| format!("`from` {from}: {e}"))?)
                .subject(redactor.redact(&alert.summary()));
            for address in to {
                message = message.to(address
                    .parse()
                    .map_err(|e| format!("`to` {address}: {e}"))?);
            }
            let message = message
                .body(redactor.redact(&slack_text(alert).replace('`', "")))
                .map_err(|e| e.to_string())?;
            let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp)
                .map_err(|e| format!("smtp URL: {e}"))?
                .build();
            transport.send(message).await.map_err(|e| e.to_string())?;
            Ok(())
        }
        AlertChannel::Command { command } => {
            // A clean environment (no API token, metadata URL or connection of Sluice's) and a
            // process group of its own, as a task's process.
            let mut child = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(command)
                .env_clear()
                .envs(inherited.iter().map(|(k, v)| (k, v)))
                .process_group(0)
                .current_dir(root)
                .stdin(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("cannot start `{command}`: {e}"))?;
            if let Some(mut stdin) = child.stdin.take() {
                let mut payload = payload(alert);
                redactor.redact_json(&mut payload);
                stdin
                    .write_all(payload.to_string().as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
            }
            let status = child.wait().await.map_err(|e| e.to_string())?;
            if status.success() {
                Ok(())
            } else {
                Err(format!("`{command}` exited with {status}"))
            }
        }
    }
}
