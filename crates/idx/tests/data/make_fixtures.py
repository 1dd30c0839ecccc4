"""Writes the IDX fixtures of tests/read_write.rs with Python's standard library
only (struct, gzip), independently of the Rust writer. Run from this folder:
python3 make_fixtures.py. Element i of every fixture is VALUE[type](i)."""
import gzip
import struct

TYPES = {  # name: (type code, struct format, value of element i)
    "u8": (0x08, "B", lambda i: (i * 37) % 256),
    "i8": (0x09, "b", lambda i: (i * 37) % 256 - 128),
    "i16": (0x0B, "h", lambda i: i * 1000 - 30000),
    "i32": (0x0C, "i", lambda i: i * 100000007 - 2**31 + 5),
    "f32": (0x0D, "f", lambda i: i * 0.25 - 3.5),
    "f64": (0x0E, "d", lambda i: i * 1e-3 - 1e10),
}
SHAPES = {1: (7,), 2: (3, 5), 3: (2, 3, 4), 4: (2, 1, 3, 2)}

for name, (code, fmt, value) in TYPES.items():
    for n_dims, shape in SHAPES.items():
        n = 1
        for dim in shape:
            n *= dim
        data = bytes([0, 0, code, n_dims]) + struct.pack(">%dI" % n_dims, *shape)
        data += struct.pack(">%d%s" % (n, fmt), *[value(i) for i in range(n)])
        stem = "%s_%dd.idx" % (name, n_dims)
        # Plain for even dimension counts, gzip for odd ones, so both cover every type.
        if n_dims % 2 == 0:
            open(stem, "wb").write(data)
        else:
            open(stem + ".gz", "wb").write(gzip.compress(data, mtime=0))
