//! The id of the request being served: taken from a well-formed `X-Request-Id` header or made up,
//! returned in `X-Request-Id`, written in the access log, and given as `correlation_id` in error
//! bodies — so one id finds a request in the logs of the broker, its proxy and its upstreams.

use std::future::Future;

use tokio::task::futures::TaskLocalFuture;

tokio::task_local! {
    static REQUEST_ID: String;
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

/// `fut`, run as the request `id`.
pub fn scope<F: Future>(id: String, fut: F) -> TaskLocalFuture<String, F> {
    REQUEST_ID.scope(id, fut)
}

/// The id of the request this task serves, if it serves one.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
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
    async fn the_id_is_known_inside_its_scope_only() {
        assert_eq!(current(), None);
        let seen = scope("r-1".into(), async { current() }).await;
        assert_eq!(seen.as_deref(), Some("r-1"));
    }
}
