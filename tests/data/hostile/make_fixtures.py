"""Writes the hostile model and input files that tests/hostile.rs feeds to dtdcert, using only
the standard library: JSON + safetensors descriptions of a 3-4-2 MLP with one thing wrong each
(non-finite values, mismatched shapes, the wrong dtype, absurd declared sizes, damaged bytes),
and .npy/.npz inputs with the wrong dtype, no rows, or a header that declares far more data
than the file holds. The ONNX cases are built inside the test with the crate's own protobuf
types instead.

The valid 3-4-2 network here has the same shapes as tests/data/safetensors/mlp_3_4_2.json, so
the 3-wide inputs of tests/data/npy/ pair with every model below.

Run from the repository root: python3 tests/data/hostile/make_fixtures.py
"""
import json
import struct
import zipfile

D = "tests/data/hostile/"

# fc1: [4, 3], fc1.bias: [4], fc2: [2, 4], fc2.bias: [2]; small dyadic values.
FC1 = [[0.5, -1.0, 0.25], [1.0, 0.5, -0.5], [-0.25, 0.75, 1.0], [0.125, -0.5, 0.5]]
FC1_BIAS = [0.0, 0.25, -0.5, 0.125]
FC2 = [[1.0, -0.5, 0.25, 0.5], [-1.0, 0.5, 0.75, -0.25]]
FC2_BIAS = [0.5, -0.25]


def flat(rows):
    return [v for row in rows for v in row]


def f16_bits(x):
    """IEEE binary16 bits of x (exact for the small dyadic values used here)."""
    return struct.unpack("<H", struct.pack("<e", x))[0]


def safetensors(tensors, declared=None):
    """safetensors layout: u64 header length, JSON header (padded with spaces to 8 bytes),
    then the data. `tensors` maps name -> (dtype, shape, values); `declared` overrides the
    shape written into the header for some names (to lie about sizes)."""
    pack = {"F32": "<%df", "F64": "<%dd", "F16": "<%dH", "I32": "<%di"}
    header, data = {}, b""
    for name in sorted(tensors):
        dtype, shape, values = tensors[name]
        if dtype == "F16":
            values = [f16_bits(v) for v in values]
        raw = struct.pack(pack[dtype] % len(values), *values)
        shown = (declared or {}).get(name, shape)
        header[name] = {"dtype": dtype, "shape": shown,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":"))
    text += " " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text.encode() + data


def mlp(fc1=FC1, fc1_bias=FC1_BIAS, fc2=FC2, fc2_bias=FC2_BIAS, dtype="F32"):
    """The tensors of the 3-4-2 network, with optional replacements."""
    def t(rows):
        if rows and isinstance(rows[0], list):
            return (dtype, [len(rows), len(rows[0])], flat(rows))
        return (dtype, [len(rows)], list(rows))
    return {"fc1.weight": t(fc1), "fc1.bias": t(fc1_bias),
            "fc2.weight": t(fc2), "fc2.bias": t(fc2_bias)}


def description(weights):
    return json.dumps({
        "format": "dtdcert-mlp",
        "version": 1,
        "weights": weights,
        "layers": [
            {"type": "dense", "weight": "fc1.weight", "bias": "fc1.bias"},
            {"type": "relu"},
            {"type": "dense", "weight": "fc2.weight", "bias": "fc2.bias"},
        ],
    }, indent=2) + "\n"


def write(path, data):
    with open(D + path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def model(stem, weights_bytes):
    write(stem + ".json", description(stem + ".safetensors"))
    write(stem + ".safetensors", weights_bytes)


def replaced(rows, r, c, value):
    rows = [row[:] for row in rows]
    rows[r][c] = value
    return rows


# The valid network (a control: every test that refuses a variant first accepts this one).
model("valid", safetensors(mlp()))
# Non-finite parameters.
model("nan_weight", safetensors(mlp(fc1=replaced(FC1, 1, 2, float("nan")))))
model("neg_inf_weight", safetensors(mlp(fc2=replaced(FC2, 0, 3, float("-inf")))))
model("inf_bias", safetensors(mlp(fc2_bias=[0.5, float("inf")])))
# fc2 takes 5 inputs but fc1 gives 4.
model("layer_mismatch", safetensors(mlp(fc2=[row + [0.0] for row in FC2])))
# fc1.bias has 3 entries for 4 outputs.
model("bias_mismatch", safetensors(mlp(fc1_bias=FC1_BIAS[:3])))
# Half-precision and integer weights.
model("f16_weights", safetensors(mlp(dtype="F16")))
model("i32_weights", safetensors({**mlp(), "fc1.weight": ("I32", [4, 3], [1] * 12)}))
# fc1.weight claims [2^31, 2^31] (2^62 values) over its 48 bytes; and [2^20, 2^20] (2^40
# values, no overflow in the byte count) over the same 48 bytes.
model("huge_shape_overflow",
      safetensors(mlp(), declared={"fc1.weight": [1 << 31, 1 << 31]}))
model("huge_shape", safetensors(mlp(), declared={"fc1.weight": [1 << 20, 1 << 20]}))
# A header length of 2^60 bytes in a 120-byte file.
model("huge_header", struct.pack("<Q", 1 << 60) + b'{"a":1}' + b" " * 105)
# The valid weights cut in the middle of their data.
model("truncated", safetensors(mlp())[:-20])
# Zero bytes of weights.
model("empty_weights", b"")
# A description whose weights are an .npy file (wrong magic for safetensors).
write("npy_as_weights.json", description("inputs_i32_4x3.npy"))


# ---- inputs (.npy / .npz) --------------------------------------------------------------------

def npy(descr, shape, values, fmt=None):
    """np.save's layout: format 1.0, header padded with spaces to a multiple of 64 bytes."""
    shape_text = "(%s)" % ", ".join(str(s) for s in shape) if len(shape) != 1 else "(%d,)" % shape[0]
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape_text)
    total = 10 + len(header) + 1
    header += " " * ((64 - total % 64) % 64) + "\n"
    fmt = fmt or {"<f8": "<%dd", "<f4": "<%df", "<i4": "<%di", "<f2": "<%dH"}[descr]
    return (b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1")
            + struct.pack(fmt % len(values), *values))


ROWS = [[0.5, -1.0, 2.0], [0.0, 1.5, -0.25], [3.0, 0.125, 1.0], [-2.0, 0.75, 0.5]]
write("inputs_i32_4x3.npy", npy("<i4", (4, 3), [int(v) for v in flat(ROWS)]))
write("inputs_f16_4x3.npy", npy("<f2", (4, 3), [f16_bits(v) for v in flat(ROWS)]))
# Shape (0, 3): a well-formed array with no rows.
write("inputs_0x3.npy", npy("<f8", (0, 3), []))
# +inf at row 1, column 0.
write("inputs_inf_4x3.npy", npy("<f8", (4, 3), flat(replaced(ROWS, 1, 0, float("inf")))))
# The header declares 2^40 rows of 3 float64 values (24 TiB); one row of data follows.
write("inputs_huge_shape.npy", npy("<f8", (1 << 40, 3), ROWS[0]))
# A shape whose byte count overflows 64 bits.
write("inputs_overflow_shape.npy", npy("<f8", (1 << 62, 1 << 62), ROWS[0]))
# The magic bytes are wrong in their last letter.
write("inputs_wrong_magic.npy", b"\x93NUMPZ" + npy("<f8", (4, 3), flat(ROWS))[6:])
def npz(path, member, data):
    """np.savez's layout: a zip of .npy members; a fixed timestamp keeps the archive
    byte-identical from run to run."""
    with zipfile.ZipFile(D + path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0)), data)


# The same huge header inside .npz archives: float64 inputs; uint8 inputs (a dtype that is
# refused, so only the dtype check reads the member); and int64 targets for 4 inputs.
npz("inputs_huge_shape.npz", "x.npy", npy("<f8", (1 << 40, 3), ROWS[0]))
npz("inputs_huge_shape_u8.npz", "x.npy", npy("|u1", (1 << 40, 3), [1, 2, 3], fmt="%dB"))
npz("targets_huge_shape.npz", "y.npy", npy("<i8", (1 << 40,), [0, 1, 1], fmt="<%dq"))
