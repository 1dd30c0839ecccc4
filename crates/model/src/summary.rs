//! The network's layers: output shapes, parameters and floating-point
//! operations, as Keras's `summary()` lists them.
//!
//! Counting convention: a multiply-add is 2 FLOPs; batch norm in evaluation
//! 2 per element (scale and shift); the seed's leaky ReLU `0.6x + 0.4|x|` 4
//! per element; 2x2 max pooling 3 comparisons per output; dropout nothing
//! (evaluation). A training step per image is the forward pass plus the
//! backward pass: convolutions and dense layers cost twice their forward
//! FLOPs backward (the input's gradient and the weights'), except that the
//! layer reading the image needs no input gradient; elementwise layers cost
//! about their forward FLOPs again. Adam adds about 12 FLOPs per parameter
//! per step, whatever the batch.

use crate::network::{Architecture, IMAGE_SIDE, N_CLASSES};

/// FLOPs of one Adam update per trainable parameter (moments, bias
/// correction, square root, division, update).
pub const ADAM_FLOPS_PER_PARAMETER: u64 = 12;

/// One layer of the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSummary {
    /// The layer's name (its tensors' prefix where it has any).
    pub name: &'static str,
    /// What it computes.
    pub kind: String,
    /// Its output for one image (channels, height, width, or features).
    pub output_shape: Vec<i64>,
    /// Trainable values.
    pub parameters: u64,
    /// Values kept but not trained (batch-norm moving averages).
    pub statistics: u64,
    /// FLOPs per image, forward.
    pub forward_flops: u64,
    /// FLOPs per image, backward.
    pub backward_flops: u64,
}

/// The whole network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSummary {
    /// The architecture summarised.
    pub architecture: Architecture,
    /// Every layer, input to output.
    pub layers: Vec<LayerSummary>,
}

impl ModelSummary {
    /// Trainable values in all layers.
    pub fn parameters(&self) -> u64 {
        self.layers.iter().map(|layer| layer.parameters).sum()
    }

    /// Batch-norm moving averages in all layers.
    pub fn statistics(&self) -> u64 {
        self.layers.iter().map(|layer| layer.statistics).sum()
    }

    /// FLOPs of one image's forward pass.
    pub fn forward_flops(&self) -> u64 {
        self.layers.iter().map(|layer| layer.forward_flops).sum()
    }

    /// FLOPs of one image's forward and backward pass in training.
    pub fn train_flops_per_image(&self) -> u64 {
        self.layers.iter().map(|layer| layer.forward_flops + layer.backward_flops).sum()
    }

    /// FLOPs of one optimizer step (independent of the batch size).
    pub fn optimizer_flops_per_step(&self) -> u64 {
        ADAM_FLOPS_PER_PARAMETER * self.parameters()
    }

    /// FLOPs of one training step on `batch_size` images.
    pub fn train_flops_per_step(&self, batch_size: u64) -> u64 {
        batch_size * self.train_flops_per_image() + self.optimizer_flops_per_step()
    }
}

/// Builds the layer list as the network's forward pass runs it.
struct Builder {
    layers: Vec<LayerSummary>,
    shape: Vec<i64>,
    reads_image: bool,
}

impl Builder {
    fn elements(&self) -> u64 {
        self.shape.iter().product::<i64>() as u64
    }

    fn push(
        &mut self,
        name: &'static str,
        kind: String,
        parameters: u64,
        statistics: u64,
        forward: u64,
        backward: u64,
    ) {
        let output_shape = self.shape.clone();
        self.layers.push(LayerSummary {
            name,
            kind,
            output_shape,
            parameters,
            statistics,
            forward_flops: forward,
            backward_flops: backward,
        });
    }

    /// A `kernel`x`kernel` 'SAME' convolution without bias; the input's gradient is skipped for the layer reading the image.
    /// A 'SAME' convolution at stride 1.
    fn conv(&mut self, name: &'static str, kernel: i64, in_channels: i64, out_channels: i64) {
        let shape = crate::network::ConvShape { out_channels, kernel, stride: 1, same: true, dropout: false };
        self.strided_conv(name, in_channels, &shape);
    }

    fn strided_conv(&mut self, name: &'static str, in_channels: i64, shape: &crate::network::ConvShape) {
        let (kernel, stride, out_channels) = (shape.kernel, shape.stride, shape.out_channels);
        let padding = if shape.same { kernel / 2 } else { 0 };
        let side = |input: i64| (input + 2 * padding - kernel) / stride + 1;
        let (height, width) = (side(self.shape[1]), side(self.shape[2]));
        self.shape = vec![out_channels, height, width];
        let parameters = (kernel * kernel * in_channels * out_channels) as u64;
        let forward = 2 * parameters * (height * width) as u64;
        let backward = if self.reads_image { forward } else { 2 * forward };
        self.reads_image = false;
        self.push(
            name,
            format!(
                "conv {kernel}x{kernel}{}, {in_channels}->{out_channels}, {}",
                if stride == 1 { String::new() } else { format!(" stride {stride}") },
                if shape.same { "same" } else { "valid" }
            ),
            parameters,
            0,
            forward,
            backward,
        );
    }

    fn batch_norm(&mut self, name: &'static str) {
        let channels = self.shape[0] as u64;
        let flops = 2 * self.elements();
        self.push(name, "batch norm (shift only)".into(), channels, 2 * channels, flops, flops);
    }

    fn lrelu(&mut self, name: &'static str) {
        let flops = 4 * self.elements();
        self.push(name, "leaky ReLU 0.2".into(), 0, 0, flops, flops);
    }

    fn pool(&mut self, name: &'static str) {
        self.shape = vec![self.shape[0], self.shape[1] / 2, self.shape[2] / 2];
        let flops = 3 * self.elements();
        self.push(name, "max pool 2x2".into(), 0, 0, flops, flops);
    }

    fn dense(&mut self, name: &'static str, outputs: i64, bias: bool) {
        let inputs = self.shape.iter().product::<i64>();
        self.shape = vec![outputs];
        let parameters = (inputs * outputs + if bias { outputs } else { 0 }) as u64;
        let forward = 2 * (inputs * outputs) as u64 + if bias { outputs as u64 } else { 0 };
        self.push(
            name,
            format!("dense {inputs}->{outputs}{}", if bias { " + bias" } else { "" }),
            parameters,
            0,
            forward,
            2 * forward,
        );
    }
}

impl Architecture {
    /// The network's layers with shapes, parameters and FLOPs.
    ///
    /// ```
    /// use model::Architecture;
    ///
    /// let summary = Architecture::Intended.summary();
    /// assert_eq!(summary.parameters(), 3_274_634);
    /// // conv2 is most of the forward pass's 27.8 MFLOP.
    /// let conv2 = summary.layers.iter().find(|layer| layer.name == "conv2").unwrap();
    /// assert_eq!(conv2.forward_flops, 20_070_400);
    /// ```
    pub fn summary(self) -> ModelSummary {
        let mut builder = Builder { layers: Vec::new(), shape: vec![1, IMAGE_SIDE, IMAGE_SIDE], reads_image: true };
        match self {
            Architecture::Intended | Architecture::Seed => self.seed_family_layers(&mut builder),
            Architecture::Vgg => vgg_layers(&mut builder),
            Architecture::Strided => strided_layers(&mut builder),
        }
        ModelSummary { architecture: self, layers: builder.layers }
    }

    fn seed_family_layers(self, builder: &mut Builder) {
        if self == Architecture::Seed {
            // The seed's defect: conv2 reads the image; conv1's weights exist but are never used.
            builder.push("conv1", "conv 5x5, 1->32 (unused)".into(), 800, 0, 0, 0);
            builder.push("bn1", "batch norm (unused)".into(), 32, 64, 0, 0);
            builder.conv("conv2", 5, 1, 64);
        } else {
            builder.conv("conv1", 5, 1, 32);
            builder.batch_norm("bn1");
            builder.lrelu("lrelu1");
            builder.pool("pool1");
            builder.conv("conv2", 5, 32, 64);
        }
        builder.batch_norm("bn2");
        builder.lrelu("lrelu2");
        builder.pool("pool2");
        builder.dense("fc4", 1024, false);
        builder.batch_norm("bn4");
        builder.lrelu("lrelu4");
        builder.push("dropout", "dropout 0.3 (training only)".into(), 0, 0, 0, 0);
        builder.dense("fco", N_CLASSES, true);
    }
}

/// The `vgg` network's layers ([`Architecture::Vgg`]).
fn vgg_layers(builder: &mut Builder) {
    const NAMES: [[&str; 4]; 4] = [
        ["conv1", "bn1", "lrelu1", "pool1"],
        ["conv2", "bn2", "lrelu2", "pool2"],
        ["conv3", "bn3", "lrelu3", "pool3"],
        ["conv4", "bn4", "lrelu4", "pool4"],
    ];
    let mut in_channels = 1;
    for (&(out_channels, pool), [conv, bn, lrelu, pool_name]) in crate::network::VGG_LAYERS.iter().zip(NAMES) {
        builder.conv(conv, 3, in_channels, out_channels);
        builder.batch_norm(bn);
        builder.lrelu(lrelu);
        if pool {
            builder.pool(pool_name);
        }
        in_channels = out_channels;
    }
    builder.push("dropout", "dropout 0.3 (training only)".into(), 0, 0, 0, 0);
    builder.dense("fco", N_CLASSES, true);
}

/// The `strided` network's layers ([`Architecture::Strided`]).
fn strided_layers(builder: &mut Builder) {
    const NAMES: [[&str; 4]; 6] = [
        ["conv1", "bn1", "lrelu1", "dropout1"],
        ["conv2", "bn2", "lrelu2", "dropout2"],
        ["conv3", "bn3", "lrelu3", "dropout3"],
        ["conv4", "bn4", "lrelu4", "dropout4"],
        ["conv5", "bn5", "lrelu5", "dropout5"],
        ["conv6", "bn6", "lrelu6", "dropout6"],
    ];
    let (hidden, dropout) = crate::network::STRIDED_DENSE;
    let dropout_line = || format!("dropout {dropout} (training only)");
    let mut in_channels = 1;
    for (shape, [conv, bn, lrelu, dropout_name]) in crate::network::STRIDED_LAYERS.iter().zip(NAMES) {
        builder.strided_conv(conv, in_channels, shape);
        builder.batch_norm(bn);
        builder.lrelu(lrelu);
        if shape.dropout {
            builder.push(dropout_name, dropout_line(), 0, 0, 0, 0);
        }
        in_channels = shape.out_channels;
    }
    builder.dense("fc7", hidden, false);
    builder.batch_norm("bn7");
    builder.lrelu("lrelu7");
    builder.push("dropout7", dropout_line(), 0, 0, 0, 0);
    builder.dense("fco", N_CLASSES, true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_and_statistics_match_the_tensors() {
        for architecture in Architecture::ALL {
            let specs = architecture.tensor_specs();
            let count = |trainable: bool| -> u64 {
                specs
                    .iter()
                    .filter(|spec| spec.role.is_trainable() == trainable)
                    .map(|spec| spec.shape.iter().product::<i64>() as u64)
                    .sum()
            };
            let summary = architecture.summary();
            assert_eq!(summary.parameters(), count(true), "{architecture:?}");
            assert_eq!(summary.statistics(), count(false), "{architecture:?}");
            assert_eq!(summary.layers.last().unwrap().output_shape, vec![N_CLASSES]);
        }
    }

    #[test]
    fn flops_follow_the_convention() {
        let summary = Architecture::Intended.summary();
        // Layer by layer: conv1 1,254,400; bn1 50,176; lrelu1 100,352; pool1 18,816;
        // conv2 20,070,400; bn2 25,088; lrelu2 50,176; pool2 9,408; fc4 6,422,528;
        // bn4 2,048; lrelu4 4,096; fco 20,490.
        assert_eq!(summary.forward_flops(), 28_027_978);
        let conv1 = &summary.layers[0];
        assert_eq!(conv1.backward_flops, conv1.forward_flops, "no input gradient for the layer reading the image");
        let seed = Architecture::Seed.summary();
        let conv2 = seed.layers.iter().find(|layer| layer.name == "conv2").unwrap();
        assert_eq!((conv2.output_shape.clone(), conv2.backward_flops), (vec![64, 28, 28], conv2.forward_flops));
        assert_eq!(summary.train_flops_per_step(50), 50 * summary.train_flops_per_image() + 12 * summary.parameters());
    }
}
