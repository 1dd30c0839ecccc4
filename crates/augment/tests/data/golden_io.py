"""What the golden-fixture scripts share: writing IDX files as the Rust tests
read them, and reading MNIST digits as the seed's program did."""
import gzip
import struct

import numpy as np

CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def write_idx(name, array):
    """Gzip-compressed IDX, big-endian, with no timestamp (the same bytes each run)."""
    array = np.ascontiguousarray(array)
    header = bytes([0, 0, CODES[array.dtype], array.ndim]) + struct.pack(">%dI" % array.ndim, *array.shape)
    payload = array.astype(array.dtype.newbyteorder(">")).tobytes()
    with open(name, "wb") as file:
        file.write(gzip.compress(header + payload, mtime=0))


def read_mnist_images(path, n):
    """The first n images of an MNIST image file as float32 in [0, 1]."""
    raw = gzip.open(path).read()
    rows, cols = struct.unpack(">II", raw[8:16])
    pixels = np.frombuffer(raw[16:16 + n * rows * cols], dtype=np.uint8).reshape(n, rows, cols)
    # TensorFlow's input_data: float32 times (1/255).
    return pixels.astype(np.float32) * np.float32(1.0 / 255.0)
