"""Loads a checkpoint of this project into a plain PyTorch module of the same layout.

    .libtorch/venv/bin/python scripts/load_checkpoint_in_pytorch.py nets/cnn_mnist_modern/net-3.safetensors
    .libtorch/venv/bin/python scripts/load_checkpoint_in_pytorch.py CHECKPOINT --images IMAGES.safetensors   # prints logits as JSON

The module below is the network of crates/model (docs/CHECKPOINTS.md), written
with torch.nn: its state_dict keys and shapes are exactly the checkpoint's
tensor names and shapes, less the optimizer's (`optimizer.*`), so
`load_state_dict(strict=True)` checks every name and shape. A checkpoint of a
run that averages its weights (`--ema`) is loaded with the average
(`ema.NAME`), what the run validated and tested, as the trainer's own
inference does. `--images` reads a
safetensors file holding `images` [N, 28, 28] (float32) and prints the
evaluation-mode logits; crates/model/tests/pytorch.rs uses it.
"""
import argparse
import json
import sys

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file


class ShiftOnlyBatchNorm(torch.nn.Module):
    """slim.batch_norm(center=True, scale=False): a trainable shift, no scale."""

    def __init__(self, n_features):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(n_features))
        self.register_buffer("running_mean", torch.zeros(n_features))
        self.register_buffer("running_var", torch.ones(n_features))

    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, None, self.bias,
                            self.training, 0.1, 1e-3)


def lrelu(x):
    return 0.6 * x + 0.4 * x.abs()


class SeedCNN(torch.nn.Module):
    def __init__(self, architecture):
        super().__init__()
        self.architecture = architecture
        conv2_in, fc4_in = (32, 7 * 7 * 64) if architecture == "intended" else (1, 14 * 14 * 64)
        self.conv1 = torch.nn.Conv2d(1, 32, 5, padding=2, bias=False)
        self.bn1 = ShiftOnlyBatchNorm(32)
        self.conv2 = torch.nn.Conv2d(conv2_in, 64, 5, padding=2, bias=False)
        self.bn2 = ShiftOnlyBatchNorm(64)
        self.fc4 = torch.nn.Linear(fc4_in, 1024, bias=False)
        self.bn4 = ShiftOnlyBatchNorm(1024)
        self.fco = torch.nn.Linear(1024, 10)

    def forward(self, images):
        x = images.reshape(-1, 1, 28, 28)
        if self.architecture == "intended":
            net = F.max_pool2d(lrelu(self.bn1(self.conv1(x))), 2)
            net = lrelu(self.bn2(self.conv2(net)))
        else:  # the seed's defect: conv2 reads the input
            net = lrelu(self.bn2(self.conv2(x)))
        net = F.max_pool2d(net, 2).flatten(1)
        net = F.dropout(lrelu(self.bn4(self.fc4(net))), 0.3, self.training)
        return self.fco(net)


class VggCNN(torch.nn.Module):
    """The `vgg` network: four 3x3 convolutions, pooling after the first and the third."""

    LAYERS = [(32, True), (64, False), (64, True), (128, False)]

    def __init__(self):
        super().__init__()
        in_channels = 1
        for index, (out_channels, _) in enumerate(self.LAYERS, start=1):
            setattr(self, "conv%d" % index, torch.nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False))
            setattr(self, "bn%d" % index, ShiftOnlyBatchNorm(out_channels))
            in_channels = out_channels
        self.fco = torch.nn.Linear(7 * 7 * in_channels, 10)

    def forward(self, images):
        net = images.reshape(-1, 1, 28, 28)
        for index, (_, pool) in enumerate(self.LAYERS, start=1):
            net = lrelu(getattr(self, "bn%d" % index)(getattr(self, "conv%d" % index)(net)))
            if pool:
                net = F.max_pool2d(net, 2)
        net = F.dropout(net.flatten(1), 0.3, self.training)
        return self.fco(net)


class StridedCNN(torch.nn.Module):
    """The `strided` network: six convolutions (strided 5x5 ones in place of pooling), a 128-wide dense layer."""

    # Output channels, kernel, stride, 'SAME' padding, and whether dropout 0.4 follows.
    LAYERS = [(32, 3, 1, False, False), (32, 3, 1, False, False), (32, 5, 2, True, True),
              (64, 3, 1, False, False), (64, 3, 1, False, False), (64, 5, 2, True, True)]

    def __init__(self):
        super().__init__()
        in_channels = 1
        for index, (out_channels, kernel, stride, same, _) in enumerate(self.LAYERS, start=1):
            padding = kernel // 2 if same else 0
            conv = torch.nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding, bias=False)
            setattr(self, "conv%d" % index, conv)
            setattr(self, "bn%d" % index, ShiftOnlyBatchNorm(out_channels))
            in_channels = out_channels
        self.fc7 = torch.nn.Linear(4 * 4 * in_channels, 128, bias=False)
        self.bn7 = ShiftOnlyBatchNorm(128)
        self.fco = torch.nn.Linear(128, 10)

    def forward(self, images):
        net = images.reshape(-1, 1, 28, 28)
        for index, (_, _, _, _, dropout) in enumerate(self.LAYERS, start=1):
            net = lrelu(getattr(self, "bn%d" % index)(getattr(self, "conv%d" % index)(net)))
            if dropout:
                net = F.dropout(net, 0.4, self.training)
        net = F.dropout(lrelu(self.bn7(self.fc7(net.flatten(1)))), 0.4, self.training)
        return self.fco(net)


def build(architecture):
    """The module of a checkpoint's `architecture` metadata."""
    modules = {"vgg": VggCNN, "strided": StridedCNN}
    return modules[architecture]() if architecture in modules else SeedCNN(architecture)


def load_model(checkpoint):
    """The checkpoint's network in evaluation mode, every name and shape checked."""
    with safe_open(checkpoint, framework="pt") as file:
        metadata = file.metadata()
    tensors = load_file(checkpoint)
    averaged = "ema_decay" in metadata
    prefix = "ema." if averaged else ""
    model_tensors = {
        name[len(prefix):]: t
        for name, t in tensors.items()
        if not name.startswith("optimizer.") and name.startswith(prefix) and (averaged or not name.startswith("ema."))
    }
    model = build(metadata["architecture"])
    model.load_state_dict(model_tensors, strict=True)
    model.eval()
    model.metadata = metadata
    model.n_optimizer_tensors = sum(name.startswith("optimizer.") for name in tensors)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--images", help="safetensors file with `images` [N, 28, 28]: print their logits")
    args = parser.parse_args()
    model = load_model(args.checkpoint)
    metadata = model.metadata
    if args.images:
        images = load_file(args.images)["images"]
        with torch.no_grad():
            print(json.dumps(model(images).tolist()))
    else:
        print("loaded %s: %s network, epoch %s, step %s, %d optimizer tensors" % (
            args.checkpoint, metadata["architecture"], metadata["epoch"], metadata["step"],
            model.n_optimizer_tensors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
