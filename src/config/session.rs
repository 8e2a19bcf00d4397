//! `[session]`: how long a local session lives and what a failed refresh does to it.

use std::time::Duration;

use serde::Deserialize;

use super::duration;
use super::problem::{Problem, problem};

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub idle_timeout: Duration,
    pub absolute_lifetime: Duration,
    pub login_timeout: Duration,
    /// Refresh the provider access token when it expires within this margin.
    pub refresh_margin: Duration,
    pub on_refresh_failure: RefreshFailurePolicy,
    /// At most this many live sessions per user: a login beyond it ends the oldest.
    pub max_per_user: Option<usize>,
}

/// What a refresh that fails for a passing reason (timeout, 5xx) does to the local session. A
/// definitive `invalid_grant` always ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshFailurePolicy {
    /// End the local session at once.
    End,
    /// Keep it, retrying with backoff, until the provider access token has actually expired.
    KeepUntilExpiry,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSession {
    idle_timeout: Option<String>,
    absolute_lifetime: Option<String>,
    login_timeout: Option<String>,
    refresh_margin: Option<String>,
    on_refresh_failure: Option<String>,
}

/// `max_per_user` is read with the operations keys ([`super::operations`]).
pub(super) fn validate(
    raw: RawSession,
    max_per_user: Option<usize>,
    problems: &mut Vec<Problem>,
) -> SessionConfig {
    let idle_timeout = duration(
        problems,
        "session.idle_timeout",
        &raw.idle_timeout,
        Duration::from_secs(30 * 60),
    );
    let absolute_lifetime = duration(
        problems,
        "session.absolute_lifetime",
        &raw.absolute_lifetime,
        Duration::from_secs(7 * 86400),
    );
    let login_timeout = duration(
        problems,
        "session.login_timeout",
        &raw.login_timeout,
        Duration::from_secs(10 * 60),
    );
    let refresh_margin = duration(
        problems,
        "session.refresh_margin",
        &raw.refresh_margin,
        Duration::from_secs(60),
    );
    let on_refresh_failure = on_refresh_failure(raw.on_refresh_failure.as_deref(), problems);
    if idle_timeout > absolute_lifetime {
        problem(
            problems,
            "session.idle_timeout",
            "longer than session.absolute_lifetime",
            "make the idle timeout shorter than the absolute lifetime",
        );
    }
    SessionConfig {
        idle_timeout,
        absolute_lifetime,
        login_timeout,
        refresh_margin,
        on_refresh_failure,
        max_per_user,
    }
}

fn on_refresh_failure(given: Option<&str>, problems: &mut Vec<Problem>) -> RefreshFailurePolicy {
    match given.unwrap_or("keep_until_expiry") {
        "end" => RefreshFailurePolicy::End,
        "keep_until_expiry" => RefreshFailurePolicy::KeepUntilExpiry,
        other => {
            problem(
                problems,
                "session.on_refresh_failure",
                format!("`{other}` is not a policy"),
                "use \"end\" or \"keep_until_expiry\"",
            );
            RefreshFailurePolicy::KeepUntilExpiry
        }
    }
}
