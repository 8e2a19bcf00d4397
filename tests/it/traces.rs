//! `[trace]`: spans sent over OTLP/HTTP (JSON) to a collector of the test's own — a server span
//! for each request, a client span for each provider call inside it, the caller's `traceparent`
//! continued, and nothing a secret could hide in.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::Value;

use crate::helpers::*;

const API_KEY: &str = "collector-api-key-7c1e";
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// One export as the collector received it.
#[derive(Debug, Clone)]
struct Export {
    content_type: String,
    api_key: String,
    body: String,
}

/// A small OTLP/HTTP receiver on loopback: `POST /v1/traces`, answered as a collector does (or,
/// failing, with 503).
#[derive(Clone, Default)]
struct Collector {
    exports: Arc<Mutex<Vec<Export>>>,
    failing: bool,
}

impl Collector {
    async fn start() -> (String, Collector) {
        Self::serve(Collector::default()).await
    }

    async fn start_failing() -> (String, Collector) {
        Self::serve(Collector {
            failing: true,
            ..Collector::default()
        })
        .await
    }

    async fn serve(collector: Collector) -> (String, Collector) {
        let app = axum::Router::new()
            .route("/v1/traces", post(receive))
            .with_state(collector.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (base, collector)
    }

    fn exports(&self) -> Vec<Export> {
        self.exports.lock().unwrap().clone()
    }

    /// Every span received so far, each with its resource's `service.name` and its scope's name.
    fn spans(&self) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for export in self.exports() {
            let body: Value = serde_json::from_str(&export.body)
                .unwrap_or_else(|e| panic!("the export is not JSON ({e}): {}", export.body));
            for rs in body["resourceSpans"].as_array().expect("resourceSpans") {
                let service = attr(&rs["resource"], "service.name")
                    .expect("a service.name")
                    .to_string();
                for ss in rs["scopeSpans"].as_array().expect("scopeSpans") {
                    let scope = ss["scope"]["name"].as_str().expect("a scope name");
                    for span in ss["spans"].as_array().expect("spans") {
                        out.push((service.clone(), scope.to_string(), span.clone()));
                    }
                }
            }
        }
        out
    }

    async fn wait_for_exports(&self, what: &str, n: usize) {
        for _ in 0..100 {
            if self.exports().len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the collector never received {what}");
    }

    /// Waits (up to 10 s: the broker sends a batch every second) until `done` holds of the spans.
    async fn wait_for(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        for _ in 0..100 {
            let spans: Vec<Value> = self.spans().into_iter().map(|(_, _, s)| s).collect();
            if done(&spans) {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the collector never received {what}; it has:\n{:#?}",
            self.spans()
        );
    }
}

async fn receive(
    State(collector): State<Collector>,
    headers: HeaderMap,
    body: String,
) -> impl axum::response::IntoResponse {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    collector.exports.lock().unwrap().push(Export {
        content_type: header("content-type"),
        api_key: header("x-api-key"),
        body,
    });
    let status = if collector.failing {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    } else {
        axum::http::StatusCode::OK
    };
    (status, [("content-type", "application/json")], "{}")
}

/// An attribute's value as text (`intValue` is a decimal string in OTLP JSON).
fn attr<'a>(holder: &'a Value, key: &str) -> Option<&'a str> {
    holder["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .and_then(|a| {
            a["value"]["stringValue"]
                .as_str()
                .or_else(|| a["value"]["intValue"].as_str())
        })
}

fn named<'a>(spans: &'a [Value], name: &str) -> Vec<&'a Value> {
    spans.iter().filter(|s| s["name"] == name).collect()
}

fn is_hex(v: &Value, len: usize) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == len
            && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            && s.bytes().any(|b| b != b'0')
    })
}

/// What the OTLP JSON encoding asks of every span.
fn assert_well_formed(span: &Value) {
    assert!(is_hex(&span["traceId"], 32), "traceId of {span}");
    assert!(is_hex(&span["spanId"], 16), "spanId of {span}");
    if let Some(parent) = span.get("parentSpanId") {
        assert!(is_hex(parent, 16), "parentSpanId of {span}");
    }
    assert!(
        matches!(span["kind"].as_u64(), Some(2 | 3)),
        "kind of {span}"
    );
    assert!(!span["name"].as_str().unwrap_or_default().is_empty());
    let time = |key: &str| -> u64 {
        span[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} is not a decimal string in {span}"))
            .parse()
            .unwrap()
    };
    assert!(time("endTimeUnixNano") >= time("startTimeUnixNano"));
    assert!(time("startTimeUnixNano") > 1_600_000_000_000_000_000);
    for a in span["attributes"].as_array().expect("attributes") {
        assert!(a["key"].is_string(), "{a}");
        let v = &a["value"];
        assert!(
            v["stringValue"].is_string() || v["intValue"].is_string(),
            "attribute value {a} in {span}"
        );
    }
}

fn trace_toml(endpoint: &str, extra: &str) -> String {
    format!(
        "idle_timeout = \"30m\"\nabsolute_lifetime = \"7d\"\n[trace]\nendpoint = \"{endpoint}\"\n{extra}"
    )
}

#[tokio::test]
async fn spans_of_requests_and_provider_calls_reach_an_otlp_collector_without_secrets() {
    let (endpoint, collector) = Collector::start().await;
    let app = spawn(dev_provider().session(&trace_toml(
        &endpoint,
        &format!(
            "service_name = \"broker-under-test\"\n[trace.headers]\nx-api-key = \"{API_KEY}\"\n"
        ),
    )))
    .await;

    // A sign-in through the dev provider, keeping every secret the flow carries.
    let authorize = app.start_login("provider=dev").await;
    let state = query_param(&authorize, "state").unwrap();
    let page = app
        .browser
        .get(&authorize)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut form = Form::parse(&page, &authorize);
    form.set("user", "alice");
    let res = app
        .browser
        .post(&form.action)
        .form(&form.fields)
        .send()
        .await
        .unwrap();
    let callback_url = location(res.headers());
    let code = query_param(&callback_url, "code").unwrap();
    let callback = app.browser.get(&callback_url).send().await.unwrap();
    assert_eq!(callback.status(), 303);
    let session = cookie_value(callback.headers(), "broker_session").unwrap();

    // A caller that is itself traced, with a query string.
    let res = app
        .browser
        .get(app.url("/auth/me?probe=query-secret-value"))
        .header("sec-fetch-mode", "cors")
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let me = json(res).await;
    // A malformed traceparent (upper-case hex) starts a trace of its own.
    let res = app
        .browser
        .get(app.url("/healthz"))
        .header(
            "traceparent",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A path no route matches (it could name anything) is a span named after the method alone.
    assert_eq!(
        app.get("/no/such/path/private-path-segment").await.status(),
        404
    );

    let spans = collector
        .wait_for(
            "the callback, its token call, /auth/me, /healthz and the unmatched path",
            |spans| {
                let callback = named(spans, "GET /auth/callback/{provider}");
                let children = callback.first().map_or(0, |cb| {
                    spans
                        .iter()
                        .filter(|s| s["parentSpanId"] == cb["spanId"] && s["kind"] == 3)
                        .count()
                });
                children > 0
                    && !named(spans, "GET /auth/me").is_empty()
                    && !named(spans, "GET /healthz").is_empty()
                    && !named(spans, "GET").is_empty()
            },
        )
        .await;

    for (service, scope, span) in collector.spans() {
        assert_eq!(service, "broker-under-test");
        assert_eq!(scope, "oidc-broker");
        assert_well_formed(&span);
    }
    for export in collector.exports() {
        assert_eq!(export.content_type, "application/json");
        assert_eq!(export.api_key, API_KEY);
    }

    // The callback: a server span with its route pattern and status.
    let cb = named(&spans, "GET /auth/callback/{provider}")[0];
    assert_eq!(cb["kind"], 2);
    assert_eq!(attr(cb, "http.request.method"), Some("GET"));
    assert_eq!(attr(cb, "http.route"), Some("/auth/callback/{provider}"));
    assert_eq!(attr(cb, "http.response.status_code"), Some("303"));
    assert!(cb.get("status").is_none(), "a 303 is no error: {cb}");

    // Its code exchange: a client span inside it, in the same trace.
    let token = spans
        .iter()
        .find(|s| {
            s["parentSpanId"] == cb["spanId"] && attr(s, "url.path") == Some("/dev/dev/token")
        })
        .unwrap_or_else(|| panic!("no token call under the callback span:\n{spans:#?}"));
    assert_eq!(token["kind"], 3);
    assert_eq!(token["traceId"], cb["traceId"]);
    assert_eq!(token["name"], "POST");
    assert_eq!(attr(token, "http.request.method"), Some("POST"));
    assert_eq!(attr(token, "server.address"), Some("127.0.0.1"));
    assert_eq!(attr(token, "http.response.status_code"), Some("200"));
    // The provider (here the dev provider, served by the same broker) received the call's
    // `traceparent`: its own server span is a child of the client span.
    let answered = named(&spans, "POST /dev/{id}/token");
    assert!(
        answered
            .iter()
            .any(|s| s["parentSpanId"] == token["spanId"] && s["traceId"] == cb["traceId"]),
        "the token endpoint's span is not under the call's span:\n{answered:#?}"
    );

    // The traced caller's trace is continued, as a remote parent.
    let me_span = named(&spans, "GET /auth/me")[0];
    assert_eq!(me_span["traceId"], CALLER_TRACE);
    assert_eq!(me_span["parentSpanId"], CALLER_SPAN);
    assert_eq!(me_span["flags"].as_u64().unwrap() & 0x301, 0x301);
    assert_eq!(attr(me_span, "http.response.status_code"), Some("200"));
    // The malformed one is not.
    let health = named(&spans, "GET /healthz")[0];
    assert!(health.get("parentSpanId").is_none(), "{health}");
    assert_ne!(
        health["traceId"].as_str().unwrap().to_ascii_uppercase(),
        CALLER_TRACE.to_ascii_uppercase()
    );
    let unmatched = named(&spans, "GET")
        .into_iter()
        .find(|s| s["kind"] == 2)
        .expect("a server span for the unmatched path");
    assert_eq!(attr(unmatched, "http.response.status_code"), Some("404"));
    assert_eq!(attr(unmatched, "http.route"), None);

    // Nothing secret or personal anywhere in what was sent.
    let sent: String = collector
        .exports()
        .iter()
        .map(|e| e.body.as_str())
        .collect();
    for secret in [
        session.as_str(),
        &state,
        &code,
        "query-secret-value",
        "probe=",
        "private-path-segment",
        "alice",
        API_KEY,
        me["user"]["id"].as_str().unwrap(),
        me["session"]["handle"].as_str().unwrap(),
    ] {
        assert!(
            !sent.contains(secret),
            "`{secret}` was sent to the collector"
        );
    }
}

#[tokio::test]
async fn with_a_zero_sample_ratio_only_traces_a_caller_samples_are_sent() {
    let (endpoint, collector) = Collector::start().await;
    let app = spawn(dev_provider().session(&trace_toml(&endpoint, "sample_ratio = 0\n"))).await;
    assert_eq!(app.dev_login("alice").await.status(), 303);
    let unsampled = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for (trace, flags) in [(unsampled, "00"), (CALLER_TRACE, "01")] {
        let res = app
            .browser
            .get(app.url("/auth/me"))
            .header("traceparent", format!("00-{trace}-{CALLER_SPAN}-{flags}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    collector
        .wait_for("the sampled caller's span", |spans| {
            spans.iter().any(|s| s["traceId"] == CALLER_TRACE)
        })
        .await;
    // Another batch or two would have gone by.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for (_, _, span) in collector.spans() {
        assert_eq!(
            span["traceId"], CALLER_TRACE,
            "an unsampled span was sent: {span}"
        );
    }
}

/// Signs in through the dev provider of a broker binary and calls `/auth/me` as a traced caller.
async fn binary_traffic(base: &str) {
    let client = browser();
    let res = client
        .get(format!("{base}/auth/login?provider=dev"))
        .send()
        .await
        .unwrap();
    let authorize = location(res.headers());
    assert_eq!(
        dev_pick_user(&client, &authorize, "alice").await.status(),
        303
    );
    let res = client
        .get(format!("{base}/auth/me"))
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn without_a_trace_section_nothing_is_sent_even_with_opentelemetry_variables_set() {
    let (endpoint, collector) = Collector::start().await;
    // The SDKs' variables configure OpenTelemetry SDKs, not the broker: [trace] alone turns it on.
    let served = serve_binary(
        "[providers.dev]\nkind = \"dev\"\n",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_TRACES_EXPORTER", "otlp"),
        ],
    )
    .await;
    binary_traffic(&served.base).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    served.logs().await;
    assert!(collector.exports().is_empty(), "{:?}", collector.exports());
}

#[tokio::test]
async fn a_stopping_broker_sends_the_spans_it_still_holds() {
    let (endpoint, collector) = Collector::start().await;
    let served = serve_binary(
        &format!("[providers.dev]\nkind = \"dev\"\n[trace]\nendpoint = \"{endpoint}\"\n"),
        &[],
    )
    .await;
    binary_traffic(&served.base).await;
    // Stopped at once, before its next batch is due: the last spans go out on the way down.
    served.logs().await;
    let spans = collector.spans();
    assert!(
        spans
            .iter()
            .any(|(_, _, s)| s["traceId"] == CALLER_TRACE && s["name"] == "GET /auth/me"),
        "the last request's span was not sent before exit: {spans:#?}"
    );
}

#[tokio::test]
async fn a_failing_collector_costs_only_the_spans_counted_and_one_warning_without_its_key() {
    let (endpoint, collector) = Collector::start_failing().await;
    let served = serve_binary(
        &format!(
            "[providers.dev]\nkind = \"dev\"\n[trace]\nendpoint = \"{endpoint}\"\n[trace.headers]\nx-api-key = \"{API_KEY}\"\n[metrics]\ntoken = \"metrics-token-metrics-token-metrics-token\"\n"
        ),
        &[],
    )
    .await;
    binary_traffic(&served.base).await;
    collector.wait_for_exports("a refused export", 1).await;
    // The broker still answers as before, and keeps trying with its next spans.
    let client = browser();
    assert_eq!(
        client
            .get(format!("{}/healthz", served.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    collector
        .wait_for_exports("a second refused export", 2)
        .await;
    let metrics = client
        .get(format!("{}/metrics", served.base))
        .bearer_auth("metrics-token-metrics-token-metrics-token")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("oidc_broker_trace_spans_dropped_total{reason=\"export_failed\"}"),
        "{metrics}"
    );
    let logs = served.logs().await;
    let warnings = logs
        .matches("sending spans to the trace collector failed")
        .count();
    assert_eq!(warnings, 1, "one warning a minute at most:\n{logs}");
    assert!(logs.contains("503"), "{logs}");
    assert!(
        !logs.contains(API_KEY),
        "the collector's key is in the logs:\n{logs}"
    );
}
