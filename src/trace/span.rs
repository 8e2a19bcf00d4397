//! A finished span, and a batch of them as an OTLP `ExportTraceServiceRequest` in the JSON
//! encoding (OTLP specification, "JSON Protobuf Encoding"): lowerCamelCase keys, trace and span
//! ids in hex (not base64 as plain proto3 JSON has bytes), enums as integers, and 64-bit integers
//! (times, `intValue`) as decimal strings.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value as Json, json};

use super::context::SpanContext;

/// `Span.SpanKind` of `opentelemetry/proto/trace/v1/trace.proto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Server = 2,
    Client = 3,
}

/// `Status.StatusCode`: a span is left unset unless it failed.
const STATUS_ERROR: u8 = 2;
/// `SpanFlags`: whether the parent is remote is known (bit 8), and it is (bit 9).
const FLAGS_HAS_IS_REMOTE: u32 = 0x100;
const FLAGS_IS_REMOTE: u32 = 0x200;

/// An attribute value: the two kinds the broker records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Int(i64),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<u16> for Value {
    fn from(n: u16) -> Self {
        Value::Int(i64::from(n))
    }
}

/// A span's parent: its id, and whether it came from another service (a caller's `traceparent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    pub span_id: [u8; 8],
    pub remote: bool,
}

/// A span being timed: its ids now, its name and attributes when it ends.
#[derive(Debug)]
pub struct StartedSpan {
    pub(super) context: SpanContext,
    pub(super) parent: Option<Parent>,
    start_unix_nanos: u64,
    started: Instant,
}

impl StartedSpan {
    pub(super) fn new(context: SpanContext, parent: Option<Parent>) -> Self {
        let start_unix_nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        StartedSpan {
            context,
            parent,
            start_unix_nanos,
            started: Instant::now(),
        }
    }

    /// Its ids: what a `traceparent` sent on its behalf names, and the parent of spans inside it.
    pub fn context(&self) -> SpanContext {
        self.context
    }

    /// The end is timed on the monotonic clock, so a wall-clock step never makes a negative span.
    pub(super) fn end(self, ended: Ended) -> Span {
        let took = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        Span {
            context: self.context,
            parent: self.parent,
            name: ended.name,
            kind: ended.kind,
            start_unix_nanos: self.start_unix_nanos,
            end_unix_nanos: self.start_unix_nanos.saturating_add(took),
            attributes: ended.attributes,
            error: ended.error,
        }
    }
}

/// What is known of a span when it ends.
#[derive(Debug)]
pub struct Ended {
    pub name: String,
    pub kind: Kind,
    pub attributes: Vec<(&'static str, Value)>,
    /// The span's status is `Error` (left unset otherwise, as the semantic conventions ask).
    pub error: bool,
}

/// A span, ended, waiting to be exported.
#[derive(Debug)]
pub struct Span {
    context: SpanContext,
    parent: Option<Parent>,
    name: String,
    kind: Kind,
    start_unix_nanos: u64,
    end_unix_nanos: u64,
    attributes: Vec<(&'static str, Value)>,
    error: bool,
}

impl Span {
    fn to_otlp(&self) -> Json {
        let mut flags = u32::from(self.context.sampled) | FLAGS_HAS_IS_REMOTE;
        if self.parent.is_some_and(|p| p.remote) {
            flags |= FLAGS_IS_REMOTE;
        }
        let mut span = json!({
            "traceId": hex::encode(self.context.trace_id),
            "spanId": hex::encode(self.context.span_id),
            "flags": flags,
            "name": self.name,
            "kind": self.kind as u8,
            "startTimeUnixNano": self.start_unix_nanos.to_string(),
            "endTimeUnixNano": self.end_unix_nanos.to_string(),
            "attributes": attributes(&self.attributes),
        });
        if let Some(parent) = self.parent {
            span["parentSpanId"] = hex::encode(parent.span_id).into();
        }
        if self.error {
            span["status"] = json!({ "code": STATUS_ERROR });
        }
        span
    }
}

fn attributes(list: &[(&'static str, Value)]) -> Json {
    list.iter()
        .map(|(key, value)| {
            let value = match value {
                Value::Str(s) => json!({ "stringValue": s }),
                Value::Int(n) => json!({ "intValue": n.to_string() }),
            };
            json!({ "key": key, "value": value })
        })
        .collect()
}

/// The body of one export: every span under one resource (this service) and one scope.
pub fn export_request(service_name: &str, spans: &[Span]) -> Json {
    let resource = [
        ("service.name", Value::from(service_name)),
        ("service.version", Value::from(env!("CARGO_PKG_VERSION"))),
    ];
    json!({
        "resourceSpans": [{
            "resource": { "attributes": attributes(&resource) },
            "scopeSpans": [{
                "scope": { "name": "oidc-broker", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans.iter().map(Span::to_otlp).collect::<Vec<_>>(),
            }],
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_encoded_as_otlp_json() {
        let ctx = SpanContext {
            trace_id: [0xab; 16],
            span_id: [0x01; 8],
            sampled: true,
        };
        let parent = Parent {
            span_id: [0xcd; 8],
            remote: true,
        };
        let span = StartedSpan::new(ctx, Some(parent)).end(Ended {
            name: "GET /auth/me".into(),
            kind: Kind::Server,
            attributes: vec![
                ("http.route", "/auth/me".into()),
                ("http.response.status_code", 503u16.into()),
            ],
            error: true,
        });
        let body = export_request("edge", &[span]);
        let rs = &body["resourceSpans"][0];
        assert_eq!(
            rs["resource"]["attributes"][0],
            json!({"key": "service.name", "value": {"stringValue": "edge"}})
        );
        assert_eq!(rs["scopeSpans"][0]["scope"]["name"], "oidc-broker");
        let s = &rs["scopeSpans"][0]["spans"][0];
        assert_eq!(s["traceId"], "abababababababababababababababab");
        assert_eq!(s["spanId"], "0101010101010101");
        assert_eq!(s["parentSpanId"], "cdcdcdcdcdcdcdcd");
        assert_eq!(s["kind"], 2);
        assert_eq!(s["flags"], 0x301);
        assert_eq!(s["status"]["code"], 2);
        assert_eq!(
            s["attributes"][1],
            json!({"key": "http.response.status_code", "value": {"intValue": "503"}})
        );
        let start: u64 = s["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
        let end: u64 = s["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
        assert!(start > 1_600_000_000_000_000_000 && end >= start);
    }

    #[test]
    fn a_root_span_has_no_parent_and_an_unset_status() {
        let ctx = SpanContext::new_root(|_| false);
        let span = StartedSpan::new(ctx, None).end(Ended {
            name: "POST".into(),
            kind: Kind::Client,
            attributes: Vec::new(),
            error: false,
        });
        let s = &export_request("x", &[span])["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert!(s.get("parentSpanId").is_none());
        assert!(s.get("status").is_none());
        assert_eq!(s["kind"], 3);
        assert_eq!(s["flags"], 0x100);
    }
}
