"""Writes tests/data/relnet/: a small relation network built and run in PyTorch, as the
relation-network description dtdcert reads (rn.json + rn.safetensors) and as
torch.onnx.export writes it (rn.onnx: dynamo exporter, opset 18, float64, inputs image and
question; rn_legacy.onnx and rn_legacy_dynamic.onnx: the TorchScript exporter, opset 17, with a
static and with a dynamic batch, whose shape arithmetic stays in the graph), with images, questions and PyTorch's outputs (float64) to compare against.

The network follows the paper's relation network at a small size: a 3x20x20 image; three
blocks of [Conv 3x3 stride 2 pad 1 without bias, 8 channels, BatchNorm (eval, random running
statistics), ReLU] (20 -> 10 -> 5 -> 3, so 9 objects); coordinate channels
linspace(-4, 4, 3) along the width (x) and the height (y); all 81 ordered pairs as
[obj_j, obj_i, question] with a question of 5 values; g = 25 -> 16 -> 16 (ReLU after each);
the sum over pairs; f = 16 -> 16 (ReLU) -> 6.

Run with scripts/make_relnet_fixture.sh (the pinned environment of scripts/pyref.sh).
Deterministic: the same bytes on every run.
"""

import json
import os
import struct

import warnings

import numpy as np
import onnx
import torch
from torch import nn

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "relnet")
SIDE, CHANNELS, QUESTION = 20, 8, 5


class RelationNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        blocks = []
        c_in = 3
        for _ in range(3):
            blocks += [
                nn.Conv2d(c_in, CHANNELS, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(CHANNELS),
                nn.ReLU(),
            ]
            c_in = CHANNELS
        self.conv = nn.Sequential(*blocks)
        obj = CHANNELS + 2
        self.g = nn.Sequential(
            nn.Linear(2 * obj + QUESTION, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU()
        )
        self.f = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 6))

    def forward(self, img, q):
        x = self.conv(img)
        b, c, h, w = x.shape
        coords = torch.linspace(-4, 4, w, dtype=x.dtype)
        cx = coords.view(1, 1, 1, w).expand(b, 1, h, w)
        cy = coords.view(1, 1, h, 1).expand(b, 1, h, w)
        x = torch.cat([x, cx, cy], dim=1)
        n = h * w
        objects = x.view(b, c + 2, n).permute(0, 2, 1)
        x_i = objects.unsqueeze(1).expand(b, n, n, c + 2)
        x_j = objects.unsqueeze(2).expand(b, n, n, c + 2)
        q_ = q.view(b, 1, 1, -1).expand(b, n, n, q.shape[1])
        pairs = torch.cat([x_i, x_j, q_], dim=3).view(b * n * n, -1)
        g = self.g(pairs).view(b, n * n, -1).sum(dim=1)
        return self.f(g)


def write_safetensors(path, tensors):
    """The safetensors format: an 8-byte header length, a JSON header, the raw data."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(tensors[name].shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def strip_for_determinism(model):
    """Drops the doc strings and metadata (source paths, stack traces) the exporter records."""
    model.doc_string = ""
    del model.metadata_props[:]
    g = model.graph
    g.doc_string = ""
    del g.metadata_props[:]
    for n in g.node:
        n.doc_string = ""
        del n.metadata_props[:]
    for item in list(g.input) + list(g.output) + list(g.value_info) + list(g.initializer):
        item.doc_string = ""
        del item.metadata_props[:]


def export_onnx(net, path):
    image = torch.zeros(1, 3, SIDE, SIDE, dtype=torch.float64)
    question = torch.zeros(1, QUESTION, dtype=torch.float64)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            net, (image, question),
            dynamo=True,
            opset_version=18,
            input_names=["image", "question"],
            output_names=["answer"],
            optimize=True,
            verbose=False,
            external_data=False,
        )
    model = program.model_proto
    strip_for_determinism(model)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())


def export_legacy(net, path, dynamic):
    image = torch.zeros(1, 3, SIDE, SIDE, dtype=torch.float64)
    question = torch.zeros(1, QUESTION, dtype=torch.float64)
    axes = {"image": {0: "batch"}, "question": {0: "batch"}, "answer": {0: "batch"}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (image, question), path,
            dynamo=False,
            opset_version=17,
            input_names=["image", "question"],
            output_names=["answer"],
            dynamic_axes=axes if dynamic else None,
        )
    model = onnx.load(path)
    strip_for_determinism(model)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())


def main():
    torch.manual_seed(11)
    net = RelationNetwork()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
        # Every parameter an f32 value, so the f32 file holds exactly what ran.
        for p in net.state_dict().values():
            if p.dtype.is_floating_point:
                p.copy_(p.float())
    net = net.double().eval()

    os.makedirs(OUT, exist_ok=True)
    state = {k: v.detach().float().numpy() for k, v in net.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    write_safetensors(os.path.join(OUT, "rn.safetensors"), state)
    conv = []
    for i in range(3):
        c, b = f"conv.{3 * i}", f"conv.{3 * i + 1}"
        conv.append({
            "weight": f"{c}.weight", "stride": 2, "padding": 1,
            "batch_norm": {"weight": f"{b}.weight", "bias": f"{b}.bias",
                           "running_mean": f"{b}.running_mean",
                           "running_var": f"{b}.running_var", "eps": 1e-5},
        })
    description = {
        "format": "dtdcert-relation-network",
        "version": 1,
        "weights": "rn.safetensors",
        "image": [3, SIDE, SIDE],
        "conv": conv,
        "question": QUESTION,
        "g": [{"weight": f"g.{i}.weight", "bias": f"g.{i}.bias"} for i in (0, 2)],
        "f": [{"weight": f"f.{i}.weight", "bias": f"f.{i}.bias"} for i in (0, 2)],
    }
    with open(os.path.join(OUT, "rn.json"), "w") as f:
        json.dump(description, f, indent=2)
        f.write("\n")

    gen = torch.Generator().manual_seed(12)
    images = (torch.rand(4, 3, SIDE, SIDE, generator=gen) * 2 - 1).float().double()
    questions = torch.zeros(4, QUESTION, dtype=torch.float64)
    for s in range(4):
        questions[s, s % 3] = 1.0
        questions[s, 3 + s % 2] = 1.0
    with torch.no_grad():
        outputs = net(images, questions)
    np.save(os.path.join(OUT, "images.npy"), images.reshape(4, -1).numpy())
    np.save(os.path.join(OUT, "questions.npy"), questions.numpy())
    np.save(os.path.join(OUT, "outputs.npy"), outputs.numpy())
    export_onnx(net, os.path.join(OUT, "rn.onnx"))
    export_legacy(net, os.path.join(OUT, "rn_legacy.onnx"), dynamic=False)
    export_legacy(net, os.path.join(OUT, "rn_legacy_dynamic.onnx"), dynamic=True)
    print(f"wrote {OUT}: torch {torch.__version__}, onnx {onnx.__version__}")


if __name__ == "__main__":
    main()
