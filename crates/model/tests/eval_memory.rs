//! Evaluating 60,000 images takes no more memory than evaluating 5,000: peak
//! resident memory grows by the same amount beyond what the data itself takes.

use std::process::Command;

fn measure(n_images: u64) -> (u64, u64) {
    let output = Command::new(env!("CARGO_BIN_EXE_eval_memory"))
        .args([n_images.to_string(), "500".to_owned()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["n_images"], n_images);
    (report["peak_rss_before_kib"].as_u64().unwrap(), report["peak_rss_after_kib"].as_u64().unwrap())
}

#[test]
fn peak_memory_does_not_grow_with_the_number_of_images_evaluated() {
    let (before_small, after_small) = measure(5_000);
    let (before_large, after_large) = measure(60_000);
    let (growth_small, growth_large) = (after_small - before_small, after_large - before_large);
    // The data (60,000 x 784 floats = 184 MiB) is allocated before either measurement.
    assert!(before_large > before_small + 150 * 1024, "{before_small} {before_large}");
    // Evaluation itself needs about the same memory for 12 times the images. The
    // allocator's slack varies from run to run (measured: 16 KiB to 18 MiB on
    // fresh machines, 48 MiB with another libtorch process busy on the same
    // cores), so the bound is absolute: 96 MiB. Anything that scales with the
    // images evaluated still breaks it: a copy of 60,000 images is 184 MiB,
    // and the intended network's activations for them are gigabytes.
    assert!(
        growth_large <= growth_small + 96 * 1024,
        "evaluation grew the peak by {growth_small} KiB for 5,000 images but {growth_large} KiB for 60,000"
    );
}
