"""Golden fixtures for the random affine transform (augment::transform::RandomAffine), computed with SciPy.

Generated with Python 3.11, SciPy 1.17.1 and NumPy 2.4.6, as make_golden.py:

    python3 -m venv target/venv-golden && target/venv-golden/bin/pip install scipy==1.17.1 numpy==2.4.6
    cd crates/augment/tests/data && ../../../../target/venv-golden/bin/python make_golden_affine.py

The draws are NumPy's here (the Rust side draws its own from each image's
key); what is compared is the geometry and the sampling of one draw, written
here as SciPy's matrix form, independently of the Rust side's per-pixel
formula:

- affine_inputs.idx.gz     f32 [n, 28, 28]: MNIST test digits, then uniform random images
- affine_params.idx.gz     f64 [n, 5]: angle (degrees, anticlockwise as seen), zoom of rows, zoom
                           of columns (above 1 magnifies), move down, move right (pixels)
- affine_output.idx.gz     f32 [n, 28, 28]: ndimage.affine_transform(image, matrix, offset,
                           order=1, mode='constant', cval=0)
- affine_output_o3.idx.gz  the same with order=3
"""
import numpy as np
import scipy
from scipy import ndimage

from golden_io import read_mnist_images, write_idx

assert scipy.__version__ == "1.17.1", scipy.__version__


N_MNIST, N_RANDOM = 24, 6
rng = np.random.default_rng(20261207)
inputs = np.concatenate([
    read_mnist_images("../../../../data/mnist/t10k-images-idx3-ubyte.gz", N_MNIST),
    rng.random((N_RANDOM, 28, 28), dtype=np.float32),
])
n = len(inputs)
# The identity, then one of each part alone, then Keras-like draws and wider ones.
fixed = np.array([
    [0.0, 1.0, 1.0, 0.0, 0.0],
    [90.0, 1.0, 1.0, 0.0, 0.0],
    [-17.5, 1.0, 1.0, 0.0, 0.0],
    [0.0, 1.1, 0.9, 0.0, 0.0],
    [0.0, 1.0, 1.0, 2.0, -3.0],
    [0.0, 1.0, 1.0, -1.4, 2.6],
])
drawn = np.column_stack([
    rng.uniform(-30.0, 30.0, n - len(fixed)),
    rng.uniform(0.8, 1.2, n - len(fixed)),
    rng.uniform(0.8, 1.2, n - len(fixed)),
    rng.uniform(-4.0, 4.0, n - len(fixed)),
    rng.uniform(-4.0, 4.0, n - len(fixed)),
])
params = np.concatenate([fixed, drawn])
centre = np.array([13.5, 13.5])


def transformed(image, angle, zoom_rows, zoom_cols, down, right, order):
    # Input (row, col) = centre + M ((row, col) - centre - move), M = Z^-1 R^-1 in (row, col) order.
    sin, cos = np.sin(np.radians(angle)), np.cos(np.radians(angle))
    matrix = np.array([[cos / zoom_rows, sin / zoom_rows], [-sin / zoom_cols, cos / zoom_cols]])
    offset = centre - matrix @ (centre + np.array([down, right]))
    return ndimage.affine_transform(image, matrix, offset=offset, order=order, mode="constant", cval=0.0)


def outputs(order):
    result = np.stack([transformed(inputs[i], *params[i], order) for i in range(n)])
    assert result.dtype == np.float32
    return result


write_idx("affine_inputs.idx.gz", inputs)
write_idx("affine_params.idx.gz", params)
write_idx("affine_output.idx.gz", outputs(1))
write_idx("affine_output_o3.idx.gz", outputs(3))
