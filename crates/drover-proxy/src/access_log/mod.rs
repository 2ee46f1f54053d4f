//! The access log: one line per request a listener answered, in nginx/Apache `combined` format or
//! as JSON, to a file or stdout.
//!
//! Where it sits: [`crate::handler::handle`] captures what a line needs from the request head
//! (only on a listener with `access_log`), lets the request run, and wraps the response body in a
//! [`ClientBody`] that writes the line when hyper drops it, i.e. at the response's completion:
//! after the last body byte was handed to hyper, or when the client went away or the member's body
//! broke off (JSON `"completed": false`). Requests hyper answers itself (400 for a malformed head,
//! 431, 414) are logged by `server.rs` when their connection ends.
//!
//! Concurrency model, built so that a worker never blocks and never makes a syscall for the log:
//! - one [`LogFile`] per path (listeners naming the same path share it), shared by every worker
//!   through the routing snapshot;
//! - each worker formats its lines into its own buffer of that log (a `Mutex<Vec<u8>>` per
//!   worker, uncontended: only the writer thread takes it too, to swap it once in a while); a
//!   line costs no allocation (the buffer is reused) and one clock reading; the time text is
//!   cached per worker and re-formatted once a second ([`format`]);
//! - a buffer past [`BATCH`] bytes goes whole over a bounded channel to the log's writer thread,
//!   which owns the file (`O_APPEND`) and writes each batch with one `write`; when the channel is
//!   full (the disk cannot keep up), the batch is dropped and its lines counted in
//!   [`dropped_lines`] (`drover_access_log_dropped_lines_total`): the log never slows requests;
//! - the writer thread also sweeps every worker's buffer every [`SWEEP`], so a quiet log is
//!   written within a fraction of a second, and on [`LogFile::reopen`] (SIGUSR1) and
//!   [`LogFile::flush`] (shutdown).
//!
//! Reload: `Routing::rebuild` gives a listener whose log path is unchanged the same `LogFile`
//! (same writer, same buffers: nothing lost or reordered); a new path opens a new one; a log no
//! snapshot names any more is dropped with the last snapshot holding it, and its writer thread
//! writes what was buffered and exits.
//!
//! Config keys read: `listener.access_log.path`, `listener.access_log.format`. Metric:
//! `drover_access_log_dropped_lines_total`.

pub mod format;

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_config::{LogFormat, LogPath};

pub use format::{ClientBody, Entry, Trace};

/// A worker's buffer is handed to the writer once it holds this much.
pub const BATCH: usize = 32 * 1024;
/// Batches queued for the writer thread before lines are dropped (with [`BATCH`]: 2 MiB).
const QUEUE: usize = 64;
/// How often the writer thread writes what the workers' buffers hold.
pub const SWEEP: Duration = Duration::from_millis(200);

/// Lines dropped because a log's writer could not keep up, over every log since start.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// `drover_access_log_dropped_lines_total`.
pub fn dropped_lines() -> u64 {
    DROPPED.load(Relaxed)
}

/// One worker's lines not yet handed to the writer.
#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    lines: u64,
}

enum Msg {
    Batch(Vec<u8>, u64),
    Reopen,
    Flush(SyncSender<()>),
}

/// One open access log (a file or stdout) and its writer thread.
pub struct LogFile {
    path: LogPath,
    slots: Arc<[Mutex<Pending>]>,
    tx: SyncSender<Msg>,
}

impl std::fmt::Debug for LogFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogFile").field("path", &self.path).finish()
    }
}

/// Where a writer thread writes.
enum Sink {
    Stdout,
    File(std::fs::File),
}

impl Sink {
    fn open(path: &LogPath) -> std::io::Result<Sink> {
        Ok(match path {
            LogPath::Stdout => Sink::Stdout,
            LogPath::File(p) => Sink::File(
                std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(p)?,
            ),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(bytes)?;
                out.flush()
            }
            Sink::File(f) => f.write_all(bytes),
        }
    }
}

impl LogFile {
    /// Opens `path` (created if missing, appended to) and starts its writer thread, with one
    /// buffer per worker.
    pub fn open(path: &LogPath, workers: usize) -> std::io::Result<Arc<LogFile>> {
        let sink = Sink::open(path)?;
        let slots: Arc<[Mutex<Pending>]> = (0..workers.max(1)).map(|_| Mutex::default()).collect();
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let writer = Writer {
            path: path.clone(),
            sink,
            slots: Arc::clone(&slots),
            spare: Vec::with_capacity(BATCH * 2),
            warn: Default::default(),
        };
        std::thread::Builder::new()
            .name("drover-access-log".into())
            .spawn(move || writer.run(rx))?;
        Ok(Arc::new(LogFile {
            path: path.clone(),
            slots,
            tx,
        }))
    }

    pub fn path(&self) -> &LogPath {
        &self.path
    }

    /// Appends one line, formatted by `line` into worker `worker`'s buffer. Never blocks on I/O.
    #[inline]
    pub fn append(&self, worker: usize, line: impl FnOnce(&mut Vec<u8>)) {
        let slot = &self.slots[worker % self.slots.len()];
        let mut pending = slot.lock().unwrap_or_else(|e| e.into_inner());
        line(&mut pending.buf);
        pending.lines += 1;
        if pending.buf.len() < BATCH {
            return;
        }
        let full = std::mem::replace(&mut pending.buf, Vec::with_capacity(BATCH + 1024));
        let lines = std::mem::take(&mut pending.lines);
        drop(pending);
        match self.tx.try_send(Msg::Batch(full, lines)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                DROPPED.fetch_add(lines, Relaxed);
            }
        }
    }

    /// Closes and reopens the file (log rotation: SIGUSR1). Lines buffered so far go to the file
    /// as it is after the reopen.
    pub fn reopen(&self) {
        let _ = self.tx.send(Msg::Reopen);
    }

    /// Writes every line buffered so far; returns once written (or after `within`).
    pub fn flush(&self, within: Duration) {
        let (ack, done) = mpsc::sync_channel(1);
        if self.tx.send(Msg::Flush(ack)).is_ok() {
            let _ = done.recv_timeout(within);
        }
    }

    /// The line format helper: formats `entry` as `format` and appends it.
    pub fn write(&self, worker: usize, format: LogFormat, entry: &format::Line<'_>) {
        self.append(worker, |buf| format::line(buf, format, entry));
    }
}

/// The writer thread's side of one log.
struct Writer {
    path: LogPath,
    sink: Sink,
    slots: Arc<[Mutex<Pending>]>,
    /// Swapped with a worker's buffer on a sweep, so sweeping allocates nothing.
    spare: Vec<u8>,
    /// A full disk would otherwise warn five times a second.
    warn: crate::loglimit::LogLimit,
}

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) {
        loop {
            match rx.recv_timeout(SWEEP) {
                Ok(Msg::Batch(bytes, lines)) => self.write(&bytes, lines),
                Ok(Msg::Reopen) => {
                    match Sink::open(&self.path) {
                        Ok(sink) => {
                            self.sink = sink;
                            tracing::info!(path = %self.path, "access log reopened");
                        }
                        Err(e) => {
                            tracing::error!(path = %self.path, error = %e, "cannot reopen the access log; still writing to the old file")
                        }
                    }
                    self.sweep();
                }
                Ok(Msg::Flush(ack)) => {
                    self.sweep();
                    let _ = ack.send(());
                }
                Err(RecvTimeoutError::Timeout) => self.sweep(),
                // The last snapshot naming this log is gone: write what is left and stop.
                Err(RecvTimeoutError::Disconnected) => {
                    self.sweep();
                    return;
                }
            }
        }
    }

    /// Writes what every worker's buffer holds.
    fn sweep(&mut self) {
        for i in 0..self.slots.len() {
            let lines = {
                let mut pending = self.slots[i].lock().unwrap_or_else(|e| e.into_inner());
                if pending.buf.is_empty() {
                    continue;
                }
                std::mem::swap(&mut pending.buf, &mut self.spare);
                std::mem::take(&mut pending.lines)
            };
            let bytes = std::mem::take(&mut self.spare);
            self.write(&bytes, lines);
            self.spare = bytes;
            self.spare.clear();
        }
    }

    fn write(&mut self, bytes: &[u8], lines: u64) {
        if let Err(e) = self.sink.write(bytes) {
            DROPPED.fetch_add(lines, Relaxed);
            if let Some(held) = self.warn.allow() {
                tracing::warn!(path = %self.path, error = %e, lines, held_back = held, "cannot write the access log; lines dropped");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines that cannot be written are counted as dropped, and the worker never waits: on
    /// /dev/full every write fails (ENOSPC).
    #[test]
    fn failed_writes_count_as_dropped() {
        let full = LogPath::File("/dev/full".into());
        let Ok(log) = LogFile::open(&full, 2) else {
            eprintln!("skipped: /dev/full cannot be opened here");
            return;
        };
        let before = dropped_lines();
        for i in 0..10 {
            log.append(i % 2, |buf| buf.extend_from_slice(b"a line\n"));
        }
        log.flush(Duration::from_secs(10));
        assert_eq!(dropped_lines() - before, 10);
    }

    /// Lines written by several workers all reach the file, each whole, by the flush.
    #[test]
    fn every_worker_line_is_written() {
        let path = std::env::temp_dir().join(format!("drover-alog-unit-{}", std::process::id()));
        let log = LogFile::open(&LogPath::File(path.clone()), 3).unwrap();
        // Past one batch, so the channel path runs as well as the sweep.
        let n = 3 * BATCH / 10;
        for i in 0..n {
            log.append(i % 3, |buf| {
                buf.extend_from_slice(format!("line {i:09}\n").as_bytes())
            });
        }
        log.flush(Duration::from_secs(10));
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let mut got: Vec<&str> = text.lines().collect();
        got.sort_unstable();
        assert_eq!(got.len(), n);
        assert!(
            got.iter()
                .enumerate()
                .all(|(i, l)| *l == format!("line {i:09}"))
        );
    }
}
