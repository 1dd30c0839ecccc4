//! `cargo xtask setup` against a stand-in Python (`data/fake-python`), so that
//! every path runs in a second without downloading 2.3 GB of wheels.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fake_python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/fake-python")
}

fn setup(libtorch_dir: &Path, site: &Path, extra_args: &[&str], no_pip: bool) -> Output {
    setup_with(libtorch_dir, site, extra_args, if no_pip { &["FAKE_NO_PIP"] } else { &[] })
}

/// Runs `cargo xtask setup` against the stand-in Python with the given `FAKE_*` switches set.
fn setup_with(libtorch_dir: &Path, site: &Path, extra_args: &[&str], switches: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    // The stand-in pip downloads nothing: the free-space check (unit-tested in setup.rs) is not
    // this test's subject, and must not fail it on a machine short of disk.
    command.arg("setup").arg("--dir").arg(libtorch_dir).arg("--python").arg(fake_python()).arg("--skip-disk-check");
    command.args(extra_args);
    command.env("FAKE_SITE", site);
    for switch in switches {
        command.env(switch, "1");
    }
    command.output().unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn pip_calls(site: &Path) -> Vec<String> {
    fs::read_to_string(site.join("pip.log")).unwrap_or_default().lines().map(str::to_owned).collect()
}

#[test]
fn installs_once_links_torch_and_is_a_no_op_the_second_time() {
    let root = tempfile::tempdir().unwrap();
    let (libtorch_dir, site) = (root.path().join(".libtorch"), root.path().join("site"));
    fs::create_dir(&site).unwrap();

    let output = setup(&libtorch_dir, &site, &[], false);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("installing torch==2.11.0 (cuda)"), "{}", text(&output));
    assert_eq!(pip_calls(&site).len(), 2);
    let torch = &pip_calls(&site)[0];
    assert!(torch.contains("install --disable-pip-version-check") && torch.ends_with("torch==2.11.0"), "{torch}");
    assert!(torch.contains("--only-binary :all:") && !torch.contains("--force-reinstall"), "{torch}");
    let tools = &pip_calls(&site)[1];
    assert!(tools.contains("--only-binary :all:") && tools.ends_with("onnx==1.23.2 onnxruntime==1.32.0"), "{tools}");
    assert_eq!(fs::read_link(libtorch_dir.join("torch")).unwrap(), site.join("torch"));
    assert!(libtorch_dir.join("torch/lib/libtorch_cpu.so").exists());

    let output = setup(&libtorch_dir, &site, &[], false);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("torch 2.11.0+cu130 (cuda) is already installed"), "{}", text(&output));
    assert_eq!(pip_calls(&site).len(), 2, "the second run must not reinstall");
}

#[test]
fn switching_to_cpu_only_reinstalls_without_the_cuda_dependencies() {
    let root = tempfile::tempdir().unwrap();
    let (libtorch_dir, site) = (root.path().join(".libtorch"), root.path().join("site"));
    fs::create_dir(&site).unwrap();
    assert!(setup(&libtorch_dir, &site, &[], false).status.success());
    let output = setup(&libtorch_dir, &site, &["--cpu-only"], false);
    assert!(output.status.success(), "{}", text(&output));
    let calls = pip_calls(&site);
    assert_eq!(calls.len(), 3, "torch, the Python tools, then torch again: {calls:?}");
    assert!(calls[2].contains("--no-deps torch==2.11.0 nvidia-cuda-runtime==13.0.96"), "{}", calls[2]);
    // torch's pure-Python dependencies come along, so the CPU-only Python can `import torch`.
    assert!(calls[2].contains("typing-extensions==4.16.0") && calls[2].contains("sympy==1.14.0"), "{}", calls[2]);
    assert_eq!(fs::read_to_string(libtorch_dir.join("flavour")).unwrap(), "cpu-only");
}

#[test]
fn an_install_killed_halfway_is_detected_and_repaired() {
    let root = tempfile::tempdir().unwrap();
    let (libtorch_dir, site) = (root.path().join(".libtorch"), root.path().join("site"));
    fs::create_dir(&site).unwrap();
    // A complete install, then a flavour switch killed mid-pip: torch's files are half there.
    assert!(setup(&libtorch_dir, &site, &[], false).status.success());
    let output = setup_with(&libtorch_dir, &site, &["--cpu-only"], &["FAKE_PIP_FAILS"]);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(libtorch_dir.join("install-incomplete").exists());
    // The next run sees it and reinstalls over it, instead of trusting what is there.
    let output = setup(&libtorch_dir, &site, &["--cpu-only"], false);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("did not finish: repairing it"), "{}", text(&output));
    let last = pip_calls(&site).last().unwrap().clone();
    assert!(last.contains("--force-reinstall --no-deps torch==2.11.0"), "{last}");
    assert!(!libtorch_dir.join("install-incomplete").exists());
    let output = setup(&libtorch_dir, &site, &["--cpu-only"], false);
    assert!(text(&output).contains("is already installed"), "{}", text(&output));
}

#[test]
fn a_torch_that_does_not_import_is_repaired_or_reported() {
    let root = tempfile::tempdir().unwrap();
    let (libtorch_dir, site) = (root.path().join(".libtorch"), root.path().join("site"));
    fs::create_dir(&site).unwrap();
    assert!(setup(&libtorch_dir, &site, &[], false).status.success());
    let n_calls = pip_calls(&site).len();
    let output = setup_with(&libtorch_dir, &site, &[], &["FAKE_IMPORT_FAILS"]);
    assert!(!output.status.success(), "{}", text(&output));
    let message = text(&output);
    assert!(message.contains("does not import (No module named 'typing_extensions'): repairing it"), "{message}");
    assert!(message.contains("cannot `import torch` after installing"), "{message}");
    assert_eq!(pip_calls(&site).len(), n_calls + 1);
    assert!(pip_calls(&site).last().unwrap().contains("--force-reinstall"));
}

#[test]
fn a_missing_python_is_reported_clearly() {
    let root = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["setup", "--python", "/nonexistent/python3", "--dir"])
        .arg(root.path().join(".libtorch"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let message = text(&output);
    assert!(message.contains("/nonexistent/python3 not found") && message.contains("install Python 3"), "{message}");
}

#[test]
fn a_missing_pip_is_reported_clearly() {
    let root = tempfile::tempdir().unwrap();
    let (libtorch_dir, site) = (root.path().join(".libtorch"), root.path().join("site"));
    fs::create_dir(&site).unwrap();
    let output = setup(&libtorch_dir, &site, &[], true);
    assert!(!output.status.success());
    assert!(text(&output).contains("pip is missing from the venv"), "{}", text(&output));
    assert!(pip_calls(&site).is_empty());
}

#[test]
fn a_libtorch_set_by_the_user_wins() {
    let root = tempfile::tempdir().unwrap();
    let user_libtorch = root.path().join("libtorch");
    fs::create_dir_all(user_libtorch.join("lib")).unwrap();
    fs::create_dir_all(user_libtorch.join("include")).unwrap();
    fs::write(user_libtorch.join("lib/libtorch_cpu.so"), b"").unwrap();
    let output =
        Command::new(env!("CARGO_BIN_EXE_xtask")).arg("setup").env("LIBTORCH", &user_libtorch).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("nothing to install"), "{}", text(&output));

    let output = Command::new(env!("CARGO_BIN_EXE_xtask")).arg("setup").env("LIBTORCH", root.path()).output().unwrap();
    assert!(!output.status.success());
    assert!(text(&output).contains("is not a libtorch folder"), "{}", text(&output));
}

/// A folder of stand-in programs, each printing `output`.
fn stub_programs(dir: &Path, programs: &[(&str, &str)]) {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(dir).unwrap();
    for (name, output) in programs {
        let path = dir.join(name);
        fs::write(&path, format!("#!/bin/sh\necho {output}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn the_browser_is_found_on_path_or_its_installation_explained() {
    let root = tempfile::tempdir().unwrap();
    let user_libtorch = root.path().join("libtorch");
    fs::create_dir_all(user_libtorch.join("lib")).unwrap();
    fs::create_dir_all(user_libtorch.join("include")).unwrap();
    fs::write(user_libtorch.join("lib/libtorch_cpu.so"), b"").unwrap();
    let installed = root.path().join("installed");
    stub_programs(&installed, &[("chromium", "Chromium 1"), ("chromedriver", "ChromeDriver 1"), ("id", "0")]);
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["setup", "--browser"])
        .env("LIBTORCH", &user_libtorch)
        .env("PATH", &installed)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("chromium chromium-driver are installed"), "{}", text(&output));

    // Root without apt-get (not Debian): the error says what to install.
    let bare = root.path().join("bare");
    stub_programs(&bare, &[("id", "0")]);
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["setup", "--browser"])
        .env("LIBTORCH", &user_libtorch)
        .env("PATH", &bare)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(text(&output).contains("apt-get install chromium chromium-driver"), "{}", text(&output));
}

#[test]
fn slurm_is_found_on_path_or_its_installation_explained() {
    let root = tempfile::tempdir().unwrap();
    let user_libtorch = root.path().join("libtorch");
    fs::create_dir_all(user_libtorch.join("lib")).unwrap();
    fs::create_dir_all(user_libtorch.join("include")).unwrap();
    fs::write(user_libtorch.join("lib/libtorch_cpu.so"), b"").unwrap();
    let setup = |path: &Path| {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["setup", "--slurm"])
            .env("LIBTORCH", &user_libtorch)
            .env("PATH", path)
            .output()
            .unwrap()
    };
    let installed = root.path().join("installed");
    let programs = ["munged", "slurmctld", "slurmd", "sbatch", "scontrol", "squeue", "sinfo"];
    stub_programs(&installed, &programs.map(|name| (name, "22.05")));
    let output = setup(&installed);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("slurm-wlm munge are installed (Slurm tests)"), "{}", text(&output));

    // One program missing, not root: the error names the programs and the packages.
    let partial = root.path().join("partial");
    stub_programs(&partial, &[("munged", "0.5"), ("id", "1000")]);
    let output = setup(&partial);
    assert!(!output.status.success());
    let message = text(&output);
    assert!(message.contains("apt-get install slurm-wlm munge") && message.contains("slurmctld"), "{message}");
}
