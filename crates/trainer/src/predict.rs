//! `trainer predict`: a trained network on people's own images (prepared
//! the way the data set was made, by the `preprocess` crate) or on an IDX
//! file as it is. Every input gets a line; a bad input gets an error naming
//! it, the others are still predicted, and the exit code says that
//! something failed.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use model::probabilities;

use crate::inference::{Models, checkpoint_paths, load_ensemble};
use preprocess::{Limits, Options, PrepError, SIDE};
use rayon::prelude::*;
use serde_json::{Value, json};
use tch::Tensor;

use crate::cli::PredictArgs;

/// One input: where it came from, and what the network was shown.
struct Input {
    /// The file as given (`-` for standard input, `FILE[index]` for IDX images).
    label: String,
    /// The image's position in an IDX file.
    idx_index: Option<usize>,
    /// The 28x28 image, or why there is none.
    image: Result<Prepared, String>,
}

/// A 28x28 image ready for the network.
struct Prepared {
    pixels: Vec<f32>,
    /// Whether preprocessing inverted it (`None` for IDX images, which are not preprocessed).
    inverted: Option<bool>,
}

fn read_input(path: &Path, limits: Limits) -> Result<Vec<u8>, PrepError> {
    let name = path.display().to_string();
    if path == Path::new("-") {
        return preprocess::read_limited(std::io::stdin().lock(), &name, limits);
    }
    let file = std::fs::File::open(path).map_err(|error| PrepError::Io { name: name.clone(), error })?;
    preprocess::read_limited(file, &name, limits)
}

fn prepare_file(path: &Path, options: &Options) -> Result<Prepared, String> {
    let limits = Limits::default();
    let name = path.display().to_string();
    let bytes = read_input(path, limits).map_err(|error| error.to_string())?;
    let grey = preprocess::decode_grey(&bytes, &name, limits).map_err(|error| error.to_string())?;
    let prepared = preprocess::prepare(grey.view(), options, &name).map_err(|error| error.to_string())?;
    Ok(Prepared { pixels: prepared.image.iter().copied().collect(), inverted: Some(prepared.inverted) })
}

/// Reads and prepares the image files, in parallel, keeping their order.
fn image_inputs(files: &[PathBuf], options: &Options) -> Result<Vec<Input>> {
    let stdin_uses = files.iter().filter(|path| path.as_path() == Path::new("-")).count();
    ensure!(stdin_uses <= 1, "`-` (standard input) is given {stdin_uses} times: it holds one image");
    Ok(files
        .par_iter()
        .map(|path| Input { label: path.display().to_string(), idx_index: None, image: prepare_file(path, options) })
        .collect())
}

/// Every image of an IDX file, as it is.
fn idx_inputs(path: &Path) -> Result<Vec<Input>> {
    let images = idx::mnist::load_images(path)?;
    let (_, rows, cols) = images.dim();
    ensure!((rows, cols) == (SIDE, SIDE), "{}: images are {rows}x{cols}, the network takes 28x28", path.display());
    let label = path.display().to_string();
    Ok(images
        .outer_iter()
        .enumerate()
        .map(|(index, image)| Input {
            label: format!("{label}[{index}]"),
            idx_index: Some(index),
            image: Ok(Prepared { pixels: image.iter().copied().collect(), inverted: None }),
        })
        .collect())
}

/// `{stem}.png` in `dir`, with `-2`, `-3`, ... for stems already used.
fn show_input_path(dir: &Path, input: &Input, used: &mut std::collections::HashMap<String, usize>) -> PathBuf {
    let stem = match input.idx_index {
        Some(index) => {
            let file = input.label.rsplit_once('[').map_or(input.label.as_str(), |(file, _)| file);
            format!("{}-{index}", file_stem(file))
        }
        None if input.label == "-" => "stdin".to_owned(),
        None => file_stem(&input.label),
    };
    let count = used.entry(stem.clone()).or_insert(0);
    *count += 1;
    if *count == 1 { dir.join(format!("{stem}.png")) } else { dir.join(format!("{stem}-{count}.png")) }
}

fn file_stem(path: &str) -> String {
    Path::new(path).file_stem().map_or_else(|| "input".to_owned(), |stem| stem.to_string_lossy().into_owned())
}

fn write_show_inputs(dir: &Path, inputs: &[Input]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create --show-input {}", dir.display()))?;
    let mut used = std::collections::HashMap::new();
    for input in inputs {
        if let Ok(prepared) = &input.image {
            let image = ndarray::ArrayView2::from_shape((SIDE, SIDE), &prepared.pixels).expect("28x28 pixels");
            let path = show_input_path(dir, input, &mut used);
            std::fs::write(&path, preprocess::encode_png(image))
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    Ok(())
}

/// The `top` most probable classes, most probable first.
fn ranked(probabilities: &[f32], top: usize) -> Vec<(usize, f32)> {
    let mut classes: Vec<(usize, f32)> = probabilities.iter().copied().enumerate().collect();
    classes.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    classes.truncate(top);
    classes
}

fn json_line(input: &Input, outcome: Result<&[f32], &str>, class_names: &[String], top: usize) -> Value {
    let mut line = json!({ "file": input.label });
    if let Some(index) = input.idx_index {
        line["file"] = json!(input.label.rsplit_once('[').map_or(input.label.as_str(), |(file, _)| file));
        line["index"] = json!(index);
    }
    match outcome {
        Err(error) => line["error"] = json!(error),
        Ok(probabilities) => {
            let ranked = ranked(probabilities, top);
            line["class"] = json!(ranked[0].0);
            line["name"] = json!(class_names[ranked[0].0]);
            line["top"] = ranked
                .iter()
                .map(|&(class, probability)| json!({"class": class, "name": class_names[class], "probability": probability}))
                .collect();
            if let Ok(Prepared { inverted: Some(inverted), .. }) = &input.image {
                line["inverted"] = json!(inverted);
            }
        }
    }
    line
}

/// The text table: the file, the predicted class, the top classes with their probabilities.
fn print_table(inputs: &[Input], results: &[Option<Vec<f32>>], class_names: &[String], top: usize) -> Result<()> {
    let file_width = inputs.iter().map(|input| input.label.chars().count()).max().unwrap_or(4).max(4);
    let name_width = class_names.iter().map(|name| name.chars().count()).max().unwrap_or(1);
    let class_width = name_width.max("CLASS".len());
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<file_width$}  {:<class_width$}  TOP {top}", "FILE", "CLASS")?;
    for (input, result) in inputs.iter().zip(results) {
        let Some(probabilities) = result else { continue };
        let ranked = ranked(probabilities, top);
        let listing: Vec<String> = ranked
            .iter()
            .map(|&(class, probability)| {
                format!("{:>w$} {:>5.1}%", class_names[class], probability * 100.0, w = name_width)
            })
            .collect();
        writeln!(
            out,
            "{:<file_width$}  {:<class_width$}  {}",
            input.label,
            class_names[ranked[0].0],
            listing.join("   ")
        )?;
    }
    Ok(())
}

fn load_models(args: &PredictArgs) -> Result<Models> {
    let paths = checkpoint_paths(&args.checkpoint, || crate::run_dir::RunDir::new(&args.save_dir).best_checkpoint())?;
    let models = load_ensemble(&paths, args.device.resolve()?, args.allow_nonfinite, &args.tta)?;
    tracing::info!("checkpoint: {} ({})", models.describe(), models.dataset.name);
    Ok(models)
}

/// Classifies the given images and prints the answers (a table or JSON lines).
pub fn run(args: &PredictArgs) -> Result<()> {
    crate::cli::check_range("--batch-size", args.batch_size, 1, crate::cli::MAX_BATCH)?;
    let models = load_models(args)?;
    let options =
        Options { invert: args.invert.into(), layout: datasets::by_name(&models.dataset.name)?.photo_layout.into() };
    let mut inputs = image_inputs(&args.files, &options)?;
    if let Some(path) = &args.images {
        inputs.extend(idx_inputs(path)?);
    }
    if let Some(dir) = &args.show_input {
        write_show_inputs(dir, &inputs)?;
    }

    let pixels: Vec<f32> =
        inputs.iter().filter_map(|input| input.image.as_ref().ok()).flat_map(|p| p.pixels.iter().copied()).collect();
    let n_ok = pixels.len() / (SIDE * SIDE);
    let mut predicted = if n_ok == 0 {
        Vec::new()
    } else {
        let images = Tensor::from_slice(&pixels).view([n_ok as i64, SIDE as i64, SIDE as i64]);
        probabilities(&models.classifier, &images, args.batch_size)?
    }
    .into_iter();
    let results: Vec<Option<Vec<f32>>> =
        inputs.iter().map(|input| input.image.as_ref().ok().and_then(|_| predicted.next())).collect();

    let class_names = &models.dataset.class_names;
    let top = usize::from(args.top);
    let mut n_failed = 0;
    for input in &inputs {
        if let Err(error) = &input.image {
            n_failed += 1;
            eprintln!("error: {error}");
        }
    }
    if args.json {
        let mut out = std::io::stdout().lock();
        for (input, result) in inputs.iter().zip(&results) {
            let outcome = match (&input.image, result) {
                (Err(error), _) => Err(error.as_str()),
                (Ok(_), Some(probabilities)) => Ok(probabilities.as_slice()),
                (Ok(_), None) => Err("no prediction"),
            };
            writeln!(out, "{}", json_line(input, outcome, class_names, top))?;
        }
    } else {
        print_table(&inputs, &results, class_names, top)?;
    }
    if n_failed > 0 {
        bail!("{n_failed} of {} inputs could not be predicted (see the errors above)", inputs.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranking_puts_the_most_probable_first_and_breaks_ties_by_class() {
        let probabilities = [0.1, 0.3, 0.05, 0.3, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert_eq!(ranked(&probabilities, 3), vec![(1, 0.3), (3, 0.3), (4, 0.25)]);
    }

    #[test]
    fn show_input_names_follow_the_files_and_never_collide() {
        let dir = Path::new("out");
        let mut used = std::collections::HashMap::new();
        let input = |label: &str, idx_index| Input { label: label.to_owned(), idx_index, image: Err(String::new()) };
        assert_eq!(show_input_path(dir, &input("a/seven.jpg", None), &mut used), dir.join("seven.png"));
        assert_eq!(show_input_path(dir, &input("b/seven.png", None), &mut used), dir.join("seven-2.png"));
        assert_eq!(show_input_path(dir, &input("-", None), &mut used), dir.join("stdin.png"));
        assert_eq!(show_input_path(dir, &input("t10k.idx[12]", Some(12)), &mut used), dir.join("t10k-12.png"));
    }
}
