//! OpenTelemetry traces, optional (`[trace]`): a server span for every request and a client span
//! for every provider call, sent to a collector over OTLP/HTTP with the JSON encoding.
//!
//! Our own small exporter rather than the `opentelemetry` crates: the broker makes two kinds of
//! span, and this is all it takes. [`Tracer`] starts and ends spans and queues the recorded ones
//! (never waiting: a full queue drops the span and counts it); [`export::Exporter`] sends them in
//! batches from a task of its own. With tracing off there is no `Tracer`, and the request path pays
//! one branch.
//!
//! What a span holds is chosen to be safe to send to a third party: methods, route patterns,
//! statuses, provider hosts and paths — never a query string, a header, a cookie, a token or a
//! user.

use http::HeaderMap;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::config::TraceConfig;

pub mod context;
mod export;
mod span;

pub use context::{SpanContext, parse_traceparent};
pub use export::{ExportTask, Exporter};
pub use span::{Ended, Kind, StartedSpan, Value};

use span::{Parent, Span};

/// Spans waiting for the exporter; beyond this many, new ones are dropped (and counted).
const QUEUE: usize = 2048;

/// The W3C Trace Context header.
pub const TRACEPARENT: &str = "traceparent";

#[derive(Debug, thiserror::Error)]
#[error("cannot build the trace exporter: {0}")]
pub struct TraceError(String);

/// Starts, ends and queues spans. Cheap to clone: every clone feeds the same exporter.
#[derive(Clone, Debug)]
pub struct Tracer {
    queue: mpsc::Sender<Span>,
    sample_ratio: f64,
}

impl Tracer {
    /// A tracer and the exporter that sends what it records (spawn it with [`Exporter::spawn`]).
    pub fn new(config: &TraceConfig) -> Result<(Tracer, Exporter), TraceError> {
        let (queue, spans) = mpsc::channel(QUEUE);
        let exporter = Exporter::new(config, spans)?;
        Ok((
            Tracer {
                queue,
                sample_ratio: config.sample_ratio,
            },
            exporter,
        ))
    }

    /// The span of a request: in the caller's trace when it sent one well-formed `traceparent`
    /// (recorded as the caller decided), else the first span of a new trace (recorded at
    /// `sample_ratio`).
    pub fn start_server(&self, headers: &HeaderMap) -> StartedSpan {
        let mut values = headers.get_all(TRACEPARENT).iter();
        let caller = match (values.next(), values.next()) {
            (Some(one), None) => parse_traceparent(one.as_bytes()),
            // None, or several: §3.2 allows one header only.
            _ => None,
        };
        match caller {
            Some(parent) => StartedSpan::new(
                parent.child(),
                Some(Parent {
                    span_id: parent.span_id,
                    remote: true,
                }),
            ),
            None => StartedSpan::new(SpanContext::new_root(|id| self.samples(id)), None),
        }
    }

    /// The span of a call the broker makes: inside `parent` (the request being served), or the
    /// first span of a new trace when there is none (background work).
    pub fn start_client(&self, parent: Option<SpanContext>) -> StartedSpan {
        match parent {
            Some(parent) => StartedSpan::new(
                parent.child(),
                Some(Parent {
                    span_id: parent.span_id,
                    remote: false,
                }),
            ),
            None => StartedSpan::new(SpanContext::new_root(|id| self.samples(id)), None),
        }
    }

    /// Ends `span` and queues it if its trace is recorded; `ended` is only called then, so an
    /// unrecorded span costs no name or attributes.
    pub fn end(&self, span: StartedSpan, ended: impl FnOnce() -> Ended) {
        if !span.context().sampled {
            return;
        }
        match self.queue.try_send(span.end(ended())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => crate::metrics::trace_spans_dropped("queue_full", 1),
            Err(TrySendError::Closed(_)) => crate::metrics::trace_spans_dropped("stopped", 1),
        }
    }

    /// Whether a new trace is recorded: decided on the trace id's low 64 bits (random), as
    /// OpenTelemetry's `TraceIdRatioBased` sampler does, so every instance decides alike.
    fn samples(&self, trace_id: &[u8; 16]) -> bool {
        if self.sample_ratio >= 1.0 {
            return true;
        }
        let mut low = [0u8; 8];
        low.copy_from_slice(&trace_id[8..]);
        // `as` saturates: a ratio just under 1 gives a bound just under 2^64.
        let bound = (self.sample_ratio * 18_446_744_073_709_551_616.0) as u64;
        u64::from_be_bytes(low) < bound
    }
}

/// `GET` and the like as the semantic conventions record `http.request.method`: one of the
/// methods of RFC 9110 and RFC 5789, or `_OTHER` (an unbounded value is no attribute).
pub fn method_name(method: &http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "CONNECT" => "CONNECT",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "PATCH" => "PATCH",
        _ => "_OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracer(ratio: f64) -> (Tracer, mpsc::Receiver<Span>) {
        let (queue, rx) = mpsc::channel(4);
        (
            Tracer {
                queue,
                sample_ratio: ratio,
            },
            rx,
        )
    }

    fn ended() -> Ended {
        Ended {
            name: "GET".into(),
            kind: Kind::Server,
            attributes: Vec::new(),
            error: false,
        }
    }

    #[test]
    fn a_caller_trace_is_continued_only_from_one_well_formed_header() {
        let (t, _rx) = tracer(1.0);
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, good.parse().unwrap());
        let span = t.start_server(&headers);
        assert_eq!(
            hex::encode(span.context().trace_id),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            span.parent.unwrap().span_id,
            [0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert!(span.parent.unwrap().remote);
        // The caller said "not sampled", and a ratio of 1 does not overrule it.
        assert!(!span.context().sampled);
        headers.append(TRACEPARENT, good.parse().unwrap());
        let span = t.start_server(&headers);
        assert_ne!(
            hex::encode(span.context().trace_id),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(span.parent.is_none());
        assert!(span.context().sampled);
    }

    #[test]
    fn the_sample_ratio_decides_new_traces_and_unrecorded_spans_are_not_queued() {
        let (none, mut rx) = tracer(0.0);
        for _ in 0..100 {
            let span = none.start_server(&HeaderMap::new());
            none.end(span, || panic!("an unrecorded span was described"));
        }
        assert!(rx.try_recv().is_err());
        let (half, _rx) = tracer(0.5);
        let recorded = (0..2000)
            .filter(|_| half.start_client(None).context().sampled)
            .count();
        assert!((800..1200).contains(&recorded), "{recorded} of 2000");
        let (all, mut rx) = tracer(1.0);
        let root = all.start_server(&HeaderMap::new());
        let child = all.start_client(Some(root.context()));
        assert_eq!(child.context().trace_id, root.context().trace_id);
        assert_eq!(child.parent.unwrap().span_id, root.context().span_id);
        assert!(!child.parent.unwrap().remote);
        all.end(child, ended);
        assert!(rx.try_recv().is_ok());
    }

    #[test]
    fn a_full_queue_drops_spans_instead_of_waiting() {
        let (t, _rx) = tracer(1.0);
        for _ in 0..10 {
            let span = t.start_server(&HeaderMap::new());
            t.end(span, ended);
        }
        assert!(
            crate::metrics::encode()
                .contains("oidc_broker_trace_spans_dropped_total{reason=\"queue_full\"}")
        );
    }

    #[test]
    fn unknown_methods_are_recorded_as_other() {
        assert_eq!(method_name(&http::Method::GET), "GET");
        assert_eq!(method_name(&"PROPFIND".parse().unwrap()), "_OTHER");
    }
}
