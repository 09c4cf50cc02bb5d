"""Writes the .npy/.npz and safetensors fixtures byte for byte as NumPy (np.save, np.savez)
and safetensors' PyTorch writer lay them out, using only the standard library.

Run from the repository root: python3 tests/data/npy/make_fixtures.py
"""
import json
import struct
import zipfile

INPUTS = [[0.5, -1.0, 2.0], [0.0, 1.5, -0.25], [3.0, 0.125, 1.0], [-2.0, 0.75, 0.5]]
TARGETS = [0, 1, 1, 0]


def npy(descr, shape, values):
    """np.save's layout: format 1.0, header padded with spaces to a multiple of 64 bytes."""
    shape_text = "(%s)" % ", ".join(str(s) for s in shape) if len(shape) != 1 else "(%d,)" % shape[0]
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape_text)
    total = 10 + len(header) + 1
    header += " " * ((64 - total % 64) % 64) + "\n"
    fmt = {"<f4": "<%df", "<f8": "<%dd", "<i8": "<%dq"}[descr]
    return (b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1")
            + struct.pack(fmt % len(values), *values))


def flat(rows):
    return [v for row in rows for v in row]


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


write("tests/data/npy/inputs_f32_4x3.npy", npy("<f4", (4, 3), flat(INPUTS)))
write("tests/data/npy/inputs_f64_4x3.npy", npy("<f8", (4, 3), flat(INPUTS)))
write("tests/data/npy/targets_i64_4.npy", npy("<i8", (4,), TARGETS))
with zipfile.ZipFile("tests/data/npy/dataset_x_y.npz", "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("x.npy", npy("<f8", (4, 3), flat(INPUTS)))
    z.writestr("y.npy", npy("<i8", (4,), TARGETS))

# A 3-4-2 MLP in PyTorch's nn.Linear naming: fc1 (ReLU), fc2.
TENSORS = {
    "fc1.weight": [[1.0, -0.5, 0.25], [-1.0, 2.0, 0.0], [0.5, 0.5, -1.5], [0.0, -0.25, 1.0]],
    "fc1.bias": [0.1, -0.2, 0.0, 0.3],
    "fc2.weight": [[1.0, -1.0, 0.5, 2.0], [-0.5, 1.5, 1.0, -1.0]],
    "fc2.bias": [0.0, 0.25],
}
header, data = {"__metadata__": {"format": "pt"}}, b""
for name in sorted(TENSORS):
    t = TENSORS[name]
    values = flat(t) if isinstance(t[0], list) else t
    shape = [len(t), len(t[0])] if isinstance(t[0], list) else [len(t)]
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + 4 * len(values)]}
    data += struct.pack("<%df" % len(values), *values)
text = json.dumps(header, separators=(",", ":"))
text += " " * ((8 - len(text) % 8) % 8)
write("tests/data/safetensors/mlp_3_4_2.safetensors", struct.pack("<Q", len(text)) + text.encode() + data)
write("tests/data/safetensors/mlp_3_4_2.json", json.dumps({
    "format": "dtdcert-mlp",
    "version": 1,
    "weights": "mlp_3_4_2.safetensors",
    "layers": [
        {"type": "flatten"},
        {"type": "dense", "weight": "fc1.weight", "bias": "fc1.bias"},
        {"type": "relu"},
        {"type": "dense", "weight": "fc2.weight", "bias": "fc2.bias"},
    ],
}, indent=2).encode() + b"\n")
