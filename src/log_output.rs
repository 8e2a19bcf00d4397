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

use std::fmt::Write as _;
use std::sync::OnceLock;

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

/// The output and format access lines are written with, once the process's logger is set up.
static INSTALLED: OnceLock<(LogOutput, bool)> = OnceLock::new();

/// Access lines from now on go to `output`, as JSON when `json`, else as text (without colours:
/// [`access`] is not used for a terminal).
pub fn install(output: LogOutput, json: bool) {
    let _ = INSTALLED.set((output, json));
}

/// One request, as the access log records it.
pub struct AccessLine<'a> {
    pub method: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub duration_ms: f64,
    pub client: &'a str,
    pub request_id: &'a str,
}

thread_local! {
    static LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Writes the access line of a request; `false` when no output is installed (the caller then
/// logs it through `tracing`). The `access` filter (`BROKER_LOG="info,access=off"`) is obeyed.
pub fn access(line: &AccessLine<'_>) -> bool {
    let Some((output, json)) = INSTALLED.get() else {
        return false;
    };
    if !tracing::enabled!(target: "access", tracing::Level::INFO) {
        return true;
    }
    let now = time::OffsetDateTime::now_utc();
    LINE.with(|buf| {
        let Ok(mut buf) = buf.try_borrow_mut() else {
            return;
        };
        buf.clear();
        if *json {
            format_json(&mut buf, now, line);
        } else {
            format_text(&mut buf, now, line);
        }
        let _ = output.lock().write_all(buf.as_bytes());
    });
    true
}

/// RFC 3339 in UTC with microseconds, as `tracing-subscriber` writes its timestamps.
fn timestamp(out: &mut String, t: time::OffsetDateTime) {
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    );
}

fn format_text(out: &mut String, t: time::OffsetDateTime, l: &AccessLine<'_>) {
    timestamp(out, t);
    let _ = writeln!(
        out,
        "  INFO request method={} route={:?} status={} duration_ms={:?} client={} request_id={}",
        l.method, l.route, l.status, l.duration_ms, l.client, l.request_id
    );
}

fn format_json(out: &mut String, t: time::OffsetDateTime, l: &AccessLine<'_>) {
    out.push_str("{\"timestamp\":\"");
    timestamp(out, t);
    out.push_str("\",\"level\":\"INFO\",\"message\":\"request\",\"method\":");
    json_string(out, l.method);
    out.push_str(",\"route\":");
    json_string(out, l.route);
    let _ = write!(
        out,
        ",\"status\":{},\"duration_ms\":{:?},\"client\":",
        l.status, l.duration_ms
    );
    json_string(out, l.client);
    out.push_str(",\"request_id\":");
    json_string(out, l.request_id);
    out.push_str("}\n");
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

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
                duration_ms = l.duration_ms,
                client = %l.client,
                request_id = %l.request_id,
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
            status in 100u16..600,
            micros in 0u64..10_000_000,
            client in proptest::prop_oneof!["127.0.0.1", "2001:db8::1", ""],
            request_id in "[A-Za-z0-9._:-]{1,16}",
        ) {
            let line = AccessLine {
                method: &method,
                route: &route,
                status,
                duration_ms: micros as f64 / 1000.0,
                client: &client,
                request_id: &request_id,
            };
            let now = time::OffsetDateTime::now_utc();
            for json in [false, true] {
                let mut ours = String::new();
                if json {
                    format_json(&mut ours, now, &line);
                    let parsed: serde_json::Value = serde_json::from_str(&ours).unwrap();
                    proptest::prop_assert_eq!(parsed["route"].as_str(), Some(route.as_str()));
                } else {
                    format_text(&mut ours, now, &line);
                }
                let theirs = through_tracing(json, &line);
                proptest::prop_assert_eq!(untimed(&ours), untimed(&theirs));
            }
        }
    }

    #[test]
    fn the_timestamp_is_rfc_3339_with_microseconds() {
        let mut out = String::new();
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(1_764_823_704_910_312_000).unwrap();
        timestamp(&mut out, t);
        assert_eq!(out, "2025-12-04T04:48:24.910312Z");
    }
}
