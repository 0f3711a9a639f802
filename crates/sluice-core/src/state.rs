//! Task and run states, trigger rules and retry delays, with Airflow's semantics.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Not yet considered: waiting for its upstream tasks.
    None,
    /// Its trigger rule is met; waiting for a free slot.
    Scheduled,
    /// Handed to a worker.
    Queued,
    Running,
    Success,
    Failed,
    /// Failed, and will be tried again after its retry delay.
    UpForRetry,
    /// Did not run because an upstream task failed.
    UpstreamFailed,
    /// Did not run because its trigger rule ruled it out.
    Skipped,
}

impl TaskState {
    pub const ALL: [TaskState; 9] = [
        TaskState::None,
        TaskState::Scheduled,
        TaskState::Queued,
        TaskState::Running,
        TaskState::Success,
        TaskState::Failed,
        TaskState::UpForRetry,
        TaskState::UpstreamFailed,
        TaskState::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::None => "none",
            TaskState::Scheduled => "scheduled",
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Success => "success",
            TaskState::Failed => "failed",
            TaskState::UpForRetry => "up_for_retry",
            TaskState::UpstreamFailed => "upstream_failed",
            TaskState::Skipped => "skipped",
        }
    }

    /// A state the task will not leave without being cleared.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TaskState::Success | TaskState::Failed | TaskState::UpstreamFailed | TaskState::Skipped
        )
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        TaskState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown task state `{s}`"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Queued,
    Running,
    Success,
    Failed,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Success => "success",
            RunState::Failed => "failed",
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            RunState::Queued,
            RunState::Running,
            RunState::Success,
            RunState::Failed,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
        .ok_or_else(|| format!("unknown run state `{s}`"))
    }
}

/// When a task runs, given the states of its upstream tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerRule {
    #[default]
    AllSuccess,
    AllFailed,
    AllDone,
    OneSuccess,
    OneFailed,
    NoneFailed,
    NoneSkipped,
    Always,
}

impl TriggerRule {
    pub const NAMES: [&'static str; 8] = [
        "all_success",
        "all_failed",
        "all_done",
        "one_success",
        "one_failed",
        "none_failed",
        "none_skipped",
        "always",
    ];

    pub fn parse(s: &str) -> Option<TriggerRule> {
        Some(match s {
            "all_success" => TriggerRule::AllSuccess,
            "all_failed" => TriggerRule::AllFailed,
            "all_done" => TriggerRule::AllDone,
            "one_success" => TriggerRule::OneSuccess,
            "one_failed" => TriggerRule::OneFailed,
            "none_failed" => TriggerRule::NoneFailed,
            "none_skipped" => TriggerRule::NoneSkipped,
            "always" => TriggerRule::Always,
            _ => return None,
        })
    }
}

/// What a task waiting on its upstreams should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Wait,
    Run,
    Skip,
    UpstreamFailed,
}

impl TriggerRule {
    /// Evaluates the rule over the upstream states, as Airflow's trigger-rule dependency does:
    /// `one_success`/`one_failed` fire as soon as one upstream qualifies, the others wait until
    /// every upstream is finished.
    pub fn evaluate(self, upstream: &[TaskState]) -> Decision {
        let n = upstream.len();
        let count = |s: TaskState| upstream.iter().filter(|u| **u == s).count();
        let success = count(TaskState::Success);
        let skipped = count(TaskState::Skipped);
        let failed = count(TaskState::Failed);
        let upstream_failed = count(TaskState::UpstreamFailed);
        let done = success + skipped + failed + upstream_failed;
        let all_done = done == n;
        let any_failed = failed + upstream_failed > 0;
        match self {
            TriggerRule::Always => Decision::Run,
            TriggerRule::AllSuccess => {
                if any_failed {
                    Decision::UpstreamFailed
                } else if skipped > 0 {
                    Decision::Skip
                } else if success == n {
                    Decision::Run
                } else {
                    Decision::Wait
                }
            }
            TriggerRule::AllFailed => {
                if success + skipped > 0 {
                    Decision::Skip
                } else if all_done {
                    Decision::Run
                } else {
                    Decision::Wait
                }
            }
            TriggerRule::AllDone => {
                if all_done {
                    Decision::Run
                } else {
                    Decision::Wait
                }
            }
            TriggerRule::OneSuccess => {
                if success > 0 || n == 0 {
                    Decision::Run
                } else if all_done && skipped == n {
                    Decision::Skip
                } else if all_done {
                    Decision::UpstreamFailed
                } else {
                    Decision::Wait
                }
            }
            TriggerRule::OneFailed => {
                if any_failed {
                    Decision::Run
                } else if all_done {
                    Decision::Skip
                } else {
                    Decision::Wait
                }
            }
            TriggerRule::NoneFailed => {
                if any_failed {
                    Decision::UpstreamFailed
                } else if all_done {
                    Decision::Run
                } else {
                    Decision::Wait
                }
            }
            TriggerRule::NoneSkipped => {
                if skipped > 0 {
                    Decision::Skip
                } else if all_done {
                    Decision::Run
                } else {
                    Decision::Wait
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    #[default]
    Constant,
    Exponential,
}

/// How often and when a failed task is tried again.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryPolicy {
    pub retries: u32,
    pub delay: Duration,
    pub backoff: Backoff,
    pub max_delay: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 0,
            delay: Duration::from_secs(300),
            backoff: Backoff::Constant,
            max_delay: None,
        }
    }
}

impl RetryPolicy {
    /// The wait after try `try_number` (1-based) failed. Exponential backoff is
    /// `delay * 2^(try-1)` plus a jitter of up to the same amount again, derived from `jitter_key`
    /// so that it is stable for one task instance (Airflow hashes the task instance the same way),
    /// capped by `max_delay`.
    pub fn delay_after(&self, try_number: u32, jitter_key: &str) -> Duration {
        let delay = match self.backoff {
            Backoff::Constant => self.delay,
            Backoff::Exponential => {
                let factor = 2u32.saturating_pow(try_number.saturating_sub(1).min(30));
                let base = self.delay.saturating_mul(factor);
                let base_ms = base.as_millis().max(1) as u64;
                let digest = Sha256::digest(format!("{jitter_key}#{try_number}").as_bytes());
                let hash = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
                base.saturating_add(Duration::from_millis(hash % base_ms))
            }
        };
        match self.max_delay {
            Some(max) => delay.min(max),
            None => delay,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskState::*;

    #[test]
    fn trigger_rules_table() {
        use Decision as D;
        // (rule, upstream states, decision)
        let cases: &[(&str, &[TaskState], Decision)] = &[
            ("all_success", &[Success, Success], D::Run),
            ("all_success", &[Success, Running], D::Wait),
            ("all_success", &[Success, Failed], D::UpstreamFailed),
            ("all_success", &[Running, UpstreamFailed], D::UpstreamFailed),
            ("all_success", &[Success, Skipped], D::Skip),
            ("all_success", &[], D::Run),
            ("all_failed", &[Failed, UpstreamFailed], D::Run),
            ("all_failed", &[Failed, Running], D::Wait),
            ("all_failed", &[Failed, Success], D::Skip),
            (
                "all_done",
                &[Failed, Success, Skipped, UpstreamFailed],
                D::Run,
            ),
            ("all_done", &[Failed, UpForRetry], D::Wait),
            ("one_success", &[Success, Running], D::Run),
            ("one_success", &[Failed, Running], D::Wait),
            ("one_success", &[Failed, Skipped], D::UpstreamFailed),
            ("one_success", &[Skipped, Skipped], D::Skip),
            ("one_failed", &[Failed, Running], D::Run),
            ("one_failed", &[Success, Running], D::Wait),
            ("one_failed", &[Success, Skipped], D::Skip),
            ("none_failed", &[Success, Skipped], D::Run),
            ("none_failed", &[Success, UpstreamFailed], D::UpstreamFailed),
            ("none_failed", &[Success, Running], D::Wait),
            ("none_skipped", &[Success, Failed], D::Run),
            ("none_skipped", &[Success, Skipped], D::Skip),
            ("none_skipped", &[Success, Queued], D::Wait),
            ("always", &[Running, None], D::Run),
        ];
        for (rule, upstream, want) in cases {
            let r = TriggerRule::parse(rule).unwrap();
            assert_eq!(r.evaluate(upstream), *want, "{rule} over {upstream:?}");
        }
    }

    #[test]
    fn exponential_retry_delay_doubles_with_jitter_and_cap() {
        let p = RetryPolicy {
            retries: 5,
            delay: Duration::from_secs(10),
            backoff: Backoff::Exponential,
            max_delay: Some(Duration::from_secs(60)),
        };
        for (try_number, base) in [(1u32, 10u64), (2, 20), (3, 40)] {
            let d = p.delay_after(try_number, "p.t.2024-01-01");
            assert!(
                d >= Duration::from_secs(base)
                    && d < Duration::from_secs(2 * base).min(Duration::from_secs(61)),
                "try {try_number}: {d:?}"
            );
        }
        assert_eq!(
            p.delay_after(4, "k"),
            Duration::from_secs(60),
            "80s+ is capped at 60s"
        );
        assert_eq!(
            p.delay_after(2, "k"),
            p.delay_after(2, "k"),
            "jitter is stable per key"
        );
        let c = RetryPolicy {
            backoff: Backoff::Constant,
            ..p
        };
        assert_eq!(c.delay_after(3, "k"), Duration::from_secs(10));
    }

    #[test]
    fn states_round_trip() {
        for s in TaskState::ALL {
            assert_eq!(s.as_str().parse::<TaskState>().unwrap(), s);
        }
    }
}
