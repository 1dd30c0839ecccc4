//! Build-script helper for crates whose binaries or tests link libtorch.
//!
//! `torch-sys` tells the linker where libtorch is, but not the loader: a
//! binary then fails at start with `libtorch_cpu.so: cannot open shared object
//! file` unless `LD_LIBRARY_PATH` is set. And because linkers drop libraries
//! no symbol refers to (`--as-needed`), `libtorch_cuda.so` is left out, so CUDA
//! silently falls back to the CPU. A crate's `build.rs` calls [`emit`], which
//! adds an rpath and, when libtorch has working CUDA libraries, links
//! `torch_cuda` with `--no-as-needed`.
//!
//! Link arguments from a build script apply to the calling package's own
//! binaries, tests, examples and benches only, so every package that links
//! libtorch into an executable needs its own `build.rs`.

use std::env;
use std::path::{Path, PathBuf};

/// The variable that forces CUDA linking on (`1`) or off (`0`); unset means detect.
pub const LINK_CUDA_VARIABLE: &str = "LIBTORCH_LINK_CUDA";

/// What to pass the linker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkPlan {
    /// The libtorch `lib/` folder, recorded as the executables' rpath.
    pub lib_dir: PathBuf,
    /// Whether to force-link `torch_cuda`.
    pub link_cuda: bool,
    /// Why `link_cuda` has its value.
    pub reason: String,
    /// Whether the choice would surprise someone reading the build: set by
    /// hand, or a libtorch that ships `libtorch_cuda.so` left unlinked.
    pub surprising: bool,
    /// libtorch's version as its files state it (`2.11.0+cu130`), if they do.
    pub version: Option<String>,
}

impl LinkPlan {
    /// Decides how to link against the libtorch in `lib_dir`. `cuda_override`
    /// is the value of [`LINK_CUDA_VARIABLE`], if set.
    pub fn new(lib_dir: &Path, cuda_override: Option<&str>) -> Self {
        let (link_cuda, reason, surprising) = match cuda_override.map(str::trim) {
            Some("1") => (true, format!("{LINK_CUDA_VARIABLE}=1"), true),
            Some("0") => (false, format!("{LINK_CUDA_VARIABLE}=0"), true),
            _ => {
                let (link_cuda, reason) = detect_cuda(lib_dir);
                (link_cuda, reason, !link_cuda && lib_dir.join("libtorch_cuda.so").exists())
            }
        };
        Self { lib_dir: lib_dir.to_path_buf(), link_cuda, reason, surprising, version: libtorch_version(lib_dir) }
    }

    /// The flavour record of `cargo xtask setup` for this libtorch, if it installed it.
    fn flavour_file(&self) -> Option<PathBuf> {
        let flavour = self.lib_dir.parent()?.parent()?.join("flavour");
        flavour.is_file().then_some(flavour)
    }

    /// The `cargo:` lines for a build script.
    pub fn cargo_lines(&self) -> Vec<String> {
        let lib_dir = self.lib_dir.display();
        let mut lines = vec![format!("cargo:rerun-if-env-changed={LINK_CUDA_VARIABLE}")];
        // `cargo xtask setup` records the flavour it installed beside its link
        // (`.libtorch/flavour` for `.libtorch/torch/lib`): switching between
        // `--cpu-only` and CUDA rewrites it, and the decision must be made again.
        if let Some(flavour) = self.flavour_file() {
            lines.push(format!("cargo:rerun-if-changed={}", flavour.display()));
        }
        lines.extend([
            format!("cargo:rustc-link-search=native={lib_dir}"),
            format!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}"),
            // Programs record the libtorch they were built against (`env!("LIBTORCH_VERSION")`).
            format!("cargo:rustc-env=LIBTORCH_VERSION={}", self.version.as_deref().unwrap_or("unknown")),
        ]);
        // Only a surprising choice is worth a warning in every build's output.
        if self.surprising {
            let linked = if self.link_cuda { "linking" } else { "not linking" };
            lines.push(format!("cargo:warning=libtorch-link: {linked} CUDA: {}", self.reason));
        }
        if self.link_cuda {
            lines.extend(
                ["-Wl,--no-as-needed", "-ltorch_cuda", "-ltorch", "-Wl,--as-needed"]
                    .map(|arg| format!("cargo:rustc-link-arg={arg}")),
            );
        }
        lines
    }
}

/// The version of the libtorch in `lib_dir`: a pip torch states it in
/// `torch/version.py` (`__version__ = '2.11.0+cu130'`), a standalone libtorch
/// archive in `libtorch/build-version`.
fn libtorch_version(lib_dir: &Path) -> Option<String> {
    let root = lib_dir.parent()?;
    if let Ok(text) = std::fs::read_to_string(root.join("build-version")) {
        return Some(text.trim().to_owned()).filter(|version| !version.is_empty());
    }
    let text = std::fs::read_to_string(root.join("version.py")).ok()?;
    let line = text.lines().find(|line| line.starts_with("__version__"))?;
    let value = line.split_once('=')?.1.trim().trim_matches(|c| c == '\'' || c == '"');
    Some(value.to_owned()).filter(|version| !version.is_empty())
}

/// Whether the libtorch in `lib_dir` has CUDA, and why.
///
/// A pip-installed torch keeps its CUDA libraries in `site-packages/nvidia/`;
/// a CPU-only install (torch without its dependencies) still ships
/// `libtorch_cuda.so` but not cuBLAS, and force-linking it would then fail. A
/// standalone libtorch archive bundles its CUDA libraries next to libtorch.
fn detect_cuda(lib_dir: &Path) -> (bool, String) {
    if !lib_dir.join("libtorch_cuda.so").exists() {
        return (false, "no libtorch_cuda.so: a CPU-only libtorch".to_owned());
    }
    let real_lib_dir = lib_dir.canonicalize().unwrap_or_else(|_| lib_dir.to_path_buf());
    let site_packages = real_lib_dir.parent().and_then(Path::parent);
    match site_packages {
        Some(site_packages) if site_packages.join("nvidia").is_dir() => {
            if has_cublas(&site_packages.join("nvidia")) {
                (true, "pip torch with its NVIDIA libraries".to_owned())
            } else {
                (false, "pip torch without cuBLAS (a CPU-only install)".to_owned())
            }
        }
        _ => (true, "libtorch_cuda.so present".to_owned()),
    }
}

/// Whether some `nvidia/<package>/lib/` holds cuBLAS (`nvidia/cublas/lib` for
/// CUDA 12 wheels, `nvidia/cu13/lib` for CUDA 13 ones).
fn has_cublas(nvidia_dir: &Path) -> bool {
    let Ok(packages) = nvidia_dir.read_dir() else { return false };
    packages.flatten().any(|package| {
        let Ok(libraries) = package.path().join("lib").read_dir() else { return false };
        libraries.flatten().any(|library| library.file_name().to_string_lossy().starts_with("libcublas.so"))
    })
}

/// Prints the link instructions for the libtorch that `torch-sys` found. Call
/// it from the `build.rs` of a package that depends on `torch-sys`.
pub fn emit() {
    // torch-sys declares `links = "tch"` and prints `cargo:libtorch_lib=...`.
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Some(lib_dir) = env::var_os("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=DEP_TCH_LIBTORCH_LIB is not set: does this package depend on torch-sys?");
        return;
    };
    let cuda_override = env::var(LINK_CUDA_VARIABLE).ok();
    let plan = LinkPlan::new(Path::new(&lib_dir), cuda_override.as_deref());
    for line in plan.cargo_lines() {
        println!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn touch(path: &Path) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"").unwrap();
    }

    #[test]
    fn cpu_only_libtorch_is_not_cuda_linked_but_gets_an_rpath() {
        let root = tempfile::tempdir().unwrap();
        let lib_dir = root.path().join("libtorch/lib");
        touch(&lib_dir.join("libtorch_cpu.so"));
        let plan = LinkPlan::new(&lib_dir, None);
        assert!(!plan.link_cuda, "{}", plan.reason);
        let lines = plan.cargo_lines();
        assert!(lines.contains(&format!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib_dir.display())));
        assert!(!lines.iter().any(|line| line.contains("torch_cuda")));
    }

    #[test]
    fn pip_torch_is_cuda_linked_only_with_cublas() {
        let root = tempfile::tempdir().unwrap();
        let lib_dir = root.path().join("site-packages/torch/lib");
        touch(&lib_dir.join("libtorch_cuda.so"));
        touch(&root.path().join("site-packages/nvidia/cu13/lib/libcudart.so.13"));
        let cpu_only = LinkPlan::new(&lib_dir, None);
        assert!(!cpu_only.link_cuda);
        // libtorch_cuda.so present but left out: said in the build output.
        let warning = cpu_only.cargo_lines().into_iter().find(|line| line.starts_with("cargo:warning=")).unwrap();
        assert!(warning.contains("not linking CUDA") && warning.contains("without cuBLAS"), "{warning}");

        touch(&root.path().join("site-packages/nvidia/cu13/lib/libcublas.so.13"));
        let plan = LinkPlan::new(&lib_dir, None);
        assert!(plan.link_cuda, "{}", plan.reason);
        let lines = plan.cargo_lines();
        assert!(!lines.iter().any(|line| line.starts_with("cargo:warning=")), "{lines:?}");
        let no_as_needed = lines.iter().position(|line| line.ends_with("-Wl,--no-as-needed")).unwrap();
        let torch_cuda = lines.iter().position(|line| line.ends_with("-ltorch_cuda")).unwrap();
        assert!(no_as_needed < torch_cuda, "{lines:?}");
    }

    #[test]
    fn standalone_libtorch_with_cuda_is_cuda_linked_and_the_override_wins() {
        let root = tempfile::tempdir().unwrap();
        let lib_dir = root.path().join("libtorch/lib");
        touch(&lib_dir.join("libtorch_cuda.so"));
        assert!(LinkPlan::new(&lib_dir, None).link_cuda);
        assert!(!LinkPlan::new(&lib_dir, Some("0")).link_cuda);
        let forced = LinkPlan::new(&lib_dir, Some("0")).cargo_lines();
        assert!(forced.contains(&"cargo:warning=libtorch-link: not linking CUDA: LIBTORCH_LINK_CUDA=0".to_owned()));
        assert!(LinkPlan::new(&root.path().join("empty"), Some("1")).link_cuda);
    }

    #[test]
    fn switching_the_installed_flavour_reruns_the_decision() {
        let root = tempfile::tempdir().unwrap();
        let lib_dir = root.path().join(".libtorch/torch/lib");
        touch(&lib_dir.join("libtorch_cpu.so"));
        let rerun = format!("cargo:rerun-if-changed={}", root.path().join(".libtorch/flavour").display());
        assert!(!LinkPlan::new(&lib_dir, None).cargo_lines().contains(&rerun));
        fs::write(root.path().join(".libtorch/flavour"), "cpu-only").unwrap();
        assert!(LinkPlan::new(&lib_dir, None).cargo_lines().contains(&rerun));
    }

    #[test]
    fn the_version_comes_from_version_py_or_build_version() {
        let root = tempfile::tempdir().unwrap();
        let pip_lib = root.path().join("site-packages/torch/lib");
        touch(&pip_lib.join("libtorch_cpu.so"));
        assert_eq!(LinkPlan::new(&pip_lib, None).version, None);
        let lines = LinkPlan::new(&pip_lib, None).cargo_lines();
        assert!(lines.contains(&"cargo:rustc-env=LIBTORCH_VERSION=unknown".to_owned()), "{lines:?}");
        fs::write(root.path().join("site-packages/torch/version.py"), "x = 1\n__version__ = '2.11.0+cu130'\n").unwrap();
        assert_eq!(LinkPlan::new(&pip_lib, None).version.as_deref(), Some("2.11.0+cu130"));

        let archive_lib = root.path().join("libtorch/lib");
        touch(&archive_lib.join("libtorch_cpu.so"));
        fs::write(root.path().join("libtorch/build-version"), "2.11.0+cpu\n").unwrap();
        let lines = LinkPlan::new(&archive_lib, None).cargo_lines();
        assert!(lines.contains(&"cargo:rustc-env=LIBTORCH_VERSION=2.11.0+cpu".to_owned()), "{lines:?}");
    }
}
