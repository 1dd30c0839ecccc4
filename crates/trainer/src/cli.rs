//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Trains the seed's MNIST CNN on libtorch. Training itself lands with the trainer issue;
/// for now the program inspects the data and the device.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the data set's splits: counts, label histogram, pixel mean and standard deviation.
    DataInfo(DataInfoArgs),
}

/// Which MNIST-format data set to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Dataset {
    /// Handwritten digits (LeCun, Cortes, Burges).
    Mnist,
    /// Zalando's Fashion-MNIST, same format.
    FashionMnist,
}

impl Dataset {
    /// The folder name under the data directory.
    pub fn dir_name(self) -> &'static str {
        match self {
            Dataset::Mnist => "mnist",
            Dataset::FashionMnist => "fashion-mnist",
        }
    }
}

/// Where the data is and how it is split.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// Folder holding one sub-folder per data set (`mnist/`, `fashion-mnist/`).
    #[arg(long, default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
    /// Which data set to use.
    #[arg(long, value_enum, default_value_t = Dataset::Mnist)]
    pub dataset: Dataset,
    /// How many of the first training images form the validation split.
    #[arg(long, default_value_t = idx::mnist::DEFAULT_VALIDATION_SIZE)]
    pub validation_size: usize,
}

/// Arguments of `data-info`.
#[derive(Debug, Args)]
pub struct DataInfoArgs {
    /// Where the data is.
    #[command(flatten)]
    pub data: DataArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Device to report: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: model::DeviceRequest,
}

/// `data/` of this repository when run from a checkout, else `./data`.
fn default_data_dir() -> PathBuf {
    let repo_data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data");
    if repo_data.is_dir() { repo_data.canonicalize().unwrap_or(repo_data) } else { PathBuf::from("data") }
}
