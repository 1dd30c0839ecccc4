"""Side-by-side: the seed's own scipy augmentation loop against the augment crate.

Times, on the same MNIST training images and in one run, the seed's
`augment_img` (its code, with the angle passed as a float because current
SciPy rejects the 1-element array) on one core, and `cargo bench -p augment`
(seed mode one image at a time on one thread, and the batch API on every
core). Prints both rates and their ratio.

    python3 -m venv target/venv-golden && target/venv-golden/bin/pip install scipy numpy
    target/venv-golden/bin/python scripts/augment_vs_scipy.py [--n-images 2000]
"""
import argparse
import gzip
import json
import os
import platform
import struct
import subprocess
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # the seed's loop is single-threaded; keep numpy so too
import numpy as np  # noqa: E402
import scipy  # noqa: E402
from scipy import ndimage  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def augment_img(xs):
    """The seed's augment_img, verbatim but for `.astype(float)[0]` on the angle."""
    out = np.copy(xs)
    xs_r = np.reshape(xs, [-1, 28, 28])
    for i in range(xs_r.shape[0]):
        xs_img = xs_r[i, :, :]
        bg_value = 0
        # ROTATE
        angle = np.random.randint(-15, 15, 1).astype(float)[0]
        xs_img = ndimage.rotate(xs_img, angle, reshape=False, cval=bg_value)
        # ZOOM
        rg = 0.1
        zoom_factor = np.random.uniform(1., 1. + rg)
        h, w = xs_img.shape[:2]
        zh = int(np.round(zoom_factor * h))
        zw = int(np.round(zoom_factor * w))
        top = (zh - h) // 2
        left = (zw - w) // 2
        zoom_tuple = (zoom_factor,) * 2 + (1,) * (xs_img.ndim - 2)
        temp = ndimage.zoom(xs_img[top:top + zh, left:left + zw], zoom_tuple)
        trim_top = ((temp.shape[0] - h) // 2)
        trim_left = ((temp.shape[1] - w) // 2)
        xs_img = temp[trim_top:trim_top + h, trim_left:trim_left + w]
        # SHIFT
        shift = np.random.randint(-3, 3, 2)
        xs_img = ndimage.shift(xs_img, shift, cval=bg_value)
        # RESHAPE
        xs_v = np.reshape(xs_img, [1, -1])
        out[i, :] = xs_v
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=2000, help="training images to augment")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternate scipy and Rust this many times; ratios are medians over rounds")
    args = parser.parse_args()

    raw = gzip.open(os.path.join(ROOT, "data/mnist/train-images-idx3-ubyte.gz")).read()
    n_total, rows, cols = struct.unpack(">III", raw[4:16])
    pixels = np.frombuffer(raw[16:], dtype=np.uint8).reshape(n_total, rows * cols)
    # The training split starts after the 5,000 validation images, as in the Rust benchmark.
    images = pixels[5000:5000 + args.n_images].astype(np.float32) * np.float32(1.0 / 255.0)

    np.random.seed(0)
    augment_img(images[:50])  # warm-up
    # Shared machines drift: alternate the two sides and compare each round's pair.
    rounds = []
    for _ in range(args.rounds):
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            augment_img(images)
            best = min(best, time.perf_counter() - start)
        bench = subprocess.run(
            ["cargo", "bench", "-q", "-p", "augment", "--bench", "augment", "--",
             "--n-images", str(args.n_images), "--json"],
            cwd=ROOT, check=True, capture_output=True, text=True,
        )
        rounds.append((len(images) / best, json.loads(bench.stdout.strip().splitlines()[-1])))

    def median(values):
        values = sorted(values)
        return values[len(values) // 2]

    scipy_rate = median([scipy for scipy, _ in rounds])
    n_cores = rounds[0][1]["n_cores"]
    print("machine: %s, %d cores; Python %s, SciPy %s, NumPy %s" % (
        platform.machine(), os.cpu_count(), platform.python_version(), scipy.__version__, np.__version__))
    print("images: %d MNIST training digits; %d rounds, best of 3 (scipy) or 5 (Rust) runs each; medians"
          % (len(images), len(rounds)))
    print("seed scipy loop, 1 core:             %9.0f images/s (%.1f us/image)" % (scipy_rate, 1e6 / scipy_rate))
    for key, label in [
        ("seed_single_per_s", "augment seed mode, 1 thread:"),
        ("seed_batch_1_thread_per_s", "augment seed batch, 1 thread:"),
        ("seed_batch_all_threads_per_s", "augment seed batch, %d threads:" % n_cores),
        ("fused_batch_all_threads_per_s", "augment fused batch, %d threads:" % n_cores),
    ]:
        rate = median([rust[key] for _, rust in rounds])
        ratio = median([rust[key] / scipy for scipy, rust in rounds])
        print("%-36s %9.0f images/s  x%.1f the scipy loop" % (label, rate, ratio))
    return 0


if __name__ == "__main__":
    sys.exit(main())
