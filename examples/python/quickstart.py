# %% [markdown]
# # dtdcert from Python: a quickstart
#
# Train a small ReLU network on scikit-learn's digits (8×8 images, bundled with scikit-learn:
# nothing is downloaded), hand it to dtdcert, audit the roots of Deep Taylor Decomposition,
# and look at the per-layer fractions and a relevance heatmap.
#
# Needs `pip install ./python torch onnx scikit-learn matplotlib`. Run it as a script
# (`python examples/python/quickstart.py`: figures go to PNG files in `quickstart-out/`, or in
# `$DTDCERT_QUICKSTART_OUT`) or cell by cell in a notebook (figures are also shown).

# %%
import os
import pathlib
import sys

import matplotlib
import numpy as np
import torch
from sklearn.datasets import load_digits

import dtdcert

interactive = hasattr(sys, "ps1") or "ipykernel" in sys.modules
if not interactive:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

out = pathlib.Path(os.environ.get("DTDCERT_QUICKSTART_OUT", "quickstart-out"))
out.mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)
rng = np.random.default_rng(0)

# %% [markdown]
# ## Data: 1,797 digits, pixels scaled to [0, 1]

# %%
digits = load_digits()
x = (digits.data / 16.0).astype(np.float32)
y = digits.target.astype(np.int64)
order = rng.permutation(len(x))
train, test = order[:1500], order[1500:]
print(f"{len(train)} training and {len(test)} test images of {x.shape[1]} pixels")

# %% [markdown]
# ## A 64-32-16-10 ReLU network, 300 steps of Adam

# %%
net = torch.nn.Sequential(
    torch.nn.Linear(64, 32), torch.nn.ReLU(),
    torch.nn.Linear(32, 16), torch.nn.ReLU(),
    torch.nn.Linear(16, 10),
)
optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
xt, yt = torch.from_numpy(x), torch.from_numpy(y)
for step in range(300):
    batch = torch.from_numpy(rng.choice(train, 128))
    loss = torch.nn.functional.cross_entropy(net(xt[batch]), yt[batch])
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
with torch.no_grad():
    accuracy = (net(xt[test]).argmax(1) == yt[test]).float().mean().item()
print(f"test accuracy after 300 steps: {accuracy:.3f} (last batch loss {loss.item():.3f})")

# %% [markdown]
# ## The audit
#
# `from_torch` exports the network to ONNX in memory; `audit` explains each test image's top
# output with z+ above the input and zB on the pixel box [0, 1] at the input (DTD's
# prescription), and decides for every root of every layer whether it lies in the image's
# linear region and in the domain.

# %%
model = dtdcert.from_torch(net, x[:1])
audit = model.audit(x[test], input_rule="zb:0:1", domain=(0, 1))
print(audit)
print("layer  roots  outside  out of domain  valid")
for layer in audit.layers:
    print(f"{layer['layer']:>5}  {layer['roots']:>5}  {layer['roots_outside']:>7}  "
          f"{layer['roots_out_of_domain']:>13}  {layer['roots_valid']:>5}")
total = audit.total
print(f"{total['roots_outside']} of {total['roots']} roots "
      f"({100 * total['roots_outside'] / total['roots']:.1f} %) lie outside their region; "
      f"{total['samples_with_root_outside']} of {audit.samples} images have at least one")
audit.write(out / "audit", force=True)
print(f"the audit's folder, as `dtdcert audit --out` writes it: {out / 'audit'}")

# %% [markdown]
# ## Per layer: how many roots leave their region

# %%
layers = [layer["layer"] for layer in audit.layers]
fractions = [layer["roots_outside"] / max(layer["roots"], 1) for layer in audit.layers]
fig, ax = plt.subplots(figsize=(4.5, 3.2))
ax.bar([str(l) for l in layers], fractions, color="#c0504d")
ax.set_xlabel("layer")
ax.set_ylabel("fraction of the layer's roots")
ax.set_ylim(0, 1)
ax.set_title("Roots outside their linear region")
fig.tight_layout()
fig.savefig(out / "per_layer.png", dpi=120)

# %% [markdown]
# ## Relevance heatmaps
#
# `explain` gives the input relevances of the same explanation, one per pixel (red positive,
# blue negative). zB's roots sit on the corners of the pixel box, so blank pixels get
# relevance too.

# %%
shown = test[:4]
relevance = model.explain(x[shown], input_rule="zb:0:1").reshape(-1, 8, 8)
fig, axes = plt.subplots(2, len(shown), figsize=(2 * len(shown), 4.2))
for column, (i, r) in enumerate(zip(shown, relevance)):
    axes[0, column].imshow(x[i].reshape(8, 8), cmap="gray_r")
    axes[0, column].set_title(f"digit {y[i]}")
    bound = np.abs(r).max() or 1.0
    axes[1, column].imshow(r, cmap="bwr", vmin=-bound, vmax=bound)
    axes[1, column].set_title(f"relevance, Σ={r.sum():.2f}")
for a in axes.flat:
    a.axis("off")
fig.tight_layout()
fig.savefig(out / "heatmap.png", dpi=120)
print(f"figures: {out / 'per_layer.png'}, {out / 'heatmap.png'}")
if interactive:
    plt.show()
