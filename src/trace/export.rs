//! Sends recorded spans to the collector: OTLP/HTTP, `POST {endpoint}/v1/traces`, JSON, in batches
//! of up to [`BATCH`] spans at least every [`FLUSH_EVERY`]. A batch the collector does not take is
//! dropped (and counted), never retried: a slow or absent collector must cost the broker nothing
//! but the spans. The collector is the operator's own (often on loopback or a private network), so
//! this client has no address guard — but no redirects and no environment proxy either.

use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::TraceError;
use super::span::{Span, export_request};
use crate::config::TraceConfig;

/// Spans per request at most.
const BATCH: usize = 512;
/// A span waits at most about this long in the batch.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// One export at most this long.
const TIMEOUT: Duration = Duration::from_secs(10);
/// At shutdown, the last batch gets this long.
const LAST_BATCH: Duration = Duration::from_secs(5);
/// One warning per this long at most while the collector fails.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The sending side, until [`Exporter::spawn`] starts it.
pub struct Exporter {
    spans: mpsc::Receiver<Span>,
    client: reqwest::Client,
    url: url::Url,
    headers: HeaderMap,
    service_name: String,
    last_warning: Option<Instant>,
}

impl Exporter {
    pub(super) fn new(
        config: &TraceConfig,
        spans: mpsc::Receiver<Span>,
    ) -> Result<Self, TraceError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT.min(Duration::from_secs(5)))
            .user_agent(concat!("oidc-broker/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TraceError(e.to_string()))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            // Checked by the configuration; the value is never part of an error.
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| TraceError(format!("[trace.headers] {name} is not a header name")))?;
            let mut value = HeaderValue::from_str(value.expose())
                .map_err(|_| TraceError(format!("[trace.headers] {name} is not a header value")))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(Exporter {
            spans,
            client,
            url: config.url.clone(),
            headers,
            service_name: config.service_name.clone(),
            last_warning: None,
        })
    }

    /// Sends spans until [`ExportTask::stop`], then what is left.
    pub fn spawn(self) -> ExportTask {
        let (stop, stopped) = oneshot::channel();
        ExportTask {
            stop,
            task: tokio::spawn(self.run(stopped)),
        }
    }

    async fn run(mut self, mut stopped: oneshot::Receiver<()>) {
        let mut batch = Vec::with_capacity(BATCH);
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Below BATCH here: a full batch is sent at once.
            let room = BATCH - batch.len();
            tokio::select! {
                n = self.spans.recv_many(&mut batch, room) => {
                    if n == 0 {
                        // Every tracer is gone.
                        break;
                    }
                    if batch.len() >= BATCH {
                        self.send(&mut batch).await;
                    }
                }
                _ = tick.tick() => {
                    if !batch.is_empty() {
                        self.send(&mut batch).await;
                    }
                }
                _ = &mut stopped => break,
            }
        }
        while let Ok(span) = self.spans.try_recv() {
            batch.push(span);
            if batch.len() >= BATCH {
                self.send(&mut batch).await;
            }
        }
        if !batch.is_empty() {
            self.send(&mut batch).await;
        }
    }

    /// Posts `batch` and empties it, whatever the outcome.
    async fn send(&mut self, batch: &mut Vec<Span>) {
        let body = export_request(&self.service_name, batch).to_string();
        let count = batch.len();
        batch.clear();
        let sent = self
            .client
            .post(self.url.as_str())
            .headers(self.headers.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let failure = match sent {
            Ok(res) if res.status().is_success() => return,
            Ok(res) => format!("the collector answered {}", res.status()),
            Err(e) if e.is_timeout() => "timed out".to_string(),
            Err(e) if e.is_connect() => "could not connect".to_string(),
            // Without the URL: the error names the host below, and that is enough.
            Err(e) => e.without_url().to_string(),
        };
        crate::metrics::trace_spans_dropped("export_failed", count as u64);
        if self
            .last_warning
            .is_none_or(|at| at.elapsed() >= WARN_EVERY)
        {
            self.last_warning = Some(Instant::now());
            tracing::warn!(
                collector = self.url.host_str().unwrap_or_default(),
                reason = %failure,
                spans = count,
                "sending spans to the trace collector failed; they are dropped (this warning repeats at most once a minute)"
            );
        }
    }
}

/// The running exporter.
pub struct ExportTask {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl ExportTask {
    /// Sends what is queued and stops (giving up after a few seconds: shutdown must not hang on
    /// an absent collector).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(LAST_BATCH, self.task).await;
    }
}
