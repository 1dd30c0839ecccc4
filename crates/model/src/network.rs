//! The seed's convolutional network, in its intended form and in the form the
//! seed actually built (`docs/SEED.md`, defect 1), as plain tensors we own.

use std::fmt::Write as _;
use std::str::FromStr;

use tch::{Device, Kind, TchError, Tensor};

use crate::ModelError;

mod strided;
mod vgg;

/// One convolution's shape: channels, kernel, stride, padding (and, in the `strided` network, a dropout after it).
pub(crate) use strided::ConvShape;
/// The `strided` network's convolutions ([`Architecture::Strided`]).
pub(crate) const STRIDED_LAYERS: [strided::ConvShape; 6] = strided::LAYERS;
/// The `strided` network's hidden dense layer: its width and the dropout after it and each block.
pub(crate) const STRIDED_DENSE: (i64, f64) = (strided::HIDDEN, strided::DROPOUT_PROBABILITY);

/// The `vgg` network's convolutions: output channels and whether 2x2 max pooling follows.
pub(crate) const VGG_LAYERS: [(i64, bool); 4] = vgg::LAYERS;

/// Batch-norm decay 0.9, i.e. PyTorch's momentum 0.1.
pub const BATCH_NORM_MOMENTUM: f64 = 0.1;
/// Batch-norm epsilon of `slim.batch_norm`.
pub const BATCH_NORM_EPSILON: f64 = 1e-3;
/// The seed's dropout keeps 70% of the activations.
pub const DROPOUT_PROBABILITY: f64 = 0.3;
/// Leaky-ReLU slope: the seed's `lrelu(x) = 0.6 x + 0.4 |x|` is leaky ReLU with slope 0.2.
pub const LEAK: f64 = 0.2;
/// Standard deviation of the truncated-normal initialisation.
pub const INIT_STDDEV: f64 = 0.01;
/// Number of classes.
pub const N_CLASSES: i64 = 10;
/// The side of the square images the network reads (MNIST's 28 pixels).
pub const IMAGE_SIDE: i64 = 28;
/// Pixels per image.
pub const IMAGE_PIXELS: i64 = IMAGE_SIDE * IMAGE_SIDE;

/// The number format a training step computes in. Weights, Adam's moments,
/// batch norm's moving averages and evaluation stay in 32-bit floats either
/// way; bf16 changes the arithmetic of the training step's forward and
/// backward passes only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// 32-bit floats throughout, as the seed.
    #[default]
    Float32,
    /// Convolutions, dense layers, batch norm's normalisation, activations and
    /// dropout in bfloat16, from bf16 copies of the fp32 weights made each
    /// step (explicit casts, which autograd carries back to fp32 gradients);
    /// the loss in fp32. Only where the device computes bf16 natively:
    /// [`Precision::check_native`].
    BFloat16,
}

impl Precision {
    /// The name used on the command line and in `config.json`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Float32 => "fp32",
            Precision::BFloat16 => "bf16",
        }
    }

    /// The tensor kind of the step's arithmetic.
    pub fn kind(self) -> Kind {
        match self {
            Precision::Float32 => Kind::Float,
            Precision::BFloat16 => Kind::BFloat16,
        }
    }

    /// Refuses bf16 on a CPU without native bf16 arithmetic (x86's
    /// AVX512-BF16, which every CPU with AMX also has, or Arm's BF16), where
    /// libtorch would emulate it, slower than fp32 and for nothing. CUDA
    /// devices are accepted: libtorch computes bf16 natively from Ampere on.
    ///
    /// # Examples
    ///
    /// ```
    /// use model::network::{Precision, cpu_has_native_bf16};
    /// use tch::Device;
    ///
    /// assert!(Precision::Float32.check_native(Device::Cpu).is_ok());
    /// assert_eq!(Precision::BFloat16.check_native(Device::Cpu).is_ok(), cpu_has_native_bf16());
    /// ```
    pub fn check_native(self, device: Device) -> Result<(), ModelError> {
        self.check_native_with(device, cpu_has_native_bf16())
    }

    /// [`Precision::check_native`] with the CPU's answer given (testable on any machine).
    pub fn check_native_with(self, device: Device, cpu_native_bf16: bool) -> Result<(), ModelError> {
        if self == Precision::BFloat16 && device == Device::Cpu && !cpu_native_bf16 {
            return Err(ModelError::Precision {
                precision: self.name(),
                reason: "this CPU has no native bf16 arithmetic (neither AVX512-BF16 nor AMX on x86, nor BF16 on \
                         Arm): libtorch would emulate it, slower than fp32"
                    .to_owned(),
            });
        }
        Ok(())
    }
}

impl FromStr for Precision {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "fp32" => Ok(Precision::Float32),
            "bf16" => Ok(Precision::BFloat16),
            other => Err(format!("unknown precision {other:?}: expected fp32 or bf16")),
        }
    }
}

/// Whether this CPU computes bf16 natively: AVX512-BF16 on x86 (every CPU
/// with AMX has it too), BF16 on 64-bit Arm.
pub fn cpu_has_native_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("bf16")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// Which network to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Architecture {
    /// The network the seed meant: conv2 reads pool1.
    #[default]
    Intended,
    /// The network the seed built: conv2 reads the input image, conv1 is dead
    /// weight, and fc4 takes 12,544 inputs. Reproduces the published run.
    Seed,
    /// Not the seed's: the 1024-wide dense layer replaced by convolutions, as
    /// the best single MNIST networks do. Four 3x3 'SAME' convolutions (32,
    /// 64, 64 and 128 channels), each with the seed's shift-only batch norm
    /// and leaky ReLU, 2x2 max pooling after the first and the third, then
    /// dropout 0.3 and the 10-way dense layer on the 7x7x128 features. About
    /// the intended network's cost per image with 6% of its parameters.
    Vgg,
    /// Not the seed's: Chris Deotte's Kaggle design. Six convolutions in two
    /// blocks (3x3 'VALID', 3x3 'VALID', 5x5 'SAME' with stride 2 in place of
    /// pooling; 32 then 64 channels), each with the seed's shift-only batch
    /// norm and leaky ReLU, dropout 0.4 after each block, then a 128-wide
    /// dense layer with batch norm, leaky ReLU and dropout 0.4, and the
    /// 10-way output.
    Strided,
}

impl Architecture {
    /// Every architecture, in the order `--network` lists them.
    pub const ALL: [Architecture; 4] =
        [Architecture::Intended, Architecture::Seed, Architecture::Vgg, Architecture::Strided];

    /// The name used on the command line and in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Intended => "intended",
            Architecture::Seed => "seed",
            Architecture::Vgg => "vgg",
            Architecture::Strided => "strided",
        }
    }

    /// Input channels of the seed's conv2: the image's one as built, conv1's 32 as intended.
    fn conv2_in_channels(self) -> i64 {
        if self == Architecture::Seed { 1 } else { 32 }
    }

    /// Inputs of the seed's fc4: 14x14x64 after one pooling as built, 7x7x64 after two as intended.
    fn fc4_inputs(self) -> i64 {
        if self == Architecture::Seed { 14 * 14 * 64 } else { 7 * 7 * 64 }
    }

    /// Every tensor of the network: name, PyTorch-layout shape, and role.
    pub fn tensor_specs(self) -> Vec<TensorSpec> {
        match self {
            Architecture::Intended | Architecture::Seed => self.seed_family_specs(),
            Architecture::Vgg => vgg::tensor_specs(),
            Architecture::Strided => strided::tensor_specs(),
        }
    }

    /// The tensors of the seed's network, intended or as built.
    fn seed_family_specs(self) -> Vec<TensorSpec> {
        use Role::*;
        let spec = |name, shape: &[i64], role| TensorSpec { name, shape: shape.to_vec(), role };
        vec![
            spec("conv1.weight", &[32, 1, 5, 5], Weight),
            spec("bn1.bias", &[32], Shift),
            spec("conv2.weight", &[64, self.conv2_in_channels(), 5, 5], Weight),
            spec("bn2.bias", &[64], Shift),
            spec("fc4.weight", &[1024, self.fc4_inputs()], Weight),
            spec("bn4.bias", &[1024], Shift),
            spec("fco.weight", &[N_CLASSES, 1024], Weight),
            spec("fco.bias", &[N_CLASSES], Bias),
            spec("bn1.running_mean", &[32], RunningMean),
            spec("bn1.running_var", &[32], RunningVar),
            spec("bn2.running_mean", &[64], RunningMean),
            spec("bn2.running_var", &[64], RunningVar),
            spec("bn4.running_mean", &[1024], RunningMean),
            spec("bn4.running_var", &[1024], RunningVar),
        ]
    }
}

impl FromStr for Architecture {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "intended" => Ok(Architecture::Intended),
            "seed" => Ok(Architecture::Seed),
            "vgg" => Ok(Architecture::Vgg),
            "strided" => Ok(Architecture::Strided),
            other => Err(format!("unknown architecture {other:?}: expected intended, seed, vgg or strided")),
        }
    }
}

/// What a tensor is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A trainable weight.
    Weight,
    /// A trainable batch-norm shift (beta).
    Shift,
    /// A trainable bias.
    Bias,
    /// A batch-norm moving mean (not trainable).
    RunningMean,
    /// A batch-norm moving variance (not trainable).
    RunningVar,
}

impl Role {
    /// Whether the optimizer trains tensors of this role.
    pub fn is_trainable(self) -> bool {
        matches!(self, Role::Weight | Role::Shift | Role::Bias)
    }
}

/// The name, shape and role of one tensor of the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// Name, as in a PyTorch `state_dict` (`conv1.weight`, `bn1.running_mean`, ...).
    pub name: &'static str,
    /// Shape in PyTorch layout: `[out, in, kh, kw]` for convolutions, `[out, in]` for dense layers.
    pub shape: Vec<i64>,
    /// What it is for.
    pub role: Role,
}

/// The network: its architecture and its tensors, in [`Architecture::tensor_specs`] order.
#[derive(Debug)]
pub struct Network {
    architecture: Architecture,
    device: Device,
    tensors: Vec<Tensor>,
    /// Whether training runs each convolution's batch norm, pooling and leaky
    /// ReLU as one fused node or as ATen's three calls (the default).
    fused_kernels: bool,
}

/// Index of each tensor of the seed's network in [`Architecture::tensor_specs`] order.
mod tensor_index {
    pub(super) const CONV1_W: usize = 0;
    pub(super) const BN1_BETA: usize = 1;
    pub(super) const CONV2_W: usize = 2;
    pub(super) const BN2_BETA: usize = 3;
    pub(super) const FC4_W: usize = 4;
    pub(super) const BN4_BETA: usize = 5;
    pub(super) const FCO_W: usize = 6;
    pub(super) const FCO_B: usize = 7;
    pub(super) const BN1_MEAN: usize = 8;
    pub(super) const BN1_VAR: usize = 9;
    pub(super) const BN2_MEAN: usize = 10;
    pub(super) const BN2_VAR: usize = 11;
    pub(super) const BN4_MEAN: usize = 12;
    pub(super) const BN4_VAR: usize = 13;
}

/// Samples a truncated normal: values beyond two standard deviations are
/// redrawn, as TensorFlow's `truncated_normal_initializer` does.
///
/// # Errors
/// [`ModelError::Libtorch`] when libtorch cannot allocate or compute (a device out of memory).
pub fn truncated_normal(shape: &[i64], stddev: f64, device: Device) -> Result<Tensor, ModelError> {
    let draw = || Tensor::f_randn(shape, (Kind::Float, device))?.f_mul_scalar(stddev);
    let sample = || -> Result<Tensor, tch::TchError> {
        let mut values = draw()?;
        loop {
            let outside = values.f_abs()?.f_gt(2.0 * stddev)?;
            if outside.f_any()?.f_int64_value(&[])? == 0 {
                return Ok(values);
            }
            values = draw()?.f_where_self(&outside, &values)?;
        }
    };
    sample().map_err(ModelError::libtorch("drawing initial weights (truncated normal)"))
}

/// Samples Glorot (Xavier) uniform for a dense weight `[fan_out, fan_in]`.
fn glorot_uniform(shape: &[i64], device: Device) -> Result<Tensor, tch::TchError> {
    let (fan_out, fan_in) = (shape[0] as f64, shape[1] as f64);
    let limit = (6.0 / (fan_in + fan_out)).sqrt();
    Tensor::f_empty(shape, (Kind::Float, device))?.f_uniform_(-limit, limit)
}

impl Network {
    /// A freshly initialised network (seed it with `tch::manual_seed` for reproducibility):
    /// truncated normal (stddev 0.01) for conv1, conv2 and fc4, Glorot uniform for
    /// fco's weights, zeros for shifts and biases, moving means 0 and variances 1.
    ///
    /// # Errors
    /// [`ModelError::Libtorch`] when the device cannot hold the tensors.
    pub fn new(architecture: Architecture, device: Device) -> Result<Self, ModelError> {
        let initial = |spec: &TensorSpec| -> Result<Tensor, ModelError> {
            let options = (Kind::Float, device);
            let tensor = match (spec.role, spec.name) {
                (Role::Weight, "fco.weight") => glorot_uniform(&spec.shape, device),
                (Role::Weight, _) => return truncated_normal(&spec.shape, INIT_STDDEV, device),
                (Role::RunningVar, _) => Tensor::f_ones(spec.shape.as_slice(), options),
                _ => Tensor::f_zeros(spec.shape.as_slice(), options),
            };
            tensor.map_err(ModelError::libtorch("allocating the network's tensors"))
        };
        let tensors = architecture
            .tensor_specs()
            .iter()
            .map(|spec| {
                initial(spec)?
                    .f_set_requires_grad(spec.role.is_trainable())
                    .map_err(ModelError::libtorch("marking the network's trainable tensors"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { architecture, device, tensors, fused_kernels: false })
    }

    /// Builds a network from tensors in [`Architecture::tensor_specs`] order
    /// (checked by the caller, e.g. the checkpoint loader), on `device`.
    pub(crate) fn from_tensors(
        architecture: Architecture,
        device: Device,
        tensors: Vec<Tensor>,
    ) -> Result<Self, ModelError> {
        let specs = architecture.tensor_specs();
        let tensors = tensors
            .into_iter()
            .zip(&specs)
            .map(|(tensor, spec)| {
                tensor
                    .f_to_device(device)
                    .and_then(|moved| moved.f_set_requires_grad(spec.role.is_trainable()))
                    .map_err(ModelError::libtorch("moving a checkpoint's tensors to the device"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { architecture, device, tensors, fused_kernels: false })
    }

    /// A copy for inference and export: the same values, detached from
    /// autograd, nothing requiring gradients.
    ///
    /// # Errors
    /// [`ModelError::Libtorch`] when the device cannot hold the copy.
    pub fn detached_copy(&self) -> Result<Network, ModelError> {
        let tensors = self
            .tensors
            .iter()
            .map(|tensor| {
                // A plain copy of the detached values (`detach_copy` would keep requiring gradients).
                let detached = tensor.f_detach()?;
                let mut copy = detached.f_zeros_like()?;
                copy.f_copy_(&detached)?;
                Ok(copy)
            })
            .collect::<Result<_, tch::TchError>>()
            .map_err(ModelError::libtorch("copying the network"))?;
        Ok(Self { architecture: self.architecture, device: self.device, tensors, fused_kernels: self.fused_kernels })
    }

    /// Chooses how training computes each convolution's batch norm, 2x2
    /// pooling and leaky ReLU: `true` as one fused node with hand-written
    /// passes over memory where the input allows it (an AVX2 CPU,
    /// channels-last, fp32 or bf16), `false` (the default) as ATen's three
    /// calls. The fused node measured 0.98-0.99x ATen's calls in fp32 on a
    /// 2-core AMD EPYC; on an Intel Xeon with AMX 1.11x in fp32 and 1.16x
    /// in bf16 (`scripts/ab_bench.sh`, `docs/PERFORMANCE.md`); the trainer
    /// fuses in bf16 by default and in fp32 when asked. Evaluation is the same
    /// either way; training differs only in rounding (the batch statistics
    /// are summed in another order).
    ///
    /// # Examples
    ///
    /// ```
    /// use model::{Architecture, Network};
    /// use tch::{Device, Kind, Tensor};
    ///
    /// let mut network = Network::new(Architecture::Intended, Device::Cpu).unwrap();
    /// let images = Tensor::rand([4, 28, 28], (Kind::Float, Device::Cpu));
    /// // Training mode draws a dropout mask: the same seed gives both sides the same one.
    /// tch::manual_seed(0);
    /// let reference = tch::no_grad(|| network.forward(&images, true))?;
    /// network.set_fused_kernels(true);
    /// tch::manual_seed(0);
    /// let fused = tch::no_grad(|| network.forward(&images, true))?;
    /// assert!((fused - reference).abs().max().double_value(&[]) < 1e-4);
    /// # Ok::<(), model::ModelError>(())
    /// ```
    pub fn set_fused_kernels(&mut self, fused: bool) {
        self.fused_kernels = fused;
    }

    /// The architecture.
    pub fn architecture(&self) -> Architecture {
        self.architecture
    }

    /// The device the tensors live on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Every tensor with its spec, in [`Architecture::tensor_specs`] order.
    pub fn named_tensors(&self) -> Vec<(TensorSpec, &Tensor)> {
        self.architecture.tensor_specs().into_iter().zip(&self.tensors).collect()
    }

    /// The trainable tensors (weights, shifts, biases), in order.
    pub fn trainable(&self) -> Vec<&Tensor> {
        self.named_tensors().into_iter().filter(|(spec, _)| spec.role.is_trainable()).map(|(_, t)| t).collect()
    }

    /// Number of trainable values.
    pub fn n_trainable_values(&self) -> i64 {
        self.trainable().iter().map(|tensor| tensor.numel() as i64).sum()
    }

    /// Logits `[N, 10]` for images `[N, 28, 28]` or `[N, 1, 28, 28]` on the
    /// network's device. In training mode batch norm uses the batch's
    /// statistics and updates its moving averages in place, and dropout is
    /// active; in evaluation mode batch norm uses the moving averages and
    /// dropout is off. Errors (not panics) for images of another shape and
    /// for libtorch failures such as running out of device memory.
    ///
    /// # Examples
    ///
    /// ```
    /// use model::{Architecture, Network};
    /// use tch::{Device, Kind, Tensor};
    ///
    /// let network = Network::new(Architecture::Intended, Device::Cpu).unwrap();
    /// let images = Tensor::rand([4, 28, 28], (Kind::Float, Device::Cpu));
    /// let logits = tch::no_grad(|| network.forward(&images, false))?;
    /// assert_eq!(logits.size(), [4, 10]);
    /// // A 14x56 image has 784 pixels too, but it is not a digit's layout.
    /// assert!(network.forward(&Tensor::zeros([1, 14, 56], (Kind::Float, Device::Cpu)), false).is_err());
    /// # Ok::<(), model::ModelError>(())
    /// ```
    pub fn forward(&self, images: &Tensor, train: bool) -> Result<Tensor, ModelError> {
        self.forward_in(images, train, Precision::Float32)
    }

    /// [`Network::forward`] computing in `precision` when `train` is set
    /// (evaluation always computes in fp32). The logits are fp32 either way.
    ///
    /// # Examples
    ///
    /// ```
    /// use model::{Architecture, Network, Precision};
    /// use tch::{Device, Kind, Tensor};
    ///
    /// let network = Network::new(Architecture::Intended, Device::Cpu).unwrap();
    /// let images = Tensor::rand([8, 28, 28], (Kind::Float, Device::Cpu));
    /// let logits = network.forward_in(&images, true, Precision::BFloat16)?;
    /// assert_eq!(logits.kind(), Kind::Float);
    /// # Ok::<(), model::ModelError>(())
    /// ```
    pub fn forward_in(&self, images: &Tensor, train: bool, precision: Precision) -> Result<Tensor, ModelError> {
        let kind = if train { precision.kind() } else { Kind::Float };
        self.forward_checked(images, train, kind, &[])
    }

    /// The training forward pass in `precision`, computing with `shadows`
    /// (bf16 copies of trainable tensors, by position in
    /// [`Network::trainable`], kept by the optimizer: `crate::shadow`) in
    /// place of casting those tensors; their gradients land on the copies.
    pub(crate) fn forward_train_with_shadows(
        &self,
        images: &Tensor,
        precision: Precision,
        shadows: &[Option<Tensor>],
    ) -> Result<Tensor, ModelError> {
        self.forward_checked(images, true, precision.kind(), shadows)
    }

    /// The forward pass in `kind` with `shadows`, after checking the images' shape.
    fn forward_checked(
        &self,
        images: &Tensor,
        train: bool,
        kind: Kind,
        shadows: &[Option<Tensor>],
    ) -> Result<Tensor, ModelError> {
        check_image_shape(images)?;
        self.forward_unchecked(images, train, kind, &self.weights(shadows))
            .map_err(ModelError::libtorch("forward pass"))
    }

    /// The tensors as a forward pass reads them, with `shadows` (by
    /// trainable position) placed at their tensors' indices.
    fn weights<'a>(&'a self, shadows: &'a [Option<Tensor>]) -> Weights<'a> {
        let mut by_index = vec![None; self.tensors.len()];
        if !shadows.is_empty() {
            let specs = self.architecture.tensor_specs();
            let trainable = specs.iter().enumerate().filter(|(_, spec)| spec.role.is_trainable());
            for ((index, _), shadow) in trainable.zip(shadows) {
                by_index[index] = shadow.as_ref();
            }
        }
        Weights { tensors: &self.tensors, shadows: by_index }
    }

    /// The forward pass computing in `kind`: the input and every weight are
    /// cast to it (a no-op for fp32), batch norm's shift and moving averages
    /// stay fp32 (libtorch's batch norm takes mixed kinds), the logits come
    /// back as fp32.
    fn forward_unchecked(
        &self,
        images: &Tensor,
        train: bool,
        kind: Kind,
        weights: &Weights<'_>,
    ) -> Result<Tensor, TchError> {
        let x = images.f_view([-1, 1, IMAGE_SIDE, IMAGE_SIDE])?.f_to_kind(kind)?;
        match self.architecture {
            Architecture::Intended | Architecture::Seed => self.forward_seed_family(&x, train, kind, weights),
            Architecture::Vgg => vgg::forward(weights, &x, train, kind, self.fused_kernels),
            Architecture::Strided => strided::forward(weights, &x, train, kind, self.fused_kernels),
        }
    }

    /// The seed's network, intended or as built, on images already cast to `kind`.
    fn forward_seed_family(
        &self,
        x: &Tensor,
        train: bool,
        kind: Kind,
        weights: &Weights<'_>,
    ) -> Result<Tensor, TchError> {
        let t = weights.tensors;
        let layer = |weight, beta, mean, var| ConvLayer {
            weight: &t[weight],
            beta: &t[beta],
            mean: &t[mean],
            var: &t[var],
            pool: true,
            stride: 1,
            same: true,
            fused: self.fused_kernels,
        };
        use tensor_index::*;
        let conv1 = layer(CONV1_W, BN1_BETA, BN1_MEAN, BN1_VAR);
        let conv2 = layer(CONV2_W, BN2_BETA, BN2_MEAN, BN2_VAR);
        let pooled = match self.architecture {
            // The seed's defect: conv2 reads the input; conv1 and pool1 are never used.
            Architecture::Seed => conv2.apply(x, train, kind)?,
            _ => conv2.apply(&conv1.apply(x, train, kind)?, train, kind)?,
        };
        let net = pooled.f_flatten(1, -1)?;
        let net = crate::fused::dense_layer(&net, &weights.dense_in(tensor_index::FC4_W, kind)?)?;
        let net = lrelu(&batch_norm(
            &net,
            &t[tensor_index::BN4_BETA],
            &t[tensor_index::BN4_MEAN],
            &t[tensor_index::BN4_VAR],
            train,
        )?)?;
        let net = net.f_dropout(DROPOUT_PROBABILITY, train)?;
        net.f_linear(&weights.dense_in(tensor_index::FCO_W, kind)?, Some(&t[tensor_index::FCO_B].f_to_kind(kind)?))?
            .f_to_kind(Kind::Float)
    }

    /// The seed's listing of its trainable variables, one line per variable,
    /// with TensorFlow's names and shapes (`(5, 5, 1, 32)` for a 5x5 conv from
    /// 1 to 32 channels, `(in, out)` for dense weights):
    /// `[0/8] [conv1/weights:0] / SAHPE IS (5, 5, 1, 32)`.
    pub fn variable_listing(&self) -> String {
        let trainable: Vec<TensorSpec> =
            self.architecture.tensor_specs().into_iter().filter(|spec| spec.role.is_trainable()).collect();
        let mut listing = String::new();
        for (position, spec) in trainable.iter().enumerate() {
            let (tf_name, tf_shape) = tensorflow_name_and_shape(self.architecture, spec);
            let dims: Vec<String> = tf_shape.iter().map(i64::to_string).collect();
            let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
            let _ = writeln!(listing, "[{position}/{}] [{tf_name}:0] / SAHPE IS {shape}", trainable.len());
        }
        listing
    }
}

/// TensorFlow's name and shape of a trainable tensor.
fn tensorflow_name_and_shape(architecture: Architecture, spec: &TensorSpec) -> (String, Vec<i64>) {
    let layer = spec.name.split('.').next().unwrap_or(spec.name);
    // A batch norm belongs to the layer it follows: in the seed's network bn4
    // follows fc4, in the `strided` network bn7 follows fc7.
    let scope = match (architecture, layer.strip_prefix("bn")) {
        (Architecture::Intended | Architecture::Seed, Some("4")) | (Architecture::Strided, Some("7")) => {
            format!("fc{}", &layer[2..])
        }
        (_, Some(number)) => format!("conv{number}"),
        (_, None) => layer.to_owned(),
    };
    let shape = &spec.shape;
    match spec.role {
        Role::Shift => (format!("{scope}/BatchNorm/beta"), shape.clone()),
        Role::Bias => (format!("{scope}/biases"), shape.clone()),
        // PyTorch [out, in, kh, kw] is TensorFlow (kh, kw, in, out); [out, in] is (in, out).
        _ if shape.len() == 4 => (format!("{scope}/weights"), vec![shape[2], shape[3], shape[1], shape[0]]),
        _ => (format!("{scope}/weights"), vec![shape[1], shape[0]]),
    }
}

/// Checks that `images` is `[N, 28, 28]` or `[N, 1, 28, 28]` with `N >= 1`;
/// returns `N`.
pub(crate) fn check_image_shape(images: &Tensor) -> Result<i64, ModelError> {
    let shape = images.size();
    let layout_ok = match shape.as_slice() {
        [_, rows, cols] | [_, 1, rows, cols] => *rows == IMAGE_SIDE && *cols == IMAGE_SIDE,
        _ => false,
    };
    if !layout_ok || shape[0] < 1 {
        return Err(ModelError::ImageShape { found: shape });
    }
    Ok(shape[0])
}

/// Leaky ReLU with slope [`LEAK`], one kernel forward and one backward
/// (autograd records it). The seed's `lrelu(x) = 0.6 x + 0.4 |x|` is the same
/// function in four operations (four passes over memory each way); the two
/// differ only in rounding.
///
/// # Examples
///
/// ```
/// use tch::Tensor;
///
/// let x = Tensor::from_slice(&[-2.0f32, 0.0, 3.0]);
/// let y = model::network::leaky_relu(&x)?;
/// assert_eq!(Vec::<f32>::try_from(&y).unwrap(), [-0.4, 0.0, 3.0]);
/// # Ok::<(), model::ModelError>(())
/// ```
pub fn leaky_relu(x: &Tensor) -> Result<Tensor, ModelError> {
    lrelu(x).map_err(ModelError::libtorch("leaky ReLU"))
}

fn lrelu(x: &Tensor) -> Result<Tensor, TchError> {
    crate::fused::leaky_relu(x, LEAK)
}

/// Batch norm without a scale (gamma fixed at 1) and with a trainable shift.
fn batch_norm(
    x: &Tensor,
    beta: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    train: bool,
) -> Result<Tensor, TchError> {
    x.f_batch_norm(
        None::<&Tensor>,
        Some(beta),
        Some(running_mean),
        Some(running_var),
        train,
        BATCH_NORM_MOMENTUM,
        BATCH_NORM_EPSILON,
        true,
    )
}

/// The same 4-d tensor stored channels-last (NHWC in memory, NCHW in shape):
/// given channels-last weights, oneDNN convolves without reordering and
/// batch norm, leaky ReLU and max pooling run their channels-last kernels.
fn channels_last(weight: &Tensor) -> Result<Tensor, TchError> {
    let [out_channels, in_channels, height, width] = weight.size()[..] else {
        return Ok(weight.shallow_clone());
    };
    // Explicit strides: with one input channel, `contiguous` would keep NCHW's
    // strides (a dimension of size 1 makes both layouts "contiguous"), and
    // libtorch would then take the NCHW path.
    let nhwc = weight.f_permute([0, 2, 3, 1])?.f_contiguous()?;
    nhwc.f_as_strided(
        [out_channels, in_channels, height, width],
        [height * width * in_channels, 1, width * in_channels, in_channels],
        0,
    )
}

/// The network's tensors as one forward pass reads them: a dense layer's
/// weight in the compute kind is its bf16 shadow where the optimizer keeps
/// one (`crate::shadow`), a cast of the fp32 weight otherwise.
pub(crate) struct Weights<'a> {
    /// Every tensor, in [`Architecture::tensor_specs`] order.
    pub(crate) tensors: &'a [Tensor],
    /// The shadows, by tensor index.
    shadows: Vec<Option<&'a Tensor>>,
}

impl Weights<'_> {
    /// The dense weight at `index` in `kind`: its shadow when it has one of that kind.
    pub(crate) fn dense_in(&self, index: usize, kind: Kind) -> Result<Tensor, TchError> {
        match self.shadows.get(index).and_then(|shadow| *shadow) {
            Some(shadow) if shadow.kind() == kind => Ok(shadow.shallow_clone()),
            _ => self.tensors[index].f_to_kind(kind),
        }
    }
}

/// One convolution layer's tensors: its weight, batch norm's shift and
/// moving averages, whether 2x2 max pooling follows, and whether training
/// runs batch norm, pooling and leaky ReLU as one fused node.
struct ConvLayer<'a> {
    weight: &'a Tensor,
    beta: &'a Tensor,
    mean: &'a Tensor,
    var: &'a Tensor,
    pool: bool,
    /// The convolution's stride (1 but for the `strided` network's
    /// downsampling layers).
    stride: i64,
    /// 'SAME' padding (half the kernel on each side) or 'VALID' (none).
    same: bool,
    /// Batch norm, pooling and leaky ReLU as one fused node in training
    /// where the shim can take the input ([`Network::set_fused_kernels`]).
    fused: bool,
}

impl ConvLayer<'_> {
    /// A convolution without bias (5x5 or 3x3, from the weight's shape;
    /// 'SAME' or 'VALID', at the layer's stride), batch norm, 2x2 max
    /// pooling where the layer has it, and leaky ReLU; in training the last three in one fused node on the CPU
    /// (`csrc/bn_pool_lrelu.cpp`) when [`Network::set_fused_kernels`] asked
    /// for it. Pooling comes before the activation: leaky ReLU is
    /// increasing, so it commutes with max, and the values (and gradients)
    /// are the seed's order's, on a quarter of the elements. In evaluation mode the batch
    /// norm is folded into the convolution (weights scaled by
    /// `1/sqrt(var + eps)` per output channel, bias `beta - mean/sqrt(var +
    /// eps)`), which spares a pass over the largest activations. The
    /// convolution computes in `kind`, the kind of `x`.
    fn apply(&self, x: &Tensor, train: bool, kind: Kind) -> Result<Tensor, TchError> {
        let padding = if self.same { self.weight.size()[2] / 2 } else { 0 };
        let stride = [self.stride, self.stride];
        if train {
            // The cast keeps the channels-last strides (libtorch preserves a dense layout).
            let weight = channels_last(self.weight)?.f_to_kind(kind)?;
            let conv = x.f_conv2d::<Tensor>(&weight, None, stride, [padding, padding], [1, 1], 1)?;
            let batch_norm = crate::fused::BatchNormArgs {
                beta: self.beta,
                running_mean: self.mean,
                running_var: self.var,
                momentum: BATCH_NORM_MOMENTUM,
                eps: BATCH_NORM_EPSILON,
            };
            return crate::fused::bn_pool_lrelu(&conv, &batch_norm, LEAK, self.pool, self.fused);
        }
        let inverse_std = self.var.f_add_scalar(BATCH_NORM_EPSILON)?.f_rsqrt()?;
        let folded_weight = self.weight.f_mul(&inverse_std.f_view([-1, 1, 1, 1])?)?;
        let folded_bias = self.beta.f_sub(&self.mean.f_mul(&inverse_std)?)?;
        let normalized =
            x.f_conv2d(&channels_last(&folded_weight)?, Some(&folded_bias), stride, [padding, padding], [1, 1], 1)?;
        if self.pool {
            lrelu(&normalized.f_max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)?)
        } else {
            lrelu(&normalized)
        }
    }
}
