//! What signals do to `trainer train` (`docs/RELIABILITY.md`):
//!
//! - SIGTERM and SIGHUP (how Slurm, Kubernetes, `docker stop` and a closed
//!   terminal end a job): finish the current step, save, exit 0 — however
//!   many arrive. Schedulers often deliver the same SIGTERM twice (to every
//!   process of the job, and again from a batch script that forwards it);
//!   that must not cost the epoch's progress.
//! - SIGINT (Ctrl-C): the first does the same; a second one, from a person
//!   at a terminal, quits at once without saving.
//! - SIGQUIT (Ctrl-\): quits at once without saving.
//!
//! A quit is clean: one line on stderr, then `_exit` with
//! [`QUIT_AFTER_INTERRUPT`] or [`QUIT_ON_SIGQUIT`], without running exit
//! handlers or destructors while the main thread may be inside libtorch
//! (which otherwise prints libtorch's own errors as it is torn down). The
//! run directory stays loadable: every file is written atomically.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};

/// The exit code of a quit by a second Ctrl-C (128 + SIGINT, as shells report it).
pub const QUIT_AFTER_INTERRUPT: i32 = 130;
/// The exit code of a quit by SIGQUIT (128 + SIGQUIT).
pub const QUIT_ON_SIGQUIT: i32 = 131;

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// Save after the current step and stop; `first` when nothing asked before.
    SaveAndStop {
        /// Whether this is the first request to stop.
        first: bool,
    },
    /// Quit now without saving, with this exit code.
    Quit(i32),
}

/// The signals received so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Any request to stop so far.
    stopping: bool,
    /// Ctrl-Cs so far.
    interrupts: u32,
}

impl Received {
    /// The response to `signal`, given the ones before it.
    pub fn respond(&mut self, signal: i32) -> Response {
        if signal == SIGQUIT {
            return Response::Quit(QUIT_ON_SIGQUIT);
        }
        if signal == SIGINT {
            self.interrupts += 1;
            if self.interrupts >= 2 {
                return Response::Quit(QUIT_AFTER_INTERRUPT);
            }
        }
        let first = !self.stopping;
        self.stopping = true;
        Response::SaveAndStop { first }
    }
}

fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "Ctrl-C (SIGINT)",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        SIGQUIT => "SIGQUIT",
        _ => "a signal",
    }
}

/// Handles SIGINT, SIGTERM, SIGHUP and SIGQUIT on a thread of their own;
/// returns the flag the run checks after every step.
pub fn install() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut signals = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT]) {
        Ok(signals) => signals,
        Err(error) => {
            tracing::warn!(
                "cannot catch SIGINT, SIGTERM, SIGHUP and SIGQUIT ({error}): a stop will lose the epoch's progress"
            );
            return stop;
        }
    };
    let flag = stop.clone();
    let spawned = std::thread::Builder::new().name("signals".into()).spawn(move || {
        let mut received = Received::default();
        for signal in signals.forever() {
            match received.respond(signal) {
                Response::SaveAndStop { first: true } => {
                    flag.store(true, Ordering::SeqCst);
                    eprintln!(
                        "asked to stop ({}): finishing the current step, then saving (a second Ctrl-C quits without saving)",
                        name(signal)
                    );
                }
                Response::SaveAndStop { first: false } => {
                    eprintln!("asked to stop again ({}): already stopping, the state will be saved", name(signal));
                }
                Response::Quit(code) => {
                    eprintln!("{}: quitting now without saving (exit {code}); the run's files stay loadable", name(signal));
                    // `_exit`: no exit handler or destructor runs while the main thread may be in libtorch.
                    signal_hook::low_level::exit(code);
                }
            }
        }
    });
    if let Err(error) = spawned {
        tracing::warn!("cannot start the signal thread ({error}): a stop will lose the epoch's progress");
    }
    stop
}

#[cfg(test)]
mod tests {
    use super::*;

    fn responses(signals: &[i32]) -> Vec<Response> {
        let mut received = Received::default();
        signals.iter().map(|&signal| received.respond(signal)).collect()
    }

    #[test]
    fn schedulers_signals_never_force_and_a_second_ctrl_c_or_sigquit_does() {
        let save = |first| Response::SaveAndStop { first };
        assert_eq!(responses(&[SIGTERM; 5]), [save(true), save(false), save(false), save(false), save(false)]);
        assert_eq!(responses(&[SIGHUP, SIGTERM, SIGHUP]), [save(true), save(false), save(false)]);
        assert_eq!(responses(&[SIGINT, SIGINT]), [save(true), Response::Quit(QUIT_AFTER_INTERRUPT)]);
        // A SIGTERM before or between does not count as a Ctrl-C.
        assert_eq!(responses(&[SIGTERM, SIGINT, SIGTERM]), [save(true), save(false), save(false)]);
        assert_eq!(responses(&[SIGTERM, SIGQUIT]), [save(true), Response::Quit(QUIT_ON_SIGQUIT)]);
    }
}
