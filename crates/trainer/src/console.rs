//! What the user sees: the seed's report lines on stdout, the log on stderr,
//! and a progress bar that never garbles either (lines are printed with the
//! bar suspended). When stderr is not a terminal there is no bar: plain
//! progress lines go to the log instead.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bar being drawn, if any: writers suspend it while they print.
static ACTIVE_BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn with_bar_suspended<R>(print: impl FnOnce() -> R) -> R {
    let bar = ACTIVE_BAR.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
    match bar {
        Some(bar) => bar.suspend(print),
        None => print(),
    }
}

/// Prints one report line on stdout (the seed's look), around the bar.
pub fn report(line: &str) {
    with_bar_suspended(|| {
        let mut stdout = std::io::stdout().lock();
        // A closed stdout (`trainer | head`) must not stop training.
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    });
}

/// Whether report lines may be coloured: stdout is a terminal and `NO_COLOR`
/// is unset or empty (<https://no-color.org>).
pub fn use_color() -> bool {
    !no_color_requested() && std::io::stdout().is_terminal()
}

/// Whether the log (stderr) may be coloured: a terminal, and no `NO_COLOR`.
pub fn log_color() -> bool {
    !no_color_requested() && std::io::stderr().is_terminal()
}

/// `NO_COLOR` set to a non-empty value.
fn no_color_requested() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty())
}

/// `text` in red when colour is on (the seed's `\x1b[31m ... \x1b[0m`).
pub fn red(text: &str, color: bool) -> String {
    if color { format!("\x1b[31m{text}\x1b[0m") } else { text.to_owned() }
}

/// The log's writer: stderr, with the progress bar suspended while a line is written.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        with_bar_suspended(|| std::io::stderr().lock().write_all(bytes))?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

/// Progress through one epoch's steps: a bar on a terminal, else a log line
/// every tenth of the epoch.
#[derive(Debug)]
pub struct EpochProgress {
    bar: Option<ProgressBar>,
    label: String,
    n_steps: u64,
    start: Instant,
    next_plain_step: u64,
}

impl EpochProgress {
    /// Starts the progress of an epoch of `n_steps`, `first_step` of them already done.
    pub fn start(label: String, n_steps: u64, first_step: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(n_steps), ProgressDrawTarget::stderr_with_hz(4));
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} steps {msg} ({elapsed} < {eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(label.clone());
            bar.set_position(first_step);
            *ACTIVE_BAR.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(bar.clone());
            bar
        });
        let tenth = (n_steps / 10).max(1);
        Self { bar, label, n_steps, start: Instant::now(), next_plain_step: (first_step / tenth + 1) * tenth }
    }

    /// Records that `step` steps of the epoch are done.
    pub fn update(&mut self, step: u64, images_per_second: f64, mean_loss: Option<f64>) {
        let message = match mean_loss {
            Some(loss) => format!("{images_per_second:.0} images/s, loss {loss:.5}"),
            None => format!("{images_per_second:.0} images/s"),
        };
        match &self.bar {
            Some(bar) => {
                bar.set_position(step);
                bar.set_message(message);
            }
            None if step >= self.next_plain_step && step < self.n_steps => {
                self.next_plain_step += (self.n_steps / 10).max(1);
                tracing::info!("{}: step {step}/{}, {message}", self.label, self.n_steps);
            }
            None => {}
        }
    }

    /// Time since the progress started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

impl Drop for EpochProgress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            *ACTIVE_BAR.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn red_wraps_in_the_seeds_escape_codes_only_when_asked() {
        assert_eq!(red(" BEST EPOCH UPDATED!! [2] ", true), "\x1b[31m BEST EPOCH UPDATED!! [2] \x1b[0m");
        assert_eq!(red(" BEST EPOCH UPDATED!! [2] ", false), " BEST EPOCH UPDATED!! [2] ");
    }
}
