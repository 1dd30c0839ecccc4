//! `trainer evaluate`: a checkpoint on a split of the data set or on any IDX
//! pair: accuracy, per-class accuracy and the confusion matrix.

use anyhow::{Context, Result};
use idx::mnist::{N_CLASSES, Split, load_split_with};
use model::probabilities;
use scoring::Scores;
use serde_json::json;
use tch::Device;

use crate::cli::{EvaluateArgs, SplitChoice};
use crate::data::split_tensors;
use crate::run_dir::RunDir;

fn load_images(args: &EvaluateArgs) -> Result<(String, Split)> {
    if let (Some(images), Some(labels)) = (&args.images, &args.labels) {
        let split = load_split_with(images, labels, args.data.load_options())?;
        return Ok((format!("{} + {}", images.display(), labels.display()), split));
    }
    let mnist = crate::data::load(&args.data)?;
    let name = args.data.dataset.name;
    Ok(match args.split {
        SplitChoice::Train => (format!("{name} train"), mnist.train),
        SplitChoice::Validation => (format!("{name} validation"), mnist.validation),
        SplitChoice::Test => (format!("{name} test"), mnist.test),
    })
}

/// Evaluates a checkpoint on a split or on IDX files and prints the accuracy, per class too.
pub fn run(args: &EvaluateArgs) -> Result<()> {
    crate::cli::check_range("--batch-size", args.batch_size, 1, crate::cli::MAX_BATCH)?;
    let device = args.device.resolve()?;
    let path = args.checkpoint.clone().unwrap_or_else(|| RunDir::new(&args.save_dir).best_checkpoint());
    let (source, split) = load_images(args)?;
    crate::data::check_image_size(&source, &split)?;
    let loaded = crate::inference::load(&path, device, args.allow_nonfinite)?;
    // `probabilities` moves one batch at a time to the network's device.
    let (images, _) = split_tensors(&split, None, Device::Cpu)?;
    let rows = probabilities(&loaded.network, &images, args.batch_size)?;
    let labels = split.labels.as_slice().context("label array is not contiguous")?;
    let scores = Scores::from_probabilities(&rows, labels, N_CLASSES).with_context(|| format!("scoring {source}"))?;
    let (confusion, n_correct, accuracy) = (&scores.confusion, scores.n_correct(), scores.accuracy());
    let per_class = scores.per_class_accuracy();
    if args.json {
        let report = json!({
            "checkpoint": path,
            "architecture": loaded.network.architecture().name(),
            "epoch": loaded.meta.epoch,
            "images": source,
            "n_images": split.len(),
            "n_correct": n_correct,
            "accuracy": accuracy,
            "per_class_accuracy": per_class,
            "confusion_matrix": confusion,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "checkpoint: {} ({} network, {} epochs)",
        path.display(),
        loaded.network.architecture().name(),
        loaded.meta.epoch
    );
    println!("images: {source} ({} images)", split.len());
    println!("accuracy: {accuracy:.5} ({n_correct}/{})", split.len());
    println!("per-class accuracy:");
    for (class, class_accuracy) in per_class.iter().enumerate() {
        match class_accuracy {
            Some(value) => println!("  {class}: {value:.5}"),
            None => println!("  {class}: no images"),
        }
    }
    println!("confusion matrix (rows: true class, columns: predicted class):");
    println!("     {}", (0..N_CLASSES).map(|class| format!("{class:>6}")).collect::<String>());
    for (class, row) in confusion.iter().enumerate() {
        println!("  {class}: {}", row.iter().map(|count| format!("{count:>6}")).collect::<String>());
    }
    Ok(())
}
