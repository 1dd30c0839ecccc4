//! `trainer data-info`: what the data set holds, split by split.

use anyhow::{Context, Result};
use idx::mnist::{Mnist, MnistError, Split};
use ndarray::Axis;
use serde_json::json;
use tch::{Device, Tensor};

use crate::cli::{DataArgs, DataInfoArgs};

/// Loads the data set. A missing or corrupt file points at `cargo xtask
/// fetch-data`, which fetches and verifies it; other errors (a validation
/// split larger than the data) speak for themselves.
pub fn load(data: &DataArgs) -> Result<Mnist> {
    let dir = data.data_dir.join(data.dataset.dir_name());
    Mnist::load(&dir, data.validation_size).map_err(|error| {
        let name = data.dataset.dir_name();
        match error {
            MnistError::Idx(_) => anyhow::Error::new(error).context(format!(
                "cannot load {name} from {} (run `cargo xtask fetch-data --dataset {name}` to fetch and verify it)",
                dir.display()
            )),
            other => anyhow::Error::new(other).context(format!("cannot use {name} from {}", dir.display())),
        }
    })
}

/// The images of `split` at `indices` (all if `None`) and their labels, as
/// tensors on `device`: `[n, rows, cols]` floats and `[n]` classes.
pub fn split_tensors(split: &Split, indices: Option<&[usize]>, device: Device) -> Result<(Tensor, Tensor)> {
    let selected;
    let (images, labels) = match indices {
        Some(indices) => {
            selected = (split.images.select(Axis(0), indices), split.labels.select(Axis(0), indices));
            (selected.0.view(), selected.1.view())
        }
        None => (split.images.view(), split.labels.view()),
    };
    let (n_images, rows, cols) = images.dim();
    let pixels = images.as_standard_layout();
    let pixels = pixels.as_slice().context("image array is not contiguous")?;
    let labels: Vec<i64> = labels.iter().map(|&label| i64::from(label)).collect();
    Ok((
        Tensor::from_slice(pixels).view([n_images as i64, rows as i64, cols as i64]).to_device(device),
        Tensor::from_slice(&labels).to_device(device),
    ))
}

fn split_json(split: &Split) -> serde_json::Value {
    let (mean, std) = split.pixel_mean_std();
    let (rows, cols) = split.image_size();
    json!({
        "n_images": split.len(),
        "image_size": [rows, cols],
        "label_histogram": split.label_histogram(),
        "pixel_mean": mean,
        "pixel_std": std,
    })
}

pub fn run(args: &DataInfoArgs) -> Result<()> {
    let device = args.device.resolve()?;
    let start = std::time::Instant::now();
    let mnist = load(&args.data)?;
    tracing::debug!(seconds = start.elapsed().as_secs_f64(), "data loaded");
    let splits = [("train", &mnist.train), ("validation", &mnist.validation), ("test", &mnist.test)];
    if args.json {
        let mut report = serde_json::Map::new();
        report.insert("dataset".into(), json!(args.data.dataset.dir_name()));
        report.insert("device".into(), json!(model::device::describe(device)));
        for (name, split) in splits {
            report.insert(name.into(), split_json(split));
        }
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("dataset: {}", args.data.dataset.dir_name());
        println!("device: {}", model::device::describe(device));
        for (name, split) in splits {
            let (mean, std) = split.pixel_mean_std();
            let (rows, cols) = split.image_size();
            println!(
                "{name:>10}: {:>6} images of {rows}x{cols}, pixel mean {mean:.5}, std {std:.5}, labels {:?}",
                split.len(),
                split.label_histogram()
            );
        }
    }
    Ok(())
}
