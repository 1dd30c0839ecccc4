//! A training step's speed made independent of the heap's layout.
//!
//! A training step allocates and frees the same blocks every step: the
//! activations and gradients, from a few KiB to a few MiB each. glibc's
//! malloc serves blocks over its mmap threshold (128 KiB at first, then
//! raised to the size of each mapped block freed) as mappings of their own,
//! and gives the free top of its heap back to the system beyond its trim
//! threshold (raised along with it). Which blocks end up where depends on
//! everything allocated before, down to the length of the program's own
//! name: on a 2-core Intel Xeon with AMX the same bench binary ran its fp32
//! step at 2,200 images/s or at 1,600, by the length of `argv[0]`, the slow
//! runs taking ten times the page faults (the kernel zeroing pages that the
//! previous step had handed back). [`keep_freed_memory`] pins both
//! thresholds, so that the step's blocks stay in the heap once it has grown
//! to hold them, whatever the layout (`docs/PERFORMANCE.md`).
//!
//! What it costs: the process keeps the memory a step freed instead of
//! returning it, which is memory it will ask for again a few milliseconds
//! later; blocks over [`MMAP_THRESHOLD`] (an evaluation batch's largest
//! activations, say) still get mappings of their own and go back when freed.

use crate::fused::{PinOutcome, pin_malloc_thresholds};

/// Blocks up to this size come from the heap: 32 MiB, glibc's largest mmap
/// threshold, above every block of a training step at the default batch
/// sizes (conv1's output for 50 images is 5 MiB).
pub const MMAP_THRESHOLD: usize = 32 << 20;

/// The heap's free top is returned to the system only beyond this size:
/// 1 GiB, more than a training step ever frees at once.
pub const TRIM_THRESHOLD: usize = 1 << 30;

/// The environment variables through which a user sets glibc malloc's
/// thresholds; when one is set, [`keep_freed_memory`] leaves the choice to it.
pub const MALLOC_VARIABLES: [&str; 4] =
    ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES"];

/// What [`keep_freed_memory`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeapSetting {
    /// The thresholds are pinned at [`MMAP_THRESHOLD`] and [`TRIM_THRESHOLD`].
    Pinned,
    /// Left alone: the user set this environment variable.
    LeftToEnvironment(&'static str),
    /// Left alone: the C library is not glibc, or glibc refused the values.
    Unavailable,
}

impl std::fmt::Display for HeapSetting {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeapSetting::Pinned => write!(
                formatter,
                "malloc's thresholds pinned (mmap {} MiB, trim {} MiB)",
                MMAP_THRESHOLD >> 20,
                TRIM_THRESHOLD >> 20
            ),
            HeapSetting::LeftToEnvironment(variable) => write!(formatter, "malloc's thresholds left to {variable}"),
            HeapSetting::Unavailable => write!(formatter, "malloc's thresholds left alone (not glibc)"),
        }
    }
}

/// Pins glibc malloc's mmap and trim thresholds for a training process,
/// unless one of [`MALLOC_VARIABLES`] is set (a user's own choice, or a
/// measurement's: the `eval_memory` test fixes the mmap threshold to see
/// live memory). Call it once, early, before the first tensor.
///
/// # Examples
///
/// ```
/// use model::allocator::{HeapSetting, keep_freed_memory};
///
/// match keep_freed_memory() {
///     HeapSetting::Pinned => println!("the heap keeps the step's blocks"),
///     HeapSetting::LeftToEnvironment(variable) => println!("{variable} decides"),
///     HeapSetting::Unavailable => println!("not glibc"),
/// }
/// ```
pub fn keep_freed_memory() -> HeapSetting {
    keep_freed_memory_unless(|name| std::env::var_os(name).is_some())
}

/// [`keep_freed_memory`] with the environment given (testable without
/// changing the process's own).
pub fn keep_freed_memory_unless(is_set: impl Fn(&str) -> bool) -> HeapSetting {
    if let Some(variable) = MALLOC_VARIABLES.into_iter().find(|name| is_set(name)) {
        return HeapSetting::LeftToEnvironment(variable);
    }
    match pin_malloc_thresholds(MMAP_THRESHOLD, TRIM_THRESHOLD) {
        PinOutcome::Pinned => HeapSetting::Pinned,
        PinOutcome::Refused | PinOutcome::NotGlibc => HeapSetting::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_malloc_variable_wins() {
        assert_eq!(
            keep_freed_memory_unless(|name| name == "MALLOC_TRIM_THRESHOLD_"),
            HeapSetting::LeftToEnvironment("MALLOC_TRIM_THRESHOLD_")
        );
        assert_eq!(
            keep_freed_memory_unless(|name| name == "GLIBC_TUNABLES"),
            HeapSetting::LeftToEnvironment("GLIBC_TUNABLES")
        );
    }

    #[test]
    fn glibc_takes_the_thresholds_and_refuses_values_it_cannot_hold() {
        let expected = if cfg!(target_env = "gnu") { HeapSetting::Pinned } else { HeapSetting::Unavailable };
        assert_eq!(keep_freed_memory_unless(|_| false), expected);
        if cfg!(target_env = "gnu") {
            // Over `int`'s range: refused before glibc sees it.
            assert_eq!(pin_malloc_thresholds(usize::MAX, TRIM_THRESHOLD), PinOutcome::Refused);
            assert_eq!(pin_malloc_thresholds(MMAP_THRESHOLD, TRIM_THRESHOLD), PinOutcome::Pinned);
        }
    }
}
