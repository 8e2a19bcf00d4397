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

mod line;

use line::{format_json, format_text, stamp_to_seconds};

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
