#!/usr/bin/env python3
"""Generate the CNN conformance fixtures: VGG-16, ResNet-50 and MobileNetV2 against Zennit.

Run through scripts/make_cnn_conformance.sh, which sets up the virtual environment with the
pinned versions of scripts/requirements-fixtures.txt (torch, torchvision, zennit, onnx).

Each network is built with torchvision's classes, its weights, biases and batch-norm
parameters and running statistics drawn from a seeded generator and rounded to float32 (so
the ONNX file, exported in float32, holds exactly the numbers Zennit computes with in
float64; the running statistics are random so that no batch norm is an identity). For each
network the script writes the ONNX model (opset 17, batch norms kept as nodes: dtdcert folds
them itself), the inputs (uniform in [0, 1], rounded to float32), the explained output of
each (its top output, which must be positive) and the input relevances Zennit 0.5.1 computes
in float64 with its torchvision canonizers for

- `zplus`: ZPlus on every convolution and dense layer (with non-negative inputs, dtdcert's z+);
- `EpsilonPlusFlat`: Zennit's composite (Flat on the first layer, ZPlus on the other
  convolutions, Epsilon on the dense layers); for MobileNetV2 with mobilenet_v2_canonizer,
  the analogue of ResNetCanonizer (residual sums through a Sum module, the global average
  pooling through a module), which Zennit 0.5.1 does not have;
- `zplus-joint` (ResNet-50 only): ZPlus with ResNetCanonizer's Bottleneck rewrite replaced by
  one that computes each block's end as dtdcert's ONNX loader does without
  `--split-residual` (one convolution over the branch and the block input side by side; see
  joint_block_end_canonizer), so that that reading of the residual additions is compared;

all with Zennit's base layer map (activations and batch norms pass relevance on, average
pooling and the canonizers' residual sums get Norm) and the one-hot vector as the initial
relevance. manifest.json lists every reference with the dtdcert options that reproduce it,
the layers the options name, and the tolerance
(|dtdcert − reference| <= atol + rtol · max |reference| over the input's relevances).

Zennit's MergeBatchNorm canonizer folds each batch norm into the convolution before it and
leaves the batch norm as `x / sqrt(1 + eps)` (running_var := 1, eps kept), which scales every
merged layer's output by about 1 − 5e-6 and so moves Zennit's relevances away from those of
the exactly folded network (the one the ONNX file describes; the manifest records by how much,
`zennit_merge_difference`). The canonizer used here (ExactMergeBatchNorm) sets
running_var := 1 − eps after the merge, which makes each merged batch norm an exact identity
(`(1 − eps) + eps` is 1 in float64 for eps = 1e-5; the script checks it).

Sizes:
- default (`--out-dir`, default tests/data/conformance_cnn/): the same architectures at 32×32
  inputs, narrowed to keep the committed bytes small: VGG-16's configuration "D" with every
  width divided by WIDTH_DIVISOR and a classifier sized for its 1×1 map; ResNet-50's
  Bottleneck stages [3, 4, 6, 3] built with torchvision's ResNet._make_layer at planes
  64/D .. 512/D (torchvision fixes the stem at 64 channels, so the stem and the stages are
  replaced in place); MobileNetV2 with width_mult = MOBILENET_WIDTH, round_nearest =
  MOBILENET_ROUND and its 1280-channel last convolution and classifier narrowed to
  MOBILENET_LAST. One input each, SMALL_CLASSES outputs.
- `--full DIR`: torchvision's vgg16(), resnet50() and mobilenet_v2() as they are (1000
  classes), one 1×3×224×224 input each, written to DIR (too large to commit); files an earlier
  run listed in DIR/manifest.json are replaced, nothing else there is touched.

VGG's AdaptiveAvgPool2d((7, 7)) averages a 7×7 map into 7×7 at 224×224 (an identity that
Zennit gives Norm); on the 1×1 map of a 32×32 input it would copy each value 49 times, which
the ONNX exporter does not express as a pooling, so the small VGG has AdaptiveAvgPool2d((1, 1))
there instead (again an identity with Norm) and a first dense layer of 512/D inputs.

All seeds are fixed; running the script twice writes identical bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT_DIR = REPO_ROOT / "tests" / "data" / "conformance_cnn"
ATOL = 0.0
# Relative to the largest |relevance| of each explained input.
RTOL = 1e-8
WIDTH_DIVISOR = 8
MOBILENET_WIDTH = 0.125
MOBILENET_ROUND = 4
MOBILENET_LAST = 160
SMALL_CLASSES = 10
SMALL_SIDE = 32
STABILIZER = 1e-6  # Zennit's default stabiliser of every rule
SEEDS = {"vgg16": 21, "resnet50": 22, "mobilenet_v2": 23}
# MobileNetV2: only the composite people use, to keep the committed bytes small. Its blocks
# read the linear bottleneck of the block before, inputs of both signs, where Zennit's ZPlus
# pairs negative inputs with negative weights (dtdcert's alphabeta:1:0, not its z+).
# dtdcert carries each residual block's input past the block's layers as copies (identity
# neurons, which pass their relevance whole whatever the rule, as the block input reused by
# the Python code does in Zennit), so the plain canonizers are compared. ResNet's references
# with Zennit's ResNetCanonizer: dtdcert reads each residual addition as a layer of its own
# (`--split-residual`), whose rule is Zennit's Norm on the canonizer's Sum.
LIBRARY_RULES = {
    "zplus": "ZPlus on convolutions and dense layers",
    "EpsilonPlusFlat": "composite EpsilonPlusFlat",
    "zplus-joint": "ZPlus on convolutions and dense layers, each Bottleneck's end as one convolution over "
                   "[branch, block input] (dtdcert's reading without --split-residual)",
}
RULES = {"vgg16": ["zplus", "EpsilonPlusFlat"], "resnet50": ["zplus", "EpsilonPlusFlat", "zplus-joint"],
         "mobilenet_v2": ["EpsilonPlusFlat"]}


# --------------------------------------------------------------------------------------------
# Networks


def small_vgg16() -> nn.Module:
    from torchvision.models.vgg import VGG, cfgs, make_layers

    cfg = [v if v == "M" else v // WIDTH_DIVISOR for v in cfgs["D"]]
    model = VGG(make_layers(cfg, batch_norm=False), num_classes=SMALL_CLASSES, init_weights=False)
    model.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    hidden = 4096 // WIDTH_DIVISOR
    model.classifier = nn.Sequential(
        nn.Linear(512 // WIDTH_DIVISOR, hidden), nn.ReLU(), nn.Dropout(),
        nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(),
        nn.Linear(hidden, SMALL_CLASSES),
    )
    return model


def small_resnet50() -> nn.Module:
    from torchvision.models.resnet import Bottleneck, ResNet

    d = WIDTH_DIVISOR
    model = ResNet(Bottleneck, [3, 4, 6, 3], num_classes=SMALL_CLASSES)
    # Reassigned attributes keep their place in the module order, which the batch-norm merge
    # relies on (a batch norm right after the convolution it follows).
    model.inplanes = 64 // d
    model.conv1 = nn.Conv2d(3, 64 // d, kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(64 // d)
    model.layer1 = model._make_layer(Bottleneck, 64 // d, 3)
    model.layer2 = model._make_layer(Bottleneck, 128 // d, 4, stride=2)
    model.layer3 = model._make_layer(Bottleneck, 256 // d, 6, stride=2)
    model.layer4 = model._make_layer(Bottleneck, 512 // d, 3, stride=2)
    model.fc = nn.Linear(512 // d * Bottleneck.expansion, SMALL_CLASSES)
    return model


def small_mobilenet_v2() -> nn.Module:
    from torchvision.models import MobileNetV2
    from torchvision.ops.misc import Conv2dNormActivation

    model = MobileNetV2(num_classes=SMALL_CLASSES, width_mult=MOBILENET_WIDTH, round_nearest=MOBILENET_ROUND)
    last = model.features[-1]
    model.features[-1] = Conv2dNormActivation(
        last[0].in_channels, MOBILENET_LAST, kernel_size=1,
        norm_layer=nn.BatchNorm2d, activation_layer=nn.ReLU6,
    )
    model.last_channel = MOBILENET_LAST
    model.classifier[1] = nn.Linear(MOBILENET_LAST, SMALL_CLASSES)
    return model


def build(arch: str, full: bool) -> nn.Module:
    import torchvision.models as tvm

    if full:
        model = {"vgg16": tvm.vgg16, "resnet50": tvm.resnet50, "mobilenet_v2": tvm.mobilenet_v2}[arch](weights=None)
    else:
        model = {"vgg16": small_vgg16, "resnet50": small_resnet50, "mobilenet_v2": small_mobilenet_v2}[arch]()
    randomise(model, SEEDS[arch])
    for m in model.modules():
        # In-place activations would overwrite the values Zennit's hooks keep.
        if hasattr(m, "inplace"):
            m.inplace = False
    return model.double().eval()


def randomise(model: nn.Module, seed: int) -> None:
    """Seeded weights (He-scaled), biases and batch-norm parameters and statistics, all
    representable in float32."""
    gen = torch.Generator().manual_seed(seed)

    def draw(shape, scale=1.0, low=None, high=None) -> torch.Tensor:
        if low is None:
            t = scale * torch.randn(shape, generator=gen, dtype=torch.float64)
        else:
            t = low + (high - low) * torch.rand(shape, generator=gen, dtype=torch.float64)
        return t.float().double()

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(draw(m.weight.shape, (2.0 / fan_in) ** 0.5))
                if m.bias is not None:
                    m.bias.copy_(draw(m.bias.shape, 0.1))
            elif isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(draw(n, low=0.5, high=1.5))
                m.bias.copy_(draw(n, 0.1))
                m.running_mean.copy_(draw(n, 0.1))
                m.running_var.copy_(draw(n, low=0.5, high=2.0))


def inputs_of(model: nn.Module, seed: int, side: int, samples: int) -> tuple[np.ndarray, np.ndarray]:
    gen = torch.Generator().manual_seed(seed + 1000)
    out_x, out_t = [], []
    while len(out_x) < samples:
        x = torch.rand((3, side, side), generator=gen, dtype=torch.float64).float().double()
        with torch.no_grad():
            y = model(x[None])[0]
        k = int(torch.argmax(y))
        if y[k] > 0:
            out_x.append(x.numpy())
            out_t.append(k)
    return np.stack(out_x), np.array(out_t, dtype=np.int64)


def export(model: nn.Module, side: int, path: Path) -> None:
    """Float32 ONNX, opset 17; TrainingMode.PRESERVE skips the exporter's eval-mode peephole
    pass, which would fold each batch norm into its convolution."""
    import copy

    m32 = copy.deepcopy(model).float().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            m32,
            (torch.zeros(1, 3, side, side, dtype=torch.float32),),
            str(path),
            dynamo=False,
            opset_version=17,
            training=torch.onnx.TrainingMode.PRESERVE,
            do_constant_folding=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        )
    import onnx

    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    has_bn = any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    if has_bn != ("BatchNormalization" in ops):
        raise SystemExit(f"{path.name}: batch norms not kept as nodes ({sorted(ops)})")


# --------------------------------------------------------------------------------------------
# Zennit


def joint_block_end_canonizer():
    """A canonizer that computes the end of each ResNet Bottleneck as dtdcert's ONNX loader
    cuts it: one convolution over the branch and the block input side by side, `[h, x]`, with
    the weights of conv3 and of the shortcut (the identity, or the 1×1 downsample convolution,
    its stride taken as a slice of x) and the two biases summed. Run after the batch-norm
    merge, so that the weights and biases are the merged ones."""
    from torchvision.models.resnet import Bottleneck
    from zennit.canonizers import AttributeCanonizer

    class JointConv(nn.Conv2d):
        """The block's end: Zennit's layer map gives it the convolutions' rule."""

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        short = x if self.downsample is None else x[:, :, :: self.joint_stride, :: self.joint_stride]
        return self.relu(self.joint(torch.cat([out, short], dim=1)))

    def attributes(name, module):
        if not isinstance(module, Bottleneck):
            return None
        conv3 = module.conv3
        out_c, mid_c = conv3.weight.shape[:2]
        if module.downsample is None:
            w_short, b_short, stride = torch.eye(out_c)[:, :, None, None], torch.zeros(out_c), 1
        else:
            down = module.downsample[0]
            assert down.kernel_size == (1, 1) and down.padding == (0, 0)
            w_short, b_short, stride = down.weight.data, down.bias.data, down.stride[0]
        joint = JointConv(mid_c + w_short.shape[1], out_c, 1, bias=True)
        with torch.no_grad():
            joint.weight.copy_(torch.cat([conv3.weight, w_short], dim=1))
            joint.bias.copy_(conv3.bias + b_short)
        return {"forward": forward.__get__(module), "joint": joint, "joint_stride": stride}

    return AttributeCanonizer(attributes)


def mobilenet_v2_canonizer():
    """MobileNetV2's analogue of Zennit's ResNetCanonizer Bottleneck rewrite (Zennit 0.5.1 has
    none): each InvertedResidual with a residual connection adds through a Sum module (which
    the base layer map gives Norm) instead of torchvision's `x + self.conv(x)`, whose gradient
    would hand each summand the whole relevance; and the network's global average pooling,
    `nn.functional.adaptive_avg_pool2d` in torchvision's forward (no module, so no rule: equal
    shares), is an AdaptiveAvgPool2d module (Norm), as in VGG and ResNet. Run after the
    batch-norm merge."""
    from torchvision.models.mobilenetv2 import InvertedResidual, MobileNetV2
    from zennit.canonizers import AttributeCanonizer
    from zennit.layer import Sum

    def block_forward(self, x):
        if not self.use_res_connect:
            return self.conv(x)
        out = self.conv(x)
        return self.canonizer_sum(torch.stack([x, out], dim=-1))

    def net_forward(self, x):
        x = self.canonizer_pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))

    def attributes(name, module):
        if isinstance(module, InvertedResidual):
            return {"forward": block_forward.__get__(module), "canonizer_sum": Sum()}
        if isinstance(module, MobileNetV2):
            return {"forward": net_forward.__get__(module), "canonizer_pool": nn.AdaptiveAvgPool2d((1, 1))}
        return None

    return AttributeCanonizer(attributes)


def canonizers(arch: str, exact: bool = True, joint: bool = False) -> list:
    """Zennit's canonizers for `arch`; with `exact` false, its own batch-norm merge (which
    leaves x / sqrt(1 + eps)), for the manifest's record of how much that moves the result;
    with `joint`, the merge and then dtdcert's residual convention for ResNet."""
    from zennit.canonizers import CompositeCanonizer, SequentialMergeBatchNorm
    from zennit.torchvision import ResNetBasicBlockCanonizer, ResNetBottleneckCanonizer, ResNetCanonizer

    class ExactMergeBatchNorm(SequentialMergeBatchNorm):
        """SequentialMergeBatchNorm whose merged batch norms are exact identities."""

        @staticmethod
        def merge_batch_norm(modules, batch_norm):
            SequentialMergeBatchNorm.merge_batch_norm(modules, batch_norm)
            # Zennit leaves running_var = 1: x / sqrt(1 + eps). (1 − eps) + eps == 1 in f64.
            batch_norm.running_var.data = torch.full_like(batch_norm.running_var.data, 1.0 - batch_norm.eps)
            assert bool(((batch_norm.running_var + batch_norm.eps) == 1.0).all())

    if arch == "mobilenet_v2":
        merge = ExactMergeBatchNorm() if exact else SequentialMergeBatchNorm()
        return [CompositeCanonizer((merge, mobilenet_v2_canonizer()))]
    if joint:
        merge = ExactMergeBatchNorm() if exact else SequentialMergeBatchNorm()
        return [CompositeCanonizer((merge, joint_block_end_canonizer()))]
    if not exact:
        return [ResNetCanonizer()] if arch == "resnet50" else [SequentialMergeBatchNorm()]
    if arch == "resnet50":
        # zennit.torchvision.ResNetCanonizer with the exact merge.
        return [CompositeCanonizer((ExactMergeBatchNorm(), ResNetBottleneckCanonizer(), ResNetBasicBlockCanonizer()))]
    # VGGCanonizer is SequentialMergeBatchNorm.
    return [ExactMergeBatchNorm()]


def composite(arch: str, rule: str, exact: bool = True):
    from zennit.composites import EpsilonPlusFlat, LayerMapComposite, layer_map_base
    from zennit.rules import ZPlus
    from zennit.types import Convolution

    if rule in ("zplus", "zplus-joint"):
        layer_map = layer_map_base(STABILIZER) + [
            (Convolution, ZPlus(stabilizer=STABILIZER)),
            (nn.Linear, ZPlus(stabilizer=STABILIZER)),
        ]
        return LayerMapComposite(layer_map=layer_map,
                                 canonizers=canonizers(arch, exact, joint=rule == "zplus-joint"))
    return EpsilonPlusFlat(canonizers=canonizers(arch, exact))


def zennit_relevance(model: nn.Module, x: np.ndarray, targets: np.ndarray, arch: str, rule: str,
                     exact: bool = True) -> np.ndarray:
    from zennit.attribution import Gradient

    out = []
    for xi, k in zip(x, targets):
        inp = torch.tensor(xi[None], dtype=torch.float64, requires_grad=True)
        with Gradient(model=model, composite=composite(arch, rule, exact)) as attributor:
            def attr_output(y: torch.Tensor, k=int(k)) -> torch.Tensor:
                onehot = torch.zeros_like(y)
                onehot[0, k] = 1.0
                return onehot
            y, rel = attributor(inp, attr_output)
        if int(torch.argmax(y[0])) != int(k):
            raise SystemExit(f"{arch}: the canonized network changed the top output")
        out.append(rel[0].detach().numpy().reshape(-1))
    return np.stack(out)


# --------------------------------------------------------------------------------------------
# dtdcert's view: which of its layers the options name


def layers_of(arch: str) -> dict:
    """The 1-based dtdcert layers of each kind, as the ONNX loader cuts the network: one layer
    per convolution (its batch norm folded in, and in a residual block the carried branch
    alongside), one per max pooling and average pooling, one per dense layer."""
    if arch == "vgg16":
        convs_and_pools = []
        from torchvision.models.vgg import cfgs

        for v in cfgs["D"]:
            convs_and_pools.append("max" if v == "M" else "conv")
        kinds = convs_and_pools + ["avg", "dense", "dense", "dense"]
    elif arch == "resnet50":
        kinds = ["conv", "max"] + ["conv"] * (3 * (3 + 4 + 6 + 3)) + ["avg", "dense"]
    else:
        # 17 blocks of two or three convolutions each between the stem and the last 1×1
        # convolution (ReLU6 exports as Clip, part of its convolution's layer).
        kinds = ["conv"] * 52 + ["avg", "dense"]
    return {
        "first": 1,
        "dense": [i + 1 for i, k in enumerate(kinds) if k == "dense"],
        "avg_pool": [i + 1 for i, k in enumerate(kinds) if k == "avg"],
        "count": len(kinds),
    }


def dtdcert_args(arch: str, rule: str, layers: dict) -> list[str]:
    s = str(STABILIZER)
    args = ["--rule", "z+", "--bias", "include", "--stabilizer", s, "--denominator-threshold", "0",
            "--initial-relevance", "one"]
    if arch == "mobilenet_v2":
        # The canonizer's sums read apart. ZPlus on contributions, as Zennit computes it for
        # inputs of both signs (the projections have no activation), is dtdcert's α1β0; the
        # kind rule would take the composite's Flat from the first layer, which gets it back.
        return ["--split-residual"] + args + ["--composite", "epsilon-plus-flat", "--kind-rule",
                                              "conv=alphabeta:1:0", "--layer-rule", f"{layers['first']}=flat"]
    if arch == "resnet50" and rule != "zplus-joint":
        # ResNetCanonizer: the additions read apart, and the rules by kind of layer, since
        # reading them apart adds a layer per block (Norm: ε on pooling and additions).
        args = ["--split-residual"] + args
        if rule == "EpsilonPlusFlat":
            return args + ["--composite", "epsilon-plus-flat"]
        return args + ["--kind-rule", f"pool=epsilon:{s}", "--kind-rule", f"add=epsilon:{s}"]
    # Norm on average pooling: ε with Zennit's stabiliser (no bias).
    for p in layers.get("avg_pool", []):
        args += ["--layer-rule", f"{p}=epsilon:{s}"]
    if rule == "EpsilonPlusFlat":
        args += ["--layer-rule", f"{layers.get('first', 1)}=flat"]
        for d in layers.get("dense", []):
            args += ["--layer-rule", f"{d}=epsilon:{s}"]
    return args


# --------------------------------------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def written(cases: list[dict], references: list[dict]) -> set[str]:
    files = {c[key] for c in cases for key in ("model", "inputs", "targets")}
    return files | {r["reference"] for r in references}


def versions() -> dict[str, str]:
    import onnx
    import torchvision
    from importlib import metadata

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "zennit": metadata.version("zennit"),
        "onnx": onnx.__version__,
        "numpy": np.__version__,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR,
                        help="where the small fixtures go (default: tests/data/conformance_cnn)")
    parser.add_argument("--full", type=Path, metavar="DIR",
                        help="write the full-size networks (1x3x224x224 inputs) to DIR instead")
    parser.add_argument("--arch", action="append", choices=sorted(SEEDS),
                        help="only these networks (repeatable; default all)")
    args = parser.parse_args()
    full = args.full is not None
    out_dir: Path = args.full if full else args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    # Files of an earlier run go; anything else in the folder stays.
    old_manifest = out_dir / "manifest.json"
    if old_manifest.exists():
        for name in json.loads(old_manifest.read_text()).get("sha256", {}):
            (out_dir / name).unlink(missing_ok=True)
    archs = args.arch or list(SEEDS)
    side = 224 if full else SMALL_SIDE
    torch.set_default_dtype(torch.float64)

    cases, references = [], []
    for arch in archs:
        model = build(arch, full)
        x, targets = inputs_of(model, SEEDS[arch], side, samples=1)
        name = arch if full else f"{arch}_small"
        export(model, side, out_dir / f"{name}.onnx")
        # float32 inputs: the values are float32 already, and the file is half the size.
        np.save(out_dir / f"{name}.inputs.npy", x.astype(np.float32))
        np.save(out_dir / f"{name}.targets.npy", targets)
        layers = layers_of(arch)
        cases.append(dict(case=name, architecture=arch, model=f"{name}.onnx", inputs=f"{name}.inputs.npy",
                          targets=f"{name}.targets.npy", input_shape=[3, side, side], input_range=[0.0, 1.0],
                          seed=SEEDS[arch], parameters=sum(p.numel() for p in model.parameters()),
                          dtdcert_layers=layers))
        for rule in RULES[arch]:
            rel = zennit_relevance(model, x, targets, arch, rule)
            extra = {}
            if any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
                # What Zennit's own merge (x / sqrt(1 + eps) left behind) would have moved.
                plain = zennit_relevance(model, x, targets, arch, rule, exact=False)
                extra["zennit_merge_difference"] = float(np.abs(plain - rel).max() / np.abs(rel).max())
            ref = f"{name}.zennit.{rule}.one.npy"
            np.save(out_dir / ref, rel)
            references.append(dict(case=name, library="zennit", rule=rule,
                                   library_rule=LIBRARY_RULES[rule],
                                   canonizer=("joint_block_end_canonizer" if rule == "zplus-joint"
                                              else "ResNetCanonizer" if arch == "resnet50"
                                              else "mobilenet_v2_canonizer" if arch == "mobilenet_v2"
                                              else "SequentialMergeBatchNorm"),
                                   initial_relevance="one",
                                   args=dtdcert_args(arch, rule, layers),
                                   reference=ref, atol=ATOL, rtol=RTOL, rtol_of="largest |reference| per input",
                                   **extra))
        print(f"{name}: {cases[-1]['parameters']} parameters, target {targets.tolist()}", flush=True)
    command = "scripts/make_cnn_conformance.sh" + (" --full DIR" if full else "")
    if args.arch:
        command += "".join(f" --arch {a}" for a in args.arch)
    manifest = dict(
        generator="scripts/make_cnn_conformance.py",
        command=command,
        full=full,
        versions=versions(),
        batch_norm="merged by Zennit's SequentialMergeBatchNorm, then running_var := 1 - eps (an exact identity)",
        cases=cases,
        references=references,
        sha256={name: sha256(out_dir / name) for name in sorted(written(cases, references))},
    )
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"{len(references)} references for {len(cases)} networks in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
