#!/usr/bin/env python3
"""Generate the conformance fixtures under tests/data/conformance/.

Run through scripts/make_conformance_fixtures.sh, which sets up the virtual environment with
the pinned versions of scripts/requirements-fixtures.txt (torch, captum, zennit, onnx).

For a few small ReLU MLPs (float64, every weight representable in float32, seeded) the script
writes the ONNX model, a handful of inputs and their target outputs, and the input relevances
that Captum and Zennit compute in float64 for the rules the libraries share with dtdcert, each
with the library's own conventions (bias in the denominators, stabilisers, the initial
relevance). manifest.json lists every reference with the dtdcert options that must reproduce
it and the tolerance: |dtdcert − reference| <= atol + rtol · |reference| elementwise.

All seeds are fixed; running the script twice writes identical bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT_DIR = REPO_ROOT / "tests" / "data" / "conformance"
ATOL = 1e-8
RTOL = 1e-8


@dataclass(frozen=True)
class Case:
    name: str
    # An MLP's layer widths; for a convolutional case its [channels, height, width] input.
    sizes: tuple[int, ...]
    # The inputs are drawn uniformly from [low, high].
    low: float
    high: float
    samples: int
    seed: int
    conv: bool = False


CASES = [
    Case("mlp_6_8_5_3", (6, 8, 5, 3), -1.0, 1.0, 4, 11),
    Case("mlp_10_16_12_4", (10, 16, 12, 4), 0.0, 1.0, 4, 12),
    Case("conv_2x6x6", (2, 6, 6), 0.0, 1.0, 4, 13, conv=True),
]


def build(case: Case) -> nn.Sequential:
    if case.conv:
        return build_conv(case)
    gen = torch.Generator().manual_seed(case.seed)
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(case.sizes[:-1], case.sizes[1:])):
        lin = nn.Linear(n_in, n_out).double()
        with torch.no_grad():
            w = torch.randn(n_out, n_in, generator=gen, dtype=torch.float64) / n_in**0.5
            b = 0.1 * torch.randn(n_out, generator=gen, dtype=torch.float64)
            # Values representable in float32: the ONNX file and dtdcert see the same numbers.
            lin.weight.copy_(w.float().double())
            lin.bias.copy_(b.float().double())
        layers.append(lin)
        if i + 2 < len(case.sizes):
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).eval()


class ConvNet(nn.Module):
    """Conv(2->3, 3x3, pad 1), ReLU, AvgPool2d(2), Conv(3->4, 2x2), ReLU, flatten,
    Linear(16->3). The flatten is a function, not a module: Captum has no rule for
    nn.Flatten."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(2, 3, 3, padding=1)
        self.r1 = nn.ReLU()
        self.pool = nn.AvgPool2d(2)
        self.c2 = nn.Conv2d(3, 4, 2)
        self.r2 = nn.ReLU()
        self.fc = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.r2(self.c2(self.pool(self.r1(self.c1(x)))))
        return self.fc(torch.flatten(x, 1))


def build_conv(case: Case) -> nn.Module:
    """ConvNet in float64 with seeded values representable in float32."""
    gen = torch.Generator().manual_seed(case.seed)
    model = ConvNet().double()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                w = torch.randn(m.weight.shape, generator=gen, dtype=torch.float64) / fan_in**0.5
                b = 0.1 * torch.randn(m.bias.shape, generator=gen, dtype=torch.float64)
                m.weight.copy_(w.float().double())
                m.bias.copy_(b.float().double())
    return model.eval()


def input_shape(case: Case) -> tuple[int, ...]:
    return case.sizes if case.conv else (case.sizes[0],)


def inputs_of(case: Case, model: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    gen = torch.Generator().manual_seed(case.seed + 1000)
    out_x, out_t = [], []
    # Draw until `samples` inputs have a positive top output (the explained output; the
    # libraries' rules differ for a negative one, which no rule here is meant for).
    while len(out_x) < case.samples:
        x = case.low + (case.high - case.low) * torch.rand(input_shape(case), generator=gen, dtype=torch.float64)
        x = x.float().double()
        y = model(x[None])[0]
        k = int(torch.argmax(y))
        if y[k] > 0:
            out_x.append(x.numpy())
            out_t.append(k)
    return np.stack(out_x), np.array(out_t, dtype=np.int64)


def export(model: nn.Module, shape: tuple[int, ...], path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(1, *shape, dtype=torch.float64),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        )


# --------------------------------------------------------------------------------------------
# Zennit


def zennit_relevance(model: nn.Module, x: np.ndarray, targets: np.ndarray, composite, initial: str) -> np.ndarray:
    from zennit.attribution import Gradient

    out = []
    for xi, k in zip(x, targets):
        inp = torch.tensor(xi[None], dtype=torch.float64, requires_grad=True)
        with Gradient(model=model, composite=composite) as attributor:
            def attr_output(y: torch.Tensor, k=int(k)) -> torch.Tensor:
                onehot = torch.zeros_like(y)
                onehot[0, k] = 1.0
                return onehot if initial == "one" else onehot * y
            _, rel = attributor(inp, attr_output)
        out.append(rel[0].detach().numpy().reshape(-1))
    return np.stack(out)


def zennit_configs(case: Case) -> list[dict]:
    from zennit.composites import (
        EpsilonAlpha2Beta1,
        EpsilonGammaBox,
        EpsilonPlus,
        EpsilonPlusFlat,
        LayerMapComposite,
        SpecialFirstLayerMapComposite,
    )
    from zennit.rules import AlphaBeta, Epsilon, Flat, Gamma, Norm, Pass, WSquare, ZBox, ZPlus
    from zennit.types import Activation, AvgPool, Linear as AnyLinear

    # As Zennit's built-in composites do: ReLU passes relevance on, average pooling gets Norm
    # (ε-like with the stabiliser); `Linear` covers dense and convolutional layers.
    def base() -> list:
        return [(Activation, Pass()), (AvgPool, Norm())]

    def everywhere(rule_factory) -> Callable[[], object]:
        return lambda: LayerMapComposite(layer_map=base() + [(AnyLinear, rule_factory())])

    def first_then(first, rest) -> Callable[[], object]:
        return lambda: SpecialFirstLayerMapComposite(
            layer_map=base() + [(AnyLinear, rest())],
            first_map=[(AnyLinear, first())],
        )

    lo, hi = case.low, case.high
    s = "1e-6"  # Zennit's default stabiliser of every rule
    root = ["--denominator-threshold", "0"]
    configs = [
        dict(rule="epsilon", zennit="Epsilon(epsilon=1e-6)", make=everywhere(lambda: Epsilon()),
             args=["--rule", "epsilon:1e-6", "--bias", "include"]),
        dict(rule="epsilon-0.25", zennit="Epsilon(epsilon=0.25)", make=everywhere(lambda: Epsilon(epsilon=0.25)),
             args=["--rule", "epsilon:0.25", "--bias", "include"]),
        dict(rule="gamma", zennit="Gamma(gamma=0.25) above a WSquare first layer",
             make=first_then(lambda: WSquare(), lambda: Gamma(gamma=0.25)),
             args=["--input-rule", "w2", "--rule", "gamma:0.25", "--bias", "include", "--stabilizer", s]),
        dict(rule="zplus", zennit="ZPlus above a Flat first layer",
             make=first_then(lambda: Flat(), lambda: ZPlus()),
             args=["--input-rule", "flat", "--rule", "z+", "--bias", "include", "--stabilizer", s]),
        dict(rule="zplus-w2", zennit="ZPlus above a WSquare first layer",
             make=first_then(lambda: WSquare(), lambda: ZPlus()),
             args=["--input-rule", "w2", "--rule", "z+", "--bias", "include", "--stabilizer", s]),
        dict(rule="alphabeta-2-1", zennit="AlphaBeta(alpha=2, beta=1)", make=everywhere(lambda: AlphaBeta(2.0, 1.0)),
             args=["--rule", "alphabeta:2:1", "--bias", "include", "--stabilizer", s]),
        dict(rule="alphabeta-1-0", zennit="AlphaBeta(alpha=1, beta=0)", make=everywhere(lambda: AlphaBeta(1.0, 0.0)),
             args=["--rule", "alphabeta:1:0", "--bias", "include", "--stabilizer", s]),
        dict(rule="wsquare", zennit="WSquare", make=everywhere(lambda: WSquare()),
             args=["--rule", "w2", "--bias", "include", "--stabilizer", s]),
        dict(rule="flat", zennit="Flat", make=everywhere(lambda: Flat()),
             args=["--rule", "flat", "--stabilizer", s]),
        dict(rule="zbox-epsilon", zennit=f"ZBox(low={lo}, high={hi}) first, Epsilon above",
             make=first_then(lambda: ZBox(low=lo, high=hi), lambda: Epsilon()),
             args=["--input-rule", f"zb:{lo}:{hi}", "--rule", "epsilon:1e-6", "--bias", "include",
                   "--stabilizer", s]),
        # EpsilonGammaBox puts ZBox on a first *convolution* only: on an MLP every layer is ε.
        dict(rule="EpsilonGammaBox", zennit=f"composite EpsilonGammaBox(low={lo}, high={hi})",
             make=lambda: EpsilonGammaBox(low=lo, high=hi),
             args=["--rule", "epsilon:1e-6", "--bias", "include"]),
        dict(rule="EpsilonPlusFlat", zennit="composite EpsilonPlusFlat",
             make=lambda: EpsilonPlusFlat(),
             args=["--input-rule", "flat", "--rule", "epsilon:1e-6", "--bias", "include", "--stabilizer", s]),
    ]
    # On the convolutional net (dtdcert's layers: 1 conv, 2 pooling, 3 conv, 4 dense) every
    # composite gives the pooling layer Norm, which is `--layer-rule 2=epsilon:1e-6`; the
    # built-in composites give the dense layer ε.
    pool = ["--layer-rule", "2=epsilon:1e-6"]
    pool_dense = pool + ["--layer-rule", "4=epsilon:1e-6"]
    conv_only = [
        dict(rule="EpsilonPlus", zennit="composite EpsilonPlus (ZPlus on convolutions)",
             make=lambda: EpsilonPlus(),
             args=["--rule", "z+"] + pool_dense + ["--bias", "include", "--stabilizer", s]),
        dict(rule="EpsilonAlpha2Beta1", zennit="composite EpsilonAlpha2Beta1",
             make=lambda: EpsilonAlpha2Beta1(),
             args=["--rule", "alphabeta:2:1"] + pool_dense + ["--bias", "include", "--stabilizer", s]),
        dict(rule="EpsilonPlusFlat-conv", zennit="composite EpsilonPlusFlat (Flat first, ZPlus on convolutions)",
             make=lambda: EpsilonPlusFlat(),
             args=["--rule", "z+", "--layer-rule", "1=flat"] + pool_dense
             + ["--bias", "include", "--stabilizer", s]),
        dict(rule="EpsilonGammaBox-conv",
             zennit=f"composite EpsilonGammaBox(low={lo}, high={hi}) (ZBox first, Gamma on convolutions)",
             make=lambda: EpsilonGammaBox(low=lo, high=hi),
             args=["--rule", "gamma:0.25", "--layer-rule", f"1=zb:{lo}:{hi}"] + pool_dense
             + ["--bias", "include", "--stabilizer", s]),
    ]
    if case.conv:
        mlp_only = {"EpsilonGammaBox", "EpsilonPlusFlat"}
        configs = [dict(c, args=c["args"] + pool) for c in configs if c["rule"] not in mlp_only] + conv_only
    for c in configs:
        c["args"] = c["args"] + root
    return configs


# --------------------------------------------------------------------------------------------
# Captum


def captum_relevance(model: nn.Module, x: np.ndarray, targets: np.ndarray, rules: Callable[[int], object]) -> np.ndarray:
    from captum.attr import LRP

    linears = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    out = []
    for xi, k in zip(x, targets):
        # Captum deletes the rules after every call: set them again each time.
        for i, lin in enumerate(linears):
            lin.rule = rules(i)
        inp = torch.tensor(xi[None], dtype=torch.float64, requires_grad=True)
        rel = LRP(model).attribute(inp, target=int(k))
        out.append(rel[0].detach().numpy().reshape(-1))
    return np.stack(out)


def captum_configs(case: Case) -> list[dict]:
    from captum.attr._utils.lrp_rules import Alpha1_Beta0_Rule, EpsilonRule, GammaRule

    # Captum stabilises every rule but ε with 1e-9 (PropagationRule.STABILITY_FACTOR).
    s = "1e-9"
    root = ["--denominator-threshold", "0"]
    configs = [
        dict(rule="epsilon", captum="EpsilonRule(epsilon=1e-9)", rules=lambda i: EpsilonRule(),
             args=["--rule", "epsilon:1e-9", "--bias", "include"]),
        dict(rule="epsilon-0.1", captum="EpsilonRule(epsilon=0.1)", rules=lambda i: EpsilonRule(epsilon=0.1),
             args=["--rule", "epsilon:0.1", "--bias", "include"]),
        dict(rule="gamma", captum="GammaRule(gamma=0.25)", rules=lambda i: GammaRule(gamma=0.25),
             args=["--rule", "gamma:0.25", "--bias", "plain", "--stabilizer", s] + root),
        dict(rule="gamma-nobias", captum="GammaRule(gamma=0.25, set_bias_to_zero=True)",
             rules=lambda i: GammaRule(gamma=0.25, set_bias_to_zero=True),
             args=["--rule", "gamma:0.25", "--bias", "ignore", "--stabilizer", s] + root),
        dict(rule="alpha1beta0", captum="Alpha1_Beta0_Rule()", rules=lambda i: Alpha1_Beta0_Rule(),
             args=["--rule", "z+", "--bias", "plain", "--stabilizer", s] + root),
        dict(rule="alpha1beta0-nobias", captum="Alpha1_Beta0_Rule(set_bias_to_zero=True)",
             rules=lambda i: Alpha1_Beta0_Rule(set_bias_to_zero=True),
             args=["--rule", "z+", "--bias", "ignore", "--stabilizer", s] + root),
        dict(rule="alpha1beta0-first-epsilon", captum="Alpha1_Beta0_Rule() first, EpsilonRule() above",
             rules=lambda i: Alpha1_Beta0_Rule() if i == 0 else EpsilonRule(),
             args=["--input-rule", "z+", "--rule", "epsilon:1e-9", "--bias", "plain", "--stabilizer", s] + root),
    ]
    # Captum's pooling layers keep their default EpsilonRule(1e-9): on the convolutional
    # case (layers 1 conv, 2 pooling, 3 conv, 4 dense) that is `--layer-rule 2=epsilon:1e-9`.
    if not case.conv:
        return configs
    pool = ["--layer-rule", "2=epsilon:1e-9"]
    return [dict(c, args=c["args"] + pool) for c in configs] + [
        dict(rule="gamma-conv-epsilon-dense", captum="GammaRule(gamma=0.25) on convolutions, EpsilonRule() on the Linear",
             rules=lambda i: GammaRule(gamma=0.25) if i < 2 else EpsilonRule(),
             args=["--rule", "gamma:0.25", "--layer-rule", "2=epsilon:1e-9", "--layer-rule", "4=epsilon:1e-9",
                   "--bias", "plain", "--stabilizer", s] + root),
    ]


# --------------------------------------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def versions() -> dict[str, str]:
    import captum
    import onnx
    import zennit  # noqa: F401
    from importlib import metadata

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "captum": captum.__version__,
        "zennit": metadata.version("zennit"),
        "onnx": onnx.__version__,
        "numpy": np.__version__,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    args = parser.parse_args()
    out_dir: Path = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*"):
        if old.suffix in {".onnx", ".npy", ".json"}:
            old.unlink()
    torch.set_default_dtype(torch.float64)

    references = []
    cases = []
    for case in CASES:
        model = build(case)
        x, targets = inputs_of(case, model)
        model_file = f"{case.name}.onnx"
        export(model, input_shape(case), out_dir / model_file)
        np.save(out_dir / f"{case.name}.inputs.npy", x)
        np.save(out_dir / f"{case.name}.targets.npy", targets)
        cases.append(dict(case=case.name, model=model_file, inputs=f"{case.name}.inputs.npy",
                          targets=f"{case.name}.targets.npy", sizes=list(case.sizes),
                          input_range=[case.low, case.high], convolutional=case.conv))
        for initial in ["output", "one"]:
            for cfg in zennit_configs(case):
                rel = zennit_relevance(model, x, targets, cfg["make"](), initial)
                name = f"{case.name}.zennit.{cfg['rule']}.{initial}.npy"
                np.save(out_dir / name, rel)
                references.append(dict(case=case.name, library="zennit", rule=cfg["rule"],
                                       library_rule=cfg["zennit"], initial_relevance=initial,
                                       args=cfg["args"] + ["--initial-relevance", initial],
                                       reference=name, atol=ATOL, rtol=RTOL))
        for cfg in captum_configs(case):
            rel = captum_relevance(build(case), x, targets, cfg["rules"])
            name = f"{case.name}.captum.{cfg['rule']}.npy"
            np.save(out_dir / name, rel)
            references.append(dict(case=case.name, library="captum", rule=cfg["rule"],
                                   library_rule=cfg["captum"], initial_relevance="output",
                                   args=cfg["args"], reference=name, atol=ATOL, rtol=RTOL))
    manifest = dict(
        generator="scripts/make_conformance_fixtures.py",
        versions=versions(),
        cases=cases,
        references=references,
        sha256={p.name: sha256(p) for p in sorted(out_dir.glob("*")) if p.suffix in {".onnx", ".npy"}},
    )
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"{len(references)} references for {len(cases)} cases in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
