//! The id of the request being served: taken from a well-formed `X-Request-Id` header or made up,
//! returned in `X-Request-Id`, written in the access log, and given as `correlation_id` in error
//! bodies — so one id finds a request in the logs of the broker, its proxy and its upstreams.
//! With `[trace]`, the same task-local carries the request's span, the parent of the spans of the
//! provider calls made while serving it.

use std::future::Future;

use tokio::task::futures::TaskLocalFuture;

use crate::trace::SpanContext;

/// What is known, anywhere in a request's task, of the request being served.
pub struct Serving {
    id: String,
    span: Option<SpanContext>,
}

tokio::task_local! {
    static SERVING: Serving;
}

/// The longest id taken from a caller.
const MAX_LEN: usize = 64;

/// The caller's id if it is short and made of safe characters (it goes into logs and headers),
/// else a new one.
pub fn from_header(value: Option<&str>) -> String {
    value
        .filter(|v| {
            !v.is_empty()
                && v.len() <= MAX_LEN
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        })
        .map(str::to_string)
        .unwrap_or_else(|| crate::crypto::random_hex(8))
}

/// `fut`, run as the request `id`, inside `span` when it is traced.
pub fn scope<F: Future>(
    id: String,
    span: Option<SpanContext>,
    fut: F,
) -> TaskLocalFuture<Serving, F> {
    SERVING.scope(Serving { id, span }, fut)
}

/// The id of the request this task serves, if it serves one.
pub fn current() -> Option<String> {
    SERVING.try_with(|s| s.id.clone()).ok()
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
        assert_eq!(from_header(Some("abc-123_x.y:z")), "abc-123_x.y:z");
        for hostile in ["", "a b", "a\nb", "<script>", &"a".repeat(65), "ä"] {
            let id = from_header(Some(hostile));
            assert_ne!(id, hostile);
            assert_eq!(id.len(), 16, "{hostile:?}");
        }
        assert_eq!(from_header(None).len(), 16);
    }

    #[tokio::test]
    async fn the_id_and_span_are_known_inside_their_scope_only() {
        assert_eq!(current(), None);
        assert_eq!(current_span(), None);
        let span = SpanContext::new_root(|_| true);
        let seen = scope("r-1".into(), Some(span), async {
            (current(), current_span())
        })
        .await;
        assert_eq!(seen, (Some("r-1".to_string()), Some(span)));
        let seen = scope("r-2".into(), None, async { current_span() }).await;
        assert_eq!(seen, None);
    }
}
