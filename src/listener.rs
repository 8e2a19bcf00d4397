//! The HTTP listener, with the bounds a server facing the internet needs and `axum::serve` leaves
//! out: a connection must deliver a request's headers within `header_read_timeout` of its first
//! byte, a connection with nothing in flight and nothing moving is closed after
//! `keep_alive_timeout`, and at most `max_connections` are served at once (the rest wait in the
//! kernel's accept queue). Without them, a few hundred half-sent requests hold the broker open
//! indefinitely (slowloris).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use http::Request;
use hyper::server::conn::http1::Builder;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

use crate::config::ListenerConfig;

/// Serves `router` on `listener` until `shutdown` completes, then lets every open connection
/// finish its requests.
pub async fn serve(
    router: Router,
    listener: TcpListener,
    limits: ListenerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let permits = Arc::new(Semaphore::new(slots as usize));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut builder = Builder::new();
    // hyper's own header timer runs from the moment a connection waits for a request, idle time
    // included: a backstop behind the finer rules below.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout + limits.keep_alive_timeout);
    let builder = Arc::new(builder);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            builder: builder.clone(),
            router: router.clone(),
            limits,
            stop: stop_rx.clone(),
        };
        tokio::spawn(async move {
            conn.run(stream, peer).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Each connection holds a permit until it ends.
    let _ = permits.acquire_many(slots).await;
    Ok(())
}

struct Connection {
    builder: Arc<Builder>,
    router: Router,
    limits: ListenerConfig,
    stop: watch::Receiver<bool>,
}

impl Connection {
    async fn run(mut self, stream: TcpStream, peer: SocketAddr) {
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Tracked {
            inner: stream,
            activity: activity.clone(),
        });
        let router = self.router.clone();
        let on_request = activity.clone();
        let service = tower::service_fn(move |mut req: Request<hyper::body::Incoming>| {
            let in_flight = InFlight::start(on_request.clone());
            // The peer address is where a request comes from (or the proxy that forwarded it).
            req.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move {
                let res = router.oneshot(req).await?;
                Ok::<_, std::convert::Infallible>(res.map(|body| {
                    Body::new(TrackedBody {
                        body,
                        _in_flight: in_flight,
                    })
                }))
            }
        });
        let conn = self
            .builder
            .serve_connection(io, TowerToHyperService::new(service))
            .with_upgrades();
        let mut conn = std::pin::pin!(conn);
        let mut closing = false;
        loop {
            let check_at = activity.next_check(&self.limits);
            tokio::select! {
                _ = conn.as_mut() => break,
                () = tokio::time::sleep_until(check_at.into()), if !closing => {
                    match activity.verdict(&self.limits, Instant::now()) {
                        Verdict::Fine => {}
                        Verdict::Idle => {
                            conn.as_mut().graceful_shutdown();
                            closing = true;
                        }
                        // Dropping the connection closes the socket: a client that cannot send
                        // its headers in time gets no answer.
                        Verdict::SlowHeaders => break,
                    }
                }
                changed = self.stop.changed(), if !closing => {
                    if changed.is_err() || *self.stop.borrow() {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
        }
    }
}

/// What a connection is doing, in milliseconds since it was accepted.
struct Activity {
    started: Instant,
    last_io: AtomicU64,
    /// When bytes of a request head started to arrive (+1; 0: none is arriving).
    head_since: AtomicU64,
    in_flight: AtomicUsize,
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Fine,
    Idle,
    SlowHeaders,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            last_io: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, ms: u64) -> Instant {
        self.started + Duration::from_millis(ms)
    }

    fn read(&self) {
        let now = self.now_ms();
        self.last_io.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let _ =
                self.head_since
                    .compare_exchange(0, now + 1, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    fn wrote(&self) {
        self.last_io.store(self.now_ms(), Ordering::Relaxed);
    }

    fn next_check(&self, limits: &ListenerConfig) -> Instant {
        let head = self.head_since.load(Ordering::Acquire);
        if self.in_flight.load(Ordering::Acquire) > 0 {
            Instant::now() + limits.keep_alive_timeout.min(limits.header_read_timeout)
        } else if head > 0 {
            self.at(head - 1) + limits.header_read_timeout
        } else {
            // A request may start at any moment: look again within a header timeout, so a head
            // that starts now is cut at most twice that late.
            let idle_at = self.at(self.last_io.load(Ordering::Relaxed)) + limits.keep_alive_timeout;
            idle_at.min(Instant::now() + limits.header_read_timeout)
        }
    }

    fn verdict(&self, limits: &ListenerConfig, now: Instant) -> Verdict {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Verdict::Fine;
        }
        let elapsed = |ms: u64| now.saturating_duration_since(self.at(ms));
        let head = self.head_since.load(Ordering::Acquire);
        if head > 0 {
            if elapsed(head - 1) >= limits.header_read_timeout {
                return Verdict::SlowHeaders;
            }
        } else if elapsed(self.last_io.load(Ordering::Relaxed)) >= limits.keep_alive_timeout {
            return Verdict::Idle;
        }
        Verdict::Fine
    }
}

/// A request being served, from its complete head until its response body is gone.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.head_since.store(0, Ordering::Release);
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.wrote();
    }
}

struct TrackedBody {
    body: Body,
    _in_flight: InFlight,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The socket, noting when bytes move.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.read();
        }
        res
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write(cx, data);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote();
        }
        res
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ListenerConfig {
        ListenerConfig {
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(60),
            max_connections: 1,
        }
    }

    #[test]
    fn a_head_that_takes_too_long_is_cut_and_a_request_in_flight_is_not() {
        let a = Activity::new();
        let t0 = a.started;
        a.read();
        assert_eq!(
            a.verdict(&limits(), t0 + Duration::from_secs(9)),
            Verdict::Fine
        );
        assert_eq!(
            a.verdict(&limits(), t0 + Duration::from_secs(11)),
            Verdict::SlowHeaders
        );
        let req = InFlight::start(Arc::new(Activity::new()));
        let b = &req.0;
        b.read();
        assert_eq!(
            b.verdict(&limits(), b.started + Duration::from_secs(3600)),
            Verdict::Fine
        );
    }

    #[test]
    fn a_connection_goes_idle_only_after_its_response_is_gone() {
        let a = Arc::new(Activity::new());
        let t0 = a.started;
        assert_eq!(
            a.verdict(&limits(), t0 + Duration::from_secs(61)),
            Verdict::Idle
        );
        a.read();
        let req = InFlight::start(a.clone());
        assert_eq!(
            a.verdict(&limits(), t0 + Duration::from_secs(61)),
            Verdict::Fine
        );
        drop(req);
        assert_eq!(
            a.verdict(&limits(), t0 + Duration::from_secs(59)),
            Verdict::Fine
        );
        assert_eq!(
            a.verdict(&limits(), Instant::now() + Duration::from_secs(61)),
            Verdict::Idle
        );
    }
}
