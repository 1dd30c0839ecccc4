//! A training step reuses its memory: once warm, it takes next to no page
//! faults (`model::allocator::keep_freed_memory`), where glibc's default
//! thresholds let some heap layouts hand a step's blocks back to the system
//! and fault them in again, zeroed, every step (measured on an Intel Xeon:
//! thousands of faults a step under some program names and none under
//! others, and the step up to a third slower with them).

use std::process::Command;

/// One run of `step_faults`: the heap setting it reports and the median of its steps' faults.
fn faults_per_step(env: &[(&str, &str)]) -> (String, f64) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_step_faults"));
    command.arg("20");
    for variable in model::allocator::MALLOC_VARIABLES {
        command.env_remove(variable);
    }
    command.envs(env.iter().copied());
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    (report["heap"].as_str().unwrap().to_owned(), report["median_minor_faults_per_step"].as_f64().unwrap())
}

#[test]
fn a_warm_training_step_takes_next_to_no_page_faults() {
    let (heap, faults) = faults_per_step(&[]);
    assert!(heap.starts_with("malloc's thresholds pinned"), "{heap}");
    // A step's blocks add up to tens of MiB, thousands of pages: a handful of
    // faults is noise. (The median: a one-time growth of the heap, 1,700
    // faults in one step of twenty, was seen in about one run in three.)
    assert!(faults < 64.0, "{faults} page faults per step with the thresholds pinned");
}

#[test]
fn the_count_sees_a_step_that_maps_its_blocks_afresh() {
    // Every block over 128 KiB a mapping of its own, returned when freed: the
    // step faults its activations in again each time.
    let (heap, faults) = faults_per_step(&[("MALLOC_MMAP_THRESHOLD_", "131072")]);
    assert_eq!(heap, "malloc's thresholds left to MALLOC_MMAP_THRESHOLD_");
    assert!(faults > 1_000.0, "only {faults} page faults per step with every large block mapped");
}
