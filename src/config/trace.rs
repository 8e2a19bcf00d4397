//! `[trace]`: OpenTelemetry spans sent to a collector over OTLP/HTTP — where (`endpoint`, an API
//! key in `headers`), under which `service_name`, and what share of new traces (`sample_ratio`).

use serde::Deserialize;
use url::Url;

use super::frontend::HOP_BY_HOP;
use super::{Problem, problem, section};
use crate::secret::Secret;

/// `[trace]`: absent, no span is made or sent.
#[derive(Debug, Clone)]
pub struct TraceConfig {
    /// Where spans are posted: the configured `endpoint` with `/v1/traces` appended (OTLP/HTTP).
    pub url: Url,
    /// The `service.name` of every span.
    pub service_name: String,
    /// The share of new traces recorded, 0 to 1; a caller's `traceparent` decides for its own.
    pub sample_ratio: f64,
    /// Sent with every export (a collector's API key): names lower case, values secret.
    pub headers: Vec<(String, Secret)>,
}

const DEFAULT_SERVICE_NAME: &str = "oidc-broker";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrace {
    endpoint: Option<String>,
    service_name: Option<String>,
    /// A number, or (from the environment) a string holding one.
    sample_ratio: Option<toml::Value>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, Secret>,
}

/// `[trace]`, if the file (or the environment) has one.
pub(super) fn take(table: &mut toml::Table, problems: &mut Vec<Problem>) -> Option<TraceConfig> {
    // A table that does not parse is reported once, not again as a missing endpoint.
    let before = problems.len();
    table
        .contains_key("trace")
        .then(|| section::<RawTrace>(table, "trace", problems))
        .filter(|_| problems.len() == before)
        .and_then(|raw| trace(raw, problems))
}

fn trace(raw: RawTrace, problems: &mut Vec<Problem>) -> Option<TraceConfig> {
    let before = problems.len();
    let url = trace_url(raw.endpoint.as_deref(), problems);
    let service_name = match raw.service_name {
        None => DEFAULT_SERVICE_NAME.to_string(),
        Some(name)
            if !name.trim().is_empty() && name.len() <= 255 && !name.contains(char::is_control) =>
        {
            name
        }
        Some(name) => {
            problem(
                problems,
                "trace.service_name",
                format!("`{}` is not a service name", name.escape_debug()),
                "write a short name without control characters, e.g. \"oidc-broker\"",
            );
            String::new()
        }
    };
    let sample_ratio = match raw.sample_ratio {
        None => 1.0,
        Some(v) => match ratio(&v) {
            Some(r) => r,
            None => {
                problem(
                    problems,
                    "trace.sample_ratio",
                    format!("`{v}` is not a number from 0 to 1"),
                    "write e.g. 0.25 to record a quarter of new traces, or 1 (the default) for all",
                );
                1.0
            }
        },
    };
    let mut headers = Vec::new();
    for (name, value) in raw.headers {
        if let Some(h) = export_header(&name, value, problems) {
            headers.push(h);
        }
    }
    (problems.len() == before).then_some(TraceConfig {
        url: url?,
        service_name,
        sample_ratio,
        headers,
    })
}

/// `endpoint` (an http(s) base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` is) with `v1/traces` joined
/// to its path.
fn trace_url(endpoint: Option<&str>, problems: &mut Vec<Problem>) -> Option<Url> {
    let Some(endpoint) = endpoint else {
        problem(
            problems,
            "trace.endpoint",
            "missing",
            "name the collector's OTLP/HTTP address, e.g. endpoint = \"http://127.0.0.1:4318\", or remove [trace]",
        );
        return None;
    };
    match Url::parse(endpoint) {
        Ok(mut u)
            if matches!(u.scheme(), "http" | "https")
                && u.host().is_some()
                && u.query().is_none()
                && u.fragment().is_none()
                && u.username().is_empty()
                && u.password().is_none() =>
        {
            let path = format!("{}/v1/traces", u.path().trim_end_matches('/'));
            u.set_path(&path);
            Some(u)
        }
        _ => {
            problem(
                problems,
                "trace.endpoint",
                "not an http(s) URL without query or credentials",
                "write the collector's base address, e.g. \"http://127.0.0.1:4318\" (the broker adds /v1/traces); put an API key in [trace.headers]",
            );
            None
        }
    }
}

/// A number from 0 to 1, or (from the environment) a string holding one.
fn ratio(v: &toml::Value) -> Option<f64> {
    let r = match v {
        toml::Value::Float(f) => *f,
        toml::Value::Integer(n) => *n as f64,
        toml::Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (0.0..=1.0).contains(&r).then_some(r)
}

/// One of `[trace.headers]`: `_` in a name is read as `-`, so that the environment can set it
/// (`BROKER_TRACE__HEADERS__X_API_KEY`).
fn export_header(
    name: &str,
    value: Secret,
    problems: &mut Vec<Problem>,
) -> Option<(String, Secret)> {
    let key = format!("trace.headers.{name}");
    let folded = name.to_ascii_lowercase().replace('_', "-");
    let token_char = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^`|~".contains(&b);
    if folded.is_empty() || !folded.bytes().all(token_char) {
        problem(
            problems,
            key,
            "is not a header name",
            "write a header name such as \"x-api-key\" or \"authorization\"",
        );
        return None;
    }
    if HOP_BY_HOP.contains(&folded.as_str())
        || folded.starts_with("content-")
        || matches!(folded.as_str(), "host" | "expect")
    {
        problem(
            problems,
            key,
            "is a header the exporter sets itself or that belongs to the connection",
            "remove it; name only what the collector asks for, such as an API key",
        );
        return None;
    }
    // Visible ASCII, spaces and tabs: a value that could end the header is refused (without
    // repeating the value: it is a secret).
    let visible = |b: u8| b == b'\t' || (0x20..0x7f).contains(&b);
    if value.is_empty() || !value.expose().bytes().all(visible) {
        problem(
            problems,
            key,
            "is empty or has characters a header value cannot hold",
            "write the value the collector expects, in plain ASCII (better by environment)",
        );
        return None;
    }
    Some((folded, value))
}

#[cfg(test)]
mod tests {
    use crate::config::{ConfigError, Problem, from_toml_str};

    const BASE: &str = "[server]\nenvironment = \"development\"\n[providers.dev]\nkind = \"dev\"\n";

    fn trace_problems(trace: &str, env: &[(&str, &str)]) -> Vec<Problem> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        match from_toml_str(&format!("{BASE}[trace]\n{trace}"), env) {
            Ok(_) => Vec::new(),
            Err(ConfigError(problems)) => problems,
        }
    }

    #[test]
    fn trace_is_off_without_its_section_and_takes_defaults_with_it() {
        let c = from_toml_str(BASE, Vec::new()).unwrap();
        assert!(c.trace.is_none());
        let c = from_toml_str(
            &format!("{BASE}[trace]\nendpoint = \"http://127.0.0.1:4318\"\n"),
            Vec::new(),
        )
        .unwrap();
        let t = c.trace.unwrap();
        assert_eq!(t.url.as_str(), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(t.service_name, "oidc-broker");
        assert_eq!(t.sample_ratio, 1.0);
        assert!(t.headers.is_empty());
    }

    #[test]
    fn trace_endpoint_paths_sample_ratio_and_headers_are_read_from_file_and_environment() {
        let c = from_toml_str(
            &format!(
                "{BASE}[trace]\nendpoint = \"https://otel.example.com/otlp/\"\nservice_name = \"auth-edge\"\nsample_ratio = 0.25\n[trace.headers]\nx-api-key = \"from-file\"\n"
            ),
            vec![
                ("BROKER_TRACE__HEADERS__X_TENANT".to_string(), "t1".to_string()),
                ("BROKER_TRACE__SAMPLE_RATIO".to_string(), "0.5".to_string()),
            ],
        )
        .unwrap();
        let t = c.trace.unwrap();
        assert_eq!(t.url.as_str(), "https://otel.example.com/otlp/v1/traces");
        assert_eq!(t.service_name, "auth-edge");
        assert_eq!(t.sample_ratio, 0.5);
        let headers: Vec<(&str, &str)> = t
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect();
        assert_eq!(headers, [("x-api-key", "from-file"), ("x-tenant", "t1")]);
        assert!(!format!("{t:?}").contains("from-file"));
    }

    #[test]
    fn bad_trace_settings_are_each_one_problem_with_a_fix_and_no_secret() {
        for (toml, key) in [
            ("service_name = \"x\"\n", "trace.endpoint"),
            ("endpoint = \"127.0.0.1:4318\"\n", "trace.endpoint"),
            ("endpoint = \"ftp://collector\"\n", "trace.endpoint"),
            (
                "endpoint = \"http://user:pw@collector:4318\"\n",
                "trace.endpoint",
            ),
            (
                "endpoint = \"http://collector:4318/?k=v\"\n",
                "trace.endpoint",
            ),
            (
                "endpoint = \"http://c:4318\"\nsample_ratio = 1.5\n",
                "trace.sample_ratio",
            ),
            (
                "endpoint = \"http://c:4318\"\nsample_ratio = -0.1\n",
                "trace.sample_ratio",
            ),
            (
                "endpoint = \"http://c:4318\"\nsample_ratio = \"half\"\n",
                "trace.sample_ratio",
            ),
            (
                "endpoint = \"http://c:4318\"\nservice_name = \" \"\n",
                "trace.service_name",
            ),
            ("endpoint = \"http://c:4318\"\nsurprise = 1\n", "trace"),
            (
                "endpoint = \"http://c:4318\"\n[trace.headers]\n\"a b\" = \"v\"\n",
                "trace.headers.a b",
            ),
            (
                "endpoint = \"http://c:4318\"\n[trace.headers]\ncontent-type = \"text/plain\"\n",
                "trace.headers.content-type",
            ),
            (
                "endpoint = \"http://c:4318\"\n[trace.headers]\nx-key = \"sec\\nret-value\"\n",
                "trace.headers.x-key",
            ),
        ] {
            let problems = trace_problems(toml, &[]);
            assert_eq!(problems.len(), 1, "{toml}: {problems:?}");
            assert_eq!(problems[0].key, key, "{toml}");
            assert!(!problems[0].fix.is_empty());
            assert!(!problems[0].to_string().contains("ret-value"), "{toml}");
        }
    }
}
