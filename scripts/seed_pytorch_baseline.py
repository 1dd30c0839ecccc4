"""A faithful PyTorch + scipy version of the seed's training loop, for side-by-side timing.

The seed's recipe on the intended network (conv2 reads pool1), in PyTorch on
the CPU, with the seed's own scipy augmentation run serially before every
step, as the seed does: 50-image batches of a fresh permutation of the 55,000
training images each epoch, Adam (lr 0.001), batch norm without scale
(epsilon 0.001, momentum 0.1), dropout 0.3, the seed's initialisation. It
prints one JSON line per epoch (seconds, average cost, augmentation seconds)
and, at the end, the validation accuracy over all 5,000 validation images.

    python3 -m venv target/venv-baseline && target/venv-baseline/bin/pip install torch==2.11.0 scipy numpy
    target/venv-baseline/bin/python scripts/seed_pytorch_baseline.py --epochs 1 [--limit-train 5000] [--threads 2]

The trainer issue compares its seconds per epoch against this script's.
"""
import argparse
import gzip
import json
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from augment_vs_scipy import augment_img  # noqa: E402  (the seed's own augmentation loop)
from load_checkpoint_in_pytorch import SeedCNN  # noqa: E402  (the network, same layout as crates/model)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_idx(name):
    raw = gzip.open(os.path.join(ROOT, "data/mnist", name)).read()
    n_dims = raw[3]
    shape = struct.unpack(">%dI" % n_dims, raw[4:4 + 4 * n_dims])
    return np.frombuffer(raw[4 + 4 * n_dims:], dtype=np.uint8).reshape(shape)


def seed_init(model):
    """Truncated normal (stddev 0.01, redrawn beyond 2 stddev) for conv1, conv2, fc4; Glorot uniform for fco."""
    with torch.no_grad():
        for layer in (model.conv1, model.conv2, model.fc4):
            torch.nn.init.trunc_normal_(layer.weight, std=0.01, a=-0.02, b=0.02)
        torch.nn.init.xavier_uniform_(model.fco.weight)
        model.fco.bias.zero_()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1, help="epochs to run")
    parser.add_argument("--limit-train", type=int, default=55000, help="use only this many training images")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    images = read_idx("train-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) * np.float32(1.0 / 255.0)
    labels = read_idx("train-labels-idx1-ubyte.gz").astype(np.int64)
    val_images, val_labels = images[:5000], labels[:5000]
    train_images, train_labels = images[5000:5000 + args.limit_train], labels[5000:5000 + args.limit_train]

    model = SeedCNN("intended")
    seed_init(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001, betas=(0.9, 0.999), eps=1e-8)
    batch_size = 50
    n_batches = len(train_images) // batch_size
    for epoch in range(args.epochs):
        model.train()
        start, augment_seconds, cost_sum = time.perf_counter(), 0.0, 0.0
        permutation = np.random.permutation(len(train_images))
        for batch_idx in range(n_batches):
            rows = permutation[batch_idx * batch_size:(batch_idx + 1) * batch_size]
            augment_start = time.perf_counter()
            batch = augment_img(train_images[rows])
            augment_seconds += time.perf_counter() - augment_start
            logits = model(torch.from_numpy(batch))
            loss = F.cross_entropy(logits, torch.from_numpy(train_labels[rows]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            cost_sum += loss.item()  # the step's own loss: no second forward pass
        seconds = time.perf_counter() - start
        print(json.dumps({"epoch": epoch, "seconds": round(seconds, 2), "augment_seconds": round(augment_seconds, 2),
                          "cost": cost_sum / n_batches, "images_per_second": round(n_batches * batch_size / seconds, 1),
                          "threads": args.threads, "torch": torch.__version__}), flush=True)
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(val_images), 500):
            logits = model(torch.from_numpy(val_images[start:start + 500]))
            correct += int((logits.argmax(1) == torch.from_numpy(val_labels[start:start + 500])).sum())
    print(json.dumps({"validation_accuracy": correct / len(val_images)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
