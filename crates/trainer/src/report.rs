//! `trainer report`: a run directory's records and best checkpoint as
//! figures and one HTML page (drawn by the `report` crate). Works on a run
//! still training (a partial `metrics.jsonl`, no test record, a torn last
//! line) and, without the checkpoint-based figures, on a run whose
//! checkpoints are gone.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use idx::mnist::Split;
use model::probabilities;
use report::{Curves, EpochPoint, Figure, Mistake, Page};
use runfiles::{EpochRecord, Records};
use scoring::Scores;
use serde_json::Value;
use tch::Device;

use crate::cli::{DataArgs, ReportArgs};
use crate::run_dir::{self, RunDir};

/// Reads `metrics.jsonl`, skipping lines that are not records.
pub fn read_records(path: &Path) -> Result<Records> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Records::parse(&text))
}

/// An epoch's record as the curves plot it.
fn epoch_point(record: &EpochRecord) -> EpochPoint {
    EpochPoint {
        epoch: record.epoch,
        train_loss: record.loss,
        validation_loss: record.validation_loss,
        train_accuracy: record.train_accuracy.unwrap_or(f64::NAN),
        validation_accuracy: record.validation_accuracy,
    }
}

/// The run's settings from `config.json`, as `key: value` rows (empty without one).
/// How many training images each epoch's training accuracy was measured on
/// (the recipe's `train_accuracy_images`), when the run recorded it.
fn train_sample_images(run: &RunDir) -> Option<u64> {
    let text = std::fs::read_to_string(run.config_path()).ok()?;
    let config: Value = serde_json::from_str(&text).ok()?;
    config["recipe"]["train_accuracy_images"].as_u64()
}

fn settings(run: &RunDir) -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string(run.config_path()) else { return Vec::new() };
    let Ok(config) = serde_json::from_str::<Value>(&text) else { return Vec::new() };
    let mut rows = Vec::new();
    for section in ["settings", "model"] {
        if let Some(object) = config.get(section).and_then(Value::as_object) {
            for (key, value) in object {
                let text = match value {
                    Value::String(text) => text.clone(),
                    Value::Object(_) => value.to_string(),
                    other => other.to_string(),
                };
                rows.push((key.clone(), text));
            }
        }
    }
    for key in ["device", "threads", "libtorch", "version"] {
        if let Some(value) = config.get(key) {
            rows.push((key.to_owned(), value.as_str().map_or_else(|| value.to_string(), str::to_owned)));
        }
    }
    rows
}

/// The test images of the data set the checkpoint was trained on.
fn test_split(data: &DataArgs, dataset_name: &str) -> Result<Split> {
    let data = DataArgs { dataset: datasets::by_name(dataset_name)?, ..data.clone() };
    Ok(crate::data::load(&data)?.test)
}

/// The test set through the best checkpoint (or an ensemble): the confusion
/// matrix and the mistakes, worst (least probability on the true class) first.
struct TestResults {
    confusion: Vec<Vec<u64>>,
    mistakes: Vec<Mistake>,
    n_mistakes: usize,
    n_images: usize,
    class_names: Vec<String>,
    /// Each member's test accuracy, for an ensemble of several.
    members: Vec<(crate::inference::Member, f64)>,
}

fn test_results(args: &ReportArgs, paths: &[PathBuf], device: Device) -> Result<TestResults> {
    let models = crate::inference::load_ensemble(paths, device, false, &args.tta)?;
    let test = test_split(&args.data, &models.dataset.name)?;
    let (images, _) = crate::data::split_tensors(&test, None, Device::Cpu)?;
    let labels = test.labels.as_slice().context("label array is not contiguous")?;
    let n_classes = models.dataset.class_names.len();
    let score = |classifier: &dyn model::Classifier| -> Result<Scores> {
        let rows = probabilities(classifier, &images, 500)?;
        Scores::from_probabilities(&rows, labels, n_classes).context("scoring the test images")
    };
    let scores = score(&models.classifier)?;
    let mut members = Vec::new();
    if models.members.len() > 1 {
        for (classifier, member) in models.member_classifiers()?.iter().zip(&models.members) {
            members.push((member.clone(), score(classifier)?.accuracy()));
        }
    }
    let n_mistakes = scores.mistakes.len();
    let mistakes = scores
        .mistakes
        .iter()
        .take(args.max_mistakes)
        .map(|mistake| Mistake {
            pixels: test.images.index_axis(ndarray::Axis(0), mistake.index).iter().copied().collect(),
            true_class: mistake.true_class,
            predicted_class: mistake.predicted_class,
            probability: mistake.predicted_probability,
        })
        .collect();
    Ok(TestResults {
        n_images: labels.len(),
        confusion: scores.confusion,
        mistakes,
        n_mistakes,
        class_names: models.dataset.class_names,
        members,
    })
}

/// The run's name: its folder's.
fn run_name(dir: &Path) -> String {
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    canonical.file_name().map_or_else(|| dir.display().to_string(), |name| name.to_string_lossy().into_owned())
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    let path = dir.join(name);
    run_dir::write_atomically(&path, bytes)?;
    Ok(path)
}

/// The run's records, checked: at least one epoch; torn lines reported.
fn load_records(run: &RunDir, save_dir: &Path) -> Result<Records> {
    if !run.metrics_path().exists() {
        bail!("{} has no metrics.jsonl: is it a run directory (--save-dir)?", save_dir.display());
    }
    let records = read_records(&run.metrics_path())?;
    if records.epochs.is_empty() {
        bail!("{}: no epoch has been recorded yet", run.metrics_path().display());
    }
    if records.skipped_lines > 0 {
        tracing::warn!(
            "{}: skipped {} line(s) that are not records",
            run.metrics_path().display(),
            records.skipped_lines
        );
    }
    Ok(records)
}

/// The page's headline facts: status, epochs, best epoch, latest validation, test.
fn facts(records: &Records, test_accuracy: Option<f64>) -> Vec<(String, String)> {
    let mut facts = Vec::new();
    let last = records.epochs.last().expect("at least one epoch");
    let status = if records.test.is_some() { "finished" } else { "training (or stopped)" };
    facts.push(("status".into(), status.into()));
    facts.push(("epochs recorded".into(), records.epochs.len().to_string()));
    if let Some(best) = records.best_epoch().and_then(|best| records.epochs.iter().find(|point| point.epoch == best)) {
        let text = format!("{} (validation accuracy {:.4})", best.epoch + 1, best.validation_accuracy);
        facts.push(("best epoch".into(), text));
    }
    let latest = format!("{:.4} (epoch {})", last.validation_accuracy, last.epoch + 1);
    facts.push(("latest validation accuracy".into(), latest));
    if let Some(test) = test_accuracy {
        facts.push(("test accuracy (best checkpoint)".into(), format!("{test:.4}")));
    }
    facts
}

/// The figures that need the best checkpoint, or the ensemble of `paths`
/// (confusion matrix, mistakes, per-class accuracy), written to `out` and
/// added to `page`; an ensemble's members get a table of their accuracies.
fn checkpoint_figures(args: &ReportArgs, paths: &[PathBuf], out: &Path, page: &mut Page) -> Result<Vec<PathBuf>> {
    let results = test_results(args, paths, args.device.resolve()?)?;
    let mut what = if paths.len() > 1 { format!("ensemble of {}", paths.len()) } else { "best checkpoint".to_owned() };
    if !args.tta.is_identity() {
        // The run's own records hold the test without views: this one is another figure.
        what = format!("{what} through test-time views {}", args.tta);
        let accuracy = 1.0 - results.n_mistakes as f64 / results.n_images as f64;
        let views = format!("{} ({} views of each image)", args.tta, args.tta.len());
        page.facts.push(("test-time views".into(), views));
        page.facts.push(("test accuracy through the views".into(), format!("{accuracy:.4}")));
    }
    let title = format!("Test set, {what}: {} of {} misclassified", results.n_mistakes, results.n_images);
    let confusion = report::confusion_png(&results.confusion, &results.class_names, &title)?;
    let shown = results.mistakes.len();
    let mistakes_title = format!(
        "{} of {} test images misclassified{} (true → predicted, probability given)",
        results.n_mistakes,
        results.n_images,
        if shown < results.n_mistakes { format!(", the {shown} worst") } else { String::new() }
    );
    let mistakes = report::mistakes_png(&results.mistakes, preprocess::SIDE, &results.class_names, &mistakes_title)?;
    let written = vec![write(out, "confusion.png", &confusion)?, write(out, "misclassified.png", &mistakes)?];
    let through =
        if args.tta.is_identity() { String::new() } else { format!(", through test-time views {}", args.tta) };
    let title = format!("Confusion matrix (rows: true class){through}");
    page.figures.push(Figure::Png { title, png: confusion });
    let title = format!("Misclassified test images, worst first{through}");
    page.figures.push(Figure::Png { title, png: mistakes });
    page.per_class = results
        .class_names
        .iter()
        .enumerate()
        .map(|(class, name)| (name.clone(), results.confusion[class][class], results.confusion[class].iter().sum()))
        .collect();
    if !results.members.is_empty() {
        let accuracy = 1.0 - results.n_mistakes as f64 / results.n_images as f64;
        page.facts.push(("test accuracy (ensemble)".into(), format!("{accuracy:.4}")));
        page.tables.push(report::Table {
            title: format!("Members of the ensemble (it answers with the mean of their probabilities): {accuracy:.4}"),
            header: ["checkpoint", "network", "epochs", "test accuracy"].map(str::to_owned).to_vec(),
            rows: results
                .members
                .iter()
                .map(|(member, accuracy)| {
                    vec![
                        member.path.display().to_string(),
                        member.architecture.name().to_owned(),
                        member.epoch.to_string(),
                        format!("{accuracy:.4}"),
                    ]
                })
                .collect(),
        });
    }
    Ok(written)
}

/// `trainer report --checkpoint ...` without a run: the ensemble's (or the
/// checkpoint's) test figures and page, in `--out`.
fn report_checkpoints(args: &ReportArgs, paths: &[PathBuf]) -> Result<()> {
    let Some(out) = &args.out else {
        bail!("--checkpoint without a run directory (--save-dir) needs --out: where to write the figures");
    };
    std::fs::create_dir_all(out).with_context(|| format!("cannot create --out {}", out.display()))?;
    let mut page = Page { title: format!("Ensemble of {} checkpoints", paths.len()), ..Page::default() };
    if let [only] = paths {
        page.title = format!("Checkpoint {}", only.display());
    }
    let mut written = checkpoint_figures(args, paths, out, &mut page)?;
    written.push(write(out, "index.html", report::index_html(&page).as_bytes())?);
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Draws a run directory's figures and page, or a sweep's (`crate::runs::report`).
pub fn run(args: &ReportArgs) -> Result<()> {
    let run_dir_given = RunDir::new(&args.save_dir).metrics_path().exists();
    if !args.checkpoint.is_empty() && !run_dir_given {
        let paths = crate::inference::checkpoint_paths(&args.checkpoint, || unreachable!("checked non-empty"))?;
        return report_checkpoints(args, &paths);
    }
    if crate::runs::is_sweep(&args.save_dir) {
        let out = args.out.clone().unwrap_or_else(|| args.save_dir.join("report"));
        for path in crate::runs::report(&args.save_dir, &out)? {
            println!("wrote {}", path.display());
        }
        return Ok(());
    }
    let run = RunDir::new(&args.save_dir);
    let records = load_records(&run, &args.save_dir)?;
    let out = args.out.clone().unwrap_or_else(|| args.save_dir.join("report"));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create --out {}", out.display()))?;
    let name = run_name(&args.save_dir);
    let test_accuracy = records.test.as_ref().map(|test| test.accuracy);
    let curves = Curves {
        title: name.clone(),
        epochs: records.epochs.iter().map(epoch_point).collect(),
        best_epoch: records.best_epoch(),
        test_accuracy,
        train_sample_images: train_sample_images(&run),
    };
    let svg = report::curves_svg(&curves)?;
    let mut written =
        vec![write(&out, "curves.svg", svg.as_bytes())?, write(&out, "curves.png", &report::curves_png(&curves)?)?];
    let mut page = Page {
        title: format!("Run {name}"),
        settings: settings(&run),
        facts: facts(&records, test_accuracy),
        figures: vec![Figure::Svg { title: "Loss and accuracy per epoch".into(), svg }],
        ..Page::default()
    };
    let best = run.best_checkpoint();
    let paths = crate::inference::checkpoint_paths(&args.checkpoint, || best.clone());
    if !args.checkpoint.is_empty() || best.exists() {
        written.extend(checkpoint_figures(args, &paths?, &out, &mut page)?);
    } else {
        page.notes.push(format!(
            "{} does not exist: the confusion matrix, the mistakes and the per-class accuracy need it",
            best.display()
        ));
    }
    written.push(write(&out, "index.html", report::index_html(&page).as_bytes())?);
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_and_foreign_lines_are_skipped_and_the_test_record_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(
            &path,
            "{\"epoch\":0,\"loss\":0.5,\"train_accuracy\":0.9,\"validation_accuracy\":0.91,\"validation_loss\":0.3,\"best_epoch\":0}\n\
             {\"note\":\"not an epoch\"}\n\
             {\"epoch\":1,\"loss\":0.2,\"train_accuracy\":0.95,\"validation_accuracy\":0.9,\"best_epoch\":0}\n\
             {\"test\":{\"accuracy\":0.93}}\n\
             {\"epoch\":2,\"lo",
        )
        .unwrap();
        let records = read_records(&path).unwrap();
        assert_eq!(records.epochs.len(), 2);
        assert_eq!(records.epochs[1].validation_loss, None);
        assert_eq!(records.best_epoch(), Some(0));
        assert_eq!(records.test.unwrap().accuracy, 0.93);
        assert_eq!(records.skipped_lines, 2);
    }
}
