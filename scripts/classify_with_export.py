"""Classifies MNIST-format images with an exported network: a TorchScript
file (`trainer export --format torchscript`) or an ONNX file (`--format onnx`).

    .libtorch/venv/bin/python scripts/classify_with_export.py MODEL.pt|MODEL.onnx IMAGES.idx[.gz] [LABELS.idx[.gz]]

Prints the predicted class of every image, one per line, and with labels the
accuracy. Needs numpy and torch (TorchScript) or onnxruntime (ONNX), which
`cargo xtask setup` installs in .libtorch/venv. The exported network takes
float32 images [N, 1, 28, 28] with values in [0, 1] (white ink on black, as
MNIST) and returns logits [N, 10]; N is free.
"""
import gzip
import struct
import sys

import numpy as np


def read_idx(path):
    """An IDX file (plain or gzip) as a numpy array of its shape."""
    with open(path, "rb") as file:
        data = file.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    n_dims = data[3]
    shape = struct.unpack(">" + "I" * n_dims, data[4:4 + 4 * n_dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * n_dims).reshape(shape)


def torchscript_logits(model_path):
    import torch
    model = torch.jit.load(model_path)

    def logits(images):
        with torch.no_grad():
            return model(torch.from_numpy(images)).numpy()
    return logits


def onnx_logits(model_path):
    import onnxruntime
    session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    return lambda images: session.run(["logits"], {"images": images})[0]


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    model_path, images_path = sys.argv[1], sys.argv[2]
    logits = onnx_logits(model_path) if model_path.endswith(".onnx") else torchscript_logits(model_path)
    images = read_idx(images_path).astype(np.float32)[:, None, :, :] / 255.0
    predictions = np.concatenate([logits(images[start:start + 1000]).argmax(axis=1)
                                  for start in range(0, len(images), 1000)])
    print("\n".join(str(int(prediction)) for prediction in predictions))
    if len(sys.argv) == 4:
        labels = read_idx(sys.argv[3])
        print(f"accuracy {np.mean(predictions == labels):.4f} ({int(np.sum(predictions == labels))}/{len(labels)})",
              file=sys.stderr)


if __name__ == "__main__":
    main()
