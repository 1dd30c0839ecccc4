//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::run_dir;

/// Trains the seed's MNIST CNN on libtorch: the seed's recipe, its defects
/// fixed. Without a subcommand, `trainer` trains (same flags as `trainer train`).
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do (default: train).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Training settings, when no subcommand is given.
    #[command(flatten)]
    pub train: TrainArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train the network (the default).
    Train(TrainArgs),
    /// Evaluate a checkpoint: accuracy, per-class accuracy, confusion matrix.
    Evaluate(EvaluateArgs),
    /// Print the data set's splits: counts, label histogram, pixel mean and standard deviation.
    DataInfo(DataInfoArgs),
    /// Classify your own images (photos, scans, drawings) or an IDX file with a trained network.
    Predict(PredictArgs),
    /// Draw a run's curves, test confusion matrix and mistakes, and a self-contained HTML page of them.
    Report(ReportArgs),
    /// Print the network's layers: output shapes, parameters and FLOPs.
    Summary(SummaryArgs),
    /// Export a checkpoint's network for use outside this program (TorchScript or ONNX).
    Export(ExportArgs),
    /// A local web app: draw digits and see the prediction, watch runs train, look at mistakes.
    Serve(ServeArgs),
    /// Many runs from one grid file, one per task index (for Slurm job arrays and local loops).
    #[command(subcommand)]
    Sweep(SweepCommand),
    /// One view over many runs: each run's state and accuracy, and the spread per recipe.
    Runs(RunsArgs),
}

/// The subcommands of `sweep`.
#[derive(Debug, Subcommand)]
pub enum SweepCommand {
    /// Print the grid's tasks (`INDEX RUN_DIR` a line), or their number.
    Plan(SweepPlanArgs),
    /// Train (or resume) the run of one task of the grid.
    Task(SweepTaskArgs),
}

/// Arguments of `sweep plan`.
#[derive(Debug, Args)]
pub struct SweepPlanArgs {
    /// The grid file (JSON: seeds, common flags, named recipes; docs/CLUSTER.md).
    #[arg(long)]
    pub grid: PathBuf,
    /// Print only the number of tasks (for `--array=0-$((N-1))`).
    #[arg(long)]
    pub count: bool,
}

/// Arguments of `sweep task`.
#[derive(Debug, Args)]
pub struct SweepTaskArgs {
    /// The grid file.
    #[arg(long)]
    pub grid: PathBuf,
    /// The task's index (0-based; a Slurm array task's `SLURM_ARRAY_TASK_ID`).
    #[arg(long)]
    pub index: usize,
    /// The sweep's folder: the task's run is `SWEEP_DIR/RECIPE/seed-SEED`.
    #[arg(long)]
    pub sweep_dir: PathBuf,
    /// More `train` flags after `--`, for this machine (`--threads`, `--device`); not recipe flags.
    #[arg(last = true)]
    pub extra: Vec<String>,
}

/// Arguments of `runs`.
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// A sweep folder (runs, or folders of runs, and `logs/`), or one run.
    pub dir: PathBuf,
    /// Print JSON instead of the tables.
    #[arg(long)]
    pub json: bool,
    /// Also draw every run's validation accuracy per epoch, coloured by recipe, to this .svg or .png file.
    #[arg(long, value_name = "FILE")]
    pub curves: Option<PathBuf>,
}

/// `--dataset`: a data set this build knows (`datasets::ALL`).
fn dataset_named(name: &str) -> Result<&'static datasets::Dataset, String> {
    datasets::by_name(name).map_err(|error| error.to_string())
}

/// Records a data set by its name.
fn serialize_dataset<S: serde::Serializer>(dataset: &&datasets::Dataset, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(dataset.name)
}

/// What checkpoints record about a data set.
pub fn dataset_meta(dataset: &datasets::Dataset) -> model::DatasetMeta {
    model::DatasetMeta {
        name: dataset.name.to_owned(),
        class_names: dataset.class_names.iter().map(|name| (*name).to_owned()).collect(),
    }
}

/// Which network to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkChoice {
    /// The network the seed meant: conv2 reads pool1.
    Intended,
    /// The network the seed built: conv2 reads the input image (its defect).
    Seed,
    /// Four 3x3 convolutions (32, 64, 64, 128 channels) in place of the 5x5 ones and the 1024-wide layer.
    Vgg,
    /// Six convolutions (3x3, 3x3, strided 5x5; 32 then 64 channels), a 128-wide dense layer, dropout 0.4 (Deotte's Kaggle design).
    Strided,
}

impl From<NetworkChoice> for model::Architecture {
    fn from(choice: NetworkChoice) -> Self {
        match choice {
            NetworkChoice::Intended => model::Architecture::Intended,
            NetworkChoice::Vgg => model::Architecture::Vgg,
            NetworkChoice::Strided => model::Architecture::Strided,
            NetworkChoice::Seed => model::Architecture::Seed,
        }
    }
}

/// Whether the training step fuses each convolution's batch norm, pooling
/// and leaky ReLU into one pass (`--fused-tail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FusedTailChoice {
    /// Fused in bf16, where it pays on every CPU that runs bf16, and not in
    /// fp32, where it would change the seed's recipe; a resumed run does as
    /// its `config.json` records.
    Auto,
    /// Fused in either precision.
    On,
    /// ATen's three calls in either precision.
    Off,
}

/// The number format of the training step's arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrecisionChoice {
    /// 32-bit floats, as the seed.
    Fp32,
    /// bfloat16 forward and backward passes over fp32 weights and optimizer;
    /// only on a CPU with native bf16 (AVX512-BF16 or AMX) or on CUDA.
    Bf16,
}

impl From<PrecisionChoice> for model::Precision {
    fn from(choice: PrecisionChoice) -> Self {
        match choice {
            PrecisionChoice::Fp32 => model::Precision::Float32,
            PrecisionChoice::Bf16 => model::Precision::BFloat16,
        }
    }
}

/// Where the data is and how it is split.
#[derive(Debug, Clone, Args, Serialize)]
pub struct DataArgs {
    /// Folder holding one sub-folder per data set (`mnist/`, `fashion-mnist/`).
    #[arg(long, default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
    /// Which data set to use.
    #[arg(long, default_value = "mnist", value_parser = dataset_named)]
    #[serde(serialize_with = "serialize_dataset")]
    pub dataset: &'static datasets::Dataset,
    /// How many training images form the validation split (the first ones, or --validation-fold's block).
    #[arg(long, default_value_t = idx::mnist::DEFAULT_VALIDATION_SIZE)]
    pub validation_size: usize,
    /// Which block of --validation-size training images is held out: 0 (the first, the seed's split) to 11 for MNIST's 5,000.
    #[arg(long, default_value_t = 0)]
    pub validation_fold: usize,
    /// The most pixels one image file may hold (each becomes a 4-byte float); refused from its header.
    #[arg(long, default_value_t = idx::mnist::DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
}

impl DataArgs {
    /// The bounds of loading this data.
    pub fn load_options(&self) -> idx::mnist::LoadOptions {
        idx::mnist::LoadOptions { max_pixels: self.max_pixels }
    }

    /// Which training images are held out for validation.
    pub fn holdout(&self) -> idx::mnist::Holdout {
        idx::mnist::Holdout { size: self.validation_size, fold: self.validation_fold }
    }
}

/// Arguments of `train`. The defaults are the seed's.
#[derive(Debug, Clone, Args, Serialize)]
pub struct TrainArgs {
    /// Epochs to train (with --resume: the total, counting those already done).
    #[arg(long, default_value_t = 50)]
    pub epochs: u64,
    /// Images per training step.
    #[arg(long, default_value_t = 50)]
    pub batch_size: usize,
    /// Adam's learning rate (the base rate the schedule scales).
    #[arg(long, default_value_t = 0.001)]
    pub learning_rate: f64,
    /// The learning-rate schedule over the run: `constant` (the seed's), `exponential:DECAY` (per epoch), `cosine:EPOCHS[,FLOOR]`, `step:EVERY,FACTOR`, `warmup:EPOCHS:SCHEDULE`; see docs/TRAINING.md.
    #[arg(long, default_value = "constant", value_name = "SPEC", value_parser = schedule_spec)]
    pub schedule: String,
    /// Shorthand for `--schedule exponential:DECAY`: the learning rate times DECAY each epoch (for example 0.95).
    #[arg(long, value_name = "DECAY", conflicts_with = "schedule", value_parser = lr_decay_spec)]
    pub lr_decay: Option<String>,
    /// A named recipe that fills in the flags this command leaves out: `seed` (every default), `strong` or `strided` (see docs/TRAINING.md, Recipes).
    #[arg(long, value_name = "NAME", value_parser = recipe_name)]
    pub recipe: Option<String>,
    /// Keep a moving average of the weights with this decay (for example 0.999) and validate, keep and test it instead of the last weights (off unless given).
    #[arg(long, value_name = "DECAY", value_parser = ema_decay)]
    pub ema: Option<f64>,
    /// Stop when the validation accuracy has not improved for this many epochs (off unless given); the best epoch's checkpoint is still the one tested.
    #[arg(long, value_name = "EPOCHS", value_parser = clap::value_parser!(u64).range(1..))]
    pub patience: Option<u64>,
    /// Print the seed's report (cost, train and validation accuracy) every this many epochs.
    #[arg(long, default_value_t = 3)]
    pub display_step: u64,
    /// Save a checkpoint `net-{epoch}` every this many epochs.
    #[arg(long, default_value_t = 4)]
    pub save_step: u64,
    /// How many `net-{epoch}` checkpoints to keep (the newest); `best` and `last` are kept apart.
    #[arg(long, default_value_t = 100)]
    pub keep: usize,
    /// The run directory: checkpoints, `config.json` and `metrics.jsonl`.
    #[arg(long, default_value = run_dir::DEFAULT_SAVE_DIR)]
    pub save_dir: PathBuf,
    /// Where the data is.
    #[command(flatten)]
    pub data: DataArgs,
    /// Which network to train.
    #[arg(long, value_enum, default_value_t = NetworkChoice::Intended)]
    pub network: NetworkChoice,
    /// How to augment training images: `seed` (the seed's rotate, crop-zoom and shift, SciPy-exact), `fused` (the same in one interpolation pass), `none`, or transforms joined by `+`.
    #[arg(long, default_value = "seed", value_name = "PIPELINE", value_parser = augment_spec)]
    pub augment: String,
    /// Seed of every random choice: initial weights, shuffling, augmentation, dropout.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Device: auto (CUDA if available), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    #[serde(serialize_with = "serialize_display")]
    pub device: model::DeviceRequest,
    /// The training step's arithmetic: fp32, or bf16 (1.3-2x faster where the CPU computes it natively, about 2.4x with AMX; test accuracy as fp32's within the seeds' spread, docs/results/README.md; evaluation stays fp32).
    #[arg(long, value_enum, default_value_t = PrecisionChoice::Fp32)]
    pub precision: PrecisionChoice,
    /// Each convolution's batch norm, max pooling and leaky ReLU as one fused pass on a CPU with AVX2 and FMA: `auto` fuses in bf16 (1.16x on Intel AMX) and not in fp32, and a resumed run does as it did; `on` (the bare flag) or `off` (fp32 on: 1.11x on Intel AMX, 0.98x on AMD). Another float rounding, so part of the recipe.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = FusedTailChoice::Auto, num_args = 0..=1, default_missing_value = "on")]
    pub fused_tail: FusedTailChoice,
    /// libtorch's CPU threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Threads augmenting the next batches while the network trains.
    #[arg(long, default_value_t = 1)]
    pub augment_threads: usize,
    /// Batches augmented ahead of training (the queue's bound).
    #[arg(long, default_value_t = 4)]
    pub prefetch: usize,
    /// Images per batch when evaluating (validation, train sample, test); changes speed and memory only.
    #[arg(long, default_value_t = 250)]
    pub eval_batch_size: usize,
    /// Random un-augmented training images whose accuracy is reported each epoch.
    #[arg(long, default_value_t = 500)]
    pub train_accuracy_images: usize,
    /// Continue the run in --save-dir from its newest checkpoint that loads
    /// (from the start if it has none yet).
    #[arg(long)]
    pub resume: bool,
    /// Continue the run in --save-dir from this checkpoint (implies --resume).
    #[arg(long, value_name = "FILE")]
    pub resume_from: Option<PathBuf>,
    /// On resume, train on with this constant learning rate in place of the schedule (recorded in config.json and metrics.jsonl).
    #[arg(long, value_name = "RATE")]
    pub override_learning_rate: Option<f64>,
    /// Resume even though the run's config.json is missing (its recipe cannot be checked).
    #[arg(long)]
    pub force: bool,
    /// Train on the first N training images only (quick runs).
    #[arg(long)]
    pub train_images: Option<usize>,
}

/// `--augment`: a pipeline this build knows, as its recorded spec.
fn augment_spec(text: &str) -> Result<String, String> {
    augment::Pipeline::parse(text).map(|pipeline| pipeline.spec()).map_err(|error| error.to_string())
}

/// `--ema`: a decay in (0, 1).
fn recipe_name(text: &str) -> Result<String, String> {
    crate::presets::by_name(text).map(|preset| preset.name.to_owned())
}

fn ema_decay(text: &str) -> Result<f64, String> {
    let decay: f64 = text.parse().map_err(|_| format!("expected a number in (0, 1), found {text:?}"))?;
    if decay > 0.0 && decay < 1.0 { Ok(decay) } else { Err(format!("expected a number in (0, 1), found {decay}")) }
}

/// `--lr-decay`: a per-epoch decay, as the spec of its exponential schedule.
fn lr_decay_spec(text: &str) -> Result<String, String> {
    schedule_spec(&format!("exponential:{text}"))
}

/// `--schedule`: a schedule this build knows, as its recorded spec.
fn schedule_spec(text: &str) -> Result<String, String> {
    model::schedule::parse(text).map(|schedule| schedule.spec()).map_err(|error| error.to_string())
}

/// The most libtorch or augmentation threads a flag accepts.
pub const MAX_THREADS: usize = 1024;
/// The most batches a queue (`--prefetch`, `--queue`) may hold.
pub const MAX_QUEUE: usize = 65_536;
/// The largest batch of images a flag accepts (65,536 images of 28x28 floats are 205 MB).
pub const MAX_BATCH: usize = 65_536;
/// The most epochs a run may have.
pub const MAX_EPOCHS: u64 = 1_000_000;

/// Refuses `value` for `flag` outside `min..=max`, naming the flag and the range.
pub fn check_range<T: PartialOrd + std::fmt::Display>(flag: &str, value: T, min: T, max: T) -> anyhow::Result<()> {
    anyhow::ensure!(min <= value && value <= max, "{flag} must be between {min} and {max}, found {value}");
    Ok(())
}

impl TrainArgs {
    /// Whether this command continues a run (`--resume` or `--resume-from`).
    pub fn resuming(&self) -> bool {
        self.resume || self.resume_from.is_some()
    }

    /// The learning-rate schedule's spec: `--lr-decay`'s exponential one, or `--schedule`.
    pub fn schedule_spec(&self) -> &str {
        self.lr_decay.as_deref().unwrap_or(&self.schedule)
    }
}

/// Arguments of `evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// The checkpoint (default: `best.safetensors` in --save-dir); repeat it for an ensemble (the mean of the members' probabilities); a run directory means its best checkpoint, a folder of runs every run's.
    #[arg(long)]
    pub checkpoint: Vec<PathBuf>,
    /// The run directory whose best checkpoint to evaluate.
    #[arg(long, default_value = run_dir::DEFAULT_SAVE_DIR)]
    pub save_dir: PathBuf,
    /// Where the data is (used unless --images and --labels are given).
    #[command(flatten)]
    pub data: DataArgs,
    /// Which split of the data set to evaluate.
    #[arg(long, value_enum, default_value_t = SplitChoice::Test)]
    pub split: SplitChoice,
    /// An IDX image file to evaluate instead of a split (u8 pixels, 28x28, plain or gzip).
    #[arg(long, requires = "labels")]
    pub images: Option<PathBuf>,
    /// The IDX label file that goes with --images.
    #[arg(long, requires = "images")]
    pub labels: Option<PathBuf>,
    /// Device: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: model::DeviceRequest,
    /// Images per batch.
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
    /// Test-time augmentation: also classify shifted or rotated copies of each image and average the probabilities (`none`, or a comma list of `shift:P`, `diagonal:P`, `rotate:DEGREES`; docs/TRAINING.md).
    #[arg(long, default_value = "none")]
    pub tta: model::Views,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Use a checkpoint whose weights hold NaN or infinity (with a warning) instead of refusing it.
    #[arg(long)]
    pub allow_nonfinite: bool,
}

/// Arguments of `predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Image files (PNG, JPEG, BMP, PGM/PPM, GIF, WebP; any size, grey or colour); `-` reads one from standard input.
    #[arg(value_name = "IMAGE", required_unless_present = "images")]
    pub files: Vec<PathBuf>,
    /// An IDX image file (28x28, MNIST's format) whose every image is predicted as it is, without preprocessing.
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// The checkpoint (default: `best.safetensors` in --save-dir); repeat it for an ensemble (the mean of the members' probabilities); a run directory means its best checkpoint, a folder of runs every run's.
    #[arg(long)]
    pub checkpoint: Vec<PathBuf>,
    /// The run directory whose best checkpoint to use.
    #[arg(long, default_value = run_dir::DEFAULT_SAVE_DIR)]
    pub save_dir: PathBuf,
    /// Device: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: model::DeviceRequest,
    /// Whether images are dark ink on light paper (inverted to MNIST's white on black): auto detects it.
    #[arg(long, value_enum, default_value_t = InvertChoice::Auto)]
    pub invert: InvertChoice,
    /// Use a checkpoint whose weights hold NaN or infinity (with a warning) instead of refusing it.
    #[arg(long)]
    pub allow_nonfinite: bool,
    /// Test-time augmentation: also classify shifted or rotated copies of each image and average the probabilities (`none`, or a comma list of `shift:P`, `diagonal:P`, `rotate:DEGREES`; docs/TRAINING.md).
    #[arg(long, default_value = "none")]
    pub tta: model::Views,
    /// Print one JSON object per input instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write the 28x28 image the network saw for each input, as PNG, into this folder.
    #[arg(long, value_name = "DIR")]
    pub show_input: Option<PathBuf>,
    /// How many classes to list per image, most probable first.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=10))]
    pub top: u8,
    /// Images per forward pass.
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
}

/// Arguments of `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run directory (`metrics.jsonl`, `config.json`, `best.safetensors`), or a sweep folder of runs (its page shows the spread per recipe, every run, and their curves).
    #[arg(long, default_value = run_dir::DEFAULT_SAVE_DIR)]
    pub save_dir: PathBuf,
    /// Where to write the figures and `index.html` (default: `report/` in the run or sweep directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where the data is (for the test images of the confusion matrix and mistakes).
    #[command(flatten)]
    pub data: DataArgs,
    /// Device: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: model::DeviceRequest,
    /// The checkpoint whose confusion matrix, mistakes and per-class accuracy are drawn (default: the run's best); repeat it, or name a folder of runs, for an ensemble's (with no run directory, --out says where).
    #[arg(long)]
    pub checkpoint: Vec<PathBuf>,
    /// At most this many misclassified test images are drawn, worst first.
    #[arg(long, default_value_t = 200)]
    pub max_mistakes: usize,
    /// Test-time augmentation: also classify shifted or rotated copies of each image and average the probabilities (`none`, or a comma list of `shift:P`, `diagonal:P`, `rotate:DEGREES`; docs/TRAINING.md).
    #[arg(long, default_value = "none")]
    pub tta: model::Views,
}

/// Arguments of `summary`.
#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// Which network to describe.
    #[arg(long, value_enum, default_value_t = NetworkChoice::Intended)]
    pub network: NetworkChoice,
    /// Images per training step, for the per-step FLOPs.
    #[arg(long, default_value_t = 50)]
    pub batch_size: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also time training steps and evaluation on this machine (random images, a few seconds) and print the cost per image.
    #[arg(long)]
    pub measure: bool,
    /// Threads libtorch uses for `--measure` (0: libtorch's default).
    #[arg(long, default_value_t = 0)]
    pub threads: i32,
}

/// Arguments of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The checkpoint to export; repeat it (or name a folder of runs) to export an ensemble as one graph (TorchScript).
    #[arg(long, required = true)]
    pub checkpoint: Vec<PathBuf>,
    /// The format: TorchScript (written by libtorch) or ONNX (written by the project's venv Python).
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// The file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Device the TorchScript module is traced on: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: model::DeviceRequest,
    /// Test-time augmentation: also classify shifted or rotated copies of each image and average the probabilities (`none`, or a comma list of `shift:P`, `diagonal:P`, `rotate:DEGREES`; docs/TRAINING.md).
    #[arg(long, default_value = "none")]
    pub tta: model::Views,
}

/// Arguments of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The folder whose subfolders are run directories (shown, watched, and drawn with).
    #[arg(long, default_value = "nets")]
    pub runs: PathBuf,
    /// The drawing model (default: the best checkpoint of the most recently finished run under --runs); repeat it, or name a folder of runs, to draw with an ensemble (the mean of the members' probabilities).
    #[arg(long)]
    pub checkpoint: Vec<PathBuf>,
    /// Address to listen on; loopback by default (`0.0.0.0:PORT` serves other machines too). Port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,
    /// Device: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: model::DeviceRequest,
    /// Most images in one forward pass; concurrent requests share it (1: no batching).
    #[arg(long, default_value_t = 256)]
    pub max_batch: usize,
    /// Test-time augmentation: also classify shifted or rotated copies of each image and average the probabilities (`none`, or a comma list of `shift:P`, `diagonal:P`, `rotate:DEGREES`; docs/TRAINING.md).
    #[arg(long, default_value = "none")]
    pub tta: model::Views,
    /// Requests waiting for the network at most; more get 503 busy.
    #[arg(long, default_value_t = 1024)]
    pub queue: usize,
    /// libtorch's CPU threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Seconds a connection has to send a whole request head; slower or idle ones are closed.
    #[arg(long, default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// Seconds a request body has to arrive whole (408 past it).
    #[arg(long, default_value_t = 30)]
    pub body_timeout_secs: u64,
    /// Open connections at most; one more is answered 503 and closed.
    #[arg(long, default_value_t = 256)]
    pub max_connections: usize,
    /// Where the data is (the test images of the mistakes view).
    #[command(flatten)]
    pub data: DataArgs,
}

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// A TorchScript module (`torch.jit.load`, libtorch's `torch::jit::load`).
    Torchscript,
    /// An ONNX model (onnxruntime, onnxruntime-web, and most inference engines).
    Onnx,
}

/// Polarity of the input images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InvertChoice {
    /// Invert when the background is lighter than the ink.
    Auto,
    /// Always invert (dark ink on light paper).
    Yes,
    /// Never invert (light ink on a dark background, like MNIST).
    No,
}

impl From<InvertChoice> for preprocess::Invert {
    fn from(choice: InvertChoice) -> Self {
        match choice {
            InvertChoice::Auto => preprocess::Invert::Auto,
            InvertChoice::Yes => preprocess::Invert::Yes,
            InvertChoice::No => preprocess::Invert::No,
        }
    }
}

/// A split of the data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SplitChoice {
    /// The training images (after the validation split).
    Train,
    /// The first --validation-size training images.
    Validation,
    /// The 10,000 test images.
    Test,
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

fn serialize_display<S: serde::Serializer>(value: &model::DeviceRequest, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// `data/` of this repository when run from a checkout, else `./data`.
fn default_data_dir() -> PathBuf {
    let repo_data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data");
    if repo_data.is_dir() { repo_data.canonicalize().unwrap_or(repo_data) } else { PathBuf::from("data") }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_definition_is_consistent_and_every_flag_is_documented() {
        Cli::command().debug_assert();
        for subcommand in Cli::command().get_subcommands() {
            for arg in subcommand.get_arguments() {
                assert!(arg.get_help().is_some(), "{} --{} has no doc line", subcommand.get_name(), arg.get_id());
            }
        }
    }

    #[test]
    fn no_subcommand_means_train_with_the_seeds_defaults() {
        let cli = Cli::try_parse_from(["trainer"]).unwrap();
        assert!(cli.command.is_none());
        let train = cli.train;
        assert_eq!((train.epochs, train.batch_size, train.display_step, train.save_step), (50, 50, 3, 4));
        assert_eq!(train.learning_rate, 0.001);
        assert_eq!(train.keep, 100);
        assert_eq!(train.save_dir, PathBuf::from(run_dir::DEFAULT_SAVE_DIR));
        assert_eq!((train.network, train.augment), (NetworkChoice::Intended, "seed".to_owned()));
        assert_eq!(train.data.validation_size, 5000);

        let cli = Cli::try_parse_from(["trainer", "--epochs", "2", "--augment", "fused"]).unwrap();
        assert_eq!((cli.train.epochs, cli.train.augment.as_str()), (2, "fused"));
        let cli = Cli::try_parse_from(["trainer", "train", "--epochs", "3"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Train(TrainArgs { epochs: 3, .. }))));
    }

    #[test]
    fn bad_values_are_rejected_by_the_parser() {
        assert!(Cli::try_parse_from(["trainer", "--augment", "sideways"]).is_err());
        assert!(Cli::try_parse_from(["trainer", "--device", "tpu"]).is_err());
        assert!(Cli::try_parse_from(["trainer", "--batch-size", "-1"]).is_err());
        assert!(Cli::try_parse_from(["trainer", "evaluate", "--images", "x.idx"]).is_err());
    }
}
