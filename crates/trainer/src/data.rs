//! The data set for training and evaluation: loading it (with a pointer to
//! `cargo xtask fetch-data` when a file is missing or corrupt), checking the
//! image size the network reads, and splits as tensors.

use anyhow::{Context, Result, bail, ensure};
use idx::mnist::{Mnist, MnistError, Split};
use model::network::IMAGE_SIDE;
use ndarray::{Axis, s};
use tch::{Device, Tensor};

use crate::cli::DataArgs;

/// Loads the data set. A missing or corrupt file points at `cargo xtask
/// fetch-data`, which fetches and verifies it; other errors (a validation
/// split larger than the data, a fold beyond it) speak for themselves.
pub fn load(data: &DataArgs) -> Result<Mnist> {
    let dir = data.data_dir.join(data.dataset.name);
    Mnist::load_holdout(&dir, data.holdout(), data.load_options()).map_err(|error| {
        let name = data.dataset.name;
        match error {
            MnistError::Idx(_) => anyhow::Error::new(error).context(format!(
                "cannot load {name} from {} (run `cargo xtask fetch-data --dataset {name}` to fetch and verify it)",
                dir.display()
            )),
            other => anyhow::Error::new(other).context(format!("cannot use {name} from {}", dir.display())),
        }
    })
}

/// Refuses images of another size than the network reads; `source` names
/// them (a file or a data set's split). `train` and `evaluate` say the same.
pub fn check_image_size(source: &str, split: &Split) -> Result<()> {
    let (rows, cols) = split.image_size();
    let side = IMAGE_SIDE as usize;
    ensure!((rows, cols) == (side, side), "{source}: images are {rows}x{cols}, the network takes {side}x{side}");
    Ok(())
}

/// The first `limit` training images (`--train-images`), or all of them.
pub fn first_training_images(split: Split, limit: Option<usize>) -> Result<Split> {
    match limit {
        Some(limit) if limit > split.len() => {
            bail!("--train-images {limit} is more than the {} training images", split.len())
        }
        Some(limit) => Ok(Split {
            images: split.images.slice(s![..limit, .., ..]).to_owned(),
            labels: split.labels.slice(s![..limit]).to_owned(),
        }),
        None => Ok(split),
    }
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
    let to_device = |tensor: Tensor| tensor.f_to_device(device).context("cannot move the data to the device");
    Ok((
        to_device(Tensor::from_slice(pixels).view([n_images as i64, rows as i64, cols as i64]))?,
        to_device(Tensor::from_slice(&labels))?,
    ))
}

#[cfg(test)]
mod tests {
    use ndarray::{Array1, Array3};

    use super::*;

    fn split(n_images: usize, rows: usize, cols: usize) -> Split {
        Split {
            images: Array3::from_shape_fn((n_images, rows, cols), |(image, row, _)| (image + row) as f32),
            labels: Array1::from_shape_fn(n_images, |image| (image % 10) as u8),
        }
    }

    #[test]
    fn the_image_side_is_the_same_number_everywhere() {
        // preprocess (no libtorch) names it for itself; the network's is the one that counts.
        assert_eq!(preprocess::SIDE as i64, IMAGE_SIDE);
        assert_eq!(serve::PIXELS as i64, IMAGE_SIDE * IMAGE_SIDE);
    }

    #[test]
    fn only_28x28_images_are_accepted() {
        check_image_size("x", &split(2, 28, 28)).unwrap();
        let message = check_image_size("digits.idx", &split(2, 14, 56)).unwrap_err().to_string();
        assert_eq!(message, "digits.idx: images are 14x56, the network takes 28x28");
    }

    #[test]
    fn first_training_images_keeps_the_order_and_refuses_more_than_there_are() {
        let first = first_training_images(split(5, 28, 28), Some(2)).unwrap();
        assert_eq!(first.labels.to_vec(), vec![0, 1]);
        assert_eq!(first.images[[1, 3, 0]], 4.0);
        assert_eq!(first_training_images(split(5, 28, 28), None).unwrap().len(), 5);
        let message = first_training_images(split(5, 28, 28), Some(6)).unwrap_err().to_string();
        assert_eq!(message, "--train-images 6 is more than the 5 training images");
    }

    #[test]
    fn split_tensors_selects_images_and_labels_together() {
        let data = split(4, 28, 28);
        let (images, labels) = split_tensors(&data, Some(&[3, 1]), Device::Cpu).unwrap();
        assert_eq!(images.size(), [2, 28, 28]);
        assert_eq!(Vec::<i64>::try_from(&labels).unwrap(), vec![3, 1]);
        assert_eq!(images.double_value(&[0, 2, 0]), 5.0);
    }
}
