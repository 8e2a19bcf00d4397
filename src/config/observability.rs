//! `[log]` (format, level, the access log) and `[metrics]` (the Prometheus endpoint: on the main
//! listener behind a bearer token, or on a listener of its own).

use std::net::SocketAddr;

use serde::Deserialize;

use super::operations::MIN_ADMIN_TOKEN;
use super::{Problem, problem, section};
use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter (`info`, `oidc_broker=debug,info`); `BROKER_LOG` overrides it.
    pub level: String,
    /// One line per request: method, route, status, duration, client address, request id.
    pub access: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
            access: true,
        }
    }
}

/// `[metrics]`: absent, there is no `/metrics`.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// `Authorization: Bearer` required of the scraper.
    pub token: Option<Secret>,
    /// A listener of its own (usually a private address) instead of the main one.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<String>,
    level: Option<String>,
    access: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    token: Option<Secret>,
    listen: Option<String>,
}

pub(super) fn take(
    table: &mut toml::Table,
    problems: &mut Vec<Problem>,
) -> (LogConfig, Option<MetricsConfig>) {
    let log = log(section(table, "log", problems), problems);
    let metrics = table
        .contains_key("metrics")
        .then(|| section::<RawMetrics>(table, "metrics", problems))
        .and_then(|raw| metrics(raw, problems));
    (log, metrics)
}

fn log(raw: RawLog, problems: &mut Vec<Problem>) -> LogConfig {
    let mut out = LogConfig::default();
    match raw.format.as_deref() {
        None | Some("text") => {}
        Some("json") => out.format = LogFormat::Json,
        Some(other) => problem(
            problems,
            "log.format",
            format!("`{other}` is not a log format"),
            "write \"text\" or \"json\"",
        ),
    }
    if let Some(level) = raw.level {
        if tracing_subscriber_like(&level) {
            out.level = level;
        } else {
            problem(
                problems,
                "log.level",
                format!("`{level}` is not a log filter"),
                "write a level (error, warn, info, debug, trace) or a filter such as \"oidc_broker=debug,info\"",
            );
        }
    }
    out.access = raw.access.unwrap_or(true);
    out
}

/// A filter as `tracing_subscriber::EnvFilter` reads it: comma-separated `level` or
/// `target=level` directives (checked here by shape: config imports nothing of the logger).
fn tracing_subscriber_like(filter: &str) -> bool {
    const LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace", "off"];
    !filter.trim().is_empty()
        && filter.split(',').all(|d| {
            let d = d.trim();
            let level = d.rsplit_once('=').map_or(
                d,
                |(target, level)| {
                    if target.is_empty() { "" } else { level }
                },
            );
            let target_ok = d.rsplit_once('=').is_none_or(|(t, _)| {
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
            });
            target_ok && LEVELS.contains(&level.to_ascii_lowercase().as_str())
        })
}

fn metrics(raw: RawMetrics, problems: &mut Vec<Problem>) -> Option<MetricsConfig> {
    let token = raw.token.filter(|t| !t.is_empty());
    if token
        .as_ref()
        .is_some_and(|t| t.expose().chars().count() < MIN_ADMIN_TOKEN)
    {
        problem(
            problems,
            "metrics.token",
            format!("shorter than {MIN_ADMIN_TOKEN} characters"),
            "use a long random token (better by environment: BROKER_METRICS__TOKEN)",
        );
        return None;
    }
    let listen = match raw.listen.as_deref() {
        None => None,
        Some(addr) => match addr.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                problem(
                    problems,
                    "metrics.listen",
                    format!("`{addr}` is not an address and port"),
                    "write e.g. \"127.0.0.1:9100\"",
                );
                return None;
            }
        },
    };
    if token.is_none() && listen.is_none() {
        problem(
            problems,
            "metrics",
            "neither token nor listen is set, so /metrics would be public on the main listener",
            "set token (the scraper sends it as a bearer token) or listen (a private address of its own), or remove [metrics]",
        );
        return None;
    }
    Some(MetricsConfig { token, listen })
}

#[cfg(test)]
mod tests {
    use super::tracing_subscriber_like;

    #[test]
    fn log_filters_are_checked_by_shape() {
        for ok in [
            "info",
            "DEBUG",
            "oidc_broker=debug,info",
            "tower_http::trace=warn",
        ] {
            assert!(tracing_subscriber_like(ok), "{ok}");
        }
        for bad in ["", "loud", "=info", "a b=info", "info,"] {
            assert!(!tracing_subscriber_like(bad), "{bad}");
        }
    }
}
