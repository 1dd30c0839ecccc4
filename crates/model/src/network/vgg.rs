//! The `vgg` network: four 3x3 convolutions in place of the seed's two 5x5
//! convolutions and its 1024-wide dense layer.

use tch::{Kind, TchError, Tensor};

use super::{ConvLayer, DROPOUT_PROBABILITY, N_CLASSES, Role, TensorSpec};

/// Output channels of the four convolutions, and whether 2x2 max pooling
/// follows each: 28x28 -> 14x14 after the first, 14x14 -> 7x7 after the third.
pub(super) const LAYERS: [(i64, bool); 4] = [(32, true), (64, false), (64, true), (128, false)];

/// Features the dense layer reads: 7x7 by the last convolution's channels.
pub(super) const FEATURES: i64 = 7 * 7 * 128;

const CONV_NAMES: [&str; 4] = ["conv1.weight", "conv2.weight", "conv3.weight", "conv4.weight"];
const SHIFT_NAMES: [&str; 4] = ["bn1.bias", "bn2.bias", "bn3.bias", "bn4.bias"];
const MEAN_NAMES: [&str; 4] = ["bn1.running_mean", "bn2.running_mean", "bn3.running_mean", "bn4.running_mean"];
const VAR_NAMES: [&str; 4] = ["bn1.running_var", "bn2.running_var", "bn3.running_var", "bn4.running_var"];

/// Where the dense layer's tensors and the moving averages start, in spec order.
const FCO_W: usize = 2 * LAYERS.len();
const FCO_B: usize = FCO_W + 1;
const FIRST_STATISTIC: usize = FCO_B + 1;

/// The tensors in spec order: each convolution's weight and shift, the dense
/// layer's weight and bias, then each batch norm's mean and variance (the
/// seed's network orders its tensors the same way).
pub(super) fn tensor_specs() -> Vec<TensorSpec> {
    let mut specs = Vec::new();
    let mut in_channels = 1;
    for (index, &(out_channels, _)) in LAYERS.iter().enumerate() {
        specs.push(TensorSpec {
            name: CONV_NAMES[index],
            shape: vec![out_channels, in_channels, 3, 3],
            role: Role::Weight,
        });
        specs.push(TensorSpec { name: SHIFT_NAMES[index], shape: vec![out_channels], role: Role::Shift });
        in_channels = out_channels;
    }
    specs.push(TensorSpec { name: "fco.weight", shape: vec![N_CLASSES, FEATURES], role: Role::Weight });
    specs.push(TensorSpec { name: "fco.bias", shape: vec![N_CLASSES], role: Role::Bias });
    for (index, &(channels, _)) in LAYERS.iter().enumerate() {
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
    for (index, &(_, pool)) in LAYERS.iter().enumerate() {
        let layer = ConvLayer {
            weight: &tensors[2 * index],
            beta: &tensors[2 * index + 1],
            mean: &tensors[FIRST_STATISTIC + 2 * index],
            var: &tensors[FIRST_STATISTIC + 2 * index + 1],
            pool,
            stride: 1,
            same: true,
            fused,
        };
        net = layer.apply(&net, train, kind)?;
    }
    let net = net.f_flatten(1, -1)?.f_dropout(DROPOUT_PROBABILITY, train)?;
    net.f_linear(&weights.dense_in(FCO_W, kind)?, Some(&tensors[FCO_B].f_to_kind(kind)?))?.f_to_kind(Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_indices_name_the_tensors_they_are_used_for() {
        let specs = tensor_specs();
        assert_eq!(specs[FCO_W].name, "fco.weight");
        assert_eq!(specs[FCO_B].name, "fco.bias");
        for index in 0..LAYERS.len() {
            assert_eq!(specs[2 * index].name, CONV_NAMES[index]);
            assert_eq!(specs[2 * index + 1].name, SHIFT_NAMES[index]);
            assert_eq!(specs[FIRST_STATISTIC + 2 * index].name, MEAN_NAMES[index]);
            assert_eq!(specs[FIRST_STATISTIC + 2 * index + 1].name, VAR_NAMES[index]);
        }
        assert_eq!(specs.len(), FIRST_STATISTIC + 2 * LAYERS.len());
    }
}
