//! `cargo xtask setup`: install libtorch from PyPI into a project-local venv and
//! point the build at it.
//!
//! The build reads `LIBTORCH` (set by `.cargo/config.toml` to `.libtorch/torch`,
//! unless the user set it), so this task only has to make `.libtorch/torch` a
//! link to the venv's `site-packages/torch`, which holds `lib/` and `include/`.
//! Every step is skipped when already done (checked, not assumed: the venv's
//! Python must `import torch`), so a second run takes a few seconds; an install
//! that was killed halfway is detected by its marker and repaired.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The libtorch version `tch = "=0.24.0"` expects.
const TORCH_VERSION: &str = "2.11.0";

/// What the CPU-only install adds to torch (installed without its
/// dependencies, to leave out the CUDA wheels): the CUDA runtime and CUPTI
/// that `libtorch_cpu.so` itself loads, and torch's pure-Python
/// dependencies. Exact versions, as pip resolved them for torch 2.11.0.
///
/// Its Python still cannot `import torch`: PyPI's torch is the CUDA build,
/// whose `libtorch.so` needs `libtorch_cuda.so` and so cuDNN, cuBLAS and the
/// rest, which is what this flavour leaves out. PyTorch's CPU wheels
/// (`torch==2.11.0+cpu`) live on download.pytorch.org, not on PyPI.
const CPU_ONLY_EXTRAS: [&str; 10] = [
    "nvidia-cuda-runtime==13.0.96",
    "nvidia-cuda-cupti==13.0.85",
    "filelock==4.3.1",
    "typing-extensions==4.16.0",
    "sympy==1.14.0",
    "mpmath==1.3.0",
    "networkx==3.6.1",
    "jinja2==3.1.6",
    "MarkupSafe==3.0.4",
    "fsspec==2026.9.0",
];

/// How pip is run: wheels only (nothing compiled on the user's machine), and
/// no cache: pip's cache would keep a second copy of every wheel (3 GB for
/// torch with its CUDA libraries) for good, and hold it while installing.
const PIP_INSTALL: [&str; 9] = [
    "-m",
    "pip",
    "install",
    "--disable-pip-version-check",
    "--progress-bar",
    "off",
    "--no-cache-dir",
    "--only-binary",
    ":all:",
];

/// Disk space an install takes at its peak, downloaded wheels and what they
/// unpack to together, measured with `df` while `cargo xtask setup` ran
/// (pip with torch 2.11.0; `docs/PERFORMANCE.md`): 7.3 GB with the CUDA
/// libraries (5.0 GB stay), 1.9 GB for the CPU-only flavour (1.5 GB stay).
const PEAK_BYTES_CUDA: u64 = 7_300_000_000;
/// See [`PEAK_BYTES_CUDA`].
const PEAK_BYTES_CPU_ONLY: u64 = 1_900_000_000;
/// What stays installed (see [`PEAK_BYTES_CUDA`]): all that the venv's disk
/// needs when pip's temporary folder (`TMPDIR`) is on another disk.
const KEPT_BYTES_CUDA: u64 = 5_000_000_000;
/// See [`KEPT_BYTES_CUDA`].
const KEPT_BYTES_CPU_ONLY: u64 = 1_500_000_000;

/// The file that marks an install in progress: present after a killed one.
const INCOMPLETE_MARKER: &str = "install-incomplete";

/// Prints torch's version and folder (from its metadata, empty when it is
/// not installed), then whether `import torch` works.
const PROBE_TORCH: &str = r"import importlib.metadata as m, importlib.util as u
spec = u.find_spec('torch')
print(m.version('torch') if spec else '')
print(spec.submodule_search_locations[0] if spec else '')
try:
    import torch
    print('import-ok')
except Exception as error:
    print('import-failed: ' + ' '.join(str(error).split()))
";

/// Arguments of `cargo xtask setup`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Install the CPU-only libtorch (1.5 GB instead of 5.0 GB): torch without its CUDA libraries.
    #[arg(long)]
    cpu_only: bool,
    /// The Python interpreter that creates the venv.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Folder for the venv and the `torch` link [default: the repository's .libtorch/].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Also install Chromium and chromedriver for the browser tests of `trainer serve` (Debian's packages, as root).
    #[arg(long)]
    browser: bool,
    /// Also install Slurm and munge for the cluster tests of the sweep scripts (Debian's slurm-wlm and munge, as root).
    #[arg(long)]
    slurm: bool,
    /// Install even when the disk looks too small for pip's peak (for a pip whose downloads go where the check cannot see).
    #[arg(long)]
    skip_disk_check: bool,
}

/// The installed flavour, recorded next to the venv so that switching reinstalls.
fn flavour(cpu_only: bool) -> &'static str {
    if cpu_only { "cpu-only" } else { "cuda" }
}

/// Installs libtorch (and the Python tools, Chromium with `--browser`, Slurm with `--slurm`) and links it for the build.
pub fn run(root: &Path, args: &Args) -> Result<()> {
    if args.browser {
        install_packages(&BROWSER)?;
    }
    if args.slurm {
        install_packages(&SLURM)?;
    }
    let libtorch_dir = args.dir.clone().unwrap_or_else(|| root.join(".libtorch"));
    let link = libtorch_dir.join("torch");

    // cargo sets LIBTORCH to our link for everything it runs, unless the user set it: then theirs wins.
    if let Some(user_libtorch) = env::var_os("LIBTORCH").map(PathBuf::from)
        && user_libtorch != link
        && args.dir.is_none()
    {
        println!("LIBTORCH is set to {}: the build uses it, nothing to install.", user_libtorch.display());
        return check_libtorch_folder(&user_libtorch);
    }

    let venv_python = ensure_venv(&libtorch_dir, &args.python)?;
    ensure_torch(&libtorch_dir, &venv_python, args.cpu_only, !args.skip_disk_check)?;
    install_python_tools(&venv_python, &libtorch_dir)?;
    let (version, torch_dir) = verify_torch(&libtorch_dir, &venv_python, args.cpu_only)?;
    let torch_dir = PathBuf::from(torch_dir);
    check_libtorch_folder(&torch_dir)?;
    point_link(&link, &torch_dir)?;
    println!("LIBTORCH -> {} (the build finds it through .cargo/config.toml)", link.display());
    let has_cuda_libraries = torch_dir.join("lib/libtorch_cuda.so").exists() && !args.cpu_only;
    println!(
        "libtorch {version}: {}",
        if has_cuda_libraries { "with CUDA (used when a GPU and driver are present)" } else { "CPU only" }
    );
    Ok(())
}

/// Creates the venv (once) and checks it has pip; returns its Python.
fn ensure_venv(libtorch_dir: &Path, python: &str) -> Result<PathBuf> {
    let venv = libtorch_dir.join("venv");
    let venv_python = venv.join("bin/python");
    if !venv_python.exists() {
        check_python(python)?;
        println!("creating the venv {}", venv.display());
        fs::create_dir_all(libtorch_dir).with_context(|| format!("cannot create {}", libtorch_dir.display()))?;
        run_checked(Command::new(python).arg("-m").arg("venv").arg(&venv), "creating the venv").context(
            "could not create a venv (on Debian and Ubuntu, `apt install python3-venv` provides the venv module)",
        )?;
    }
    let pip_works = Command::new(&venv_python)
        .args(["-m", "pip", "--version"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !pip_works {
        bail!(
            "pip is missing from the venv {} (on Debian and Ubuntu, `apt install python3-pip python3-venv`; \
             then delete {} and run `cargo xtask setup` again)",
            venv.display(),
            libtorch_dir.display()
        );
    }
    Ok(venv_python)
}

/// Installs torch of the wanted flavour unless it is already there and
/// sound; repairs an install that was killed halfway or does not import.
fn ensure_torch(libtorch_dir: &Path, venv_python: &Path, cpu_only: bool, check_disk: bool) -> Result<()> {
    let flavour_file = libtorch_dir.join("flavour");
    let wanted_flavour = flavour(cpu_only);
    let marker = libtorch_dir.join(INCOMPLETE_MARKER);
    let probe = probe_torch(venv_python)?;
    let installed_flavour = fs::read_to_string(&flavour_file).unwrap_or_default();
    let killed_halfway = marker.exists();
    // The CPU-only flavour's Python cannot import torch (see CPU_ONLY_EXTRAS): not a fault there.
    let import_broken = probe.import_error.is_some() && !cpu_only;
    let up_to_date = probe.version.split('+').next() == Some(TORCH_VERSION)
        && !import_broken
        && !killed_halfway
        && (installed_flavour.trim() == wanted_flavour || installed_flavour.is_empty() && !cpu_only);
    if up_to_date {
        let venv = venv_python.parent().and_then(Path::parent).unwrap_or(venv_python);
        println!("torch {} ({wanted_flavour}) is already installed in {}", probe.version, venv.display());
        return Ok(());
    }
    // A half-finished or broken install looks "already satisfied" to pip: make it reinstall.
    let repair = killed_halfway || (!probe.version.is_empty() && import_broken);
    if killed_halfway {
        println!("the last install into {} did not finish: repairing it", libtorch_dir.display());
    } else if let (true, Some(error)) = (repair, &probe.import_error) {
        println!("torch is installed but does not import ({error}): repairing it");
    }
    if check_disk {
        let free = fs4::available_space(libtorch_dir)
            .with_context(|| format!("cannot read the free disk space of {}", libtorch_dir.display()))?;
        check_free_space(libtorch_dir, free, cpu_only, wheels_unpack_elsewhere(libtorch_dir, &env::temp_dir()))?;
    }
    fs::write(&marker, wanted_flavour).with_context(|| format!("cannot write {}", marker.display()))?;
    install_torch(venv_python, cpu_only, repair)?;
    fs::write(&flavour_file, wanted_flavour).with_context(|| format!("cannot write {}", flavour_file.display()))
}

/// Whether pip's temporary folder (where the wheels are downloaded and
/// unpacked) is on another file system than `libtorch_dir`; when unsure, no.
fn wheels_unpack_elsewhere(libtorch_dir: &Path, temporary_dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(libtorch_dir), fs::metadata(temporary_dir)) {
        (Ok(venv), Ok(temporary)) => venv.dev() != temporary.dev(),
        _ => false,
    }
}

/// Refuses an install that cannot fit, before pip starts filling the disk
/// (pip would fail minutes later, halfway through unpacking, with
/// "No space left on device"). With the wheels unpacked on another disk,
/// this one only needs room for what stays.
fn check_free_space(libtorch_dir: &Path, free_bytes: u64, cpu_only: bool, wheels_elsewhere: bool) -> Result<()> {
    let (peak, kept) =
        if cpu_only { (PEAK_BYTES_CPU_ONLY, KEPT_BYTES_CPU_ONLY) } else { (PEAK_BYTES_CUDA, KEPT_BYTES_CUDA) };
    let (needed, what) = if wheels_elsewhere {
        (kept, "for what stays installed (the wheels unpack in TMPDIR, on another disk)")
    } else {
        (peak, "at its peak (the downloaded wheels and what they unpack to)")
    };
    if free_bytes >= needed {
        return Ok(());
    }
    let gigabytes = |bytes: u64| bytes as f64 / 1e9;
    let smaller = if cpu_only {
        String::new()
    } else {
        format!(
            ", or install the CPU-only flavour (`cargo xtask setup --cpu-only`, {:.1} GB, for the Rust build only)",
            gigabytes(PEAK_BYTES_CPU_ONLY)
        )
    };
    bail!(
        "installing torch=={TORCH_VERSION} ({}) needs about {:.1} GB of free disk {what}, but {} has {:.1} GB \
         free: free some space, or pass --dir on a larger disk{smaller}",
        flavour(cpu_only),
        gigabytes(needed),
        libtorch_dir.display(),
        gigabytes(free_bytes),
    )
}

/// Checks the installed torch (its version, and that the full flavour
/// imports), clears the install-in-progress marker; returns the version and folder.
fn verify_torch(libtorch_dir: &Path, venv_python: &Path, cpu_only: bool) -> Result<(String, String)> {
    let probe = probe_torch(venv_python)?;
    let version = probe.version;
    if version.split('+').next() != Some(TORCH_VERSION) {
        bail!("the venv has torch {version:?} after installing, expected {TORCH_VERSION}");
    }
    match (probe.import_error, cpu_only) {
        (None, _) => {}
        (Some(error), false) => bail!("the venv's Python cannot `import torch` after installing: {error}"),
        (Some(error), true) => println!(
            "note: the CPU-only install serves the Rust build; its Python cannot `import torch` ({error}): \
             PyPI's torch is built with CUDA and needs the CUDA libraries this flavour leaves out, so the \
             Python scripts (ONNX export, the PyTorch comparisons) need the full install"
        ),
    }
    // Only a sound torch clears the marker of an install in progress.
    let marker = libtorch_dir.join(INCOMPLETE_MARKER);
    if marker.exists() {
        fs::remove_file(&marker).with_context(|| format!("cannot remove {}", marker.display()))?;
    }
    Ok((version, probe.folder))
}

/// Runs pip for torch: exact versions, wheels only; the CPU-only flavour
/// without torch's dependencies but with [`CPU_ONLY_EXTRAS`]; `repair`
/// reinstalls over what is there.
fn install_torch(venv_python: &Path, cpu_only: bool, repair: bool) -> Result<()> {
    let mut pip = Command::new(venv_python);
    pip.args(PIP_INSTALL);
    if repair {
        pip.arg("--force-reinstall");
    }
    if cpu_only {
        pip.arg("--no-deps").arg(format!("torch=={TORCH_VERSION}")).args(CPU_ONLY_EXTRAS);
    } else {
        pip.arg(format!("torch=={TORCH_VERSION}"));
    }
    println!("installing torch=={TORCH_VERSION} ({}) from PyPI", flavour(cpu_only));
    println!(
        "  (about {} of wheels to download; {} once installed)",
        if cpu_only { "0.6 GB" } else { "2.3 GB" },
        if cpu_only { "1.5 GB" } else { "5.0 GB" }
    );
    run_checked(&mut pip, "pip install")
}

/// Whether `program` is an executable file on PATH.
fn on_path(program: &str) -> bool {
    env::var_os("PATH").is_some_and(|path| env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Programs some tests need, from the distribution's packages.
struct Packages {
    /// What they are for, in messages.
    purpose: &'static str,
    /// The programs that must be on PATH.
    programs: &'static [&'static str],
    /// The Debian (and Ubuntu) packages that provide them.
    packages: &'static [&'static str],
    /// How to install them elsewhere.
    elsewhere: &'static str,
}

/// Chromium and its WebDriver, for the browser tests of `trainer serve`.
const BROWSER: Packages = Packages {
    purpose: "browser tests",
    programs: &["chromium", "chromedriver"],
    packages: &["chromium", "chromium-driver"],
    elsewhere: "install Chromium and the matching chromedriver",
};

/// Slurm's daemons and commands and munge, for the cluster tests of the sweep scripts.
const SLURM: Packages = Packages {
    purpose: "Slurm tests",
    programs: &["munged", "slurmctld", "slurmd", "sbatch", "scontrol", "squeue", "sinfo"],
    packages: &["slurm-wlm", "munge"],
    elsewhere: "install Slurm (slurmctld, slurmd and the client commands) and munge",
};

/// `packages`' programs: already there, or installed from Debian's (or
/// Ubuntu's) packages when running as root, or an error that says how to
/// install them.
fn install_packages(packages: &Packages) -> Result<()> {
    let names = packages.packages.join(" ");
    if packages.programs.iter().all(|program| on_path(program)) {
        println!("{names} are installed ({})", packages.purpose);
        return Ok(());
    }
    let is_root = Command::new("id").arg("-u").output().is_ok_and(|output| output.stdout.trim_ascii() == b"0");
    if !is_root || !on_path("apt-get") {
        bail!(
            "the {} need {} on PATH: on Debian or Ubuntu run, as root, `apt-get update && apt-get install {names}` \
             (what `cargo xtask setup` does as root with the flag for them); elsewhere {}",
            packages.purpose,
            packages.programs.join(", "),
            packages.elsewhere
        );
    }
    println!("installing {names} from the distribution's packages ({})", packages.purpose);
    run_checked(Command::new("apt-get").args(["update", "-qq"]), "apt-get update")?;
    run_checked(
        Command::new("apt-get")
            .args(["install", "-y", "-qq"])
            .args(packages.packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        &format!("apt-get install {names}"),
    )?;
    if let Some(missing) = packages.programs.iter().find(|program| !on_path(program)) {
        bail!("apt-get installed {names}, but `{missing}` is still not on PATH");
    }
    Ok(())
}

/// Python packages the project's scripts and tests use besides torch:
/// reading safetensors, writing ONNX (`trainer export`) and running it (its tests).
const PYTHON_TOOLS: [&str; 3] = ["safetensors==0.8.0", "onnx==1.23.2", "onnxruntime==1.32.0"];

/// Installs [`PYTHON_TOOLS`] into the venv unless the versions recorded in
/// `python-tools` next to it are already these.
fn install_python_tools(venv_python: &Path, libtorch_dir: &Path) -> Result<()> {
    let record = libtorch_dir.join("python-tools");
    let wanted = PYTHON_TOOLS.join(" ");
    if fs::read_to_string(&record).is_ok_and(|installed| installed == wanted) {
        return Ok(());
    }
    println!("installing {wanted} into the venv (checkpoint loading and ONNX export from Python)");
    let mut pip = Command::new(venv_python);
    run_checked(pip.args(PIP_INSTALL).args(PYTHON_TOOLS), "pip install")?;
    fs::write(&record, wanted).with_context(|| format!("cannot write {}", record.display()))
}

/// Fails with a clear message when the interpreter is missing or is not Python 3.
fn check_python(python: &str) -> Result<()> {
    let output = Command::new(python).arg("--version").output();
    match output {
        Ok(output) if output.status.success() => {
            let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            if !version.starts_with("Python 3.") {
                bail!("{python} --version says {version:?}: Python 3.10 or newer is needed");
            }
            println!("using {python} ({version})");
            Ok(())
        }
        Ok(output) => bail!("{python} --version failed: {}", String::from_utf8_lossy(&output.stderr).trim()),
        Err(error) => bail!(
            "{python} not found ({error}): install Python 3 with pip and venv \
             (Debian and Ubuntu: `apt install python3 python3-pip python3-venv`), or pass --python"
        ),
    }
}

/// Runs a command with inherited output; fails naming the step.
fn run_checked(command: &mut Command, step: &str) -> Result<()> {
    let status = command.status().with_context(|| format!("{step}: cannot start {command:?}"))?;
    if !status.success() {
        bail!("{step} failed ({status}): {command:?}");
    }
    Ok(())
}

/// What the venv's Python says of its torch.
#[derive(Debug)]
struct TorchProbe {
    /// The installed version (empty when not installed).
    version: String,
    /// Its package folder.
    folder: String,
    /// Why `import torch` fails, if it does.
    import_error: Option<String>,
}

/// Asks the venv's Python about its torch.
fn probe_torch(venv_python: &Path) -> Result<TorchProbe> {
    let output = Command::new(venv_python)
        .args(["-c", PROBE_TORCH])
        .output()
        .with_context(|| format!("cannot run {}", venv_python.display()))?;
    if !output.status.success() {
        bail!("{} could not look for torch: {}", venv_python.display(), String::from_utf8_lossy(&output.stderr).trim());
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut lines = stdout.lines().map(str::trim);
    let version = lines.next().unwrap_or_default().to_owned();
    let folder = lines.next().unwrap_or_default().to_owned();
    let import_error = match lines.next() {
        Some("import-ok") => None,
        Some(line) => Some(line.strip_prefix("import-failed: ").unwrap_or(line).to_owned()),
        None => Some("torch is not installed".to_owned()),
    };
    Ok(TorchProbe { version, folder, import_error })
}

/// A libtorch folder must hold `lib/libtorch_cpu.so` and `include/`.
fn check_libtorch_folder(dir: &Path) -> Result<()> {
    for needed in ["lib/libtorch_cpu.so", "include"] {
        if !dir.join(needed).exists() {
            bail!("{} is not a libtorch folder: it has no {needed}", dir.display());
        }
    }
    Ok(())
}

/// Makes `link` point at `target` (relative when possible), replacing any old link atomically.
fn point_link(link: &Path, target: &Path) -> Result<()> {
    let link_dir = link.parent().unwrap_or(Path::new("."));
    let relative_target = target.strip_prefix(link_dir).unwrap_or(target);
    if fs::read_link(link).is_ok_and(|current| current == relative_target) {
        return Ok(());
    }
    let temp_link = link_dir.join(format!(".torch.{}.link", std::process::id()));
    let _ = fs::remove_file(&temp_link);
    std::os::unix::fs::symlink(relative_target, &temp_link)
        .with_context(|| format!("cannot create the link {}", temp_link.display()))?;
    fs::rename(&temp_link, link).with_context(|| format!("cannot replace {}", link.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_install_that_cannot_fit_is_refused_naming_the_folder_and_both_sizes() {
        let dir = Path::new("some/where/.libtorch");
        assert!(check_free_space(dir, PEAK_BYTES_CUDA, false, false).is_ok());
        assert!(check_free_space(dir, PEAK_BYTES_CPU_ONLY, true, false).is_ok());

        let message = check_free_space(dir, 6_500_000_000, false, false).unwrap_err().to_string();
        assert!(message.contains("some/where/.libtorch has 6.5 GB free"), "{message}");
        assert!(message.contains("needs about 7.3 GB of free disk at its peak"), "{message}");
        assert!(message.contains("--cpu-only"), "{message}");

        let message = check_free_space(dir, 1_000_000_000, true, false).unwrap_err().to_string();
        assert!(message.contains("needs about 1.9 GB") && message.contains("has 1.0 GB free"), "{message}");
        assert!(!message.contains("--cpu-only`"), "the CPU-only flavour has no smaller one to offer: {message}");
    }

    #[test]
    fn with_the_wheels_unpacked_on_another_disk_only_what_stays_must_fit() {
        let dir = Path::new(".libtorch");
        assert!(check_free_space(dir, 6_500_000_000, false, true).is_ok(), "5.0 GB stay");
        let message = check_free_space(dir, 4_000_000_000, false, true).unwrap_err().to_string();
        assert!(message.contains("needs about 5.0 GB of free disk for what stays installed"), "{message}");
        assert!(check_free_space(dir, 1_600_000_000, true, true).is_ok(), "1.5 GB stay");
        // One file system, and two (procfs is never the repository's); a folder that does not exist counts as the same.
        let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        assert!(!wheels_unpack_elsewhere(crate_dir, &crate_dir.join("src")));
        assert!(wheels_unpack_elsewhere(crate_dir, Path::new("/proc")));
        assert!(!wheels_unpack_elsewhere(crate_dir, Path::new("/no/such/folder")));
    }
}
