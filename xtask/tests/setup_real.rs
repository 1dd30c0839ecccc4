//! The real thing, with pip and PyPI: the default flavour of `cargo xtask
//! setup` gives a Python that imports torch (the project's own
//! `.libtorch/venv`, which the README's test line installs first), and the
//! CPU-only flavour installs with its exact pins, wheels only, links a
//! libtorch without cuBLAS, and says plainly that its Python cannot import
//! torch (PyPI's torch is the CUDA build). It is installed into
//! `target/tmp/libtorch-cpu-only`, from pip's cache after the first time; a
//! second run only checks it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `import torch` in `python`; returns torch's version.
fn import_torch(python: &Path) -> String {
    assert!(python.exists(), "{} is missing: run `cargo xtask setup` (the README's test line does)", python.display());
    let output = Command::new(python)
        .args(["-c", "import torch; print(torch.__version__); print(torch.ones(2).sum().item())"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}: `import torch` failed:\n{stderr}", python.display());
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut lines = stdout.lines();
    let version = lines.next().unwrap_or_default().to_owned();
    assert_eq!(lines.next(), Some("2.0"), "{stdout}");
    version
}

#[test]
fn the_full_flavour_imports_torch_and_the_cpu_only_one_installs_and_says_what_it_lacks() {
    let cuda_flavour = import_torch(&repository().join(".libtorch/venv/bin/python"));
    assert!(cuda_flavour.starts_with("2.11.0"), "{cuda_flavour}");

    let dir = repository().join("target/tmp/libtorch-cpu-only");
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["setup", "--cpu-only", "--dir"])
        .arg(&dir)
        .current_dir(repository())
        .output()
        .unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "cargo xtask setup --cpu-only failed:\n{log}");
    assert_eq!(std::fs::read_to_string(dir.join("flavour")).unwrap(), "cpu-only");
    assert!(dir.join("torch/lib/libtorch_cpu.so").exists() && dir.join("torch/include").is_dir());
    assert!(!dir.join("install-incomplete").exists());
    assert!(log.contains("its Python cannot `import torch`") && log.contains("libcudnn"), "{log}");
    // Its pure-Python dependencies are there: what fails is only the CUDA libraries.
    let output = Command::new(dir.join("venv/bin/python"))
        .args(["-c", "import typing_extensions, sympy, networkx, jinja2, fsspec, filelock"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // Really CPU-only: no cuBLAS came along (CUDA 13 wheels put it in nvidia/cu13/lib).
    let site_packages = std::fs::canonicalize(dir.join("torch")).unwrap().parent().unwrap().to_path_buf();
    let cublas: Vec<PathBuf> = std::fs::read_dir(site_packages.join("nvidia"))
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|package| std::fs::read_dir(package.path().join("lib")).into_iter().flatten().flatten())
        .map(|library| library.path())
        .filter(|library| library.file_name().is_some_and(|name| name.to_string_lossy().starts_with("libcublas")))
        .collect();
    assert!(cublas.is_empty(), "the CPU-only install has cuBLAS: {cublas:?}");
}
