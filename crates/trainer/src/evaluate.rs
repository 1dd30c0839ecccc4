//! `trainer evaluate`: a checkpoint on a split of the data set or on any IDX
//! pair: accuracy, per-class accuracy and the confusion matrix.

use std::path::Path;

use anyhow::{Context, Result, bail};
use idx::mnist::{N_CLASSES, Split, load_split_with};
use model::{Checkpoint, checkpoint, predict};
use serde_json::json;
use tch::Device;

use crate::cli::{EvaluateArgs, SplitChoice};
use crate::data::split_tensors;
use crate::run_dir::RunDir;

/// `confusion[true_class][predicted_class]`: how many images of each class got each prediction.
pub fn confusion_matrix(labels: &[u8], predictions: &[i64]) -> [[u64; N_CLASSES]; N_CLASSES] {
    let mut confusion = [[0u64; N_CLASSES]; N_CLASSES];
    for (&label, &predicted) in labels.iter().zip(predictions) {
        let row = confusion.get_mut(usize::from(label));
        if let (Some(row), Ok(column)) = (row, usize::try_from(predicted))
            && let Some(count) = row.get_mut(column)
        {
            *count += 1;
        }
    }
    confusion
}

fn load_images(args: &EvaluateArgs) -> Result<(String, Split)> {
    if let (Some(images), Some(labels)) = (&args.images, &args.labels) {
        let split = load_split_with(images, labels, args.data.load_options())?;
        return Ok((format!("{} + {}", images.display(), labels.display()), split));
    }
    let mnist = crate::data::load(&args.data)?;
    let name = args.data.dataset.dir_name();
    Ok(match args.split {
        SplitChoice::Train => (format!("{name} train"), mnist.train),
        SplitChoice::Validation => (format!("{name} validation"), mnist.validation),
        SplitChoice::Test => (format!("{name} test"), mnist.test),
    })
}

/// Loads a checkpoint to run the network: one whose weights, moving averages
/// or optimizer moments hold NaN or infinity is refused, naming the tensor,
/// unless `allow_nonfinite` (then it is used with a warning).
pub fn load_for_inference(path: &Path, device: Device, allow_nonfinite: bool) -> Result<Checkpoint> {
    let loaded = checkpoint::load(path, device)?;
    if let Err(error) = checkpoint::check_finite(&loaded.network, &loaded.optimizer) {
        if !allow_nonfinite {
            bail!("{}: {error}: not using it (pass --allow-nonfinite to use it anyway)", path.display());
        }
        tracing::warn!(
            "{}: {error}: using it anyway (--allow-nonfinite); its answers may be meaningless",
            path.display()
        );
    }
    Ok(loaded)
}

/// Evaluates a checkpoint on a split or on IDX files and prints the accuracy, per class too.
pub fn run(args: &EvaluateArgs) -> Result<()> {
    crate::cli::check_range("--batch-size", args.batch_size, 1, crate::cli::MAX_BATCH)?;
    let device = args.device.resolve()?;
    let path = args.checkpoint.clone().unwrap_or_else(|| RunDir::new(&args.save_dir).best_checkpoint());
    let (source, split) = load_images(args)?;
    crate::data::check_image_size(&source, &split)?;
    let loaded = load_for_inference(&path, device, args.allow_nonfinite)?;
    // `predict` moves one batch at a time to the network's device.
    let (images, _) = split_tensors(&split, None, Device::Cpu)?;
    let predictions = predict(&loaded.network, &images, args.batch_size)?;
    let labels = split.labels.as_slice().context("label array is not contiguous")?;
    let confusion = confusion_matrix(labels, &predictions);
    let n_correct: u64 = (0..N_CLASSES).map(|class| confusion[class][class]).sum();
    let accuracy = n_correct as f64 / split.len().max(1) as f64;
    let per_class: Vec<Option<f64>> = confusion
        .iter()
        .enumerate()
        .map(|(class, row)| {
            let n_class: u64 = row.iter().sum();
            (n_class > 0).then(|| row[class] as f64 / n_class as f64)
        })
        .collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_confusion_matrix_counts_true_against_predicted() {
        let confusion = confusion_matrix(&[0, 0, 1, 9, 9], &[0, 1, 1, 9, 3]);
        assert_eq!(confusion[0][0], 1);
        assert_eq!(confusion[0][1], 1);
        assert_eq!(confusion[1][1], 1);
        assert_eq!(confusion[9][9], 1);
        assert_eq!(confusion[9][3], 1);
        assert_eq!(confusion.iter().flatten().sum::<u64>(), 5);
    }
}
