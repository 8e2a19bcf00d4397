//! The id of the request being served: taken from a well-formed `X-Request-Id` header or made up,
//! returned in `X-Request-Id`, written in the access log, and given as `correlation_id` in error
//! bodies — so one id finds a request in the logs of the broker, its proxy and its upstreams.
//! With `[trace]`, the same task-local carries the request's span, the parent of the spans of the
//! provider calls made while serving it.

use std::future::Future;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::http::{HeaderName, HeaderValue};
use tokio::task::futures::TaskLocalFuture;

use crate::trace::SpanContext;

/// The header an id is taken from and returned in.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// What is known, anywhere in a request's task, of the request being served.
pub struct Serving {
    /// Kept as the header it is returned in: ASCII by construction.
    id: HeaderValue,
    span: Option<SpanContext>,
}

impl Serving {
    /// The id, as the answer's `X-Request-Id`.
    pub fn into_id(self) -> HeaderValue {
        self.id
    }
}

tokio::task_local! {
    static SERVING: Serving;
}

/// The longest id taken from a caller.
const MAX_LEN: usize = 64;

/// The caller's id if it is short and made of safe characters (it goes into logs and headers),
/// else a new one.
pub fn from_header(value: Option<&HeaderValue>) -> HeaderValue {
    value
        .filter(|v| {
            let v = v.as_bytes();
            !v.is_empty()
                && v.len() <= MAX_LEN
                && v.iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        })
        .cloned()
        .unwrap_or_else(new_id)
}

/// A new id: 16 hex digits, this process's random prefix then a counter. An id names a request in
/// logs; it guards nothing (a caller may choose its own), so it needs to be distinct, not secret —
/// and it is made on every request, so it is cheap: no random bytes per request.
fn new_id() -> HeaderValue {
    static PREFIX: LazyLock<u32> = LazyLock::new(rand::random);
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let id = (u64::from(*PREFIX) << 32) | u64::from(NEXT.fetch_add(1, Ordering::Relaxed));
    let mut text = [0; 16];
    for (i, c) in text.iter_mut().enumerate() {
        *c = HEX[((id >> ((15 - i) * 4)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&text).unwrap_or(HeaderValue::from_static("-"))
}

/// The id as text (an id is made of safe ASCII characters only).
pub fn text(id: &HeaderValue) -> &str {
    id.to_str().unwrap_or("")
}

/// `fut`, run as the request `id`, inside `span` when it is traced. The id is taken back out of the
/// finished future with `TaskLocalFuture::take_value` and [`Serving::into_id`].
pub fn scope<F: Future>(
    id: HeaderValue,
    span: Option<SpanContext>,
    fut: F,
) -> TaskLocalFuture<Serving, F> {
    SERVING.scope(Serving { id, span }, fut)
}

/// The id of the request this task serves, if it serves one.
pub fn current() -> Option<String> {
    SERVING.try_with(|s| text(&s.id).to_string()).ok()
}

/// The span of the request this task serves, if it serves one and it is traced.
pub fn current_span() -> Option<SpanContext> {
    SERVING.try_with(|s| s.span).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_safe_ids_are_taken_from_callers() {
        let header = |v: &str| HeaderValue::from_str(v).unwrap();
        assert_eq!(from_header(Some(&header("abc-123_x.y:z"))), "abc-123_x.y:z");
        let long = "a".repeat(65);
        let mut hostile: Vec<HeaderValue> = ["", "a b", "<script>", "a\tb", long.as_str()]
            .into_iter()
            .map(header)
            .collect();
        // Bytes a header may carry that are not ASCII.
        hostile.push(HeaderValue::from_bytes(&[b'a', 0xe4]).unwrap());
        for hostile in hostile {
            let id = from_header(Some(&hostile));
            assert_ne!(id, hostile);
            assert_eq!(id.len(), 16, "{hostile:?}");
        }
        assert_eq!(from_header(None).len(), 16);
    }

    #[test]
    fn new_ids_share_the_process_prefix_and_never_repeat() {
        let ids: Vec<String> = (0..1000).map(|_| text(&new_id()).to_string()).collect();
        assert!(ids.iter().all(|id| {
            id.len() == 16
                && id
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        }));
        assert!(ids.iter().all(|id| id[..8] == ids[0][..8]));
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
    }

    #[tokio::test]
    async fn the_id_and_span_are_known_inside_their_scope_only() {
        assert_eq!(current(), None);
        assert_eq!(current_span(), None);
        let span = SpanContext::new_root(|_| true);
        let seen = scope(HeaderValue::from_static("r-1"), Some(span), async {
            (current(), current_span())
        })
        .await;
        assert_eq!(seen, (Some("r-1".to_string()), Some(span)));
        let seen = scope(HeaderValue::from_static("r-2"), None, async {
            current_span()
        })
        .await;
        assert_eq!(seen, None);
    }
}
