//! `trainer evaluate`: a checkpoint, or an ensemble of several, on a split
//! of the data set or on any IDX pair: accuracy (each member's too),
//! per-class accuracy and the confusion matrix.

use anyhow::{Context, Result};
use idx::mnist::{N_CLASSES, Split, load_split_with};
use model::probabilities;
use scoring::Scores;
use serde_json::json;
use tch::Device;

use crate::cli::{EvaluateArgs, SplitChoice};
use crate::data::split_tensors;
use crate::inference::{Models, checkpoint_paths, load_ensemble};
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

/// Refuses to measure a checkpoint on validation images it trained on: when
/// its run's `config.json` (beside it) held out another fold or size than
/// `--split validation` would load now. A checkpoint without a readable
/// `config.json` has no record to compare with and is measured as asked.
fn check_validation_holdout(args: &EvaluateArgs, paths: &[std::path::PathBuf]) -> Result<()> {
    if args.split != SplitChoice::Validation || args.images.is_some() {
        return Ok(());
    }
    let given = (args.data.validation_fold as u64, args.data.validation_size as u64);
    for path in paths {
        let Some(config_path) = path.parent().map(|dir| dir.join(crate::run_dir::CONFIG_FILE)) else { continue };
        let Ok(text) = std::fs::read(&config_path) else { continue };
        let Ok(config) = serde_json::from_slice::<serde_json::Value>(&text) else { continue };
        let recipe = &config["recipe"];
        let held_out = (recipe["validation_fold"].as_u64().unwrap_or(0), recipe["validation_size"].as_u64());
        if let (fold, Some(size)) = held_out
            && (fold, size) != given
        {
            anyhow::bail!(
                "{}: its run held out validation fold {fold} of {size} images ({}), but --split validation now loads fold {} of {}: the checkpoint trained on some of those images; pass --validation-fold {fold} --validation-size {size}",
                path.display(),
                config_path.display(),
                given.0,
                given.1
            );
        }
    }
    Ok(())
}

/// Each member's accuracy, when there are several (an ensemble).
fn member_scores(models: &Models, images: &tch::Tensor, labels: &[u8], batch_size: usize) -> Result<Vec<Scores>> {
    if models.members.len() < 2 {
        return Ok(Vec::new());
    }
    models
        .member_classifiers()?
        .iter()
        .zip(&models.members)
        .map(|(classifier, member)| {
            let rows = probabilities(classifier, images, batch_size)?;
            Scores::from_probabilities(&rows, labels, N_CLASSES)
                .with_context(|| format!("scoring {}", member.path.display()))
        })
        .collect()
}

/// Evaluates a checkpoint (or an ensemble of several) on a split or on IDX
/// files and prints the accuracy, per class too.
pub fn run(args: &EvaluateArgs) -> Result<()> {
    crate::cli::check_range("--batch-size", args.batch_size, 1, crate::cli::MAX_BATCH)?;
    let device = args.device.resolve()?;
    let paths = checkpoint_paths(&args.checkpoint, || RunDir::new(&args.save_dir).best_checkpoint())?;
    check_validation_holdout(args, &paths)?;
    let (source, split) = load_images(args)?;
    crate::data::check_image_size(&source, &split)?;
    let models = load_ensemble(&paths, device, args.allow_nonfinite, &args.tta)?;
    // `probabilities` moves one batch at a time to the network's device.
    let (images, _) = split_tensors(&split, None, Device::Cpu)?;
    let rows = probabilities(&models.classifier, &images, args.batch_size)?;
    let labels = split.labels.as_slice().context("label array is not contiguous")?;
    let scores = Scores::from_probabilities(&rows, labels, N_CLASSES).with_context(|| format!("scoring {source}"))?;
    let members = member_scores(&models, &images, labels, args.batch_size)?;
    if args.json {
        return print_json(&models, &source, &split, &scores, &members);
    }
    println!("checkpoint: {}", models.describe());
    for (member, member_scores) in models.members.iter().zip(&members) {
        println!(
            "  member {}: accuracy {:.5} ({} network, {} epochs)",
            member.path.display(),
            member_scores.accuracy(),
            member.architecture.name(),
            member.epoch
        );
    }
    print_scores(&source, &split, &scores);
    Ok(())
}

fn print_json(models: &Models, source: &str, split: &Split, scores: &Scores, members: &[Scores]) -> Result<()> {
    let first = &models.members[0];
    let member_reports: Vec<serde_json::Value> = models
        .members
        .iter()
        .zip(members)
        .map(|(member, scores)| {
            json!({
                "checkpoint": member.path,
                "architecture": member.architecture.name(),
                "epoch": member.epoch,
                "n_correct": scores.n_correct(),
                "accuracy": scores.accuracy(),
            })
        })
        .collect();
    let report = json!({
        "checkpoint": first.path,
        "architecture": first.architecture.name(),
        "epoch": first.epoch,
        "members": member_reports,
        "test_time_views": models.classifier.views().to_string(),
        "n_views": models.classifier.views().len(),
        "images": source,
        "n_images": split.len(),
        "n_correct": scores.n_correct(),
        "accuracy": scores.accuracy(),
        "per_class_accuracy": scores.per_class_accuracy(),
        "confusion_matrix": scores.confusion,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn print_scores(source: &str, split: &Split, scores: &Scores) {
    let (confusion, n_correct, accuracy) = (&scores.confusion, scores.n_correct(), scores.accuracy());
    println!("images: {source} ({} images)", split.len());
    println!("accuracy: {accuracy:.5} ({n_correct}/{})", split.len());
    println!("per-class accuracy:");
    for (class, class_accuracy) in scores.per_class_accuracy().iter().enumerate() {
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
}
