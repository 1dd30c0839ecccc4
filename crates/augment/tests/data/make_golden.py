"""Golden fixtures for the augment crate's tests, computed with SciPy.

Generated with Python 3.11, SciPy 1.17.1 and NumPy 2.4.6:

    python3 -m venv target/venv-golden && target/venv-golden/bin/pip install scipy==1.17.1 numpy==2.4.6
    cd crates/augment/tests/data && ../../../../target/venv-golden/bin/python make_golden.py

The Rust tests only read the files written here (gzip IDX); Python is needed
to regenerate them, never to run the tests. Every case is one input image, its
parameters and SciPy's output:

- inputs.idx.gz          f32 [n, 28, 28]: MNIST test digits, then uniform random images
- params.idx.gz          f64 [n, 4]: angle (degrees), zoom factor, dy, dx
- rotate.idx.gz          ndimage.rotate(img, angle, reshape=False)
- zoom_crop.idx.gz       the seed's zoom step (crop, ndimage.zoom, centre trim)
- shift.idx.gz           ndimage.shift(img, (dy, dx)), whole pixels as the seed draws them
- composite.idx.gz       the seed's augment_img with these parameters
- shift_frac_o{0,1,3}    ndimage.shift by (dy + 0.37, dx - 0.81) at orders 0, 1 and 3
- rotate_o{0,1}          ndimage.rotate at orders 0 and 1
- zoom_plain_{150,070}   ndimage.zoom of 12x17 random images by 1.5 and 0.7 (Python's round
                         gives 18x26 and 8x12: 25.5 rounds to even)
- rotate_nan             ndimage.rotate of images holding one NaN pixel
"""
import numpy as np
import scipy
from scipy import ndimage

from golden_io import read_mnist_images, write_idx

assert scipy.__version__ == "1.17.1", scipy.__version__

N_MNIST, N_RANDOM = 150, 60


def seed_zoom(img, zoom_factor):
    """The seed's ZOOM block, verbatim apart from names."""
    h, w = img.shape[:2]
    zh = int(np.round(zoom_factor * h))
    zw = int(np.round(zoom_factor * w))
    top = (zh - h) // 2
    left = (zw - w) // 2
    zoom_tuple = (zoom_factor,) * 2 + (1,) * (img.ndim - 2)
    temp = ndimage.zoom(img[top:top + zh, left:left + zw], zoom_tuple)
    trim_top = (temp.shape[0] - h) // 2
    trim_left = (temp.shape[1] - w) // 2
    return temp[trim_top:trim_top + h, trim_left:trim_left + w]


def seed_augment(img, angle, zoom_factor, shift):
    """The seed's augment_img for one image, with the angle passed as a float."""
    img = ndimage.rotate(img, angle, reshape=False, cval=0)
    img = seed_zoom(img, zoom_factor)
    return ndimage.shift(img, shift, cval=0)


rng = np.random.default_rng(20261128)
inputs = np.concatenate([
    read_mnist_images("../../../../data/mnist/t10k-images-idx3-ubyte.gz", N_MNIST),
    rng.random((N_RANDOM, 28, 28), dtype=np.float32),
])
n = len(inputs)

# Parameters: every angle in [-15, 14] and every shift in [-3, 2] appear, and the zooms
# include 1.0, the crop switch at 29.5 / 28 (and either side of it) and just below 1.1.
angles = np.array([-15.0, 14.0] + list(rng.integers(-15, 15, n - 2)), dtype=np.float64)
angles[2:32] = np.arange(-15, 15)
special_zooms = [1.0, 1.1 - 1e-9, 29.5 / 28, 29.5 / 28 - 1e-9, 29.5 / 28 + 1e-9, 1.05, 1.06, 28.5 / 28]
zooms = np.concatenate([special_zooms, rng.uniform(1.0, 1.1, n - len(special_zooms))])
shifts = rng.integers(-3, 3, (n, 2))
shifts[:6, 0] = np.arange(-3, 3)
shifts[:6, 1] = np.arange(2, -4, -1)
params = np.column_stack([angles, zooms, shifts]).astype(np.float64)

write_idx("inputs.idx.gz", inputs)
write_idx("params.idx.gz", params)
write_idx("rotate.idx.gz", np.stack([ndimage.rotate(img, a, reshape=False, cval=0) for img, a in zip(inputs, angles)]))
write_idx("zoom_crop.idx.gz", np.stack([seed_zoom(img, z) for img, z in zip(inputs, zooms)]))
write_idx("shift.idx.gz", np.stack([ndimage.shift(img, s, cval=0) for img, s in zip(inputs, shifts)]))
write_idx("composite.idx.gz", np.stack([
    seed_augment(img, a, z, s) for img, a, z, s in zip(inputs, angles, zooms, shifts)
]))

few = slice(0, 40)
for order in (0, 1, 3):
    write_idx("shift_frac_o%d.idx.gz" % order, np.stack([
        ndimage.shift(img, (s[0] + 0.37, s[1] - 0.81), order=order) for img, s in zip(inputs[few], shifts[few])
    ]))
for order in (0, 1):
    write_idx("rotate_o%d.idx.gz" % order, np.stack([
        ndimage.rotate(img, a, reshape=False, order=order) for img, a in zip(inputs[few], angles[few])
    ]))

small = rng.random((20, 12, 17), dtype=np.float32)
write_idx("small_inputs.idx.gz", small)
write_idx("zoom_plain_150.idx.gz", np.stack([ndimage.zoom(img, 1.5) for img in small]))
write_idx("zoom_plain_070.idx.gz", np.stack([ndimage.zoom(img, 0.7) for img in small]))

nan_inputs = inputs[:10].copy()
for case, img in enumerate(nan_inputs):
    img[5 + case, 20 - case] = np.nan
write_idx("nan_inputs.idx.gz", nan_inputs)
write_idx("rotate_nan.idx.gz", np.stack([ndimage.rotate(img, 10.0, reshape=False) for img in nan_inputs]))
print("wrote %d cases" % n)
