//! The `strided` network: six convolutions, strided 5x5 ones in place of
//! pooling, and a 128-wide dense layer, after the design Chris Deotte
//! arrived at by ablation on Kaggle's MNIST ("How to choose CNN
//! Architecture MNIST", 2018): 32C3-32C3-32C5S2, 64C3-64C3-64C5S2, 128,
//! with batch norm after every layer and dropout 0.4 after each block.

use tch::{Kind, TchError, Tensor};

use super::{ConvLayer, N_CLASSES, Role, TensorSpec};

/// One convolution: output channels, kernel side, stride, 'SAME' padding
/// (else 'VALID'), and whether dropout follows (the end of a block).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvShape {
    pub(crate) out_channels: i64,
    pub(crate) kernel: i64,
    pub(crate) stride: i64,
    pub(crate) same: bool,
    pub(crate) dropout: bool,
}

const fn conv(out_channels: i64, kernel: i64, stride: i64, same: bool, dropout: bool) -> ConvShape {
    ConvShape { out_channels, kernel, stride, same, dropout }
}

/// The convolutions: 28x28 -> 26 -> 24 -> 12 (strided), then 12 -> 10 -> 8 -> 4 (strided).
pub(crate) const LAYERS: [ConvShape; 6] = [
    conv(32, 3, 1, false, false),
    conv(32, 3, 1, false, false),
    conv(32, 5, 2, true, true),
    conv(64, 3, 1, false, false),
    conv(64, 3, 1, false, false),
    conv(64, 5, 2, true, true),
];

/// Features the dense layer reads: 4x4 by the last convolution's channels.
pub(crate) const FEATURES: i64 = 4 * 4 * 64;
/// Width of the dense layer.
pub(crate) const HIDDEN: i64 = 128;
/// Dropout after each block and after the dense layer (Deotte's 0.4, not the seed's 0.3).
pub(crate) const DROPOUT_PROBABILITY: f64 = 0.4;

const CONV_NAMES: [&str; 6] =
    ["conv1.weight", "conv2.weight", "conv3.weight", "conv4.weight", "conv5.weight", "conv6.weight"];
const SHIFT_NAMES: [&str; 7] = ["bn1.bias", "bn2.bias", "bn3.bias", "bn4.bias", "bn5.bias", "bn6.bias", "bn7.bias"];
const MEAN_NAMES: [&str; 7] = [
    "bn1.running_mean",
    "bn2.running_mean",
    "bn3.running_mean",
    "bn4.running_mean",
    "bn5.running_mean",
    "bn6.running_mean",
    "bn7.running_mean",
];
const VAR_NAMES: [&str; 7] = [
    "bn1.running_var",
    "bn2.running_var",
    "bn3.running_var",
    "bn4.running_var",
    "bn5.running_var",
    "bn6.running_var",
    "bn7.running_var",
];

/// Where the dense layers' tensors and the moving averages start, in spec order.
const FC7_W: usize = 2 * LAYERS.len();
const BN7_BETA: usize = FC7_W + 1;
const FCO_W: usize = BN7_BETA + 1;
const FCO_B: usize = FCO_W + 1;
const FIRST_STATISTIC: usize = FCO_B + 1;
const BN7_MEAN: usize = FIRST_STATISTIC + 2 * LAYERS.len();
const BN7_VAR: usize = BN7_MEAN + 1;

/// The tensors in spec order: each convolution's weight and shift, the
/// hidden dense layer's weight and shift, the output layer's weight and
/// bias, then each batch norm's mean and variance (as the other networks).
pub(super) fn tensor_specs() -> Vec<TensorSpec> {
    let mut specs = Vec::new();
    let mut in_channels = 1;
    for (index, shape) in LAYERS.iter().enumerate() {
        let weight_shape = vec![shape.out_channels, in_channels, shape.kernel, shape.kernel];
        specs.push(TensorSpec { name: CONV_NAMES[index], shape: weight_shape, role: Role::Weight });
        specs.push(TensorSpec { name: SHIFT_NAMES[index], shape: vec![shape.out_channels], role: Role::Shift });
        in_channels = shape.out_channels;
    }
    specs.push(TensorSpec { name: "fc7.weight", shape: vec![HIDDEN, FEATURES], role: Role::Weight });
    specs.push(TensorSpec { name: SHIFT_NAMES[6], shape: vec![HIDDEN], role: Role::Shift });
    specs.push(TensorSpec { name: "fco.weight", shape: vec![N_CLASSES, HIDDEN], role: Role::Weight });
    specs.push(TensorSpec { name: "fco.bias", shape: vec![N_CLASSES], role: Role::Bias });
    let channels = LAYERS.iter().map(|shape| shape.out_channels).chain([HIDDEN]);
    for (index, channels) in channels.enumerate() {
        specs.push(TensorSpec { name: MEAN_NAMES[index], shape: vec![channels], role: Role::RunningMean });
        specs.push(TensorSpec { name: VAR_NAMES[index], shape: vec![channels], role: Role::RunningVar });
    }
    specs
}

/// Logits (fp32) of images `[N, 1, 28, 28]` already cast to `kind`, from
/// tensors in [`tensor_specs`] order (dense weights through [`super::Weights::dense_in`]); `fused` as [`ConvLayer::fused`].
pub(super) fn forward(
    weights: &super::Weights<'_>,
    x: &Tensor,
    train: bool,
    kind: Kind,
    fused: bool,
) -> Result<Tensor, TchError> {
    let tensors = weights.tensors;
    let mut net = x.shallow_clone();
    for (index, shape) in LAYERS.iter().enumerate() {
        let layer = ConvLayer {
            weight: &tensors[2 * index],
            beta: &tensors[2 * index + 1],
            mean: &tensors[FIRST_STATISTIC + 2 * index],
            var: &tensors[FIRST_STATISTIC + 2 * index + 1],
            pool: false,
            stride: shape.stride,
            same: shape.same,
            fused,
        };
        net = layer.apply(&net, train, kind)?;
        if shape.dropout {
            net = net.f_dropout(DROPOUT_PROBABILITY, train)?;
        }
    }
    let net = crate::fused::dense_layer(&net.f_flatten(1, -1)?, &weights.dense_in(FC7_W, kind)?)?;
    let net = super::batch_norm(&net, &tensors[BN7_BETA], &tensors[BN7_MEAN], &tensors[BN7_VAR], train)?;
    let net = super::lrelu(&net)?.f_dropout(DROPOUT_PROBABILITY, train)?;
    net.f_linear(&weights.dense_in(FCO_W, kind)?, Some(&tensors[FCO_B].f_to_kind(kind)?))?.f_to_kind(Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_indices_name_the_tensors_they_are_used_for() {
        let specs = tensor_specs();
        let names = |indices: [usize; 6]| indices.map(|index| specs[index].name);
        assert_eq!(
            names([FC7_W, BN7_BETA, FCO_W, FCO_B, BN7_MEAN, BN7_VAR]),
            ["fc7.weight", "bn7.bias", "fco.weight", "fco.bias", "bn7.running_mean", "bn7.running_var"]
        );
        for index in 0..LAYERS.len() {
            assert_eq!(specs[2 * index].name, CONV_NAMES[index]);
            assert_eq!(specs[2 * index + 1].name, SHIFT_NAMES[index]);
            assert_eq!(specs[FIRST_STATISTIC + 2 * index].name, MEAN_NAMES[index]);
            assert_eq!(specs[FIRST_STATISTIC + 2 * index + 1].name, VAR_NAMES[index]);
        }
        assert_eq!(specs.len(), BN7_VAR + 1);
    }

    #[test]
    fn the_layers_bring_28_pixels_down_to_the_dense_layers_features() {
        let mut side = 28;
        for shape in LAYERS {
            let padding = if shape.same { shape.kernel / 2 } else { 0 };
            side = (side + 2 * padding - shape.kernel) / shape.stride + 1;
        }
        assert_eq!(side * side * LAYERS[5].out_channels, FEATURES);
    }
}
