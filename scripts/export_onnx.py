"""Exports a checkpoint of this project to ONNX (libtorch cannot write ONNX).

    .libtorch/venv/bin/python scripts/export_onnx.py CHECKPOINT OUT.onnx

`trainer export --format onnx` runs this with the project's venv Python
(`cargo xtask setup` installs torch, onnx and safetensors there). The graph is
the evaluation-mode network of scripts/load_checkpoint_in_pytorch.py: input
`images`, float32 [N, 1, 28, 28] in [0, 1], output `logits` [N, 10], the
batch size N dynamic.
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load_checkpoint_in_pytorch import load_model  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("out")
    args = parser.parse_args()
    model = load_model(args.checkpoint)
    example = torch.rand(2, 1, 28, 28)
    partial = args.out + ".part"
    # The TorchScript-based exporter: the network is a handful of standard
    # operators, and it needs no package beyond onnx.
    torch.onnx.export(model, (example,), partial, input_names=["images"], output_names=["logits"],
                      dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
                      dynamo=False)
    os.replace(partial, args.out)


if __name__ == "__main__":
    main()
