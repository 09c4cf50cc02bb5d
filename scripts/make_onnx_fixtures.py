#!/usr/bin/env python3
"""Generate the ONNX test fixtures under tests/data/onnx/.

Run through scripts/make_onnx_fixtures.sh, which sets up a virtual environment
with the pinned versions from scripts/requirements-fixtures.txt.  Running this
script directly works too, provided torch, onnx, onnxscript and numpy are
importable (the versions actually used end up in manifest.json).

What gets written (all small):

* valid ReLU MLPs exported by the TorchScript exporter (``dynamo=False``) at
  opsets 11, 13 and 17, a float64 model, a model exported by the dynamo
  exporter (``dynamo=True``), a model whose first layer is written as
  ``x @ W.T + b`` (MatMul + Add) and a model that starts with
  ``x.reshape(-1, d)``;
* for every valid model ``NAME.onnx``: ``NAME.inputs.npy`` (shape [5, in],
  float32, float64 for the float64 model, drawn from a seeded generator) and
  ``NAME.outputs.npy`` (float64: the PyTorch forward pass of a ``.double()``
  copy of the module on the same inputs converted to float64);
* invalid models for error tests (unsupported operators, non-finite weights,
  truncated / empty / non-ONNX files);
* ``manifest.json`` describing every file plus the package versions used.

All seeds are fixed; running the script twice produces identical bytes.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import os
import platform
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import onnx.reference
import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT_DIR = REPO_ROOT / "tests" / "data" / "onnx"
MANIFEST_NAME = "manifest.json"
N_SAMPLES = 5

# Tolerance for the sanity check of every exported valid model against the
# float64 PyTorch reference (evaluated with onnx.reference).  float32 models
# are evaluated in float32, hence the loose bound.
CHECK_ATOL = {"float32": 1e-4, "float64": 1e-10}


# --------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------


def mlp(sizes: list[int], relu_last: bool, flatten: bool = False,
        dropout: float | None = None, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear/act stack; `dropout` is placed after the first activation."""
    layers: list[nn.Module] = []
    if flatten:
        layers.append(nn.Flatten())
    n = len(sizes) - 1
    for i in range(n):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < n - 1 or relu_last:
            layers.append(act())
        if i == 0 and dropout is not None:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class MatMulAddMLP(nn.Module):
    """First layer written by hand as `x @ W.T + b`, then ReLU, Linear."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int) -> None:
        super().__init__()
        # Same init scheme as nn.Linear, so the values look like a trained-ish net.
        ref = nn.Linear(d_in, d_hidden)
        self.weight = nn.Parameter(ref.weight.detach().clone())
        self.bias = nn.Parameter(ref.bias.detach().clone())
        self.relu = nn.ReLU()
        self.out = nn.Linear(d_hidden, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.relu(x @ self.weight.T + self.bias))


class ReshapeMLP(nn.Module):
    """`x.reshape(-1, d)` followed by Linear, ReLU, Linear."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int) -> None:
        super().__init__()
        self.d_in = d_in
        self.net = mlp([d_in, d_hidden, d_out], relu_last=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(-1, self.d_in))


class TinyConvNet(nn.Module):
    """Conv2d(1->2, 3x3) on 1x4x4, ReLU, Flatten, Linear(8->2)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, kernel_size=3)
        self.relu = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.relu(self.conv(x))))


def _randomise_batch_norm(bn: nn.Module) -> None:
    """Running statistics and affine parameters away from their identity defaults."""
    n = bn.num_features
    with torch.no_grad():
        bn.running_mean.copy_(0.2 * torch.randn(n))
        bn.running_var.copy_(0.5 + torch.rand(n))
        bn.weight.copy_(1.0 + 0.3 * torch.randn(n))
        bn.bias.copy_(0.1 * torch.randn(n))


class ConvBnPoolNet(nn.Module):
    """Conv(2->4, 3x3, pad 1) on 2x6x6, ReLU, AvgPool2d(2), BatchNorm2d, Conv(4->3, 2x2,
    stride 1), ReLU, AdaptiveAvgPool2d(1), Flatten, Linear(3->2)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(2, 4, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.bn = nn.BatchNorm2d(4)
        _randomise_batch_norm(self.bn)
        self.c2 = nn.Conv2d(4, 3, 2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.pool(torch.relu(self.c1(x))))
        x = torch.relu(self.c2(x))
        return self.fc(torch.flatten(self.gap(x), 1))


class StridedConvNet(nn.Module):
    """Conv(1->3, 3x3, stride 2, pad 1) on 1x7x7, ReLU, AvgPool2d(3, stride 1, pad 1,
    count_include_pad=False), Flatten, Linear(48->5), ReLU, Linear(5->2)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, stride=2, padding=1)
        self.pool = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        self.fc1 = nn.Linear(48, 5)
        self.fc2 = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv(x)))
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


class BnAfterReluMLP(nn.Module):
    """Linear(5->6), ReLU, BatchNorm1d(6), Linear(6->3): the batch norm cannot be folded into
    the layer before it (a ReLU is in between)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(5, 6)
        self.bn = nn.BatchNorm1d(6)
        _randomise_batch_norm(self.bn)
        self.fc2 = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.bn(torch.relu(self.fc1(x))))


class ConvMaxPoolNet(nn.Module):
    """Conv2d(1->2, 3x3) on 1x6x6, ReLU, MaxPool2d(2), Flatten, Linear(8->2)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc(torch.flatten(x, 1))


class MaxPoolCoordNet(nn.Module):
    """A max-pool network that is not a chain: Conv(2->3, 3x3, pad 1) on 2x7x7, MaxPool(3,
    stride 2, pad 1) before the ReLU, ReLU, the two coordinate channels concatenated,
    Conv(5->4, 2x2), ReLU, MaxPool(2, stride 1), Flatten, Linear(16->3)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(2, 3, 3, padding=1)
        self.c2 = nn.Conv2d(5, 4, 2)
        self.fc = nn.Linear(16, 3)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, 4), torch.linspace(-1, 1, 4), indexing="ij")
        self.register_buffer("coords", torch.stack([xs, ys]).unsqueeze(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(nn.functional.max_pool2d(self.c1(x), 3, stride=2, padding=1))
        x = torch.cat([x, self.coords.expand(x.size(0), -1, -1, -1)], dim=1)
        x = nn.functional.max_pool2d(torch.relu(self.c2(x)), 2, stride=1)
        return self.fc(torch.flatten(x, 1))


class ResidualConvNet(nn.Module):
    """Two residual blocks as torchvision's BasicBlock writes them, on 2x6x6: a stem Conv(2->4,
    3x3, pad 1) + BatchNorm + ReLU; a block Conv(4->4) + BN + ReLU + Conv(4->4) + BN, plus
    its input, ReLU; a block Conv(4->6, stride 2) + BN + ReLU + Conv(6->6) + BN, plus a
    1x1 stride-2 Conv + BN of its input (computed after the main branch), ReLU; global average
    pooling, Linear(6->3). Batch norms with random running statistics."""

    def __init__(self) -> None:
        super().__init__()

        def conv_bn(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Sequential:
            bn = nn.BatchNorm2d(c_out)
            _randomise_batch_norm(bn)
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False), bn)

        self.stem = conv_bn(2, 4, 3)
        self.a1, self.a2 = conv_bn(4, 4, 3), conv_bn(4, 4, 3)
        self.b1, self.b2 = conv_bn(4, 6, 3, stride=2), conv_bn(6, 6, 3)
        self.down = conv_bn(4, 6, 1, stride=2)
        self.fc = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = torch.relu(self.a2(torch.relu(self.a1(x))) + x)
        out = self.b2(torch.relu(self.b1(x)))
        x = torch.relu(out + self.down(x))
        x = nn.functional.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))


class ResidualMLP(nn.Module):
    """Linear(6->8), ReLU, Linear(8->8) plus its input, ReLU, Linear(8->3): a skip over one
    layer, which folds into that layer's weights."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(6, 8), nn.Linear(8, 8), nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc1(x))
        return self.fc3(torch.relu(self.fc2(h) + h))


class CoordSetNet(nn.Module):
    """A graph that is not a chain: Conv(1->2, 3x3, pad 1) on 1x5x5, ReLU, the two coordinate
    channels concatenated (CoordConv), Conv(4->3, 3x3, stride 2), ReLU, BatchNorm2d (after
    the ReLU: not foldable), the 4 cells as a set of 3-vectors (view + permute), Linear(3->5)
    on each cell, ReLU, the sum over cells, Linear(5->2). The view reads the batch from the
    tensor's shape, so the TorchScript export keeps Shape/Gather arithmetic."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 2, 3, padding=1)
        self.c2 = nn.Conv2d(4, 3, 3, stride=2)
        self.bn = nn.BatchNorm2d(3)
        _randomise_batch_norm(self.bn)
        self.g = nn.Linear(3, 5)
        self.f = nn.Linear(5, 2)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, 5), torch.linspace(-1, 1, 5), indexing="ij")
        self.register_buffer("coords", torch.stack([xs, ys]).unsqueeze(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.c1(x))
        x = torch.cat([x, self.coords.expand(x.size(0), -1, -1, -1)], dim=1)
        x = self.bn(torch.relu(self.c2(x)))
        cells = x.view(x.size(0), x.size(1), -1).permute(0, 2, 1)
        return self.f(torch.relu(self.g(cells)).sum(dim=1))


# --------------------------------------------------------------------------
# Fixture specifications
# --------------------------------------------------------------------------


@dataclass
class Spec:
    name: str                      # file stem
    build: Callable[[], nn.Module]
    seed: int
    exporter: str                  # "torchscript" | "dynamo"
    opset: int
    dtype: str                     # "float32" | "float64"
    input_dim: int
    output_dim: int
    layer_sizes: list[int]
    relu_last: bool
    dynamic_batch: bool
    export_input_shape: tuple[int, ...] | None = None  # default (1 or 5, input_dim)
    kind: str = "valid"
    problem: str | None = None
    mutate: Callable[[nn.Module], None] | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _set_nan_weight(m: nn.Module) -> None:
    with torch.no_grad():
        m[2].weight[1, 3] = float("nan")  # second Linear


def _set_inf_bias(m: nn.Module) -> None:
    with torch.no_grad():
        m[0].bias[2] = float("inf")  # first Linear


VALID_SPECS: list[Spec] = [
    Spec(
        name="mlp_10_10_10_2_relu_last_opset11",
        build=lambda: mlp([10, 10, 10, 2], relu_last=True),
        seed=11, exporter="torchscript", opset=11, dtype="float32",
        input_dim=10, output_dim=2, layer_sizes=[10, 10, 10, 2], relu_last=True,
        dynamic_batch=True,
    ),
    Spec(
        name="mlp_4_8_3_opset13",
        build=lambda: mlp([4, 8, 3], relu_last=False, flatten=True, dropout=0.5),
        seed=13, exporter="torchscript", opset=13, dtype="float32",
        input_dim=4, output_dim=3, layer_sizes=[4, 8, 3], relu_last=False,
        dynamic_batch=False,
        notes="nn.Flatten first, nn.Dropout(0.5) after the first ReLU (eval mode; "
              "the exporter drops it, no Dropout node); static input shape [1, 4]",
    ),
    Spec(
        name="mlp_6_5_4_opset17",
        build=lambda: mlp([6, 5, 4], relu_last=False),
        seed=17, exporter="torchscript", opset=17, dtype="float32",
        input_dim=6, output_dim=4, layer_sizes=[6, 5, 4], relu_last=False,
        dynamic_batch=True,
    ),
    Spec(
        name="mlp_5_7_3_f64_opset13",
        build=lambda: mlp([5, 7, 3], relu_last=False).double(),
        seed=64, exporter="torchscript", opset=13, dtype="float64",
        input_dim=5, output_dim=3, layer_sizes=[5, 7, 3], relu_last=False,
        dynamic_batch=True,
        notes="module.double(); float64 initializers, input and output",
    ),
    Spec(
        name="mlp_6_8_3_dynamo_opset18",
        build=lambda: mlp([6, 8, 3], relu_last=False),
        seed=18, exporter="dynamo", opset=18, dtype="float32",
        input_dim=6, output_dim=3, layer_sizes=[6, 8, 3], relu_last=False,
        dynamic_batch=True,
        notes="torch.onnx.export(dynamo=True, optimize=True, external_data=False); "
              "node metadata_props and doc strings stripped for determinism",
    ),
    Spec(
        name="mlp_matmul_add_6_8_3_dynamo_opset20",
        build=lambda: MatMulAddMLP(6, 8, 3),
        seed=20, exporter="dynamo", opset=20, dtype="float32",
        input_dim=6, output_dim=3, layer_sizes=[6, 8, 3], relu_last=False,
        dynamic_batch=True,
        notes="MatMulAddMLP through the dynamo exporter (optimize=True folds W.T into "
              "an initializer of shape [in, out]); opset 20 is the dynamo default "
              "in torch 2.11",
    ),
    Spec(
        name="mlp_matmul_add_5_6_3_opset13",
        build=lambda: MatMulAddMLP(5, 6, 3),
        seed=21, exporter="torchscript", opset=13, dtype="float32",
        input_dim=5, output_dim=3, layer_sizes=[5, 6, 3], relu_last=False,
        dynamic_batch=True,
        notes="first layer is `x @ W.T + b` (MatMul + Add), then ReLU, nn.Linear",
    ),
    Spec(
        name="mlp_reshape_4_6_2_opset13",
        build=lambda: ReshapeMLP(4, 6, 2),
        seed=22, exporter="torchscript", opset=13, dtype="float32",
        input_dim=4, output_dim=2, layer_sizes=[4, 6, 2], relu_last=False,
        dynamic_batch=True,
        notes="`x.reshape(-1, 4)` first, then Linear, ReLU, Linear",
    ),
    Spec(
        name="conv_1x4x4_opset13",
        build=TinyConvNet,
        seed=34, exporter="torchscript", opset=13, dtype="float32",
        input_dim=16, output_dim=2, layer_sizes=[16, 8, 2], relu_last=False,
        dynamic_batch=True, export_input_shape=(1, 1, 4, 4),
        notes="Conv2d(1, 2, 3) on [N, 1, 4, 4], ReLU, Flatten, Linear(8, 2)",
        extra={"relus": [True, False]},
    ),
    Spec(
        name="conv_bn_pool_2x6x6_f64_opset17",
        build=lambda: ConvBnPoolNet().double(),
        seed=35, exporter="torchscript", opset=17, dtype="float64",
        input_dim=72, output_dim=2, layer_sizes=[72, 144, 36, 12, 3, 2], relu_last=False,
        dynamic_batch=True, export_input_shape=(1, 2, 6, 6),
        notes="Conv(2->4, 3x3, pad 1), ReLU, AvgPool2d(2), BatchNorm2d (random running "
              "statistics; folded into the pooling layer), Conv(4->3, 2x2), ReLU, "
              "AdaptiveAvgPool2d(1) (GlobalAveragePool), Flatten, Linear(3->2)",
        extra={"relus": [True, False, True, False, False]},
    ),
    Spec(
        name="conv_strided_1x7x7_opset11",
        build=StridedConvNet,
        seed=36, exporter="torchscript", opset=11, dtype="float32",
        input_dim=49, output_dim=2, layer_sizes=[49, 48, 48, 5, 2], relu_last=False,
        dynamic_batch=True, export_input_shape=(1, 1, 7, 7),
        notes="Conv(1->3, 3x3, stride 2, pad 1), ReLU, AvgPool2d(3, stride 1, pad 1, "
              "count_include_pad=False), Flatten, Linear(48->5), ReLU, Linear(5->2)",
        extra={"relus": [True, False, True, False]},
    ),
    Spec(
        name="mlp_bn_after_relu_5_6_3_opset17",
        build=BnAfterReluMLP,
        seed=37, exporter="torchscript", opset=17, dtype="float32",
        input_dim=5, output_dim=3, layer_sizes=[5, 6, 6, 3], relu_last=False,
        dynamic_batch=True,
        notes="Linear(5->6), ReLU, BatchNorm1d(6) (random running statistics; its own "
              "diagonal layer), Linear(6->3)",
        extra={"relus": [True, False, False]},
    ),
]

GRAPH_NOTES = ("Conv(1->2, 3x3, pad 1), ReLU, Concat with 2 coordinate channels, Conv(4->3, "
               "3x3, stride 2), ReLU, BatchNorm2d, view + permute to 4 cells of 3, Linear(3->5) "
               "per cell, ReLU, sum over cells, Linear(5->2); read tensor by tensor")

MAXPOOL_NOTES = ("Conv(2->3, 3x3, pad 1), MaxPool(3, stride 2, pad 1), ReLU, Concat with 2 "
                 "coordinate channels, Conv(5->4, 2x2), ReLU, MaxPool(2, stride 1), Flatten, "
                 "Linear(16->3); read tensor by tensor")
MAXPOOL_LAYERS = dict(
    build=MaxPoolCoordNet, seed=40, dtype="float32",
    input_dim=98, output_dim=3, layer_sizes=[98, 147, 48, 48, 36, 16, 3], relu_last=False,
    export_input_shape=(1, 2, 7, 7), notes=MAXPOOL_NOTES,
    extra={"relus": [False, False, True, True, False, False],
           "max_pools": [None, 9, None, None, 4, None]},
)

RESIDUAL_NOTES = ("stem Conv+BN+ReLU; BasicBlock(4->4); BasicBlock(4->6, stride 2, 1x1 "
                  "Conv+BN shortcut); global average pooling; Linear(6->3); read tensor by "
                  "tensor, each block's input carried past the block's first ReLU; float64, "
                  "since the exporter folds the batch norms into the convolutions in the "
                  "model's precision")
RESIDUAL_LAYERS = dict(
    input_dim=72, output_dim=3, layer_sizes=[72, 144, 288, 144, 198, 54, 6, 3],
    relu_last=False, export_input_shape=(1, 2, 6, 6), notes=RESIDUAL_NOTES,
    extra={"relus": [True, True, True, True, True, False, False],
           "linear_tails": [0, 144, 0, 144, 0, 0, 0]},
)

VALID_SPECS += [
    Spec(
        name="residual_conv_2x6x6_f64_opset17",
        build=lambda: ResidualConvNet().double(),
        seed=41, exporter="torchscript", opset=17, dtype="float64",
        dynamic_batch=True, **RESIDUAL_LAYERS,
    ),
    Spec(
        name="residual_conv_2x6x6_f64_dynamo_opset18",
        build=lambda: ResidualConvNet().double(),
        seed=41, exporter="dynamo", opset=18, dtype="float64",
        dynamic_batch=False, **RESIDUAL_LAYERS,
    ),
    Spec(
        name="residual_mlp_6_8_3_opset17",
        build=ResidualMLP,
        seed=42, exporter="torchscript", opset=17, dtype="float32",
        input_dim=6, output_dim=3, layer_sizes=[6, 8, 8, 3], relu_last=False,
        dynamic_batch=True,
        notes="Linear(6->8), ReLU, Linear(8->8) + its input, ReLU, Linear(8->3)",
    ),
    Spec(
        name="conv_maxpool_1x6x6_opset13",
        build=ConvMaxPoolNet,
        seed=38, exporter="torchscript", opset=13, dtype="float32",
        input_dim=36, output_dim=2, layer_sizes=[36, 32, 8, 2], relu_last=False,
        dynamic_batch=True, export_input_shape=(1, 1, 6, 6),
        notes="Conv2d(1, 2, 3) on [N, 1, 6, 6], ReLU, MaxPool2d(2), Flatten, Linear(8, 2)",
        extra={"relus": [True, False, False], "max_pools": [None, 4, None]},
    ),
    Spec(
        name="maxpool_coord_2x7x7_opset17",
        exporter="torchscript", opset=17, dynamic_batch=True, **MAXPOOL_LAYERS,
    ),
    Spec(
        name="maxpool_coord_2x7x7_dynamo_opset18",
        exporter="dynamo", opset=18, dynamic_batch=False, **MAXPOOL_LAYERS,
    ),
    Spec(
        name="coord_set_1x5x5_opset17",
        build=CoordSetNet,
        seed=39, exporter="torchscript", opset=17, dtype="float32",
        input_dim=25, output_dim=2, layer_sizes=[25, 50, 12, 12, 20, 5, 2], relu_last=False,
        dynamic_batch=True, export_input_shape=(1, 1, 5, 5), notes=GRAPH_NOTES,
        extra={"relus": [True, True, False, True, False, False]},
    ),
    Spec(
        name="coord_set_1x5x5_dynamo_opset18",
        build=CoordSetNet,
        seed=39, exporter="dynamo", opset=18, dtype="float32",
        input_dim=25, output_dim=2, layer_sizes=[25, 50, 12, 12, 20, 5, 2], relu_last=False,
        dynamic_batch=False, export_input_shape=(1, 1, 5, 5), notes=GRAPH_NOTES,
        extra={"relus": [True, True, False, True, False, False]},
    ),
]

INVALID_MODEL_SPECS: list[Spec] = [
    Spec(
        name="unsupported_sigmoid",
        build=lambda: mlp([4, 5, 2], relu_last=False, act=nn.Sigmoid),
        seed=31, exporter="torchscript", opset=13, dtype="float32",
        input_dim=4, output_dim=2, layer_sizes=[4, 5, 2], relu_last=False,
        dynamic_batch=True, kind="invalid", problem="unsupported operator Sigmoid",
        notes="Linear, Sigmoid, Linear",
    ),
    Spec(
        name="nan_weights",
        build=lambda: mlp([4, 5, 2], relu_last=False),
        seed=32, exporter="torchscript", opset=13, dtype="float32",
        input_dim=4, output_dim=2, layer_sizes=[4, 5, 2], relu_last=False,
        dynamic_batch=True, kind="invalid", problem="non-finite weight",
        mutate=_set_nan_weight,
        notes="NaN at weight[1, 3] of the second Linear (torch layout [out, in]; "
              "the Gemm has transB=1 so the initializer keeps that layout)",
        extra={"bad_layer": 1, "bad_index": [1, 3], "bad_value": "NaN"},
    ),
    Spec(
        name="inf_bias",
        build=lambda: mlp([4, 5, 2], relu_last=False),
        seed=33, exporter="torchscript", opset=13, dtype="float32",
        input_dim=4, output_dim=2, layer_sizes=[4, 5, 2], relu_last=False,
        dynamic_batch=True, kind="invalid", problem="non-finite bias",
        mutate=_set_inf_bias,
        notes="+inf at bias[2] of the first Linear",
        extra={"bad_layer": 0, "bad_index": [2], "bad_value": "+inf"},
    ),
]

TRUNCATE_SOURCE = "mlp_10_10_10_2_relu_last_opset11"


# --------------------------------------------------------------------------
# Export helpers
# --------------------------------------------------------------------------


def torch_dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "float64": torch.float64}[name]


def build_module(spec: Spec) -> nn.Module:
    torch.manual_seed(spec.seed)
    module = spec.build()
    if spec.mutate is not None:
        spec.mutate(module)
    return module.eval()


def example_input(spec: Spec) -> torch.Tensor:
    if spec.export_input_shape is not None:
        shape = spec.export_input_shape
    else:
        # Static models get the common batch size 1; dynamic ones a batch of 2
        # so the tracer cannot specialise on 1.
        shape = (2 if spec.dynamic_batch else 1, spec.input_dim)
    return torch.zeros(shape, dtype=torch_dtype(spec.dtype))


def strip_for_determinism(model: onnx.ModelProto) -> None:
    """Drop metadata that records source paths / stack traces (dynamo)."""

    def clean_graph(g: onnx.GraphProto) -> None:
        g.doc_string = ""
        for n in g.node:
            n.doc_string = ""
            del n.metadata_props[:]
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    clean_graph(a.g)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    for sg in a.graphs:
                        clean_graph(sg)
        for vi in list(g.input) + list(g.output) + list(g.value_info):
            vi.doc_string = ""
            del vi.metadata_props[:]
        for init in g.initializer:
            init.doc_string = ""
            del init.metadata_props[:]
        del g.metadata_props[:]

    model.doc_string = ""
    del model.metadata_props[:]
    clean_graph(model.graph)


def export(spec: Spec, module: nn.Module, path: Path) -> None:
    x = example_input(spec)
    input_names, output_names = ["input"], ["output"]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if spec.exporter == "torchscript":
            dynamic_axes = (
                {"input": {0: "batch"}, "output": {0: "batch"}} if spec.dynamic_batch else None
            )
            torch.onnx.export(
                module, (x,), str(path),
                dynamo=False,
                opset_version=spec.opset,
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=dynamic_axes,
                do_constant_folding=True,
                export_params=True,
            )
        elif spec.exporter == "dynamo":
            dynamic_shapes = (
                ({0: torch.export.Dim("batch")},) if spec.dynamic_batch else None
            )
            program = torch.onnx.export(
                module, (x,),
                dynamo=True,
                opset_version=spec.opset,
                input_names=input_names,
                output_names=output_names,
                dynamic_shapes=dynamic_shapes,
                optimize=True,
                verbose=False,
                external_data=False,
            )
            model = program.model_proto
            strip_for_determinism(model)
            path.write_bytes(model.SerializeToString())
        else:
            raise ValueError(spec.exporter)
    # Re-serialise through onnx so every file goes through the same writer.
    model = onnx.load(str(path))
    strip_for_determinism(model)
    path.write_bytes(model.SerializeToString())


# --------------------------------------------------------------------------
# Introspection
# --------------------------------------------------------------------------


def _attr_value(a: onnx.AttributeProto) -> Any:
    v = onnx.helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, onnx.TensorProto):
        arr = onnx.numpy_helper.to_array(v)
        return {"tensor": arr.tolist(), "dtype": str(arr.dtype)}
    if isinstance(v, (list, tuple)):
        return [x.decode() if isinstance(x, bytes) else x for x in v]
    return v


def _dims(vi: onnx.ValueInfoProto) -> list[int | str]:
    return [
        d.dim_param if d.HasField("dim_param") else d.dim_value
        for d in vi.type.tensor_type.shape.dim
    ]


def describe(model: onnx.ModelProto) -> dict[str, Any]:
    """Op sequence with attributes; for shape-like inputs, where they come from."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    const_out = {n.output[0]: n for n in g.node if n.op_type == "Constant"}
    nodes = []
    for n in g.node:
        entry: dict[str, Any] = {"op": n.op_type}
        if n.attribute:
            entry["attrs"] = {a.name: _attr_value(a) for a in n.attribute}
        srcs = []
        for name in n.input:
            if name in inits:
                t = inits[name]
                srcs.append(f"initializer {list(t.dims)} "
                            f"{onnx.helper.tensor_dtype_to_np_dtype(t.data_type)}")
            elif name in const_out:
                srcs.append("Constant")
            elif name == "":
                srcs.append("<none>")
            else:
                srcs.append("dynamic")
        entry["inputs"] = srcs
        if n.op_type == "Reshape" and len(n.input) > 1:
            shp = n.input[1]
            if shp in inits:
                entry["shape"] = {"source": "initializer",
                                  "value": onnx.numpy_helper.to_array(inits[shp]).tolist()}
            elif shp in const_out:
                entry["shape"] = {"source": "Constant node",
                                  "value": _attr_value(const_out[shp].attribute[0])}
            else:
                entry["shape"] = {"source": "computed"}
        nodes.append(entry)
    return {
        "ir_version": model.ir_version,
        "opset_imports": {(o.domain or "ai.onnx"): o.version for o in model.opset_import},
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "inputs": {vi.name: _dims(vi) for vi in g.input if vi.name not in inits},
        "outputs": {vi.name: _dims(vi) for vi in g.output},
        "initializers": len(g.initializer),
        "nodes": nodes,
    }


def onnx_reference_run(model: onnx.ModelProto, x: np.ndarray, static_batch: bool) -> np.ndarray:
    sess = onnx.reference.ReferenceEvaluator(model)
    in_name = [i.name for i in model.graph.input
               if i.name not in {t.name for t in model.graph.initializer}][0]
    if static_batch:
        return np.concatenate([sess.run(None, {in_name: x[i:i + 1]})[0] for i in range(len(x))])
    return sess.run(None, {in_name: x})[0]


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def versions() -> dict[str, str]:
    import onnxscript  # noqa: PLC0415  (needed by the dynamo exporter)
    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxscript": onnxscript.__version__,
        "numpy": np.__version__,
    }
    try:
        import onnx_ir  # noqa: PLC0415
        out["onnx_ir"] = onnx_ir.__version__
    except ImportError:
        pass
    import google.protobuf  # noqa: PLC0415
    out["protobuf"] = google.protobuf.__version__
    return out


def remove_previous(out_dir: Path) -> None:
    """Delete the files listed in an existing manifest (and the manifest)."""
    manifest = out_dir / MANIFEST_NAME
    if not manifest.exists():
        return
    try:
        old = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError):
        return
    for entry in old.get("files", []):
        for key in ("file", "inputs", "outputs"):
            rel = entry.get(key)
            if rel and "/" not in rel and (out_dir / rel).is_file():
                (out_dir / rel).unlink()
    manifest.unlink()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    ap.add_argument("--quiet", action="store_true", help="do not print the operator summary")
    args = ap.parse_args()
    out_dir: Path = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_previous(out_dir)

    # The dynamo exporter logs a warning per torchvision op it cannot register.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    entries: list[dict[str, Any]] = []
    failures: list[str] = []

    def base_entry(spec: Spec, fname: str) -> dict[str, Any]:
        e: dict[str, Any] = {
            "file": fname,
            "kind": spec.kind,
            "exporter": spec.exporter,
            "opset": spec.opset,
            "dtype": spec.dtype,
            "input_dim": spec.input_dim,
            "output_dim": spec.output_dim,
            "layer_sizes": spec.layer_sizes,
            "relu_last": spec.relu_last,
            "dynamic_batch": spec.dynamic_batch,
            "seed": spec.seed,
        }
        if spec.problem:
            e["problem"] = spec.problem
        if spec.notes:
            e["notes"] = spec.notes
        e.update(spec.extra)
        return e

    # ---- valid models --------------------------------------------------------
    for spec in VALID_SPECS:
        fname = f"{spec.name}.onnx"
        path = out_dir / fname
        module = build_module(spec)
        try:
            export(spec, module, path)
        except Exception as exc:  # the dynamo exporter may not work everywhere
            msg = f"{fname}: export failed: {type(exc).__name__}: {exc}"
            print("SKIPPED", msg, file=sys.stderr)
            failures.append(msg)
            if path.exists():
                path.unlink()
            continue

        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)

        rng = np.random.default_rng(1000 + spec.seed)
        sample = spec.export_input_shape[1:] if spec.export_input_shape else (spec.input_dim,)
        x = rng.standard_normal((N_SAMPLES, *sample)).astype(np.dtype(spec.dtype))
        ref = copy.deepcopy(module).double().eval()
        with torch.no_grad():
            y = ref(torch.from_numpy(x.astype(np.float64))).numpy().astype(np.float64)
        assert y.shape == (N_SAMPLES, spec.output_dim), (fname, y.shape)

        in_file, out_file = f"{spec.name}.inputs.npy", f"{spec.name}.outputs.npy"
        np.save(out_dir / in_file, x)
        np.save(out_dir / out_file, y)

        y_onnx = onnx_reference_run(model, x, static_batch=not spec.dynamic_batch)
        diff = float(np.max(np.abs(y_onnx.astype(np.float64) - y)))
        if not diff <= CHECK_ATOL[spec.dtype]:
            raise SystemExit(f"{fname}: onnx.reference output differs from torch float64 "
                             f"reference by {diff}")

        e = base_entry(spec, fname)
        desc = describe(model)
        e.update({
            "inputs": in_file,
            "outputs": out_file,
            "inputs_dtype": str(x.dtype),
            "outputs_dtype": "float64",
            "n_samples": N_SAMPLES,
            "onnx_input_shape": next(iter(desc["inputs"].values())),
            "onnx_output_shape": next(iter(desc["outputs"].values())),
            "ops": [n["op"] for n in desc["nodes"]],
            "onnx_reference_max_abs_diff": diff,
        })
        entries.append(e)

    # ---- invalid models exported from torch -------------------------------
    for spec in INVALID_MODEL_SPECS:
        fname = f"{spec.name}.onnx"
        path = out_dir / fname
        export(spec, build_module(spec), path)
        model = onnx.load(str(path))
        onnx.checker.check_model(model)  # structurally valid ONNX, just not a ReLU MLP
        e = base_entry(spec, fname)
        e["ops"] = [n.op_type for n in model.graph.node]
        entries.append(e)

    # ---- invalid files written by hand -------------------------------------
    src = out_dir / f"{TRUNCATE_SOURCE}.onnx"
    data = src.read_bytes()
    manual = [
        ("truncated.onnx", data[: len(data) // 2], "truncated protobuf",
         f"first {len(data) // 2} of {len(data)} bytes of {TRUNCATE_SOURCE}.onnx"),
        ("not_onnx.onnx", b"This is not an ONNX model, just some plain text.\n",
         "not an ONNX protobuf", "plain ASCII text"),
        ("empty.onnx", b"", "empty file",
         "zero bytes; note that protobuf parses this as an empty ModelProto "
         "(no graph, no opset_import), so the loader must reject it explicitly"),
    ]
    for fname, blob, problem, notes in manual:
        (out_dir / fname).write_bytes(blob)
        parses = True
        try:
            onnx.load_from_string(blob)
        except Exception:
            parses = False
        entries.append({
            "file": fname, "kind": "invalid", "exporter": "manual", "opset": None,
            "dtype": None, "input_dim": None, "output_dim": None, "layer_sizes": None,
            "relu_last": None, "problem": problem, "notes": notes,
            "protobuf_parses": parses,
        })

    # ---- sizes / hashes / manifest ----------------------------------------
    for e in entries:
        p = out_dir / e["file"]
        e["bytes"] = p.stat().st_size
        e["sha256"] = sha256(p)

    manifest = {
        "generator": "scripts/make_onnx_fixtures.py",
        "regenerate": "scripts/make_onnx_fixtures.sh",
        "versions": versions(),
        "conventions": {
            "inputs": "NAME.inputs.npy, shape [n_samples, input_dim] ([n_samples, C, H, W] "
                      "for image models), dtype = model dtype, "
                      "numpy default_rng(1000 + seed).standard_normal",
            "outputs": "NAME.outputs.npy, float64, PyTorch forward pass of a .double() "
                       "copy of the module on the inputs converted to float64",
            "weights": "torch.manual_seed(seed) before building the module "
                       "(default nn.Linear init)",
        },
        "skipped": failures,
        "files": entries,
    }
    (out_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")

    if not args.quiet:
        print_summary(out_dir, entries)
    if failures:
        print("\nSKIPPED:", *failures, sep="\n  ", file=sys.stderr)
    return 0


def print_summary(out_dir: Path, entries: list[dict[str, Any]]) -> None:
    print(f"Fixtures in {os.path.relpath(out_dir, Path.cwd())}:")
    for p in sorted(out_dir.iterdir()):
        print(f"  {p.stat().st_size:8d}  {p.name}")
    for e in entries:
        if e["kind"] != "valid" and e["exporter"] == "manual":
            continue
        model = onnx.load(str(out_dir / e["file"]))
        d = describe(model)
        print(f"\n== {e['file']}  [{e['kind']}, {e['exporter']}, {e['dtype']}]")
        print(f"   ir_version={d['ir_version']} opsets={d['opset_imports']} producer={d['producer']!r}")
        print(f"   inputs={d['inputs']} outputs={d['outputs']} initializers={d['initializers']}")
        for n in d["nodes"]:
            line = f"   {n['op']:<10}"
            if "attrs" in n:
                attrs = {k: v for k, v in n["attrs"].items()}
                line += f" attrs={attrs}"
            line += f" in={n['inputs']}"
            if "shape" in n:
                line += f" shape={n['shape']}"
            print(line)


if __name__ == "__main__":
    sys.exit(main())
