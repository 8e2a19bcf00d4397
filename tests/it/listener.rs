//! The listener's bounds: slow headers, idle connections and too many connections cannot hold the
//! broker, and a request that is being served is never cut.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::fake_op::FakeOp;
use crate::helpers::*;

async fn app_with(lines: &str) -> TestApp {
    spawn(dev_provider().server_extra(lines)).await
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the peer closes; returns what came and how long the close took from `since`.
async fn read_until_closed(
    stream: &mut TcpStream,
    since: Instant,
    limit: Duration,
) -> (String, Duration) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((since + limit).into(), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the connection was still open after {limit:?}"),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), since.elapsed())
}

#[tokio::test]
async fn headers_trickled_slowly_are_cut_off() {
    let app = app_with("header_read_timeout = \"1s\"\nkeep_alive_timeout = \"30s\"").await;
    let mut s = connect(&app).await;
    let start = Instant::now();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // One header byte every 200 ms: each byte is "activity", but the head never completes.
    let writer = tokio::spawn(async move {
        for _ in 0..40 {
            if s.write_all(b"X").await.is_err() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        s
    });
    let mut s = writer.await.unwrap();
    let (got, took) = read_until_closed(&mut s, start, Duration::from_secs(10)).await;
    assert!(
        got.is_empty(),
        "no answer to a head that never completed: {got}"
    );
    assert!(took < Duration::from_secs(5), "cut after {took:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = app_with("header_read_timeout = \"5s\"\nkeep_alive_timeout = \"1s\"").await;
    let mut s = connect(&app).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let (got, took) = read_until_closed(&mut s, start, Duration::from_secs(10)).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(
        took >= Duration::from_millis(900),
        "closed too early: {took:?}"
    );
    assert!(took < Duration::from_secs(4), "closed after {took:?}");

    // A connection that never sends a byte is idle too.
    let mut silent = connect(&app).await;
    let (got, took) = read_until_closed(&mut silent, Instant::now(), Duration::from_secs(10)).await;
    assert!(got.is_empty());
    assert!(took < Duration::from_secs(4), "closed after {took:?}");
}

#[tokio::test]
async fn a_slow_request_body_being_served_is_not_cut() {
    let app = app_with("header_read_timeout = \"1s\"\nkeep_alive_timeout = \"1s\"").await;
    let mut s = connect(&app).await;
    let body = br#"{"code":"not-a-real-one"}"#;
    s.write_all(
        format!(
            "POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // The body takes well over both timeouts to arrive.
    for chunk in body.chunks(5) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        s.write_all(chunk).await.unwrap();
    }
    let (got, _) = read_until_closed(&mut s, Instant::now(), Duration::from_secs(10)).await;
    assert!(got.starts_with("HTTP/1.1 400"), "{got}");
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_ends() {
    // A provider of its own: the dev provider's discovery would hold a connection to the broker.
    let fake = FakeOp::start().await;
    let app = spawn(
        Spawn::providers(fake.provider_toml("corp"))
            .server_extra("max_connections = 2\nkeep_alive_timeout = \"30s\""),
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = connect(&app).await;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    let mut third = connect(&app).await;
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let waited = tokio::time::timeout(Duration::from_millis(700), third.read(&mut buf)).await;
    assert!(
        waited.is_err(),
        "a third connection was served while two were open: {waited:?}"
    );
    drop(held.pop());
    let (got, _) = read_until_closed(&mut third, Instant::now(), Duration::from_secs(5)).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
}

#[test]
fn check_config_names_bad_listener_settings() {
    let toml = "[server]\nenvironment = \"development\"\nheader_read_timeout = \"soon\"\nmax_connections = 0\n[providers.dev]\nkind = \"dev\"\n";
    let err = oidc_broker::config::from_toml_str(toml, Vec::new())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("server.header_read_timeout"), "{err}");
    assert!(err.contains("server.max_connections"), "{err}");
}
