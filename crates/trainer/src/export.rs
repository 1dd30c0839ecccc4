//! `trainer export`: a checkpoint's evaluation-mode network as TorchScript
//! (traced by libtorch here) or ONNX (written by `scripts/export_onnx.py`
//! with the project's venv Python, since libtorch cannot write ONNX). Both
//! take `[N, 1, 28, 28]` floats in `[0, 1]` and return `[N, 10]` logits, the
//! batch size `N` free.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use model::checkpoint;
use tch::{CModule, Kind, Tensor};

use crate::cli::{ExportArgs, ExportFormat};

/// The repository this binary was built from (for the venv and the script).
fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The file to write through, renamed into place when complete.
fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(format!(".{}.part", std::process::id()));
    PathBuf::from(name)
}

fn export_torchscript(args: &ExportArgs) -> Result<()> {
    let device = args.device.resolve()?;
    let loaded = checkpoint::load(&args.checkpoint, device)?;
    // Traced on detached copies: the module holds plain constants, no autograd state.
    let network = loaded.network.detached_copy();
    let example = Tensor::rand([2, 1, 28, 28], (Kind::Float, device));
    let module = tch::no_grad(|| {
        CModule::create_by_tracing("MnistCnn", "forward", &[example], &mut |inputs| {
            vec![network.forward(&inputs[0], false)]
        })
    })
    .context("tracing the network")?;
    let partial = partial_path(&args.out);
    module.save(&partial).with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, &args.out).with_context(|| format!("cannot write {}", args.out.display()))
}

/// The Python that writes ONNX: `TRAINER_PYTHON`, or the project's venv.
fn export_python() -> PathBuf {
    std::env::var_os("TRAINER_PYTHON").map_or_else(|| repository().join(".libtorch/venv/bin/python"), PathBuf::from)
}

fn export_onnx(args: &ExportArgs) -> Result<()> {
    // Reading the checkpoint here first gives this program's own error for a bad file.
    checkpoint::read_meta(&args.checkpoint)?;
    let python = export_python();
    let script = repository().join("scripts/export_onnx.py");
    if !python.exists() {
        bail!(
            "ONNX export needs Python with torch and onnx: {} does not exist (run `cargo xtask setup`, which \
             installs them there, or set TRAINER_PYTHON to such a Python)",
            python.display()
        );
    }
    if !script.exists() {
        bail!("ONNX export runs {}, which is missing (this binary was built from another checkout?)", script.display());
    }
    let output = Command::new(&python)
        .arg(&script)
        .arg(&args.checkpoint)
        .arg(&args.out)
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or("no message");
        bail!("{} {} failed: {last}", python.display(), script.display());
    }
    Ok(())
}

pub fn run(args: &ExportArgs) -> Result<()> {
    match args.format {
        ExportFormat::Torchscript => export_torchscript(args)?,
        ExportFormat::Onnx => export_onnx(args)?,
    }
    println!("wrote {}", args.out.display());
    Ok(())
}
