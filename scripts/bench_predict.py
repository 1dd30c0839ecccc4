#!/usr/bin/env python3
"""`trainer predict`'s speed, end to end through the real command (standard library only).

    python3 scripts/bench_predict.py [CHECKPOINT]

Builds nothing: run `cargo build --release -p trainer` and
`cargo build --release -p preprocess --example render_photos` first (the
script says so if they are missing). CHECKPOINT defaults to
nets/cnn_mnist_modern/best.safetensors.

Measures, on the CPU, best of 3 rounds:
- the cost of one more image in a warm process, for 28x28 PNGs (MNIST test
  digits) and 400x400 colour JPEG photos of them: (time for N images - time
  for 1) / (N - 1), with preprocessing on one thread (RAYON_NUM_THREADS=1)
  and on all cores;
- `predict --images` on the 10,000 test images against `evaluate` on the same.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRAINER = ROOT / "target/release/trainer"
RENDER = ROOT / "target/release/examples/render_photos"
N = 400


def seconds(command, env=None):
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        best = min(best, time.perf_counter() - start)
    return best


def per_image_ms(checkpoint, files, env):
    base = [str(TRAINER), "predict", "--device", "cpu", "--checkpoint", checkpoint]
    one = seconds(base + files[:1], env)
    many = seconds(base + files, env)
    return (many - one) / (len(files) - 1) * 1e3


def main():
    checkpoint = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "nets/cnn_mnist_modern/best.safetensors")
    for binary, build in [(TRAINER, "cargo build --release -p trainer"),
                          (RENDER, "cargo build --release -p preprocess --example render_photos")]:
        if not binary.exists():
            sys.exit(f"{binary} is missing: run `{build}` first")
    if not Path(checkpoint).exists():
        sys.exit(f"{checkpoint} is missing: train a network first or pass a checkpoint")
    test_images = str(ROOT / "data/mnist/t10k-images-idx3-ubyte.gz")
    with tempfile.TemporaryDirectory() as tmp:
        pngs, jpegs = Path(tmp, "png"), Path(tmp, "jpeg")
        # The 28x28 test digits as PNG files: what the network sees of an IDX image is written by --show-input.
        subprocess.run([str(TRAINER), "predict", "--device", "cpu", "--checkpoint", checkpoint, "--images", test_images,
                        "--show-input", str(pngs)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        png_files = sorted(str(path) for path in pngs.iterdir())[:N]
        subprocess.run([str(RENDER), str(jpegs), str(N), "400"], check=True, stdout=subprocess.DEVNULL)
        jpeg_files = sorted(str(path) for path in jpegs.iterdir())
        print(f"cost of one more image, warm, CPU ({os.cpu_count()} cores), best of 3, {N} images:")
        for name, files in [("28x28 PNG", png_files), ("400x400 JPEG", jpeg_files)]:
            serial = per_image_ms(checkpoint, files, dict(os.environ, RAYON_NUM_THREADS="1"))
            parallel = per_image_ms(checkpoint, files, dict(os.environ))
            print(f"  {name:>13}: {serial:.2f} ms preprocessing on one thread, {parallel:.2f} ms on all cores")
        predict = seconds([str(TRAINER), "predict", "--device", "cpu", "--checkpoint", checkpoint, "--json",
                           "--images", test_images])
        evaluate = seconds([str(TRAINER), "evaluate", "--device", "cpu", "--checkpoint", checkpoint, "--split", "test"])
        print(f"10,000 test images: predict --images {predict:.2f} s, evaluate {evaluate:.2f} s "
              f"(predict takes {predict / evaluate:.2f}x evaluate's time)")


if __name__ == "__main__":
    main()
