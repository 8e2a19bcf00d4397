//! W3C Trace Context (level 1, <https://www.w3.org/TR/trace-context/>): the ids that tie spans
//! into one trace, and the `traceparent` header that carries them from a caller to the broker and
//! from the broker to a provider.

use rand::Rng;

/// Which trace a span belongs to, its own id, and whether the trace is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The `sampled` trace flag: the trace is recorded (here and, by convention, downstream).
    pub sampled: bool,
}

impl SpanContext {
    /// The first span of a new trace.
    pub fn new_root(sampled: impl FnOnce(&[u8; 16]) -> bool) -> SpanContext {
        let trace_id = nonzero_id::<16>();
        SpanContext {
            trace_id,
            span_id: nonzero_id(),
            sampled: sampled(&trace_id),
        }
    }

    /// A new span in the same trace, recorded or not as the trace is.
    pub fn child(&self) -> SpanContext {
        SpanContext {
            span_id: nonzero_id(),
            ..*self
        }
    }

    /// This span as a `traceparent` value (§3.2): version 00, lower-case hex, the sampled flag.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex::encode(self.trace_id),
            hex::encode(self.span_id),
            u8::from(self.sampled)
        )
    }
}

/// A caller's `traceparent` (§3.2.2), read strictly: version `00` and exactly its four fields,
/// lower-case hex only, neither id all zeros. Anything else is `None`, and the request starts a
/// trace of its own (§3.2.2.3: a malformed header is ignored, never repaired).
pub fn parse_traceparent(value: &[u8]) -> Option<SpanContext> {
    const LEN: usize = 2 + 1 + 32 + 1 + 16 + 1 + 2;
    if value.len() != LEN || !value.starts_with(b"00-") || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let trace_id: [u8; 16] = lower_hex(&value[3..35])?;
    let span_id: [u8; 8] = lower_hex(&value[36..52])?;
    let [flags]: [u8; 1] = lower_hex(&value[53..55])?;
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some(SpanContext {
        trace_id,
        span_id,
        sampled: flags & 0x01 == 0x01,
    })
}

/// `N` bytes from exactly `2N` lower-case hex digits (HEXDIGLC: upper case is not allowed).
fn lower_hex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    if digits.len() != 2 * N
        || !digits
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(digits, &mut out).ok()?;
    Some(out)
}

/// A random id that is not all zeros (all zeros means "no id" in both W3C and OTLP).
fn nonzero_id<const N: usize>() -> [u8; N] {
    let mut rng = rand::rng();
    loop {
        let mut id = [0u8; N];
        rng.fill(&mut id[..]);
        if id != [0u8; N] {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_well_formed_traceparent_is_read_and_written_back() {
        let ctx = parse_traceparent(GOOD.as_bytes()).unwrap();
        assert_eq!(
            hex::encode(ctx.trace_id),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(hex::encode(ctx.span_id), "00f067aa0ba902b7");
        assert!(ctx.sampled);
        assert_eq!(ctx.traceparent(), GOOD);
        let unsampled = parse_traceparent(GOOD.replace("-01", "-00").as_bytes()).unwrap();
        assert!(!unsampled.sampled);
        // Flags other than `sampled` are read past, not kept.
        let other_flags = parse_traceparent(GOOD.replace("-01", "-03").as_bytes()).unwrap();
        assert!(other_flags.sampled);
        assert_eq!(other_flags.traceparent(), GOOD);
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        for bad in [
            "",
            "00",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
        ] {
            assert_eq!(parse_traceparent(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn new_ids_are_never_zero_and_children_stay_in_their_trace() {
        let root = SpanContext::new_root(|_| true);
        assert_ne!(root.trace_id, [0; 16]);
        assert_ne!(root.span_id, [0; 8]);
        let child = root.child();
        assert_eq!(child.trace_id, root.trace_id);
        assert_ne!(child.span_id, root.span_id);
        assert!(child.sampled);
        assert!(!SpanContext::new_root(|_| false).child().sampled);
    }

    /// What a well-formed version-00 header looks like, written independently of the parser.
    fn well_formed(s: &[u8]) -> bool {
        let Ok(s) = std::str::from_utf8(s) else {
            return false;
        };
        let parts: Vec<&str> = s.split('-').collect();
        let hex_lc = |p: &str, n: usize| {
            p.len() == n && p.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
        };
        parts.len() == 4
            && parts[0] == "00"
            && hex_lc(parts[1], 32)
            && parts[1].chars().any(|c| c != '0')
            && hex_lc(parts[2], 16)
            && parts[2].chars().any(|c| c != '0')
            && hex_lc(parts[3], 2)
    }

    /// Bytes near the shape of a `traceparent`: valid ones mutated here and there.
    fn near_traceparent() -> impl Strategy<Value = Vec<u8>> {
        (
            "[0-9a-fA-F]{2}",
            "[0-9a-fA-Z]{30,34}",
            "[0-9a-f-]{15,17}",
            "[0-9a-fx]{1,3}",
            "[-_ ]",
        )
            .prop_map(|(v, t, p, f, sep)| format!("{v}{sep}{t}-{p}-{f}").into_bytes())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Whatever a caller sends, reading it never panics, and it is taken only when it is a
        /// well-formed version-00 header, whose ids then come back unchanged.
        #[test]
        fn a_hostile_traceparent_is_taken_only_when_well_formed(
            raw in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..80),
                near_traceparent(),
                "00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}".prop_map(String::into_bytes),
            ]
        ) {
            let parsed = parse_traceparent(&raw);
            prop_assert_eq!(parsed.is_some(), well_formed(&raw), "{:?}", String::from_utf8_lossy(&raw));
            if let Some(ctx) = parsed {
                let text = String::from_utf8_lossy(&raw).to_string();
                prop_assert_eq!(&ctx.traceparent()[..53], &text[..53]);
                prop_assert_eq!(parse_traceparent(ctx.traceparent().as_bytes()), Some(ctx));
            }
        }
    }
}
