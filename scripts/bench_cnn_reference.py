"""Seconds per batch of Zennit 0.5.1 (PyTorch 2.11.0, CPU) on the full-size torchvision networks
of the CNN conformance fixtures, VGG-16 and ResNet-50 at 224x224, and on the 784-256-256-128-10
MLP of scripts/bench_lrp_reference.py, for comparison with `dtdcert explain` on the same jobs.

The networks are those of `scripts/make_cnn_conformance.sh --full DIR`: the same torchvision
classes, seeds and weights (built with make_cnn_conformance.build), and the rules exactly as
that script defines them (make_cnn_conformance.composite): `zplus` (ZPlus on every convolution
and dense layer) and `EpsilonPlusFlat`, with the canonizers of the fixtures. From DIR the
script reads NAME.inputs.npy (the input, repeated to the batch), NAME.targets.npy (the
explained output, one-hot, as in the fixtures) and NAME.zennit.RULE.one.npy (the reference
relevances, to which the first row of every float64 batch is compared: the check that the
network and the rule are those of the fixtures). The ONNX files are what dtdcert reads; this
script does not need them.

Each figure is the attribution call (forward and backward of Zennit's Gradient attributor,
inside its composite's context) for the whole batch, the best of RUNS timed calls after one
warm-up, with torch.set_num_threads(THREADS). The MLP: z+ on 8,192 inputs in float64, the
network and rule of scripts/bench_lrp_reference.py (seed 1, Zennit's ZPlus on each layer).

Run with scripts/bench_cnn_reference.sh [DIR] [options] (the pinned environment of
scripts/pyref.sh; DIR relative to the repository root, default target/conformance_cnn_full).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import bench_lrp_reference as lrp
import make_cnn_conformance as cnn

warnings.filterwarnings("ignore")

DEFAULT_DIR = Path("target") / "conformance_cnn_full"
ARCHS = ["vgg16", "resnet50"]
RULES = ["zplus", "EpsilonPlusFlat"]
DTYPES = {"f64": torch.float64, "f32": torch.float32}
# The first row of a float64 batch against the fixture's reference, relative to its largest
# |relevance|: the fixtures are made one input at a time, the batch's convolutions may sum
# in another order.
CHECK_RTOL = 1e-10
MLP_BATCH = 8192


def best_of(runs: int, f) -> tuple[float, list[float]]:
    """The warm-up's time and those of the timed calls, in seconds."""
    start = time.perf_counter()
    f()
    warm = time.perf_counter() - start
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return warm, times


def needed(folder: Path, arch: str, rules: list[str]) -> list[Path]:
    files = [folder / f"{arch}.inputs.npy", folder / f"{arch}.targets.npy"]
    return files + [folder / f"{arch}.zennit.{rule}.one.npy" for rule in rules]


def cnn_rows(folder: Path, arch: str, rules: list[str], dtypes: list[str], batch: int,
             runs: int):
    """Yields a row per dtype and rule."""
    import copy

    from zennit.attribution import Gradient

    x1 = np.load(folder / f"{arch}.inputs.npy")[:1].astype(np.float64)
    k = int(np.load(folder / f"{arch}.targets.npy")[0])
    model64 = cnn.build(arch, full=True)
    for dtype_name in dtypes:
        dtype = DTYPES[dtype_name]
        model = model64 if dtype == torch.float64 else copy.deepcopy(model64).to(dtype)
        x = torch.tensor(np.repeat(x1, batch, axis=0), dtype=dtype)
        for rule in rules:
            reference = np.load(folder / f"{arch}.zennit.{rule}.one.npy")[0]
            out = {}

            def attr_output(y: torch.Tensor) -> torch.Tensor:
                onehot = torch.zeros_like(y)
                onehot[:, k] = 1.0
                return onehot

            with Gradient(model=model, composite=cnn.composite(arch, rule)) as attributor:
                def run():
                    y, rel = attributor(x, attr_output)
                    out["y"], out["rel"] = y, rel

                warm, times = best_of(runs, run)
            if int(torch.argmax(out["y"][0])) != k:
                raise SystemExit(f"{arch}: the explained output {k} is not the top output")
            first = out["rel"][0].detach().to(torch.float64).numpy().reshape(-1)
            difference = float(np.abs(first - reference).max() / np.abs(reference).max())
            row = dict(network=arch, batch=batch, dtype=dtype_name, rule=rule,
                       seconds_per_batch=min(times), times=times, warm_up=warm,
                       relevances_per_second=batch / min(times),
                       difference_to_reference=difference)
            if dtype == torch.float64 and not difference <= CHECK_RTOL:
                raise SystemExit(f"{arch} {rule}: the first relevances differ from "
                                 f"{arch}.zennit.{rule}.one.npy by {difference:.3g} of the largest "
                                 f"(more than {CHECK_RTOL}): not the network or rule of the fixtures")
            yield row
        del model


def mlp_row(runs: int) -> dict:
    torch.manual_seed(1)
    model = lrp.mlp().to(dtype=torch.float64).eval()
    x = torch.rand((MLP_BATCH, 784), dtype=torch.float64)
    warm, times = best_of(runs, lrp.zennit_run(model, x, "z+"))
    return dict(network="784-256-256-128-10", batch=MLP_BATCH, dtype="f64", rule="z+",
                seconds_per_batch=min(times), times=times, warm_up=warm,
                relevances_per_second=MLP_BATCH / min(times))


def write_jobs(folder: Path, jobs: Path, archs: list[str], rules: list[str], batch: int) -> None:
    """Writes the inputs the timings use, for `dtdcert explain` to run on the same ones
    (scripts/bench_explain.sh): per network NAME.batch.npy (the first input repeated to the
    batch, float64) and NAME.batch_targets.npy, per network and rule NAME.RULE.args (the
    fixture's dtdcert arguments for the rule, one per line, from DIR/manifest.json), and the
    MLP as mlp.onnx with its MLP_BATCH inputs mlp.inputs.npy (the seed of mlp_row)."""
    jobs.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((folder / "manifest.json").read_text())
    for arch in archs:
        x1 = np.load(folder / f"{arch}.inputs.npy")[:1].astype(np.float64)
        k = np.load(folder / f"{arch}.targets.npy")[:1].astype(np.int64)
        np.save(jobs / f"{arch}.batch.npy", np.repeat(x1, batch, axis=0))
        np.save(jobs / f"{arch}.batch_targets.npy", np.repeat(k, batch, axis=0))
        for rule in rules:
            found = [r for r in manifest["references"]
                     if r["case"] == arch and r["rule"] == rule and r["library"] == "zennit"]
            if not found:
                raise SystemExit(f"{folder / 'manifest.json'}: no {arch} {rule} reference")
            (jobs / f"{arch}.{rule}.args").write_text("\n".join(found[0]["args"]) + "\n")
    torch.manual_seed(1)
    model = lrp.mlp().to(dtype=torch.float64).eval()
    x = torch.rand((MLP_BATCH, 784), dtype=torch.float64)
    np.save(jobs / "mlp.inputs.npy", x.numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.float(), (torch.zeros(1, 784),), str(jobs / "mlp.onnx"),
                          dynamo=False, opset_version=17, input_names=["x"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", type=Path, default=DEFAULT_DIR,
                        help="a folder of scripts/make_cnn_conformance.sh --full DIR "
                             f"(default: {DEFAULT_DIR})")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--runs", type=int, default=3, help="timed calls after the warm-up (default 3)")
    parser.add_argument("--batch", type=int, default=8, help="inputs per batch (default 8)")
    parser.add_argument("--arch", action="append", choices=ARCHS, help="only these networks (repeatable)")
    parser.add_argument("--rule", action="append", choices=RULES, help="only these rules (repeatable)")
    parser.add_argument("--dtype", action="append", choices=list(DTYPES), help="only these (repeatable)")
    parser.add_argument("--no-mlp", action="store_true", help="leave out the MLP")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every row as JSON")
    parser.add_argument("--write-jobs", type=Path, metavar="DIR",
                        help="also write the inputs, targets and arguments for dtdcert into DIR "
                             "(scripts/bench_explain.sh)")
    args = parser.parse_args()
    archs, rules, dtypes = args.arch or ARCHS, args.rule or RULES, args.dtype or list(DTYPES)
    if args.runs < 1 or args.batch < 1 or args.threads < 1:
        parser.error("--runs, --batch and --threads must be at least 1")
    missing = [str(p) for arch in archs for p in needed(args.dir, arch, rules) if not p.is_file()]
    if missing:
        print(f"error: {missing[0]}: not found ({len(missing)} files missing); make the folder "
              f"with scripts/make_cnn_conformance.sh --full {args.dir}", file=sys.stderr)
        return 2
    if args.write_jobs is not None:
        write_jobs(args.dir, args.write_jobs, archs, rules, args.batch)
    torch.set_num_threads(args.threads)
    import torchvision
    import zennit
    from importlib import metadata

    env = dict(python=platform.python_version(), torch=torch.__version__,
               torchvision=torchvision.__version__, zennit=metadata.version("zennit"),
               threads=torch.get_num_threads(), runs=args.runs, folder=str(args.dir),
               load_average_start=os.getloadavg())
    del zennit
    print(f"torch {env['torch']}, torchvision {env['torchvision']}, zennit {env['zennit']}, "
          f"threads {env['threads']}, best of {args.runs} after a warm-up, load {os.getloadavg()}")
    print("| network | batch | dtype | rule | s per batch (best) | all runs | first row vs fixture |")
    print("|---|---|---|---|---|---|---|")
    rows = []

    def show(row):
        rows.append(row)
        check = row.get("difference_to_reference")
        print(f"| {row['network']} | {row['batch']} | {row['dtype']} | {row['rule']} | "
              f"{row['seconds_per_batch']:.3f} | {', '.join(f'{t:.3f}' for t in row['times'])} | "
              f"{'-' if check is None else f'{check:.2g}'} |", flush=True)

    if not args.no_mlp:
        show(mlp_row(args.runs))
    for arch in archs:
        for row in cnn_rows(args.dir, arch, rules, dtypes, args.batch, args.runs):
            show(row)
    env["load_average_end"] = os.getloadavg()
    if args.json is not None:
        args.json.write_text(json.dumps(dict(environment=env, rows=rows), indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
