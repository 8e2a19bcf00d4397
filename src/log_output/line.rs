//! The access-log line, written byte for byte as `tracing-subscriber`'s formatter writes the event
//! `routes/observe.rs` would log (text, or JSON with the event's fields flattened), without its
//! general machinery: digits from a table, the numbers and the address put in place with stores of
//! sizes known when compiling, one copy per part of the line.

use std::io::Write;
use std::net::IpAddr;

use super::AccessLine;

/// `2025-12-04T04:48:24.`: an RFC 3339 UTC timestamp up to its fraction, as `tracing-subscriber`
/// writes its timestamps (which add six digits of microseconds and `Z`).
pub(super) fn stamp_to_seconds(unix: u64) -> [u8; 20] {
    let t = i64::try_from(unix)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let (year, month, day) = t.to_calendar_date();
    let (hour, minute, second) = t.to_hms();
    let mut out = [0; 20];
    // `time` keeps years within ±9999: the text always fills the 20 bytes.
    let _ = write!(
        &mut out[..],
        "{year:04}-{:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.",
        u8::from(month)
    );
    out
}

/// The timestamp: the second's text, six digits of microseconds and `Z`, in one copy.
fn timestamp(out: &mut Vec<u8>, stamp: &[u8; 20], micros: u32) {
    let mut text = [0; 27];
    text[..20].copy_from_slice(stamp);
    let [a, b, c, _] = THREE[(micros / 1000 % 1000) as usize];
    let [d, e, f, _] = THREE[(micros % 1000) as usize];
    text[20..].copy_from_slice(&[a, b, c, d, e, f, b'Z']);
    out.extend_from_slice(&text);
}

/// 0 to 999 in three digits with leading zeros, then how many digits the number has without them.
static THREE: [[u8; 4]; 1000] = {
    let mut table = [[0; 4]; 1000];
    let mut n = 0;
    while n < 1000 {
        table[n] = [
            b'0' + (n / 100) as u8,
            b'0' + (n / 10 % 10) as u8,
            b'0' + (n % 10) as u8,
            if n >= 100 {
                3
            } else if n >= 10 {
                2
            } else {
                1
            },
        ];
        n += 1;
    }
    table
};

/// 0 to 999 in decimal from the first byte on, then how many digits that is.
static LEFT: [[u8; 4]; 1000] = {
    let mut table = [[0; 4]; 1000];
    let mut n = 0;
    while n < 1000 {
        let [a, b, c, len] = THREE[n];
        table[n] = match len {
            3 => [a, b, c, 3],
            2 => [b, c, 0, 2],
            _ => [c, 0, 0, 1],
        };
        n += 1;
    }
    table
};

/// Bytes put at the end of a short buffer with stores of a size known when compiling (a copy of a
/// length known only at run time is a call to `memcpy`: the line's numbers took a dozen).
struct Part {
    buf: [u8; 96],
    len: usize,
}

impl Part {
    /// `bytes` at the end, of which the first `advance` count (the rest is overwritten next).
    fn put<const N: usize>(&mut self, bytes: [u8; N], advance: u8) {
        if let Some(to) = self.buf.get_mut(self.len..self.len + N) {
            to.copy_from_slice(&bytes);
            self.len += usize::from(advance).min(N);
        }
    }

    /// A key of the line (a `memcpy` each: about 60 instructions a line, for the keys written once).
    fn key(&mut self, key: &[u8]) {
        if let Some(to) = self.buf.get_mut(self.len..self.len + key.len()) {
            to.copy_from_slice(key);
            self.len += key.len();
        }
    }

    /// `n` (below 1000) in decimal.
    fn small(&mut self, n: usize) {
        let [a, b, c, len] = LEFT[n % 1000];
        self.put([a, b, c], len);
    }
}

/// The keys before the status, the duration, the address and the request id.
fn keys<const JSON: bool>() -> [&'static [u8]; 4] {
    if JSON {
        [
            b",\"status\":",
            b",\"duration_ms\":",
            // An address needs no escaping.
            b",\"client\":\"",
            b"\",\"request_id\":",
        ]
    } else {
        [b" status=", b" duration_ms=", b" client=", b" request_id="]
    }
}

/// A dot and the milliseconds' three digits of fraction without the zeros that end them (`.5`,
/// `.05`, `.0` for none), and how many of the four bytes that is.
fn fraction(micros: u64) -> ([u8; 4], u8) {
    let frac = (micros % 1000) as usize;
    let [a, b, c, _] = THREE[frac];
    let len = if frac.is_multiple_of(100) {
        2
    } else if frac.is_multiple_of(10) {
        3
    } else {
        4
    };
    ([b'.', a, b, c], len)
}

/// From the status to the request id's key: the numbers and the address, written in place when
/// they have their usual size (a status of three digits, under a second, no address or IPv4).
fn numbers<const JSON: bool>(out: &mut Vec<u8>, l: &AccessLine<'_>) {
    let [status, duration, client, request_id] = keys::<JSON>();
    let usual = (100..1000).contains(&l.status)
        && l.micros < 1_000_000
        && !matches!(l.client, Some(IpAddr::V6(_)));
    if !usual {
        out.extend_from_slice(status);
        push_status(out, l.status);
        out.extend_from_slice(duration);
        push_millis(out, l.micros, JSON);
        out.extend_from_slice(client);
        push_ip(out, l.client);
        out.extend_from_slice(request_id);
        return;
    }
    let mut p = Part {
        buf: [0; 96],
        len: 0,
    };
    p.key(status);
    p.small(usize::from(l.status));
    p.key(duration);
    p.small((l.micros / 1000) as usize);
    let (frac, len) = fraction(l.micros);
    p.put(frac, len);
    p.key(client);
    if let Some(IpAddr::V4(v4)) = l.client {
        let [w, x, y, z] = v4.octets();
        p.small(usize::from(w));
        for octet in [x, y, z] {
            p.put([b'.'], 1);
            p.small(usize::from(octet));
        }
    }
    p.key(request_id);
    out.extend_from_slice(&p.buf[..p.len]);
}

/// `n` (below 1000) in decimal.
fn small(n: u16) -> &'static [u8] {
    let entry = &THREE[usize::from(n) % 1000];
    &entry[3 - usize::from(entry[3])..3]
}

/// `n` in decimal.
fn push_digits(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [b'0'; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// A status code (three digits from 100 to 999; any other `u16` as it is).
fn push_status(out: &mut Vec<u8>, status: u16) {
    if status < 1000 {
        out.extend_from_slice(small(status));
    } else {
        push_digits(out, u64::from(status));
    }
}

/// Microseconds as milliseconds, as `f64`'s `Debug` writes `micros as f64 / 1000.0`: `14.946`,
/// `12.0`, `0.001`. Up to 15 significant digits (31 years) the shortest decimal that reads back as
/// that `f64` is this exact decimal; beyond, the float is written as the formatter writes it (in
/// JSON, as `serde_json` does).
fn push_millis(out: &mut Vec<u8>, micros: u64, json: bool) {
    if micros >= 1_000_000_000_000_000 {
        let ms = micros as f64 / 1000.0;
        if json {
            let _ = serde_json::to_writer(out, &ms);
        } else {
            let _ = write!(out, "{ms:?}");
        }
        return;
    }
    let whole = micros / 1000;
    if whole < 1000 {
        out.extend_from_slice(small(whole as u16));
    } else {
        push_digits(out, whole);
    }
    let (frac, len) = fraction(micros);
    out.extend_from_slice(&frac[..usize::from(len)]);
}

/// An address as `Display` writes it, without its machinery for the common IPv4 case.
fn push_ip(out: &mut Vec<u8>, ip: Option<IpAddr>) {
    match ip {
        None => {}
        Some(IpAddr::V4(v4)) => {
            // Into a buffer of the longest address's size (and a dot), then out in one copy.
            let mut text = [0; 16];
            let mut len = 0;
            for octet in v4.octets() {
                let [a, b, c, n] = THREE[usize::from(octet)];
                let n = usize::from(n);
                let digits = [a, b, c, b'.'];
                if let Some(to) = text.get_mut(len..len + n + 1) {
                    to.copy_from_slice(&digits[3 - n..]);
                }
                len += n + 1;
            }
            out.extend_from_slice(&text[..len - 1]);
        }
        Some(ip) => {
            let _ = write!(out, "{ip}");
        }
    }
}

/// `s` quoted as `str`'s `Debug` writes it.
fn push_debug(out: &mut Vec<u8>, s: &str) {
    if s.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
    {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = write!(out, "{s:?}");
    }
}

pub(super) fn format_text(out: &mut Vec<u8>, stamp: &[u8; 20], micros: u32, l: &AccessLine<'_>) {
    timestamp(out, stamp, micros);
    out.extend_from_slice(b"  INFO request method=");
    out.extend_from_slice(l.method.as_bytes());
    out.extend_from_slice(b" route=");
    push_debug(out, l.route);
    numbers::<false>(out, l);
    out.extend_from_slice(l.request_id);
    out.push(b'\n');
}

pub(super) fn format_json(out: &mut Vec<u8>, stamp: &[u8; 20], micros: u32, l: &AccessLine<'_>) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    timestamp(out, stamp, micros);
    out.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"request\",\"method\":");
    json_string(out, l.method);
    out.extend_from_slice(b",\"route\":");
    json_string(out, l.route);
    numbers::<true>(out, l);
    json_string(out, &String::from_utf8_lossy(l.request_id));
    out.extend_from_slice(b"}\n");
}

/// `s` as a JSON string, escaped as `serde_json` escapes it.
fn json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let mut utf8 = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::*;
    use proptest::strategy::Strategy as _;

    /// What the `tracing` formatter writes for the event `routes/observe.rs` would log.
    fn through_tracing(json: bool, l: &AccessLine<'_>) -> String {
        #[derive(Clone, Default)]
        struct Captured(Arc<Mutex<Vec<u8>>>);
        impl Write for Captured {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let captured = Captured::default();
        let writer = captured.clone();
        let builder = tracing_subscriber::fmt()
            .with_target(false)
            .with_ansi(false)
            .with_writer(move || writer.clone());
        let emit = || {
            tracing::info!(
                target: "access",
                method = %l.method,
                route = l.route,
                status = l.status,
                duration_ms = l.micros as f64 / 1000.0,
                client = %l.client.map(|ip| ip.to_string()).unwrap_or_default(),
                request_id = %String::from_utf8_lossy(l.request_id),
                "request"
            );
        };
        if json {
            tracing::subscriber::with_default(builder.json().flatten_event(true).finish(), emit);
        } else {
            tracing::subscriber::with_default(builder.finish(), emit);
        }
        let out = captured.0.lock().unwrap().clone();
        String::from_utf8(out).unwrap()
    }

    /// The line without its timestamp (the two were written at different times).
    fn untimed(line: &str) -> String {
        match line.find("Z") {
            Some(at) if line.starts_with('{') => line[at + 1..].to_string(),
            Some(at) => line[at + 1..].to_string(),
            None => line.to_string(),
        }
    }

    proptest::proptest! {
        #[test]
        fn lines_are_the_tracing_formatters_own(
            method in "[A-Z]{1,7}",
            route in proptest::prop_oneof!["/auth/me", "unmatched", r"/auth/callback/\{provider\}", "[ -~]{0,12}"],
            status in proptest::prop_oneof![100u16..600, proptest::num::u16::ANY],
            micros in proptest::prop_oneof![0u64..10_000_000, proptest::num::u64::ANY.prop_map(|m| m % (1 << 53))],
            client in proptest::option::of(proptest::prop_oneof![
                proptest::num::u32::ANY.prop_map(|v| IpAddr::from(std::net::Ipv4Addr::from(v))),
                proptest::num::u128::ANY.prop_map(|v| IpAddr::from(std::net::Ipv6Addr::from(v))),
            ]),
            request_id in "[A-Za-z0-9._:-]{1,16}",
        ) {
            let line = AccessLine {
                method: &method,
                route: &route,
                status,
                micros,
                client,
                request_id: request_id.as_bytes(),
            };
            let stamp = stamp_to_seconds(1_764_823_704);
            for json in [false, true] {
                let mut ours = Vec::new();
                if json {
                    format_json(&mut ours, &stamp, 910_312, &line);
                } else {
                    format_text(&mut ours, &stamp, 910_312, &line);
                }
                let ours = String::from_utf8(ours).unwrap();
                if json {
                    let parsed: serde_json::Value = serde_json::from_str(&ours).unwrap();
                    proptest::prop_assert_eq!(parsed["route"].as_str(), Some(route.as_str()));
                }
                let theirs = through_tracing(json, &line);
                proptest::prop_assert_eq!(untimed(&ours), untimed(&theirs));
            }
        }
    }

    #[test]
    fn the_timestamp_is_rfc_3339_with_microseconds() {
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        let stamp = stamp_to_seconds(1_764_823_704);
        let mut out = Vec::new();
        timestamp(&mut out, &stamp, 910_312);
        assert_eq!(text(&out), "2025-12-04T04:48:24.910312Z");
        for (micros, shown) in [(0, "000000Z"), (7, "000007Z"), (999_999, "999999Z")] {
            out.clear();
            timestamp(&mut out, &stamp, micros);
            assert!(text(&out).ends_with(shown), "{}", text(&out));
        }
        // The first second of the epoch and a day far ahead, as the formatter writes them.
        for (unix, shown) in [
            (0, "1970-01-01T00:00:00."),
            (4_102_444_799, "2099-12-31T23:59:59."),
        ] {
            assert_eq!(text(&stamp_to_seconds(unix)), shown);
        }
    }

    /// The timestamp as the formatter writes it now, and ours for the same second: same shape.
    #[test]
    fn the_timestamp_has_the_formatters_shape() {
        let theirs = through_tracing(
            false,
            &AccessLine {
                method: "GET",
                route: "/",
                status: 200,
                micros: 1,
                client: None,
                request_id: b"x",
            },
        );
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let ours = stamp_to_seconds(now.as_secs());
        let mut line = Vec::new();
        timestamp(&mut line, &ours, now.subsec_micros());
        let ours = String::from_utf8(line).unwrap();
        let shape = |s: &str| -> String {
            s.chars()
                .map(|c| if c.is_ascii_digit() { '0' } else { c })
                .collect()
        };
        assert_eq!(shape(&ours), shape(&theirs[..ours.len()]));
    }
}
