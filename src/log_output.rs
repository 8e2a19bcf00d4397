//! Where log lines go: standard output, with the access log buffered and formatted here.
//!
//! An access-log line is written for every request; written on its own, each would be a system
//! call on the request's path. Access-log lines therefore collect in a buffer that is written out
//! when it is full, at least every [`FLUSH_EVERY`], before any other line (so the order of lines is
//! kept), and when the broker stops. Every other line — warnings, errors, lifecycle events — is
//! written at once.
//!
//! Once [`install`]ed, the access line is also formatted here ([`access`]), exactly as the
//! `tracing` formatter would write that event (text or JSON), for a fraction of its cost: the
//! formatter's general machinery was most of what the access log cost the session check.

use std::io::{self, BufWriter, Stdout, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::Metadata;
use tracing_subscriber::fmt::MakeWriter;

/// The longest an access-log line waits in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);
const BUFFER: usize = 64 * 1024;
/// The target of the access log's lines (`routes/observe.rs`).
const ACCESS: &str = "access";

/// Standard output, shared by every thread that logs.
#[derive(Clone)]
pub struct LogOutput {
    out: Arc<Mutex<BufWriter<Stdout>>>,
}

impl LogOutput {
    /// The output, and a thread that writes out buffered lines at least every [`FLUSH_EVERY`].
    pub fn start() -> LogOutput {
        let output = LogOutput {
            out: Arc::new(Mutex::new(BufWriter::with_capacity(BUFFER, io::stdout()))),
        };
        let flusher = output.clone();
        // If the thread cannot start, lines are still written when the buffer fills, before any
        // other line and at the end.
        let _ = std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(FLUSH_EVERY);
                    flusher.flush();
                }
            });
        output
    }

    fn lock(&self) -> MutexGuard<'_, BufWriter<Stdout>> {
        // A thread that panicked while writing leaves at worst a partial line.
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes out what is buffered (also at the end: call it before the process exits).
    pub fn flush(&self) {
        let _ = self.lock().flush();
    }
}

/// One event's writer: its line goes into the buffer, and out at once unless it is an access-log
/// line.
pub struct EventWriter<'a> {
    output: &'a LogOutput,
    at_once: bool,
}

impl Write for EventWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.lock().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut out = self.output.lock();
        out.write_all(buf)?;
        if self.at_once {
            out.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.output.lock().flush()
    }
}

impl Drop for EventWriter<'_> {
    fn drop(&mut self) {
        if self.at_once {
            self.output.flush();
        }
    }
}

impl<'a> MakeWriter<'a> for LogOutput {
    type Writer = EventWriter<'a>;

    fn make_writer(&'a self) -> EventWriter<'a> {
        EventWriter {
            output: self,
            at_once: true,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> EventWriter<'a> {
        EventWriter {
            output: self,
            at_once: meta.target() != ACCESS,
        }
    }
}

/// Where and how access lines are written, once the process's logger is set up.
struct Installed {
    output: LogOutput,
    json: bool,
    /// Whether the process's filter lets the access log through (it is fixed at start).
    on: bool,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// Access lines from now on go to `output`, as JSON when `json`, else as text (without colours:
/// [`access`] is not used for a terminal). Called after the process's logger is set up: its
/// filter decides, once, whether access lines are written (`BROKER_LOG="info,access=off"`).
pub fn install(output: LogOutput, json: bool) {
    let on = tracing::enabled!(target: "access", tracing::Level::INFO);
    let _ = INSTALLED.set(Installed { output, json, on });
}

/// One request, as the access log records it.
pub struct AccessLine<'a> {
    pub method: &'a str,
    pub route: &'a str,
    pub status: u16,
    /// How long the answer took, in whole microseconds (written in milliseconds).
    pub micros: u64,
    /// The client's address, if known.
    pub client: Option<IpAddr>,
    /// As the header carries it: safe ASCII characters (`request_id::from_header`).
    pub request_id: &'a [u8],
}

/// A thread's line buffer, and the timestamp's text up to its seconds for the second it last
/// wrote (most lines of a busy broker share their second with the line before).
struct Scratch {
    line: Vec<u8>,
    second: u64,
    stamp: [u8; 20],
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const {
        RefCell::new(Scratch { line: Vec::new(), second: u64::MAX, stamp: [0; 20] })
    };
}

/// Writes the access line of a request; `false` when no output is installed (the caller then
/// logs it through `tracing`).
pub fn access(line: &AccessLine<'_>) -> bool {
    let Some(installed) = INSTALLED.get() else {
        return false;
    };
    if !installed.on {
        return true;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    SCRATCH.with(|scratch| {
        let Ok(mut scratch) = scratch.try_borrow_mut() else {
            return;
        };
        let Scratch {
            line: buf,
            second,
            stamp,
        } = &mut *scratch;
        if *second != now.as_secs() {
            *second = now.as_secs();
            *stamp = stamp_to_seconds(now.as_secs());
        }
        buf.clear();
        if installed.json {
            format_json(buf, stamp, now.subsec_micros(), line);
        } else {
            format_text(buf, stamp, now.subsec_micros(), line);
        }
        let _ = installed.output.lock().write_all(buf);
    });
    true
}

/// `2025-12-04T04:48:24.`: an RFC 3339 UTC timestamp up to its fraction, as `tracing-subscriber`
/// writes its timestamps (which add six digits of microseconds and `Z`).
fn stamp_to_seconds(unix: u64) -> [u8; 20] {
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

    /// `n` (below 1000) in decimal.
    fn small(&mut self, n: usize) {
        let [a, b, c, len] = LEFT[n % 1000];
        self.put([a, b, c], len);
    }
}

/// From the status to the request id's key: the numbers and the address, written in place when
/// they have their usual size (a status of three digits, under a second, no address or IPv4).
fn numbers<const JSON: bool>(out: &mut Vec<u8>, l: &AccessLine<'_>) {
    let usual = (100..1000).contains(&l.status)
        && l.micros < 1_000_000
        && !matches!(l.client, Some(IpAddr::V6(_)));
    if !usual {
        out.extend_from_slice(if JSON { b",\"status\":" } else { b" status=" });
        push_status(out, l.status);
        out.extend_from_slice(if JSON {
            b",\"duration_ms\":"
        } else {
            b" duration_ms="
        });
        push_millis(out, l.micros, JSON);
        // An address needs no escaping.
        out.extend_from_slice(if JSON { b",\"client\":\"" } else { b" client=" });
        push_ip(out, l.client);
        out.extend_from_slice(if JSON {
            b"\",\"request_id\":"
        } else {
            b" request_id="
        });
        return;
    }
    let mut p = Part {
        buf: [0; 96],
        len: 0,
    };
    if JSON {
        p.put(*b",\"status\":", 10);
    } else {
        p.put(*b" status=", 8);
    }
    p.small(usize::from(l.status));
    if JSON {
        p.put(*b",\"duration_ms\":", 15);
    } else {
        p.put(*b" duration_ms=", 13);
    }
    p.small((l.micros / 1000) as usize);
    let frac = (l.micros % 1000) as usize;
    let [a, b, c, _] = THREE[frac];
    // Without the zeros that end the fraction (`.5`, `.05`, `.0` for none).
    let len = if frac.is_multiple_of(100) {
        2
    } else if frac.is_multiple_of(10) {
        3
    } else {
        4
    };
    p.put([b'.', a, b, c], len);
    if JSON {
        p.put(*b",\"client\":\"", 11);
    } else {
        p.put(*b" client=", 8);
    }
    if let Some(IpAddr::V4(v4)) = l.client {
        let [w, x, y, z] = v4.octets();
        p.small(usize::from(w));
        for octet in [x, y, z] {
            p.put([b'.'], 1);
            p.small(usize::from(octet));
        }
    }
    if JSON {
        p.put(*b"\",\"request_id\":", 15);
    } else {
        p.put(*b" request_id=", 12);
    }
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
    let (whole, frac) = (micros / 1000, (micros % 1000) as usize);
    if whole < 1000 {
        out.extend_from_slice(small(whole as u16));
    } else {
        push_digits(out, whole);
    }
    // Three digits without the zeros that end them (`.5`, `.05`, `.0` for none).
    let [a, b, c, _] = THREE[frac];
    let len = if frac.is_multiple_of(100) {
        2
    } else if frac.is_multiple_of(10) {
        3
    } else {
        4
    };
    out.extend_from_slice(&[b'.', a, b, c][..len]);
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

fn format_text(out: &mut Vec<u8>, stamp: &[u8; 20], micros: u32, l: &AccessLine<'_>) {
    timestamp(out, stamp, micros);
    out.extend_from_slice(b"  INFO request method=");
    out.extend_from_slice(l.method.as_bytes());
    out.extend_from_slice(b" route=");
    push_debug(out, l.route);
    numbers::<false>(out, l);
    out.extend_from_slice(l.request_id);
    out.push(b'\n');
}

fn format_json(out: &mut Vec<u8>, stamp: &[u8; 20], micros: u32, l: &AccessLine<'_>) {
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
