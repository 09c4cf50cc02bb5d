"""``dtdcert.from_torch``: a ``torch.nn.Module`` exported to ONNX in memory, then read by the
library's ONNX loader."""

from __future__ import annotations

import io
import warnings
from typing import Any


def from_torch(module: Any, example_input: Any, *, opset: int = 17,
               keep_batch_norm: bool = False, strip_softmax: bool = False) -> Any:
    """Exports ``module`` with ``torch.onnx.export`` (the TorchScript exporter, in memory, in
    evaluation mode; its training mode is restored afterwards) and reads the ONNX graph as
    ``dtdcert.load`` reads a file. ``example_input`` is one input or a batch (a tensor or an
    array). The model has no file: ``Audit.write`` puts the graph into the run's folder as
    model.onnx. ``keep_batch_norm`` and ``strip_softmax`` are as in ``dtdcert.load``.

    Raises ``ImportError`` when PyTorch or onnx is not installed, and ``InvalidInputError`` for a
    network dtdcert cannot read (naming the ONNX node and operator).
    """
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            "dtdcert.from_torch needs PyTorch and onnx (pip install torch onnx); without "
            "them, export the network to ONNX elsewhere and use dtdcert.load") from e
    try:
        import onnx  # noqa: F401  (torch.onnx.export writes the graph with it)
    except ImportError as e:
        raise ImportError(
            "dtdcert.from_torch needs the onnx package for torch.onnx.export "
            "(pip install onnx)") from e
    from . import Model, _dtdcert

    x = example_input if isinstance(example_input, torch.Tensor) else torch.as_tensor(example_input)
    if x.dtype not in (torch.float32, torch.float64):
        x = x.to(torch.float32)
    training = module.training
    module.eval()
    try:
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            # The TorchScript exporter, deprecated in favour of the dynamo exporter, needs no
            # onnxscript; dtdcert reads the graphs of both.
            warnings.simplefilter("ignore", DeprecationWarning)
            _export(torch, module, x, buffer, opset)
    finally:
        module.train(training)
    return Model(_dtdcert.NativeModel.from_onnx(buffer.getvalue(), keep_batch_norm,
                                                    strip_softmax))


def _export(torch: Any, module: Any, x: Any, buffer: io.BytesIO, opset: int) -> None:
    torch.onnx.export(
        module,
        (x,),
        buffer,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        opset_version=opset,
        dynamo=False,
    )
