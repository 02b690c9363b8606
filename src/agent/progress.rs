//! Progress bars for transfers (issue 5 §4: "progress bars on a TTY for
//! transfers over 1 MB; quiet otherwise"): the report upload, a hook's result
//! on its way from apportd's descriptor, and a spooled result.
//!
//! One implementation for all of them: a [`TransferBar`] drawn on stderr,
//! fed through an [`upload::Progress`](super::upload::Progress) callback. The
//! decision whether to draw is [`ProgressDisplay`]: only when stderr is a
//! terminal, never with `--json` (scripts read the output), never in `watch`
//! (a service's stderr is the journal), and only above
//! [`PROGRESS_THRESHOLD_BYTES`].

use std::io::{self, IsTerminal as _, Read};
use std::sync::Arc;

use super::upload::Progress;

/// Transfers larger than this get a bar (on a terminal).
pub const PROGRESS_THRESHOLD_BYTES: u64 = 1024 * 1024;

/// Whether progress may be drawn at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressDisplay {
    /// stderr is a terminal and the output is for a person.
    Terminal,
    /// Nothing is drawn (`--json`, no terminal, `watch`, library callers).
    #[default]
    Quiet,
}

impl ProgressDisplay {
    /// The decision for a one-shot command, from what it knows.
    pub fn choose(stderr_is_terminal: bool, json: bool) -> Self {
        if stderr_is_terminal && !json {
            Self::Terminal
        } else {
            Self::Quiet
        }
    }

    /// [`ProgressDisplay::choose`] with this process's stderr.
    pub fn for_command(json: bool) -> Self {
        Self::choose(io::stderr().is_terminal(), json)
    }

    /// Whether a transfer of `total` bytes gets a bar.
    pub fn shows_bar(self, total: u64) -> bool {
        self == Self::Terminal && total > PROGRESS_THRESHOLD_BYTES
    }

    /// A bar for a transfer of `total` bytes labelled `what`, when
    /// [`ProgressDisplay::shows_bar`].
    pub fn bar(self, total: u64, what: &str) -> Option<TransferBar> {
        self.shows_bar(total).then(|| TransferBar::new(total, what))
    }
}

/// A progress bar on stderr; cleared when dropped (so it never stays
/// between the lines a command prints afterwards).
#[derive(Debug)]
pub struct TransferBar {
    bar: indicatif::ProgressBar,
}

impl TransferBar {
    fn new(total: u64, what: &str) -> Self {
        let bar = indicatif::ProgressBar::new(total);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_owned());
        Self { bar }
    }

    /// The callback that moves the bar to the number of bytes done.
    pub fn progress(&self) -> Progress {
        let handle = self.bar.clone();
        Arc::new(move |done| handle.set_position(done))
    }
}

impl Drop for TransferBar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// A reader that reports the running total of bytes read from `inner`
/// (for a result: bytes taken from apportd's descriptor, ahead of the
/// socket by the compressor's and the body's few chunks).
pub struct CountingReader<R> {
    inner: R,
    done: u64,
    progress: Option<Progress>,
}

impl<R> CountingReader<R> {
    /// Wraps `inner`; `progress` (if any) sees every new total.
    pub fn new(inner: R, progress: Option<Progress>) -> Self {
        Self {
            inner,
            done: 0,
            progress,
        }
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.done = self
                .done
                .saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
            if let Some(progress) = &self.progress {
                progress(self.done);
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    const MB: u64 = 1024 * 1024;

    #[test]
    fn a_bar_only_on_a_terminal_without_json_and_over_1_mb() {
        let terminal = ProgressDisplay::choose(true, false);
        assert_eq!(terminal, ProgressDisplay::Terminal);
        assert!(terminal.shows_bar(MB + 1));
        assert!(terminal.shows_bar(50_000_000));
        assert!(!terminal.shows_bar(MB), "1 MB itself is not over 1 MB");
        assert!(!terminal.shows_bar(0));
        for (tty, json) in [(true, true), (false, false), (false, true)] {
            let display = ProgressDisplay::choose(tty, json);
            assert_eq!(display, ProgressDisplay::Quiet, "tty {tty} json {json}");
            assert!(!display.shows_bar(50_000_000), "tty {tty} json {json}");
            assert!(display.bar(50_000_000, "x").is_none());
        }
        // `watch` and library callers use the default.
        assert!(!ProgressDisplay::default().shows_bar(50_000_000));
    }

    #[test]
    fn the_counting_reader_reports_every_byte_read() {
        let seen = Arc::new(AtomicU64::new(0));
        let last = seen.clone();
        let progress: Progress = Arc::new(move |n| last.store(n, Ordering::Relaxed));
        let data = vec![7u8; 200_000];
        let mut reader = CountingReader::new(&data[..], Some(progress));
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
        assert_eq!(seen.load(Ordering::Relaxed), 200_000);
    }
}
