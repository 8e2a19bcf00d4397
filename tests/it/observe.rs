//! What operators see: `/metrics` (behind its token or on its own listener, valid for promtool,
//! bounded labels), the request id (`X-Request-Id` in and out, the error body's
//! `correlation_id`), and the JSON access log — with no token, code or cookie in it.

use crate::helpers::*;

const TOKEN: &str = "metrics-token-metrics-token-metrics-token";

/// `promtool check metrics` (Debian's `prometheus` package) on `text`.
fn promtool(text: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "promtool is not installed ({e}): apt-get install prometheus (tests/run.sh does it)"
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool refused the metrics:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn metrics_need_their_token_pass_promtool_and_name_no_user() {
    let app = spawn(dev_provider().server_extra("").session(
        "idle_timeout = \"30m\"\nabsolute_lifetime = \"7d\"\n[metrics]\ntoken = \"metrics-token-metrics-token-metrics-token\"\n",
    ))
    .await;
    assert_eq!(app.dev_login("alice").await.status(), 303);
    let me = json(app.me().await).await;
    let http = reqwest::Client::new();
    let scrape = |token: Option<&str>| {
        let mut r = http.get(app.url("/metrics"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(scrape(None).await.unwrap().status(), 401);
    assert_eq!(scrape(Some("wrong")).await.unwrap().status(), 401);
    let res = scrape(Some(TOKEN)).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = res.text().await.unwrap();
    for line in [
        "oidc_broker_logins_total{name=\"dev\",outcome=\"succeeded\"}",
        "oidc_broker_sessions_started_total{name=\"dev\",outcome=\"login\"}",
        "oidc_broker_http_requests_total{route=\"/auth/me\",method=\"GET\",status=\"2xx\"}",
        "oidc_broker_http_requests_total{route=\"/auth/callback/{provider}\",method=\"GET\",status=\"3xx\"}",
        "oidc_broker_http_request_duration_seconds_bucket{",
        "oidc_broker_upstream_requests_total{host=\"127.0.0.1\",outcome=\"2xx\"}",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    for private in [
        me["user"]["id"].as_str().unwrap(),
        me["session"]["handle"].as_str().unwrap(),
        "alice",
    ] {
        assert!(!text.contains(private), "{private} in the metrics");
    }
    promtool(&text);
}

#[tokio::test]
async fn metrics_on_their_own_listener_leave_the_main_one() {
    let port = crate::peers::free_port();
    let app = spawn(dev_provider().session(&format!(
        "idle_timeout = \"30m\"\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n"
    )))
    .await;
    assert_eq!(app.get("/metrics").await.status(), 404);
    let mut answered = None;
    for _ in 0..50 {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
            answered = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let res = answered.expect("the metrics listener answers");
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("# TYPE oidc_broker_"));

    let off = spawn(dev_provider()).await;
    assert_eq!(off.get("/metrics").await.status(), 404);
}

#[tokio::test]
async fn the_request_id_is_taken_returned_and_names_the_error() {
    let app = spawn(dev_provider()).await;
    let res = app
        .browser
        .get(app.url("/auth/me"))
        .header("x-request-id", "edge-7f3a.1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "edge-7f3a.1");
    assert_eq!(json(res).await["correlation_id"], "edge-7f3a.1");
    // A hostile id is replaced, not echoed.
    let res = app
        .browser
        .get(app.url("/auth/me"))
        .header("x-request-id", "a b <script>")
        .send()
        .await
        .unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 16);
    assert_eq!(json(res).await["correlation_id"], id.as_str());
    // Every answer has one.
    assert!(
        app.get("/healthz")
            .await
            .headers()
            .contains_key("x-request-id")
    );
}

#[tokio::test]
async fn the_json_access_log_has_one_line_per_request_and_no_secret() {
    let served = serve_binary(
        "[providers.dev]\nkind = \"dev\"\n[log]\nformat = \"json\"\n",
        &[],
    )
    .await;
    let base = served.base.clone();
    let client = browser();
    let res = client
        .get(format!("{base}/auth/login?provider=dev"))
        .send()
        .await
        .unwrap();
    let authorize = location(res.headers());
    let callback = dev_pick_user(&client, &authorize, "alice").await;
    let session = cookie_value(callback.headers(), "broker_session").unwrap();
    let res = client
        .get(format!("{base}/auth/me?probe=1"))
        .header("x-request-id", "probe-42")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let logs = served.logs().await;
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not a JSON line: {l}")))
        .collect();
    let access = lines
        .iter()
        .find(|l| l["request_id"] == "probe-42")
        .unwrap_or_else(|| panic!("no access line for the request:\n{logs}"));
    assert_eq!(access["method"], "GET");
    assert_eq!(access["route"], "/auth/me");
    assert_eq!(access["status"], 200);
    assert_eq!(access["client"], "127.0.0.1");
    assert!(access["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(!logs.contains("probe=1"), "the query string is logged");
    let code = query_param(&location(callback.headers()), "code");
    for secret in [Some(session), query_param(&authorize, "state"), code]
        .into_iter()
        .flatten()
    {
        assert!(
            !logs.contains(&secret),
            "a secret value is in the logs:\n{logs}"
        );
    }
}

/// The access log can be silenced alone (`BROKER_LOG="info,access=off"`) or turned off in the
/// configuration; the broker's other lines still come out.
#[tokio::test]
async fn the_access_log_is_silenced_by_its_filter_or_its_setting() {
    for (config, env) in [
        (
            "[providers.dev]\nkind = \"dev\"\n",
            vec![("BROKER_LOG", "info,access=off")],
        ),
        (
            "[providers.dev]\nkind = \"dev\"\n[log]\naccess = false\n",
            vec![],
        ),
    ] {
        let served = serve_binary(config, &env).await;
        let res = browser()
            .get(format!("{}/auth/me", served.base))
            .header("x-request-id", "silenced-1")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
        let logs = served.logs().await;
        assert!(
            !logs.contains("request_id=silenced-1"),
            "{config} {env:?}:\n{logs}"
        );
        assert!(!logs.trim().is_empty(), "no line at all: {config} {env:?}");
    }
    // And on, the line comes out (written out at the latest at shutdown).
    let served = serve_binary("[providers.dev]\nkind = \"dev\"\n", &[]).await;
    browser()
        .get(format!("{}/auth/me", served.base))
        .header("x-request-id", "heard-1")
        .send()
        .await
        .unwrap();
    // A navigation gets the error page, still counted under its route.
    let page = browser()
        .get(format!("{}/auth/me", served.base))
        .header("sec-fetch-mode", "navigate")
        .header("x-request-id", "heard-2")
        .send()
        .await
        .unwrap();
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let logs = served.logs().await;
    let page_line = logs
        .lines()
        .find(|l| l.contains("request_id=heard-2"))
        .unwrap_or_else(|| panic!("no access line:\n{logs}"));
    assert!(
        page_line.contains("route=\"/auth/me\" status=401"),
        "{page_line}"
    );
    let line = logs
        .lines()
        .find(|l| l.contains("request_id=heard-1"))
        .unwrap_or_else(|| panic!("no access line:\n{logs}"));
    assert!(
        line.contains(" INFO request method=GET route=\"/auth/me\" status=401 duration_ms="),
        "{line}"
    );
}
