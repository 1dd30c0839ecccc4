//! `trainer data-info`: what the data set holds, split by split.

use anyhow::Result;
use idx::mnist::{Mnist, MnistError, Split};
use serde_json::json;

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
