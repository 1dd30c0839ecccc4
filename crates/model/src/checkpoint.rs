//! Checkpoints in safetensors: every tensor of the network, the optimizer's
//! state, and the run's metadata in the header.
//!
//! Tensor names (all `F32`, PyTorch layout, see [`crate::Architecture::tensor_specs`]):
//! `conv1.weight`, `bn1.bias`, `bn1.running_mean`, `bn1.running_var`, ...,
//! `fco.weight`, `fco.bias`, and for each trainable tensor `NAME` its Adam
//! moments `optimizer.exp_avg.NAME` and `optimizer.exp_avg_sq.NAME`; a run
//! that averages its weights (`--ema`) adds `ema.NAME` for every network
//! tensor and the metadata `ema_decay`. The
//! header's metadata holds `format`, `format_version`, `architecture`,
//! `epoch`, `step`, `optimizer.step`, `optimizer.learning_rate`, ...,
//! `best_validation_accuracy`, `best_epoch`, `trainer_state`, `dataset` and
//! `class_names` (a JSON list; a file without these two is MNIST's).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::Path;

use atomic_write_file::AtomicWriteFile;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use tch::{Device, Kind, Tensor};

use crate::{Adam, AdamConfig, Architecture, Ema, ModelError, Network};

/// The value of the `format` metadata key: says the file is one of ours.
pub const FORMAT: &str = "mnist-cnn-rs checkpoint";
/// The version of this layout.
pub const FORMAT_VERSION: u32 = 1;

/// The data set a network was trained on: what its classes mean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetMeta {
    /// The data set's name as the trainer spells it (`mnist`, `fashion-mnist`).
    pub name: String,
    /// One name per class, in class order.
    pub class_names: Vec<String>,
}

impl Default for DatasetMeta {
    /// MNIST: what checkpoints written before this field existed were trained on.
    fn default() -> Self {
        Self { name: "mnist".to_owned(), class_names: (0..10).map(|digit: u8| digit.to_string()).collect() }
    }
}

/// What a checkpoint records about the run besides tensors.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CheckpointMeta {
    /// Epochs completed (0-based index of the last finished epoch plus one).
    pub epoch: u64,
    /// Optimizer steps taken in the run.
    pub step: u64,
    /// Best validation accuracy so far, and the epoch (0-based) that reached it.
    pub best_validation_accuracy: Option<(f64, u64)>,
    /// The caller's own state (the trainer's position in the epoch and its
    /// seed, as JSON), opaque here.
    pub trainer_state: String,
    /// The data set trained on (metadata `dataset` and `class_names`, the
    /// latter a JSON list; MNIST when absent).
    pub dataset: DatasetMeta,
}

/// A loaded checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    /// The network, on the requested device.
    pub network: Network,
    /// The optimizer with its moments and step count.
    pub optimizer: Adam,
    /// The run's metadata.
    pub meta: CheckpointMeta,
    /// The moving average of the weights, when the run keeps one.
    pub ema: Option<Ema>,
}

fn tensor_bytes(tensor: &Tensor) -> Result<(Vec<usize>, Vec<u8>), ModelError> {
    let values = tensor
        .f_detach()
        .and_then(|detached| detached.f_to_device(Device::Cpu))
        .and_then(|cpu| cpu.f_to_kind(Kind::Float))
        .and_then(|cpu| cpu.f_flatten(0, -1))
        .and_then(Vec::<f32>::try_from)
        .map_err(ModelError::libtorch("copying a tensor to the CPU"))?;
    let shape: Vec<usize> = tensor.size().iter().map(|&dim| dim as usize).collect();
    Ok((shape, values.iter().flat_map(|value| value.to_le_bytes()).collect()))
}

/// Writes a checkpoint atomically and durably: [`encode`], then a temporary
/// file created in the same folder, synced, renamed over `path`, and the
/// folder synced (`atomic-write-file`), so a crash never leaves a partial
/// file under `path`.
pub fn save(
    path: &Path,
    network: &Network,
    optimizer: &Adam,
    ema: Option<&Ema>,
    meta: &CheckpointMeta,
) -> Result<(), ModelError> {
    let file = path.display().to_string();
    let bytes = encode(network, optimizer, ema, meta, &file)?;
    let written = (|| -> std::io::Result<()> {
        let mut temp = AtomicWriteFile::open(path)?;
        temp.write_all(&bytes)?;
        temp.commit()
    })();
    written.map_err(|error| ModelError::Io { file, operation: "cannot write", error })
}

/// Every tensor of a checkpoint with its name: the network's, then the
/// optimizer's moments of each trainable tensor, then the average's.
fn named_state<'a>(network: &'a Network, optimizer: &'a Adam, ema: Option<&'a Ema>) -> Vec<(String, &'a Tensor)> {
    let mut state: Vec<(String, &Tensor)> =
        network.named_tensors().into_iter().map(|(spec, tensor)| (spec.name.to_owned(), tensor)).collect();
    let trainable = network.named_tensors().into_iter().filter(|(spec, _)| spec.role.is_trainable());
    for (((spec, _), exp_avg), exp_avg_sq) in trainable.zip(optimizer.exp_avg()).zip(optimizer.exp_avg_sq()) {
        state.push((format!("optimizer.exp_avg.{}", spec.name), exp_avg));
        state.push((format!("optimizer.exp_avg_sq.{}", spec.name), exp_avg_sq));
    }
    if let Some(ema) = ema {
        state.extend(
            ema.network().named_tensors().into_iter().map(|(spec, tensor)| (format!("ema.{}", spec.name), tensor)),
        );
    }
    state
}

/// Checks that every weight, moving average and optimizer moment is finite,
/// with one reduction on the device and one read by the host (a second only
/// to name the culprit); [`ModelError::NonFinite`] names the first tensor that is not.
pub fn check_finite(network: &Network, optimizer: &Adam, ema: Option<&Ema>) -> Result<(), ModelError> {
    let state = named_state(network, optimizer, ema);
    let all_finite = tch::no_grad(|| {
        let flags: Vec<Tensor> = state
            .iter()
            .map(|(_, tensor)| tensor.f_isfinite().and_then(|finite| finite.f_all()))
            .collect::<Result<_, _>>()?;
        Tensor::f_stack(&flags, 0)?.f_all()?.f_int64_value(&[])
    })
    .map_err(ModelError::libtorch("checking the state is finite"))?;
    if all_finite == 1 {
        return Ok(());
    }
    for (name, tensor) in &state {
        let finite = tch::no_grad(|| tensor.f_isfinite()?.f_all()?.f_int64_value(&[]))
            .map_err(ModelError::libtorch("checking the state is finite"))?;
        if finite == 0 {
            return Err(ModelError::NonFinite { tensor: name.clone() });
        }
    }
    Ok(())
}

/// The bytes of a checkpoint file (safetensors) for the network, its
/// optimizer and `meta`; `file` names the destination in errors. For callers
/// that write the file their own way (the trainer's run directory). Refuses
/// a state that is not finite ([`check_finite`]): such a file could only
/// spread the damage.
pub fn encode(
    network: &Network,
    optimizer: &Adam,
    ema: Option<&Ema>,
    meta: &CheckpointMeta,
    file: &str,
) -> Result<Vec<u8>, ModelError> {
    check_finite(network, optimizer, ema)?;
    let file = file.to_owned();
    let entries: Vec<(String, Vec<usize>, Vec<u8>)> = named_state(network, optimizer, ema)
        .into_iter()
        .map(|(name, tensor)| tensor_bytes(tensor).map(|(shape, bytes)| (name, shape, bytes)))
        .collect::<Result<_, _>>()?;
    let views: Vec<(String, TensorView<'_>)> = entries
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|view| (name.clone(), view))
                .map_err(|error| ModelError::Checkpoint { file: file.clone(), reason: error.to_string() })
        })
        .collect::<Result<_, _>>()?;

    let config = optimizer.config;
    let mut metadata = HashMap::from([
        ("format".to_owned(), FORMAT.to_owned()),
        ("format_version".to_owned(), FORMAT_VERSION.to_string()),
        ("architecture".to_owned(), network.architecture().name().to_owned()),
        ("epoch".to_owned(), meta.epoch.to_string()),
        ("step".to_owned(), meta.step.to_string()),
        ("trainer_state".to_owned(), meta.trainer_state.clone()),
        ("optimizer".to_owned(), "adam".to_owned()),
        ("optimizer.step".to_owned(), optimizer.step_count().to_string()),
        // `{:?}` prints the shortest text that parses back to the same f64.
        ("optimizer.learning_rate".to_owned(), format!("{:?}", config.learning_rate)),
        ("optimizer.beta1".to_owned(), format!("{:?}", config.beta1)),
        ("optimizer.beta2".to_owned(), format!("{:?}", config.beta2)),
        ("optimizer.epsilon".to_owned(), format!("{:?}", config.epsilon)),
    ]);
    metadata.insert("dataset".to_owned(), meta.dataset.name.clone());
    metadata.insert(
        "class_names".to_owned(),
        serde_json::to_string(&meta.dataset.class_names).expect("a list of strings is JSON"),
    );
    if let Some(ema) = ema {
        metadata.insert("ema_decay".to_owned(), format!("{:?}", ema.decay()));
    }
    if let Some((accuracy, epoch)) = meta.best_validation_accuracy {
        metadata.insert("best_validation_accuracy".to_owned(), format!("{accuracy:?}"));
        metadata.insert("best_epoch".to_owned(), epoch.to_string());
    }
    safetensors::serialize(views, Some(metadata))
        .map_err(|error| ModelError::Checkpoint { file, reason: error.to_string() })
}

/// The metadata of a checkpoint, read and checked.
struct Header {
    architecture: Architecture,
    adam: AdamConfig,
    optimizer_step: u64,
    meta: CheckpointMeta,
    /// The decay of the weights' average the file holds, if it holds one.
    ema_decay: Option<f64>,
}

fn parse_header(file: &str, metadata: &HashMap<String, String>) -> Result<Header, ModelError> {
    let bad = |reason: String| ModelError::Checkpoint { file: file.to_owned(), reason };
    let field = |key: &str| metadata.get(key).ok_or_else(|| bad(format!("metadata has no `{key}`")));
    if metadata.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(bad(format!(
            "not a checkpoint of this project (metadata `format` is {:?})",
            metadata.get("format")
        )));
    }
    let version: u32 = field("format_version")?.parse().map_err(|_| bad("bad `format_version`".to_owned()))?;
    if version != FORMAT_VERSION {
        return Err(bad(format!("format version {version}, this program reads version {FORMAT_VERSION}")));
    }
    let parse_u64 = |key: &str| -> Result<u64, ModelError> {
        field(key)?.parse().map_err(|_| bad(format!("metadata `{key}` is not a whole number")))
    };
    let parse_f64 = |key: &str| -> Result<f64, ModelError> {
        let value: f64 = field(key)?.parse().map_err(|_| bad(format!("metadata `{key}` is not a number")))?;
        if !value.is_finite() {
            return Err(bad(format!("metadata `{key}` is {value}, expected a finite number")));
        }
        Ok(value)
    };
    let architecture: Architecture = field("architecture")?.parse().map_err(bad)?;
    let adam = AdamConfig {
        learning_rate: parse_f64("optimizer.learning_rate")?,
        beta1: parse_f64("optimizer.beta1")?,
        beta2: parse_f64("optimizer.beta2")?,
        epsilon: parse_f64("optimizer.epsilon")?,
    };
    let best_validation_accuracy = match metadata.get("best_validation_accuracy") {
        Some(_) => Some((parse_f64("best_validation_accuracy")?, parse_u64("best_epoch")?)),
        None => None,
    };
    let meta = CheckpointMeta {
        epoch: parse_u64("epoch")?,
        step: parse_u64("step")?,
        best_validation_accuracy,
        trainer_state: field("trainer_state")?.clone(),
        dataset: parse_dataset(metadata).map_err(bad)?,
    };
    let optimizer_step = parse_u64("optimizer.step")?;
    let ema_decay = parse_ema_decay(metadata).map_err(bad)?;
    // Adam raises its betas to the step count as an `i32`.
    if optimizer_step > i32::MAX as u64 {
        return Err(bad(format!(
            "metadata `optimizer.step` is {optimizer_step}, more than Adam counts ({})",
            i32::MAX
        )));
    }
    if let Some((accuracy, _)) = meta.best_validation_accuracy
        && !(0.0..=1.0).contains(&accuracy)
    {
        return Err(bad(format!("metadata `best_validation_accuracy` is {accuracy}, expected a value in [0, 1]")));
    }
    Ok(Header { architecture, adam, optimizer_step, meta, ema_decay })
}

/// The `ema_decay` metadata: the decay of the weights' average the file
/// holds, `None` when it holds none.
fn parse_ema_decay(metadata: &HashMap<String, String>) -> Result<Option<f64>, String> {
    let Some(text) = metadata.get("ema_decay") else {
        return Ok(None);
    };
    match text.parse::<f64>() {
        Ok(decay) if decay > 0.0 && decay < 1.0 => Ok(Some(decay)),
        _ => Err(format!("metadata `ema_decay` is {text:?}, expected a number in (0, 1)")),
    }
}

/// The `dataset` and `class_names` metadata; both absent means MNIST.
fn parse_dataset(metadata: &HashMap<String, String>) -> Result<DatasetMeta, String> {
    let Some(name) = metadata.get("dataset") else {
        return Ok(DatasetMeta::default());
    };
    let names = metadata.get("class_names").ok_or("metadata has `dataset` but no `class_names`")?;
    let class_names: Vec<String> = serde_json::from_str(names)
        .map_err(|error| format!("metadata `class_names` is not a JSON list of strings ({error})"))?;
    if class_names.len() != crate::network::N_CLASSES as usize {
        return Err(format!(
            "metadata `class_names` has {} names, the network has {} classes",
            class_names.len(),
            crate::network::N_CLASSES
        ));
    }
    Ok(DatasetMeta { name: name.clone(), class_names })
}

/// The largest safetensors header [`read_meta`] reads: 1 MiB.
pub const MAX_HEADER_BYTES: u64 = 1 << 20;

/// Reads only a checkpoint's header (a few hundred bytes, not the tensors):
/// its architecture and metadata, checked like [`load`] checks them.
pub fn read_meta(path: &Path) -> Result<(Architecture, CheckpointMeta), ModelError> {
    use std::io::Read;
    let file = path.display().to_string();
    let io_error = |error| ModelError::Io { file: file.clone(), operation: "cannot read", error };
    let bad = |reason: String| ModelError::Checkpoint { file: file.clone(), reason };
    let mut reader = fs::File::open(path).map_err(io_error)?;
    let mut length_bytes = [0u8; 8];
    reader.read_exact(&mut length_bytes).map_err(|_| bad("not a safetensors file (shorter than 8 bytes)".into()))?;
    let header_length = u64::from_le_bytes(length_bytes);
    // This project's headers are a few KB; safetensors' own limit (100 MB)
    // would let one file make every reader allocate 100 MB.
    if header_length > MAX_HEADER_BYTES {
        return Err(bad(format!(
            "not a safetensors file of this project (the header claims {header_length} bytes, more than the \
             limit of {MAX_HEADER_BYTES})"
        )));
    }
    // Read as it arrives, so a header that claims more than the file holds allocates only what is there.
    let mut header_bytes = Vec::new();
    reader.take(header_length).read_to_end(&mut header_bytes).map_err(io_error)?;
    if header_bytes.len() as u64 != header_length {
        return Err(bad("truncated safetensors header".into()));
    }
    let header: serde_json::Value = serde_json::from_slice(&header_bytes)
        .map_err(|error| bad(format!("not a safetensors file (header is not JSON: {error})")))?;
    // A safetensors file without metadata is someone else's: parse_header says so.
    let metadata: HashMap<String, String> = match header.get("__metadata__") {
        None => HashMap::new(),
        Some(value) => serde_json::from_value(value.clone())
            .map_err(|_| bad("safetensors `__metadata__` is not a map of strings".into()))?,
    };
    let parsed = parse_header(&file, &metadata)?;
    Ok((parsed.architecture, parsed.meta))
}

/// The largest file a checkpoint of this project can be: every tensor of
/// the largest architecture, their average and the Adam moments of its
/// trainable ones, as `f32`, plus 1 MiB for the header.
pub fn max_file_bytes() -> u64 {
    let tensor_bytes = |architecture: Architecture| -> u64 {
        architecture
            .tensor_specs()
            .iter()
            .map(|spec| {
                let values: i64 = spec.shape.iter().product();
                // The tensor, its average, and for a trainable one Adam's two moments.
                let copies = if spec.role.is_trainable() { 4 } else { 2 };
                values as u64 * 4 * copies
            })
            .sum()
    };
    Architecture::ALL.into_iter().map(tensor_bytes).max().unwrap_or(0) + (1 << 20)
}

/// The tensors named in `expected`, each checked for its dtype and shape,
/// and no tensor besides them.
fn read_tensors(
    tensors: &SafeTensors<'_>,
    expected: &[(String, Vec<i64>)],
    architecture: Architecture,
    bad: &dyn Fn(String) -> ModelError,
) -> Result<HashMap<String, Tensor>, ModelError> {
    let mut read = HashMap::new();
    for (name, shape) in expected {
        let view = tensors.tensor(name).map_err(|_| bad(format!("tensor `{name}` is missing")))?;
        if view.dtype() != Dtype::F32 {
            return Err(bad(format!("tensor `{name}` has dtype {:?}, expected F32", view.dtype())));
        }
        let found: Vec<i64> = view.shape().iter().map(|&dim| dim as i64).collect();
        if &found != shape {
            return Err(bad(format!(
                "tensor `{name}` has shape {found:?}, expected {shape:?} for the {} network",
                architecture.name()
            )));
        }
        let tensor = Tensor::f_from_data_size(view.data(), shape, Kind::Float)
            .map_err(|error| bad(format!("tensor `{name}`: {error}")))?;
        read.insert(name.clone(), tensor);
    }
    let known: std::collections::HashSet<&str> = expected.iter().map(|(name, _)| name.as_str()).collect();
    if let Some(unexpected) = tensors.names().into_iter().find(|name| !known.contains(name)) {
        return Err(bad(format!("unexpected tensor `{unexpected}` for the {} network", architecture.name())));
    }
    Ok(read)
}

/// Reads a checkpoint onto `device`, checking every name, shape and dtype.
///
/// # Examples
///
/// ```
/// use model::{Adam, AdamConfig, Architecture, CheckpointMeta, DatasetMeta, Network, checkpoint};
/// use tch::Device;
///
/// let network = Network::new(Architecture::Intended, Device::Cpu).unwrap();
/// let optimizer = Adam::new(&network.trainable(), AdamConfig::default()).unwrap();
/// let meta = CheckpointMeta {
///     epoch: 3,
///     step: 3300,
///     best_validation_accuracy: Some((0.99, 2)),
///     trainer_state: "{}".to_owned(),
///     dataset: DatasetMeta::default(),
/// };
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("net-2.safetensors");
/// checkpoint::save(&path, &network, &optimizer, None, &meta)?;
/// let loaded = checkpoint::load(&path, Device::Cpu)?;
/// assert_eq!(loaded.meta, meta);
/// assert_eq!(loaded.network.architecture(), Architecture::Intended);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load(path: &Path, device: Device) -> Result<Checkpoint, ModelError> {
    let file = path.display().to_string();
    let bad = |reason: String| ModelError::Checkpoint { file: file.clone(), reason };
    // Refused by its size before it is read whole: no checkpoint of this project is larger.
    let length = fs::metadata(path)
        .map_err(|error| ModelError::Io { file: file.clone(), operation: "cannot read", error })?
        .len();
    if length > max_file_bytes() {
        return Err(bad(format!(
            "is {length} bytes, more than any checkpoint of this program can be ({} bytes): not reading it",
            max_file_bytes()
        )));
    }
    let bytes =
        fs::read(path).map_err(|error| ModelError::Io { file: file.clone(), operation: "cannot read", error })?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|error| bad(format!("not a safetensors file, or a truncated one ({error})")))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let Header { architecture, adam, optimizer_step, meta, ema_decay } = parse_header(&file, &metadata)?;
    let tensors = SafeTensors::deserialize(&bytes).map_err(|error| bad(format!("corrupt tensor data ({error})")))?;
    let specs = architecture.tensor_specs();
    let mut expected: Vec<(String, Vec<i64>)> =
        specs.iter().map(|spec| (spec.name.to_owned(), spec.shape.clone())).collect();
    for spec in specs.iter().filter(|spec| spec.role.is_trainable()) {
        expected.push((format!("optimizer.exp_avg.{}", spec.name), spec.shape.clone()));
        expected.push((format!("optimizer.exp_avg_sq.{}", spec.name), spec.shape.clone()));
    }
    if ema_decay.is_some() {
        expected.extend(specs.iter().map(|spec| (format!("ema.{}", spec.name), spec.shape.clone())));
    }
    let mut read = read_tensors(&tensors, &expected, architecture, &bad)?;

    let mut take = |name: &str| read.remove(name).ok_or_else(|| bad(format!("tensor `{name}` is missing")));
    let network_tensors = specs.iter().map(|spec| take(spec.name)).collect::<Result<Vec<_>, _>>()?;
    let network = Network::from_tensors(architecture, device, network_tensors)?;
    let mut moments = |kind: &str| -> Result<Vec<Tensor>, ModelError> {
        let trainable = specs.iter().filter(|spec| spec.role.is_trainable());
        trainable
            .map(|spec| {
                take(&format!("optimizer.{kind}.{}", spec.name))?
                    .f_to_device(device)
                    .map_err(ModelError::libtorch("moving a checkpoint's optimizer state to the device"))
            })
            .collect()
    };
    let (exp_avg, exp_avg_sq) = (moments("exp_avg")?, moments("exp_avg_sq")?);
    let optimizer = Adam::from_state(adam, optimizer_step, exp_avg, exp_avg_sq);
    let ema = match ema_decay {
        Some(decay) => {
            let averaged =
                specs.iter().map(|spec| take(&format!("ema.{}", spec.name))).collect::<Result<Vec<_>, _>>()?;
            Some(Ema::from_network(decay, Network::from_tensors(architecture, device, averaged)?)?)
        }
        None => None,
    };
    Ok(Checkpoint { network, optimizer, meta, ema })
}
