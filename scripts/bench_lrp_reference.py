"""Relevances per second of the reference LRP implementations, Captum (LRP with
Alpha1_Beta0_Rule / EpsilonRule) and Zennit (Gradient attributor with a composite of ZPlus /
Epsilon), on the networks of benches/torch_relevance.rs: a 784-256-256-128-10 ReLU MLP at batch
1024 and a Sort-of-CLEVR-sized relation network (3x75x75 images, four blocks of [Conv 3x3
stride 2 pad 1, 24 channels, BatchNorm, ReLU], coordinate channels, 625 pairs with a question
of 11 values, g = 63 -> 256 x 4, sum over pairs, f = 256 -> 256 -> 256 -> 10) at batch 64. Random
weights; float64 and float32; on the CPU with the thread count given (default 2, as the
benchmark machine has), and on CUDA where available. Each figure is the best of several runs
after a warm-up. The relevances are those of the largest output.

Run with scripts/bench_lrp_reference.sh [THREADS] (the pinned environment of scripts/pyref.sh).
For the GPU run (scripts/gpu_run.sh): --devices cuda (or cpu), --tiny (batches of 16 and 1),
--json FILE (every row as JSON as well).
"""

import json

import sys
import time
import warnings

import torch
from torch import nn

warnings.filterwarnings("ignore")


class RelationNetwork(nn.Module):
    def __init__(self, channels=24, question=11, width=256):
        super().__init__()
        blocks = []
        c_in = 3
        for _ in range(4):
            blocks += [
                nn.Conv2d(c_in, channels, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(),
            ]
            c_in = channels
        self.conv = nn.Sequential(*blocks)
        obj = channels + 2
        layers = []
        d = 2 * obj + question
        for _ in range(4):
            layers += [nn.Linear(d, width), nn.ReLU()]
            d = width
        self.g = nn.Sequential(*layers)
        self.f = nn.Sequential(
            nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
            nn.Linear(width, 10),
        )
        self.question = nn.Parameter(torch.zeros(1, question), requires_grad=False)

    def forward(self, img):
        x = self.conv(img)
        b, c, h, w = x.shape
        coords = torch.linspace(-2, 2, w, dtype=x.dtype, device=x.device)
        cx = coords.view(1, 1, 1, w).expand(b, 1, h, w)
        cy = coords.view(1, 1, h, 1).expand(b, 1, h, w)
        x = torch.cat([x, cx, cy], dim=1)
        n = h * w
        objects = x.reshape(b, c + 2, n).permute(0, 2, 1)
        x_i = objects.unsqueeze(1).expand(b, n, n, c + 2)
        x_j = objects.unsqueeze(2).expand(b, n, n, c + 2)
        q = self.question.expand(b, -1).view(b, 1, 1, -1).expand(b, n, n, -1)
        pairs = torch.cat([x_i, x_j, q], dim=3).reshape(b * n * n, -1)
        g = self.g(pairs).view(b, n * n, -1).sum(dim=1)
        return self.f(g)


def mlp():
    widths = [784, 256, 256, 128, 10]
    layers = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append(nn.Linear(a, b))
        if i + 2 < len(widths):
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def best_of(runs, f):
    f()
    best = float("inf")
    for _ in range(runs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        f()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def captum_run(model, x, rule):
    from captum.attr import LRP
    from captum.attr._utils.lrp_rules import Alpha1_Beta0_Rule, EpsilonRule

    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            m.rule = Alpha1_Beta0_Rule() if rule == "z+" else EpsilonRule(epsilon=0.01)
    lrp = LRP(model)
    target = model(x).argmax(1)
    return lambda: lrp.attribute(x, target=target)


def zennit_run(model, x, rule):
    from zennit.attribution import Gradient
    from zennit.core import Composite
    from zennit.rules import Epsilon, ZPlus

    def module_map(ctx, name, module):
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            return ZPlus() if rule == "z+" else Epsilon(epsilon=0.01)
        return None

    composite = Composite(module_map=module_map)
    with torch.no_grad():
        target = model(x).argmax(1)
    one_hot = torch.nn.functional.one_hot(target, 10).to(x.dtype)

    def run():
        with Gradient(model=model, composite=composite) as attributor:
            attributor(x, one_hot)

    return run


def main():
    args = sys.argv[1:]
    flag = lambda name: name in args and args.pop(args.index(name)) is not None
    value = lambda name: args.pop(args.index(name) + 1) if name in args[:-1] else None
    tiny = flag("--tiny")
    out = value("--json")
    only = value("--devices")
    args = [a for a in args if a not in ("--json", "--devices")]
    threads = int(args[0]) if args else 2
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    cuda = torch.cuda.is_available()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"CUDA {'yes' if cuda else 'no'}")
    devices = ["cpu"] + (["cuda"] if cuda else [])
    if only is not None:
        devices = [d for d in devices if d in only.split(",")]
    print("| network | batch | library | device | dtype | rule | s per batch | relevances/s |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for name, make, batch, shape, runs in [
        ("784-256-256-128-10", mlp, 16 if tiny else 1024, (784,), 5),
        ("Sort-of-CLEVR relation network", RelationNetwork, 1 if tiny else 64, (3, 75, 75), 2),
    ]:
        for device in devices:
            for dtype in [torch.float64, torch.float32]:
                for rule in ["z+", "epsilon:0.01"]:
                    for library, runner in [("Captum 0.9.0", captum_run),
                                            ("Zennit 0.5.1", zennit_run)]:
                        model = make().to(device=device, dtype=dtype).eval()
                        x = torch.rand((batch,) + shape, device=device, dtype=dtype)
                        row = {"network": name, "batch": batch, "library": library,
                               "device": device, "dtype": str(dtype).replace("torch.", ""),
                               "rule": rule}
                        try:
                            s = best_of(runs, runner(model, x, rule))
                            cell = f"{s:.4f} | {batch / s:.0f}"
                            row.update(seconds_per_batch=s, relevances_per_second=batch / s)
                        except Exception as e:  # a library that cannot run this network
                            cell = f"failed: {type(e).__name__} | -"
                            row.update(error=f"{type(e).__name__}: {e}")
                        rows.append(row)
                        print(f"| {name} | {batch} | {library} | {device} | "
                              f"{row['dtype']} | {rule} | {cell} |",
                              flush=True)
    if out is not None:
        with open(out, "w") as f:
            json.dump({"torch": torch.__version__, "cuda": cuda, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
