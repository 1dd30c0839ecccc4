//! `trainer export`: a checkpoint's evaluation-mode network as TorchScript
//! (traced by libtorch here) or ONNX (written by `scripts/export_onnx.py`
//! with the project's venv Python, since libtorch cannot write ONNX). Both
//! take `[N, 1, 28, 28]` floats in `[0, 1]` and return `[N, 10]` logits, the
//! batch size `N` free. Several checkpoints export as one TorchScript graph
//! of their ensemble, whose scores are the log of the members' mean
//! probabilities.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use model::checkpoint;
use tch::{CModule, Kind, Tensor};

use crate::cli::{ExportArgs, ExportFormat};
use crate::run_dir;

/// The repository this binary was built from (for the venv and the script).
fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn export_torchscript(args: &ExportArgs) -> Result<()> {
    let device = args.device.resolve()?;
    let paths = crate::inference::checkpoint_paths(&args.checkpoint, || unreachable!("--checkpoint is required"))?;
    let models = crate::inference::load_ensemble(&paths, device, false, &args.tta)?;
    // Traced on a detached copy: the module holds plain constants, no autograd state.
    // An ensemble is traced whole: one graph running every member and
    // averaging; test-time views likewise become part of the graph.
    let classifier = model::Classifier::detached(&models.classifier)?;
    let side = model::network::IMAGE_SIDE;
    let example = Tensor::rand([2, 1, side, side], (Kind::Float, device));
    // The tracer wants tensors back; a failed forward pass is kept here and reported instead.
    let mut forward_error = None;
    let module = tch::no_grad(|| {
        CModule::create_by_tracing("MnistCnn", "forward", &[example], &mut |inputs| match classifier.logits(&inputs[0])
        {
            Ok(logits) => vec![logits],
            Err(error) => {
                forward_error = Some(error);
                Vec::new()
            }
        })
    });
    if let Some(error) = forward_error {
        return Err(error).context("tracing the network");
    }
    let module = module.context("tracing the network")?;
    // libtorch saves only to a path: to a scratch folder beside the output,
    // then through the run directory's one way of writing a file.
    let parent = args.out.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let scratch = tempfile::Builder::new().prefix(".trainer-export-").tempdir_in(parent).with_context(|| {
        format!("cannot write {}: cannot create a scratch folder in {}", args.out.display(), parent.display())
    })?;
    let traced = scratch.path().join("module.pt");
    module.save(&traced).with_context(|| format!("cannot write {}", traced.display()))?;
    let bytes = std::fs::read(&traced).with_context(|| format!("cannot read back {}", traced.display()))?;
    run_dir::write_atomically(&args.out, &bytes)
}

/// The Python that writes ONNX: `TRAINER_PYTHON`, or the project's venv.
fn export_python() -> PathBuf {
    std::env::var_os("TRAINER_PYTHON").map_or_else(|| repository().join(".libtorch/venv/bin/python"), PathBuf::from)
}

fn export_onnx(args: &ExportArgs) -> Result<()> {
    let paths = crate::inference::checkpoint_paths(&args.checkpoint, || unreachable!("--checkpoint is required"))?;
    let [checkpoint] = paths.as_slice() else {
        bail!(
            "--format onnx exports one checkpoint, {} were given: export an ensemble with --format torchscript",
            paths.len()
        );
    };
    if !args.tta.is_identity() {
        bail!(
            "--format onnx exports the network alone, but --tta {} asks for test-time views: export them with --format torchscript",
            args.tta
        );
    }
    // Reading the checkpoint here first gives this program's own error for a bad file.
    checkpoint::read_meta(checkpoint)?;
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
        .arg(checkpoint)
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

/// Writes a checkpoint's network as TorchScript or ONNX.
pub fn run(args: &ExportArgs) -> Result<()> {
    match args.format {
        ExportFormat::Torchscript => export_torchscript(args)?,
        ExportFormat::Onnx => export_onnx(args)?,
    }
    println!("wrote {}", args.out.display());
    Ok(())
}
