//! Log lines written to stdout in batches by one thread.
//!
//! Writing each line straight to stdout is one `write(2)` per line on the thread that logged
//! it, and a request logs at least its completion line: the system call was the largest single
//! cost of the request's own layers (README "Performance", profile findings). Here a line is
//! appended to a buffer in memory (a lock and a copy) and a writer thread empties the buffer
//! every [`FLUSH_INTERVAL`], or at once when it holds [`WAKE_BYTES`]; so under load many lines
//! go out in one system call, and an idle gateway writes its few lines within 20 ms.
//!
//! What it costs: a process killed with `kill -9` loses the lines of its last 20 ms or so (the
//! database, not the log, is the record of what happened). A normal exit and a panic write out
//! what is buffered first ([`flush`], and a panic hook installed with the writer). The buffer
//! is bounded: past [`MAX_BYTES`] (the disk or the pipe is slower than the logging) the thread
//! that logs writes the buffer out itself, so memory stays bounded and no line is dropped.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait in the buffer.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(20);
/// The writer thread is woken at once when the buffer holds this much.
pub const WAKE_BYTES: usize = 256 * 1024;
/// Past this the thread that logs writes the buffer out itself.
pub const MAX_BYTES: usize = 8 * 1024 * 1024;

/// Where the batches go: stdout in production.
type Sink = Box<dyn Write + Send>;

struct Shared {
    /// Lines not written yet.
    buffer: Mutex<Vec<u8>>,
    wake: Condvar,
    /// The batch being written and where it goes (held while writing, so batches go out in
    /// order; the buffer's lock is held only for the swap, never across the system call).
    out: Mutex<(Vec<u8>, Sink)>,
}

impl Shared {
    fn lock_buffer(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes out whatever is buffered.
    fn write_out(&self) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let (batch, sink) = &mut *out;
        std::mem::swap(&mut *self.lock_buffer(), batch);
        if batch.is_empty() {
            return;
        }
        // A failed write of a log line has nowhere to be reported; the lines are dropped.
        let _ = sink.write_all(batch);
        let _ = sink.flush();
        batch.clear();
        if batch.capacity() > 4 * WAKE_BYTES {
            batch.shrink_to(WAKE_BYTES);
        }
    }
}

static SHARED: OnceLock<BatchedWriter> = OnceLock::new();

/// Lines batched for one sink, written by a thread of their own.
#[derive(Clone)]
pub struct BatchedWriter(Arc<Shared>);

impl BatchedWriter {
    /// A writer whose batches go to `sink` (its thread runs for the life of the process).
    pub fn new(sink: impl Write + Send + 'static) -> Self {
        let shared = Arc::new(Shared {
            buffer: Mutex::new(Vec::with_capacity(WAKE_BYTES)),
            wake: Condvar::new(),
            out: Mutex::new((Vec::with_capacity(WAKE_BYTES), Box::new(sink))),
        });
        let writer = shared.clone();
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || loop {
                drop(
                    writer
                        .wake
                        .wait_timeout_while(writer.lock_buffer(), FLUSH_INTERVAL, |b| {
                            b.len() < WAKE_BYTES
                        })
                        .unwrap_or_else(|e| e.into_inner()),
                );
                writer.write_out();
            })
            .expect("the log writer thread starts");
        Self(shared)
    }

    /// The process's batched stdout; the first call starts it and installs a panic hook that
    /// writes out the buffered lines before the panic is reported.
    pub fn stdout() -> Self {
        SHARED
            .get_or_init(|| {
                let writer = Self::new(std::io::stdout());
                let previous = std::panic::take_hook();
                std::panic::set_hook(Box::new(move |info| {
                    flush();
                    previous(info);
                }));
                writer
            })
            .clone()
    }

    /// Writes out the buffered lines now.
    pub fn flush(&self) {
        self.0.write_out();
    }
}

/// Writes out the buffered lines now (before the process exits).
pub fn flush() {
    if let Some(writer) = SHARED.get() {
        writer.flush();
    }
}

/// One event's line (tracing-subscriber formats the whole line, then writes it once).
pub struct Line(Arc<Shared>);

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let held = {
            let mut buffer = self.0.lock_buffer();
            buffer.extend_from_slice(bytes);
            buffer.len()
        };
        if held >= MAX_BYTES {
            self.0.write_out();
        } else if held >= WAKE_BYTES {
            self.0.wake.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedWriter {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Recorded(Arc<Mutex<Vec<u8>>>);

    impl Write for Recorded {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Recorded {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn lines_are_written_within_the_interval_in_order() {
        let sink = Recorded::default();
        let writer = BatchedWriter::new(sink.clone());
        writer.make_writer().write_all(b"one\n").unwrap();
        writer.make_writer().write_all(b"two\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sink.text() != "one\ntwo\n" {
            assert!(std::time::Instant::now() < deadline, "{:?}", sink.text());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_flush_writes_everything_and_threads_keep_their_own_order() {
        let sink = Recorded::default();
        let writer = BatchedWriter::new(sink.clone());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    // One write per line, as tracing-subscriber writes a formatted line.
                    for i in 0..2_000 {
                        let line = format!("{t} {i}\n");
                        writer.make_writer().write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        writer.flush();
        let text = sink.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 8_000, "no line lost");
        for t in 0..4 {
            let mine: Vec<usize> = lines
                .iter()
                .filter_map(|l| l.strip_prefix(&format!("{t} ")))
                .map(|i| i.parse().unwrap())
                .collect();
            assert_eq!(mine, (0..2_000).collect::<Vec<_>>(), "thread {t}");
        }
    }
}
