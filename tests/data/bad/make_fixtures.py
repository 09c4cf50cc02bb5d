"""Writes the malformed .npy/.npz fixtures that tests/cli.rs feeds to dtdcert, byte for byte as
NumPy (np.save, np.savez) lays them out, using only the standard library. They pair with the
3-4-2 MLP in tests/data/safetensors/mlp_3_4_2.json (3 inputs, 2 outputs).

Run from the repository root: python3 tests/data/bad/make_fixtures.py
"""
import struct
import zipfile

INPUTS = [[0.5, -1.0, 2.0], [0.0, 1.5, -0.25], [3.0, 0.125, 1.0], [-2.0, 0.75, 0.5]]


def npy(descr, shape, values):
    """np.save's layout: format 1.0, header padded with spaces to a multiple of 64 bytes."""
    shape_text = "(%s)" % ", ".join(str(s) for s in shape) if len(shape) != 1 else "(%d,)" % shape[0]
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape_text)
    total = 10 + len(header) + 1
    header += " " * ((64 - total % 64) % 64) + "\n"
    fmt = {"<f8": "<%dd", "<i8": "<%dq"}[descr]
    return (b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1")
            + struct.pack(fmt % len(values), *values))


def flat(rows):
    return [v for row in rows for v in row]


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


D = "tests/data/bad/"
# Integer inputs: the right shape, the wrong dtype.
write(D + "inputs_i64_4x3.npy", npy("<i8", (4, 3), [int(v) for v in flat(INPUTS)]))
# The header promises 4x3 float64 values; the file stops after 5 of them.
write(D + "inputs_truncated_4x3.npy", npy("<f8", (4, 3), flat(INPUTS))[: -7 * 8])
# Zero bytes.
write(D + "inputs_empty.npy", b"")
# NaN at row 2, column 1.
nan = [row[:] for row in INPUTS]
nan[2][1] = float("nan")
write(D + "inputs_nan_4x3.npy", npy("<f8", (4, 3), flat(nan)))
# Two arrays of inputs: which one is meant needs --inputs-key.
# A fixed timestamp keeps the archive byte-identical from run to run.
with zipfile.ZipFile(D + "inputs_two_arrays.npz", "w", zipfile.ZIP_DEFLATED) as z:
    for name in ["a.npy", "b.npy"]:
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, npy("<f8", (4, 3), flat(INPUTS)))
# Targets for the 4 inputs above: one short, and one index past the model's 2 outputs.
write(D + "targets_len3.npy", npy("<i8", (3,), [0, 1, 1]))
write(D + "targets_out_of_range.npy", npy("<i8", (4,), [0, 1, 2, 0]))
