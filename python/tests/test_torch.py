"""PyTorch: from_torch (an ImportError saying so without torch), tensors as inputs, and the
quickstart example. Tests that need torch, scikit-learn or matplotlib are skipped, with the
reason, where they are not installed."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import dtdcert
from conftest import C6_INPUTS, REPO


def test_from_torch_without_torch_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match="needs PyTorch and onnx"):
        dtdcert.from_torch(object(), np.zeros(3))


def small_mlp(torch, widths=(10, 12, 8, 2), seed=0):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i + 2 < len(widths):
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


# The test exports the same module itself with the (deprecated) TorchScript exporter.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_module_exported_in_memory_is_the_exported_file(cli, tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    pytest.importorskip("onnx", reason="onnx (for torch.onnx.export) is not installed")
    net = small_mlp(torch).train()
    x = torch.as_tensor(np.load(C6_INPUTS), dtype=torch.float32)
    model = dtdcert.from_torch(net, x[:1])
    assert net.training, "the module's training mode is restored"
    assert model.path is None and model.architecture.startswith("10-12-8-2")
    torch.onnx.export(net.eval(), (x[:1],), str(tmp_path / "net.onnx"), input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                      opset_version=17, dynamo=False)
    loaded = dtdcert.load(tmp_path / "net.onnx")
    assert model.fingerprint == loaded.fingerprint
    # Tensors are inputs; relevances equal those of the array.
    np.testing.assert_array_equal(model.explain(x, targets=1), loaded.explain(x.numpy(),
                                                                             targets=1))
    # The run's folder holds the model as model.onnx, and the command line agrees.
    audit = model.audit(x, explain=1)
    assert audit.summary["model"]["path"] == "<onnx>"
    audit.write(tmp_path / "py")
    cli("audit", "--model", tmp_path / "py" / "model.onnx", "--inputs",
        tmp_path / "py" / "inputs.npy", "--explain", 1, "--quiet", "--out", tmp_path / "cli")
    for name in ("run.json", "records.jsonl", "summary.json"):
        assert (tmp_path / "py" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes()


def test_tensors_with_gradients_and_unsupported_modules():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    pytest.importorskip("onnx", reason="onnx (for torch.onnx.export) is not installed")
    net = small_mlp(torch)
    model = dtdcert.from_torch(net, torch.zeros(1, 10))
    x = torch.randn(4, 10, requires_grad=True)
    np.testing.assert_array_equal(model.explain(x), model.explain(x.detach().numpy()))
    sigmoid = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Sigmoid(),
                                  torch.nn.Linear(3, 2))
    with pytest.raises(dtdcert.InvalidInputError, match="unsupported operator 'Sigmoid'"):
        dtdcert.from_torch(sigmoid, torch.zeros(1, 4))


def test_tensors_on_a_gpu_are_refused():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    pytest.importorskip("onnx", reason="onnx (for torch.onnx.export) is not installed")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    model = dtdcert.load(REPO / "examples" / "c6" / "model.onnx")
    with pytest.raises(dtdcert.InvalidInputError, match=r"move it to the CPU"):
        model.explain(torch.zeros(2, 10, device="cuda"))


def missing(*modules):
    return [m for m in modules if importlib.util.find_spec(m) is None]


QUICKSTART_NEEDS = ("torch", "onnx", "sklearn", "matplotlib")


@pytest.mark.skipif(bool(missing(*QUICKSTART_NEEDS)),
                    reason=f"the quickstart needs {', '.join(missing(*QUICKSTART_NEEDS))}")
def test_the_quickstart_example_runs(tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg", DTDCERT_QUICKSTART_OUT=str(tmp_path))
    done = subprocess.run([sys.executable, str(REPO / "examples" / "python" / "quickstart.py")],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
    assert done.returncode == 0, done.stderr
    assert "lie outside their region" in done.stdout
    for name in ("per_layer.png", "heatmap.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "audit" / "summary.json").is_file()
