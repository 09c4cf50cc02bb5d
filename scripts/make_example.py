"""Export the shipped example network (examples/c6) to ONNX with PyTorch.

examples/c6/model.json + model.safetensors + inputs.npy are written by
`dtdcert repro mlp-roots --seed 0 --samples 100 --out examples/c6` (the paper's C6
network with the reference code's effective initialisation). This script rebuilds the
same network as a torch.nn.Sequential and writes examples/c6/model.onnx with the
TorchScript exporter, as users' models usually arrive.

Run it in the pinned reference environment:
    scripts/pyref.sh make_example.py
"""

import json
import struct
from pathlib import Path

import numpy as np
import torch

DTYPES = {"F32": np.float32, "F64": np.float64}


def read_safetensors(path):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        out[name] = np.frombuffer(data[lo:hi], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
    return out


def main():
    folder = Path(__file__).resolve().parent.parent / "examples" / "c6"
    desc = json.loads((folder / "model.json").read_text())
    tensors = read_safetensors(folder / desc["weights"])
    modules = []
    for layer in desc["layers"]:
        if layer["type"] == "dense":
            w = tensors[layer["weight"]]
            lin = torch.nn.Linear(w.shape[1], w.shape[0])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(w.astype(np.float32)))
                lin.bias.copy_(torch.from_numpy(tensors[layer["bias"]].astype(np.float32)))
            modules.append(lin)
        elif layer["type"] == "relu":
            modules.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*modules).eval()
    x = torch.from_numpy(np.load(folder / "inputs.npy").astype(np.float32))
    torch.onnx.export(
        net,
        (x[:1],),
        str(folder / "model.onnx"),
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    print(f"wrote {folder / 'model.onnx'}; f(x[0]) = {net(x[:1]).tolist()}")


if __name__ == "__main__":
    main()
