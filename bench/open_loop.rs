//! An open-loop load generator for latency: raw hyper HTTP/1 keep-alive connections, each sending
//! on a fixed schedule, so a slow answer does not slow the offered load down and hide itself.

use std::time::Duration;

/// Connections of the open-loop run: enough that each one's send interval stays well above the
/// 1 ms resolution of the generator's timer.
pub const CONNECTIONS: u32 = 128;

/// Latency percentiles of one run, in ms.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
}

/// `GET url` (with `cookie`) at `rate` req/s for `seconds`, over [`CONNECTIONS`] connections, on a
/// client thread of its own. When the server made a request late (the previous answer on its
/// connection came after the request was due), its latency counts from when it was due, so
/// queueing is not hidden; when only the generator's timer woke late, it counts from the actual
/// send.
pub fn run(url: &str, cookie: Option<&str>, rate: f64, seconds: f64) -> Latency {
    let url: hyper::Uri = url.parse().unwrap();
    let cookie = cookie.map(str::to_string);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let addr = format!("{}:{}", url.host().unwrap(), url.port_u16().unwrap());
            let per_conn = rate / f64::from(CONNECTIONS);
            let interval = Duration::from_secs_f64(1.0 / per_conn);
            let count = (per_conn * seconds) as u32;
            let start = tokio::time::Instant::now() + Duration::from_millis(200);
            let mut tasks = Vec::new();
            for c in 0..CONNECTIONS {
                let (addr, url, cookie) = (addr.clone(), url.clone(), cookie.clone());
                tasks.push(tokio::spawn(async move {
                    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
                    stream.set_nodelay(true).unwrap();
                    let (mut sender, conn) =
                        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                            .await
                            .unwrap();
                    tokio::spawn(conn);
                    let offset = interval.mul_f64(f64::from(c) / f64::from(CONNECTIONS));
                    let mut lat = Vec::with_capacity(count as usize);
                    let mut prev_done = start;
                    for i in 0..count {
                        let due = start + offset + interval * i;
                        tokio::time::sleep_until(due).await;
                        let sent = tokio::time::Instant::now();
                        let from = if prev_done > due { due } else { sent };
                        let mut req = hyper::Request::get(url.path()).header("host", addr.as_str());
                        if let Some(c) = &cookie {
                            req = req.header("cookie", c.as_str());
                        }
                        let res = sender
                            .send_request(
                                req.body(http_body_util::Empty::<bytes::Bytes>::new())
                                    .unwrap(),
                            )
                            .await
                            .unwrap();
                        assert!(res.status().is_success(), "{url}: {}", res.status());
                        http_body_util::BodyExt::collect(res.into_body())
                            .await
                            .unwrap();
                        prev_done = tokio::time::Instant::now();
                        lat.push(prev_done - from);
                    }
                    lat
                }));
            }
            let mut lat = Vec::new();
            for t in tasks {
                lat.extend(t.await.unwrap());
            }
            lat.sort();
            let pct = |p: f64| {
                lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1000.0
            };
            Latency {
                p50: pct(0.50),
                p99: pct(0.99),
            }
        })
    })
    .join()
    .unwrap()
}
