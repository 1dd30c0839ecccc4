//! The built binary finds libtorch by itself: no LD_LIBRARY_PATH, no LIBTORCH.

use std::process::Command;

#[test]
fn the_binary_runs_and_resolves_libtorch_without_any_environment() {
    let binary = env!("CARGO_BIN_EXE_trainer");
    let ldd = Command::new("ldd").arg(binary).env_clear().output().unwrap();
    let listing = String::from_utf8_lossy(&ldd.stdout);
    assert!(ldd.status.success(), "{listing}");
    assert!(!listing.contains("not found"), "{listing}");
    assert!(listing.lines().any(|line| line.contains("libtorch_cpu.so =>")), "{listing}");

    let output = Command::new(binary).arg("--version").env_clear().output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("trainer "));
}
