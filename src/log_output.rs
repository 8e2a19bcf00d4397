//! Where log lines go: standard output, with the access log buffered.
//!
//! An access-log line is written for every request; written on its own, each would be a system
//! call on the request's path. Access-log lines therefore collect in a buffer that is written out
//! when it is full, at least every [`FLUSH_EVERY`], before any other line (so the order of lines is
//! kept), and when the broker stops. Every other line — warnings, errors, lifecycle events — is
//! written at once.

use std::io::{self, BufWriter, Stdout, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

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
