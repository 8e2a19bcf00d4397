//! Prometheus metrics, in one registry for the process, served as text at `/metrics`
//! (`[metrics]`). Names follow Prometheus conventions: a `oidc_broker_` prefix, units in the name,
//! `_total` counters. Every label value comes from a bounded set — a route pattern, a method, a
//! status class, a configured provider or client, an event outcome — never a user, session or
//! address.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use rustc_hash::FxHashMap;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    name: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Host {
    host: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HostOutcome {
    host: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Store {
    store: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Group {
    group: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

fn latency() -> Histogram {
    // 0.5 ms to about 8 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

struct Metrics {
    registry: Registry,
    /// Lifecycle events by kind: `name` is the provider (or client), `outcome` what happened.
    logins: Family<Outcome, Counter>,
    refreshes: Family<Outcome, Counter>,
    logouts: Family<Outcome, Counter>,
    revocations: Family<Outcome, Counter>,
    provider_logouts: Family<Outcome, Counter>,
    client_logouts: Family<Outcome, Counter>,
    sessions_started: Family<Outcome, Counter>,
    sessions_ended: Family<Outcome, Counter>,
    upstream: Family<HostOutcome, Counter>,
    upstream_seconds: Family<Host, Histogram, fn() -> Histogram>,
    store_errors: Family<Store, Counter>,
    rate_limited: Family<Group, Counter>,
    trace_spans_dropped: Family<Reason, Counter>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("oidc_broker");
    let m = Metrics {
        logins: Family::default(),
        refreshes: Family::default(),
        logouts: Family::default(),
        revocations: Family::default(),
        provider_logouts: Family::default(),
        client_logouts: Family::default(),
        sessions_started: Family::default(),
        sessions_ended: Family::default(),
        upstream: Family::default(),
        upstream_seconds: Family::new_with_constructor(latency),
        store_errors: Family::default(),
        rate_limited: Family::default(),
        trace_spans_dropped: Family::default(),
        registry: Registry::default(),
    };
    let lifecycle = [
        (
            "logins",
            "Logins by provider and outcome (succeeded, failed)",
            &m.logins,
        ),
        (
            "refreshes",
            "Refreshes of provider and broker tokens by provider and outcome",
            &m.refreshes,
        ),
        ("logouts", "Logouts by provider", &m.logouts),
        (
            "revocations",
            "Provider refresh-token revocations at logout by provider and outcome (revoked, nothing_revoked, queued, not_queued)",
            &m.revocations,
        ),
        (
            "provider_logouts",
            "Back- and front-channel logouts from providers, by provider and channel",
            &m.provider_logouts,
        ),
        (
            "client_logouts",
            "Back-channel logout tokens sent to OpenID Provider clients, by client and outcome",
            &m.client_logouts,
        ),
        (
            "sessions_started",
            "Local sessions started, by provider",
            &m.sessions_started,
        ),
        (
            "sessions_ended",
            "Local sessions ended on purpose (not by expiry), by provider (or how) and reason",
            &m.sessions_ended,
        ),
    ];
    for (name, help, family) in lifecycle {
        registry.register(name, help, family.clone());
    }
    registry.register(
        "upstream_requests",
        "Calls to identity providers by host and outcome (2xx, 4xx, 5xx, error)",
        m.upstream.clone(),
    );
    registry.register(
        "upstream_request_duration_seconds",
        "Time of calls to identity providers, by host",
        m.upstream_seconds.clone(),
    );
    registry.register(
        "store_errors",
        "Errors of the SQL store (sql) and of the session store (sessions)",
        m.store_errors.clone(),
    );
    registry.register(
        "rate_limited",
        "Requests refused by [limits], by group",
        m.rate_limited.clone(),
    );
    registry.register(
        "trace_spans_dropped",
        "Spans not delivered to the [trace] collector, by reason (queue_full, export_failed, stopped)",
        m.trace_spans_dropped.clone(),
    );
    Metrics { registry, ..m }
});

/// `GET` and the like as a bounded label.
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Upper bounds of the request-latency buckets, in seconds: 0.5 ms to about 8 s.
const BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048,
    4.096, 8.192,
];

/// Request counts and latencies of one (method, status class) of a route, kept by one thread.
#[derive(Default)]
struct Cell {
    count: u64,
    sum: f64,
    /// Not cumulative: `buckets[i]` counts answers in (BUCKETS[i-1], BUCKETS[i]].
    buckets: [u64; BUCKETS.len()],
}

/// Keyed by route pattern, a small set the broker itself names (never a path a client chose), so
/// the hash need not resist chosen keys: Fx is a few instructions where SipHash was a tenth of what
/// counting a request cost.
type Cells = FxHashMap<Box<str>, Vec<((&'static str, &'static str), Cell)>>;

/// The request metrics are on the hot path of every request: each thread counts into its own
/// table (an uncontended lock), and a scrape adds the tables up. A shared histogram would make the
/// two worker threads take turns on one lock for every request.
static SHARDS: Mutex<Vec<Arc<Mutex<Cells>>>> = Mutex::new(Vec::new());

thread_local! {
    static SHARD: Arc<Mutex<Cells>> = {
        let shard = Arc::new(Mutex::new(Cells::default()));
        if let Ok(mut all) = SHARDS.lock() {
            all.push(shard.clone());
        }
        shard
    };
}

/// One answered request; `route` is the matched pattern (`/auth/callback/{provider}`), or
/// `unmatched`.
pub fn request(route: &str, method: &str, status: u16, took: Duration) {
    let key = (method_label(method), status_class(status));
    let secs = took.as_secs_f64();
    SHARD.with(|shard| {
        let Ok(mut cells) = shard.lock() else { return };
        let cells = match cells.get_mut(route) {
            Some(c) => c,
            None => cells.entry(route.into()).or_default(),
        };
        let cell = match cells.iter().position(|(k, _)| *k == key) {
            Some(i) => &mut cells[i].1,
            None => {
                cells.push((key, Cell::default()));
                let last = cells.len() - 1;
                &mut cells[last].1
            }
        };
        cell.count += 1;
        cell.sum += secs;
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            cell.buckets[i] += 1;
        }
    });
}

/// Every thread's request counts, added up: (route, method, status) → cell.
fn requests_total() -> BTreeMap<(String, &'static str, &'static str), Cell> {
    let mut out: BTreeMap<(String, &'static str, &'static str), Cell> = BTreeMap::new();
    let shards: Vec<_> = SHARDS.lock().map(|s| s.clone()).unwrap_or_default();
    for shard in shards {
        let Ok(cells) = shard.lock() else { continue };
        for (route, list) in cells.iter() {
            for ((method, status), c) in list {
                let t = out.entry((route.to_string(), method, status)).or_default();
                t.count += c.count;
                t.sum += c.sum;
                for (a, b) in t.buckets.iter_mut().zip(c.buckets.iter()) {
                    *a += b;
                }
            }
        }
    }
    out
}

/// A label value escaped for the text format.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The request families in the Prometheus text format.
fn encode_requests(out: &mut String) {
    use std::fmt::Write;
    let totals = requests_total();
    out.push_str("# HELP oidc_broker_http_requests_total HTTP requests answered, by route pattern, method and status class.\n");
    out.push_str("# TYPE oidc_broker_http_requests_total counter\n");
    for ((route, method, status), c) in &totals {
        let _ = writeln!(
            out,
            "oidc_broker_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {}",
            label(route),
            c.count
        );
    }
    // The latency histogram is by route and method: the status classes are added together.
    let mut by_route: BTreeMap<(&str, &str), Cell> = BTreeMap::new();
    for ((route, method, _), c) in &totals {
        let t = by_route.entry((route.as_str(), method)).or_default();
        t.count += c.count;
        t.sum += c.sum;
        for (a, b) in t.buckets.iter_mut().zip(c.buckets.iter()) {
            *a += b;
        }
    }
    out.push_str("# HELP oidc_broker_http_request_duration_seconds Time to answer an HTTP request, by route pattern and method.\n");
    out.push_str("# TYPE oidc_broker_http_request_duration_seconds histogram\n");
    for ((route, method), c) in &by_route {
        let labels = format!("route=\"{}\",method=\"{method}\"", label(route));
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(c.buckets.iter()) {
            cumulative += n;
            let _ = writeln!(
                out,
                "oidc_broker_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "oidc_broker_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
            c.count
        );
        let _ = writeln!(
            out,
            "oidc_broker_http_request_duration_seconds_sum{{{labels}}} {}",
            c.sum
        );
        let _ = writeln!(
            out,
            "oidc_broker_http_request_duration_seconds_count{{{labels}}} {}",
            c.count
        );
    }
}

/// A lifecycle event, as the audit trail names it (`login.succeeded`, `session.revoked`, …), with
/// its provider (or client) and, where it has one, what it says about how.
pub fn event(event: &str, provider: Option<&str>, how: Option<&str>) {
    let m = &*METRICS;
    let name = provider.unwrap_or("none").to_string();
    let count = |family: &Family<Outcome, Counter>, outcome: &str| {
        family
            .get_or_create(&Outcome {
                name: name.clone(),
                outcome: outcome.to_string(),
            })
            .inc();
    };
    match event {
        "login.succeeded" => {
            count(&m.logins, "succeeded");
            count(&m.sessions_started, "login");
        }
        "login.failed" => count(&m.logins, "failed"),
        "refresh.succeeded" => count(&m.refreshes, "succeeded"),
        "refresh.failed" => count(&m.refreshes, "failed"),
        "logout" => {
            count(&m.logouts, "logout");
            count(&m.sessions_ended, "logout");
        }
        "session.revoked" => count(&m.sessions_ended, how.unwrap_or("revoked")),
        "backchannel_logout" => {
            count(&m.provider_logouts, "backchannel");
            count(&m.sessions_ended, "provider_logout");
        }
        "frontchannel_logout" => {
            count(&m.provider_logouts, "frontchannel");
            count(&m.sessions_ended, "provider_logout");
        }
        "client_logout" => count(&m.client_logouts, how.unwrap_or("unknown")),
        _ => {}
    }
}

/// What became of a provider refresh token at logout.
pub fn revocation(provider: &str, outcome: &str) {
    METRICS
        .revocations
        .get_or_create(&Outcome {
            name: provider.to_string(),
            outcome: outcome.to_string(),
        })
        .inc();
}

/// One call to an identity provider: its status, or `None` when it failed without one.
pub fn upstream(host: &str, status: Option<u16>, took: Duration) {
    let m = &*METRICS;
    let outcome = status.map_or("error", status_class);
    m.upstream
        .get_or_create(&HostOutcome {
            host: host.to_string(),
            outcome,
        })
        .inc();
    m.upstream_seconds
        .get_or_create(&Host {
            host: host.to_string(),
        })
        .observe(took.as_secs_f64());
}

/// A failure of the SQL store (`sql`) or of the session store (`sessions`).
pub fn store_error(store: &'static str) {
    METRICS.store_errors.get_or_create(&Store { store }).inc();
}

pub fn rate_limited(group: &'static str) {
    METRICS.rate_limited.get_or_create(&Group { group }).inc();
}

/// `n` spans that will not reach the trace collector, and why.
pub fn trace_spans_dropped(reason: &'static str, n: u64) {
    METRICS
        .trace_spans_dropped
        .get_or_create(&Reason { reason })
        .inc_by(n);
}

/// The Content-Type of [`encode`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric in the Prometheus text format (0.0.4), which every scraper and `promtool` read.
pub fn encode() -> String {
    let mut open_metrics = String::new();
    if prometheus_client::encoding::text::encode(&mut open_metrics, &METRICS.registry).is_err() {
        return String::new();
    }
    let mut out = to_text_format(&open_metrics);
    encode_requests(&mut out);
    out
}

/// OpenMetrics text → Prometheus text: a counter family is named with its `_total` in `HELP` and
/// `TYPE`, as its samples are, and the `# EOF` and `# UNIT` lines go.
fn to_text_format(open_metrics: &str) -> String {
    let counters: Vec<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(r) => out.push_str(&r),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_units_and_totals() {
        request("/auth/me", "GET", 200, Duration::from_millis(2));
        event("login.succeeded", Some("dev"), None);
        upstream("idp.example.com", Some(200), Duration::from_millis(40));
        let text = encode();
        for line in [
            "oidc_broker_http_requests_total{route=\"/auth/me\",method=\"GET\",status=\"2xx\"}",
            "oidc_broker_http_request_duration_seconds_bucket{",
            "oidc_broker_logins_total{name=\"dev\",outcome=\"succeeded\"}",
            "oidc_broker_upstream_requests_total{host=\"idp.example.com\",outcome=\"2xx\"}",
            "# HELP oidc_broker_logins_total Logins by provider and outcome",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert!(text.contains("# TYPE oidc_broker_http_requests_total counter\n"));
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label("PROPFIND"), "other");
        assert_eq!(status_class(503), "5xx");
    }
}
