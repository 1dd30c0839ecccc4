"""Golden fixtures for the elastic distortion (augment::transform::Elastic), computed with SciPy.

Generated with Python 3.11, SciPy 1.17.1 and NumPy 2.4.6, as make_golden.py:

    python3 -m venv target/venv-golden && target/venv-golden/bin/pip install scipy==1.17.1 numpy==2.4.6
    cd crates/augment/tests/data && ../../../../target/venv-golden/bin/python make_golden_elastic.py

The random draws are NumPy's here (the Rust side draws its own from each
image's key); what is compared is what follows them:

- elastic_inputs.idx.gz   f32 [n, 28, 28]: MNIST test digits, then uniform random images
- elastic_params.idx.gz   f64 [n, 2]: alpha, sigma
- elastic_raw.idx.gz      f64 [n, 2, 28, 28]: uniform draws in [-1, 1], rows' then columns' field
- elastic_fields.idx.gz   f64 [n, 2, 28, 28]: ndimage.gaussian_filter(raw, sigma, mode='constant') * alpha
- elastic_output.idx.gz   f32 [n, 28, 28]: ndimage.map_coordinates(image, [row + dy, col + dx],
                          order=3, mode='constant', cval=0)
- elastic_output_o1.idx.gz  the same with order=1
"""
import numpy as np
import scipy
from scipy import ndimage

from golden_io import read_mnist_images, write_idx

assert scipy.__version__ == "1.17.1", scipy.__version__


N_MNIST, N_RANDOM = 24, 6
rng = np.random.default_rng(20261205)
inputs = np.concatenate([
    read_mnist_images("../../../../data/mnist/t10k-images-idx3-ubyte.gz", N_MNIST),
    rng.random((N_RANDOM, 28, 28), dtype=np.float32),
])
n = len(inputs)
# Simard's alpha 34 and sigma 4, then others (sigma 6.5 reaches 26 of 28 pixels).
alphas = np.concatenate([[34.0, 34.0, 8.0, 60.0], rng.uniform(1.0, 40.0, n - 4)])
sigmas = np.concatenate([[4.0, 6.5, 1.0, 3.0], rng.uniform(2.0, 6.0, n - 4)])
raw = rng.uniform(-1.0, 1.0, (n, 2, 28, 28))
fields = np.stack([
    np.stack([ndimage.gaussian_filter(raw[i, axis], sigmas[i], mode="constant", cval=0.0) * alphas[i]
              for axis in range(2)])
    for i in range(n)
])
rows, cols = np.meshgrid(np.arange(28), np.arange(28), indexing="ij")
def displaced(order):
    return np.stack([
        ndimage.map_coordinates(inputs[i], [rows + fields[i, 0], cols + fields[i, 1]], order=order,
                                mode="constant", cval=0.0)
        for i in range(n)
    ])


outputs = displaced(3)
assert outputs.dtype == np.float32

write_idx("elastic_inputs.idx.gz", inputs)
write_idx("elastic_params.idx.gz", np.column_stack([alphas, sigmas]))
write_idx("elastic_raw.idx.gz", raw)
write_idx("elastic_fields.idx.gz", fields)
write_idx("elastic_output.idx.gz", outputs)
write_idx("elastic_output_o1.idx.gz", displaced(1))
