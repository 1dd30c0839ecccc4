//! The one definition of each MNIST-format data set this build knows, used
//! by `cargo xtask fetch-data` (files, sums, mirrors), the trainer (folder,
//! class names, the name checkpoints record), `preprocess` and the web app
//! (how photos are laid out). A data set this build does not know is an
//! error wherever its name is read, never MNIST.
//!
//! Adding a data set is one entry in [`ALL`] (and its `data/NAME/SHA256SUMS`).
#![warn(missing_docs)]

/// How a photo of one of the data set's images is laid out on the 28x28 grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PhotoLayout {
    /// MNIST's: the ink's longer side scaled to 20 pixels, its centre of mass at the centre.
    CentredByMass,
    /// Fashion-MNIST's: the longer side scaled to 28 pixels, the bounding box centred.
    FilledAndCentred,
}

/// One data set in the MNIST format (four IDX files: training and test images and labels).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Dataset {
    /// Its name: the folder under the data directory, the `--dataset` value and what checkpoints record.
    pub name: &'static str,
    /// Who made it, in a line.
    pub description: &'static str,
    /// What each label (0, 1, ...) means.
    pub class_names: &'static [&'static str],
    /// The committed `data/NAME/SHA256SUMS`: each file and what it must hash to.
    pub sha256sums: &'static str,
    /// Where `fetch-data` finds the files, tried in order (https URLs or local folders).
    pub mirrors: &'static [&'static str],
    /// How photos of its images are laid out.
    pub photo_layout: PhotoLayout,
}

/// LeCun, Cortes and Burges's handwritten digits.
pub const MNIST: Dataset = Dataset {
    name: "mnist",
    description: "handwritten digits (LeCun, Cortes, Burges), committed under data/mnist",
    class_names: &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
    sha256sums: include_str!("../../../data/mnist/SHA256SUMS"),
    mirrors: &["https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"],
    photo_layout: PhotoLayout::CentredByMass,
};

/// Zalando's Fashion-MNIST.
pub const FASHION_MNIST: Dataset = Dataset {
    name: "fashion-mnist",
    description: "Zalando's clothing photos (Debian package dataset-fashion-mnist, or downloaded)",
    class_names: &[
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    sha256sums: include_str!("../../../data/fashion-mnist/SHA256SUMS"),
    mirrors: &[
        "/usr/share/datasets/fashion-mnist/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ],
    photo_layout: PhotoLayout::FilledAndCentred,
};

/// Every data set this build knows; the first is the default.
pub const ALL: &[&Dataset] = &[&MNIST, &FASHION_MNIST];

/// A name no data set of this build has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownDataset {
    /// The name asked for.
    pub name: String,
}

impl std::fmt::Display for UnknownDataset {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "the data set {:?} is unknown to this build (it knows {})", self.name, names().join(", "))
    }
}

impl std::error::Error for UnknownDataset {}

/// The names of every known data set.
pub fn names() -> Vec<&'static str> {
    ALL.iter().map(|dataset| dataset.name).collect()
}

/// The data set called `name`.
///
/// ```
/// assert_eq!(datasets::by_name("fashion-mnist").unwrap().class_names[9], "Ankle boot");
/// let message = datasets::by_name("klingon-digits").unwrap_err().to_string();
/// assert_eq!(message, "the data set \"klingon-digits\" is unknown to this build (it knows mnist, fashion-mnist)");
/// ```
///
/// # Errors
/// [`UnknownDataset`] naming it and the known ones.
pub fn by_name(name: &str) -> Result<&'static Dataset, UnknownDataset> {
    ALL.iter().copied().find(|dataset| dataset.name == name).ok_or_else(|| UnknownDataset { name: name.to_owned() })
}

impl Dataset {
    /// The number of classes.
    pub fn n_classes(&self) -> usize {
        self.class_names.len()
    }

    /// The files its `SHA256SUMS` names, with their sums: `(sum, file name)`.
    pub fn files(&self) -> Vec<(&'static str, &'static str)> {
        self.sha256sums.lines().filter_map(|line| line.split_once("  ")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_data_set_names_the_four_files_and_ten_classes_once() {
        let mut seen = std::collections::HashSet::new();
        for dataset in ALL {
            assert!(seen.insert(dataset.name), "{} twice", dataset.name);
            assert_eq!(dataset.n_classes(), 10, "{}", dataset.name);
            let mut files: Vec<&str> = dataset.files().into_iter().map(|(_, file)| file).collect();
            files.sort_unstable();
            let expected = [
                "t10k-images-idx3-ubyte.gz",
                "t10k-labels-idx1-ubyte.gz",
                "train-images-idx3-ubyte.gz",
                "train-labels-idx1-ubyte.gz",
            ];
            assert_eq!(files, expected, "{}", dataset.name);
            assert!(dataset.files().iter().all(|(sum, _)| sum.len() == 64), "{}", dataset.name);
            assert_eq!(by_name(dataset.name), Ok(*dataset));
        }
    }
}
