"""dtdcert from Python: exact audits of the root points of Deep Taylor Decomposition in ReLU
networks.

Every call runs the dtdcert library (the Rust crate of the same name, the one implementation
behind the command line); this package converts Python values on the way in and out. Results
equal the command line's on the same inputs: ``Audit.write(dir)`` writes the folder
``dtdcert audit --out dir`` writes, ``Model.explain`` returns the array ``dtdcert explain``
saves, and errors carry the messages the command line prints.

    >>> import dtdcert
    >>> model = dtdcert.load("examples/c6/model.onnx")
    >>> audit = model.audit("examples/c6/inputs.npy", explain=0)
    >>> audit.total["roots_outside"]
    451

Inputs (``x``) are NumPy arrays (float32 or float64, one row per input: ``[N, d]``, ``[d]``
for one input, ``[N, ...]`` flattened per row), CPU torch tensors, or the path of an ``.npy``
or ``.npz`` file (read as ``--inputs`` reads it). Long calls release the GIL, show a progress
bar on stderr where a person watches (a terminal or a notebook; ``progress=True/False``
decides), and stop on Ctrl-C with ``KeyboardInterrupt``.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _dtdcert, _progress
from ._errors import DtdcertError, InvalidInputError, MissingFileError, WriteError
from ._torch import from_torch

__version__ = _dtdcert.__version__

__all__ = [
    "Audit",
    "Certificate",
    "Certified",
    "CheckResult",
    "DtdcertError",
    "InvalidInputError",
    "MissingFileError",
    "Model",
    "Region",
    "WriteError",
    "check_certificate",
    "from_torch",
    "load",
]

PathLike = Union[str, "os.PathLike[str]"]

#: The name that stands for an array in messages.
ARRAY = "<array>"


def load(path: PathLike, *, keep_batch_norm: bool = False,
         question: Optional[Sequence[float]] = None, strip_softmax: bool = False,
         split_residual: bool = False) -> "Model":
    """Loads a model: an ``.onnx`` file, or a ``.json`` description with safetensors weights
    (``--model``). ``keep_batch_norm``, ``question``, ``strip_softmax`` and ``split_residual``
    are the command line's ``--keep-batch-norm``, ``--question``, ``--strip-softmax`` and
    ``--split-residual``.

    Raises ``MissingFileError`` (a ``FileNotFoundError``) for a file that is not there and
    ``InvalidInputError`` (a ``ValueError``) for one that is not a model dtdcert reads (an
    unsupported ONNX operator, NaN weights, ...), with the command line's message.
    """
    native = _dtdcert.NativeModel.load(
        os.fspath(path), keep_batch_norm,
        None if question is None else [float(v) for v in question], strip_softmax,
        split_residual)
    return Model(native)


def check_certificate(model: "Model", certificate: Union["Certificate", PathLike, Mapping[str, Any]]
                      ) -> "CheckResult":
    """Re-checks a certificate against ``model``, exactly and without any LP code (as
    ``dtdcert check-cert --model``): ``certificate`` is a ``Certificate``, the path of a
    certificate file, its JSON text or its parsed dict. A certificate for another model (by
    fingerprint), of another format, or whose evidence fails is rejected: the result is false
    and says why."""
    return model.check_certificate(certificate)


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "detach")


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    try:
        np.lib.format.write_array(buf, a, allow_pickle=False)
    except ValueError as e:
        raise InvalidInputError(f"{ARRAY}: {e}") from None
    return buf.getvalue()


def _array(x: Any) -> np.ndarray:
    if _is_tensor(x):
        if x.device.type != "cpu":
            raise InvalidInputError(
                f"{ARRAY}: the tensor is on {x.device}; move it to the CPU with .cpu()")
        x = x.detach().numpy()
    return np.asarray(x)


def _inputs(x: Any) -> Union[str, bytes]:
    """A path as it is, anything else as the bytes of an ``.npy`` file."""
    if isinstance(x, (str, os.PathLike)):
        return os.fspath(x)
    return _npy_bytes(_array(x))


def _targets(explain: Optional[int], targets: Any) -> Tuple[Optional[int], Optional[bytes]]:
    """``--explain K`` (an int, given as ``explain`` or ``targets``) or one index per input."""
    if explain is not None and targets is not None:
        raise InvalidInputError("explain and targets: give one of them, not both")
    if explain is not None:
        return int(explain), None
    if targets is None:
        return None, None
    if isinstance(targets, (int, np.integer)):
        return int(targets), None
    return None, _npy_bytes(_array(targets))


def _root_sample(roots_per_layer: Any, seed: Any) -> Optional[Tuple[int, int]]:
    """``(K, S)`` of ``roots_per_layer=K, seed=S`` (``--roots-per-layer K --seed S``): K a
    whole number of at least 1, S one from 0 to 2^64 − 1, and no seed without K."""
    def whole(value: Any) -> Optional[int]:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            return None
        return int(value)

    if roots_per_layer is None:
        if seed is not None:
            raise InvalidInputError(
                "seed seeds the draw of roots_per_layer; give roots_per_layer=K with it")
        return None
    k = whole(roots_per_layer)
    if k is None or k < 1:
        raise InvalidInputError(
            f"roots_per_layer={roots_per_layer!r}: judge at least 1 root per layer (a whole "
            "number)")
    s = 0 if seed is None else whole(seed)
    if s is None or not 0 <= s < 2**64:
        raise InvalidInputError(f"seed={seed!r}: expected a whole number from 0 to {2**64 - 1}")
    return k, s


def _layer_rules(layer_rules: Union[None, Mapping[int, str], Iterable[str]]) -> List[str]:
    if layer_rules is None:
        return []
    if isinstance(layer_rules, Mapping):
        return [f"{layer}={rule}" for layer, rule in layer_rules.items()]
    return [str(r) for r in layer_rules]


def _domain(domain: Union[None, str, Tuple[float, float]]) -> Optional[str]:
    if domain is None or isinstance(domain, str):
        return domain
    lo, hi = domain
    return f"{float(lo)!r}:{float(hi)!r}"


def _rules(rule: str, input_rule: Optional[str], layer_rules: Any, bias: str,
           stabilizer: float, denominator_threshold: float,
           initial_relevance: str) -> Tuple[str, Optional[str], List[str], str, float, float, str]:
    return (str(rule), None if input_rule is None else str(input_rule),
            _layer_rules(layer_rules), str(bias), float(stabilizer),
            float(denominator_threshold), str(initial_relevance))


def _with_bar(unit: str, progress: Optional[bool], call):
    bar = _progress.Bar(unit, progress)
    try:
        return call(bar if bar.shown else None)
    finally:
        bar.close()


class Model:
    """A loaded network (``dtdcert.load`` or ``dtdcert.from_torch``).

    Each call first checks that the model's file still holds the network that was loaded
    (the file's size and time, then its fingerprint): a model used after its file changed
    raises ``InvalidInputError`` saying so, rather than give results that name the file but
    describe other weights.
    """

    def __init__(self, native: Any):
        self._native = native

    @property
    def path(self) -> Optional[str]:
        """The model file as an absolute path; ``None`` for a network exported in memory."""
        return self._native.path

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the architecture and parameters, as reports and certificates record it."""
        return self._native.fingerprint

    @property
    def architecture(self) -> str:
        """The layer widths, as reports describe them."""
        return self._native.architecture

    @property
    def input_dim(self) -> int:
        """The width of one input."""
        return self._native.input_dim

    @property
    def output_dim(self) -> int:
        """The number of outputs."""
        return self._native.output_dim

    @property
    def num_layers(self) -> int:
        """The number of layers; layer 1 takes the network input."""
        return self._native.num_layers

    def __repr__(self) -> str:
        where = self.path or "exported in memory"
        return f"<dtdcert.Model {self.architecture}, {where}>"

    def explain(self, x: Any, rule: str = "z+", input_rule: Optional[str] = None,
                layer_rules: Union[None, Mapping[int, str], Iterable[str]] = None,
                targets: Any = None, bias: str = "ignore", *,
                stabilizer: float = 0.0, denominator_threshold: float = 1e-5,
                initial_relevance: str = "output", exact: bool = False,
                domain: Union[None, str, Tuple[float, float]] = None,
                lp_time_limit: float = 60.0, lp_backend: str = "microlp",
                inputs_key: Optional[str] = None,
                progress: Optional[bool] = None) -> np.ndarray:
        """Input relevances by train-free DTD/LRP (``dtdcert explain``): a float64 array in
        the shape of ``x`` (of the file's array for a path), or, for a model whose declared
        input is an image, N×C×H×W as ``explain --out`` writes it.

        ``rule``, ``input_rule``, ``bias``, ``stabilizer``, ``denominator_threshold`` and
        ``initial_relevance`` are the command line's rule options; ``layer_rules`` maps a
        1-based layer to its rule (``{1: "w2"}``, ``--layer-rule 1=w2``). ``targets``: which
        output each input explains, an int for every input (``--explain K``) or one index per
        input (``--targets``); by default each input's top output. ``exact`` computes in
        rationals and rounds once; ``domain`` (``(lo, hi)`` or ``"LO:HI"``) and the LP
        options serve the ``nearest-valid`` rule.
        """
        k, target_bytes = _targets(None, targets)
        rules = _rules(rule, input_rule, layer_rules, bias, stabilizer,
                       denominator_threshold, initial_relevance)
        return _with_bar("inputs", progress, lambda bar: self._native.explain(
            _inputs(x), inputs_key, k, target_bytes, rules, bool(exact), _domain(domain),
            float(lp_time_limit), str(lp_backend), bar))

    def audit(self, x: Any, rule: str = "z+", explain: Optional[int] = None,
              domain: Union[None, str, Tuple[float, float]] = None, exact: bool = False,
              certify: Optional[str] = None, roots_per_layer: Optional[int] = None, *,
              seed: Optional[int] = None, input_rule: Optional[str] = None,
              layer_rules: Union[None, Mapping[int, str], Iterable[str]] = None,
              targets: Any = None, bias: str = "ignore", stabilizer: float = 0.0,
              denominator_threshold: float = 1e-5, initial_relevance: str = "output",
              roots: bool = False, certify_all: bool = False, lp_time_limit: float = 60.0,
              lp_backend: str = "microlp", inputs_key: Optional[str] = None,
              progress: Optional[bool] = None) -> "Audit":
        """Audits every root of every layer for every input (``dtdcert audit``): are the
        roots in the input's linear region and in the domain? Returns an ``Audit`` held in
        memory; ``Audit.write(dir)`` writes the folder ``dtdcert audit --out dir`` writes.

        ``explain=K`` explains output K of every input; ``targets`` gives one index per input
        (an int is ``explain``); by default each input's top output. ``domain`` is the input
        box (``(lo, hi)`` or ``"LO:HI"``); ``exact`` decides in rationals throughout;
        ``certify`` (``"exists"``, ``"nearest"``, ``"nearest-l1"``, ``"nearest-linf"``)
        certifies the roots outside their region or domain (every root with
        ``certify_all``); ``roots`` keeps every root's coordinates in the records. The rule
        options are those of ``explain``.

        ``roots_per_layer=K`` judges a uniform random sample of K roots of every layer of
        every input (all of a layer's roots where it has fewer), drawn from ``seed`` (0 by
        default; ``dtdcert audit --roots-per-layer K --seed S``): ``summary["root_sample"]``
        gives per layer the fraction outside the region with its 95 % Wilson interval.

        The records are held in memory (about 150 bytes per neuron and input); for runs too
        large for that, use ``dtdcert audit --out`` (records streamed to disk, resumable).
        """
        root_sample = _root_sample(roots_per_layer, seed)
        k, target_bytes = _targets(explain, targets)
        rules = _rules(rule, input_rule, layer_rules, bias, stabilizer,
                       denominator_threshold, initial_relevance)
        native = _with_bar("samples", progress, lambda bar: self._native.audit(
            _inputs(x), inputs_key, k, target_bytes, rules, _domain(domain), bool(exact),
            bool(roots), certify, bool(certify_all), float(lp_time_limit), str(lp_backend),
            root_sample, bar))
        return Audit(native)

    def region(self, x: Any, layer: int = 1, *, sample: Optional[int] = None,
               inputs_key: Optional[str] = None) -> "Region":
        """The activation pattern of one input and its linear region seen from ``layer``
        (1-based; ``dtdcert region``). ``x`` is one input, or several with ``sample``
        choosing one."""
        report, pattern, g, h, rows = self._native.region(
            _inputs(x), inputs_key, None if sample is None else int(sample), int(layer))
        return Region(json.loads(report), pattern, g, h, rows)

    def certify(self, x: Any, layer: int = 1, neuron: Optional[int] = None,
                problem: str = "nearest-l1", *, sample: Optional[int] = None,
                constraint: Optional[Tuple[int, int]] = None,
                domain: Union[None, str, Tuple[float, float]] = None,
                explain: Optional[int] = None, targets: Any = None, rule: str = "z+",
                input_rule: Optional[str] = None,
                layer_rules: Union[None, Mapping[int, str], Iterable[str]] = None,
                bias: str = "ignore", stabilizer: float = 0.0,
                denominator_threshold: float = 1e-5, initial_relevance: str = "output",
                lp_time_limit: float = 60.0, lp_backend: str = "microlp",
                inputs_key: Optional[str] = None,
                progress: Optional[bool] = None) -> "Certified":
        """Answers one region question for one input with a checked certificate
        (``dtdcert certify``): ``problem`` is ``exists``, ``nearest-l1``, ``nearest-linf``
        (about the valid roots of ``neuron`` of ``layer``), ``chebyshev`` (the largest ball
        inside the region), ``facet`` (is ``constraint=(layer, neuron)`` redundant?) or
        ``step`` (how far along the rule root's direction the region extends; exact, no
        certificate). ``x`` is one input, or several with ``sample`` choosing one; the
        neuron's relevance comes from its explanation under the rule options."""
        k, target_bytes = _targets(explain, targets)
        rules = _rules(rule, input_rule, layer_rules, bias, stabilizer,
                       denominator_threshold, initial_relevance)
        report, cert = _with_bar("questions", progress, lambda bar: self._native.certify(
            _inputs(x), inputs_key, None if sample is None else int(sample), int(layer),
            None if neuron is None else int(neuron), str(problem),
            None if constraint is None else (int(constraint[0]), int(constraint[1])),
            _domain(domain), k, target_bytes, rules, float(lp_time_limit), str(lp_backend),
            bar))
        return Certified(json.loads(report), None if cert is None else Certificate(cert))

    def check_certificate(self, certificate: Union["Certificate", PathLike, Mapping[str, Any]]
                          ) -> "CheckResult":
        """``dtdcert.check_certificate(self, certificate)``."""
        if isinstance(certificate, Certificate):
            native = certificate._native
        else:
            native, rejected = _parse_certificate(certificate)
            if native is None:
                return CheckResult(False, None, None, None, None, rejected)
        return CheckResult(*self._native.check_certificate(native))


def _parse_certificate(certificate: Union[PathLike, Mapping[str, Any]]) -> Tuple[Any, Optional[str]]:
    if isinstance(certificate, Mapping):
        return _dtdcert.NativeCertificate.parse(json.dumps(certificate), "<certificate>")
    text = os.fspath(certificate)
    if isinstance(text, str) and text.lstrip().startswith("{"):
        return _dtdcert.NativeCertificate.parse(text, "<certificate>")
    try:
        with open(text, encoding="utf-8") as f:
            content = f.read()
    except FileNotFoundError:
        err = MissingFileError(f"{text}: cannot read: no such file")
        err.filename = text
        raise err from None
    except (OSError, UnicodeDecodeError) as e:
        err = InvalidInputError(f"{text}: cannot read: {e}")
        err.filename = text
        raise err from None
    return _dtdcert.NativeCertificate.parse(content, text)


class Audit:
    """An audit held in memory (``Model.audit``).

    ``summary`` is summary.json as a dict: ``samples``, per layer (``layers``) and in
    ``total`` the counts of roots, roots outside the region, out of the domain, valid, on a
    face, ..., with the run's model, inputs and settings. Inputs or targets given as arrays,
    and a model exported in memory, are named by a placeholder until ``write`` puts them into
    the folder.
    """

    def __init__(self, native: Any):
        self._native = native
        self.summary: Dict[str, Any] = json.loads(native.summary_json())

    @property
    def samples(self) -> int:
        """The number of audited inputs."""
        return self.summary["samples"]

    @property
    def layers(self) -> List[Dict[str, Any]]:
        """One dict of counts per layer, layer 1 first (summary.json's ``layers``)."""
        return self.summary["layers"]

    @property
    def total(self) -> Dict[str, Any]:
        """The counts over all layers (summary.json's ``total``)."""
        return self.summary["total"]

    @property
    def run(self) -> Dict[str, Any]:
        """run.json as a dict: what determines the results."""
        return json.loads(self._native.run_json())

    @property
    def records(self) -> List[Dict[str, Any]]:
        """One dict per input, as records.jsonl holds them (per layer: relevances and, per
        neuron, the root's verdict)."""
        return [json.loads(line) for line in self._native.lines()]

    @property
    def roots(self) -> List[Dict[str, Any]]:
        """One dict per neuron of every layer of every input, with roots.csv's columns
        (``None`` where a field does not apply)."""
        columns = self._native.root_columns()
        names = list(columns)
        return [dict(zip(names, values)) for values in zip(*(columns[n] for n in names))]

    def to_pandas(self):
        """The per-root table as a pandas DataFrame (roots.csv's columns); needs pandas."""
        try:
            import pandas as pd
        except ImportError as e:
            raise ImportError("Audit.to_pandas needs pandas: pip install pandas") from e
        columns = self._native.root_columns()
        frame = pd.DataFrame(columns)
        nullable = {"valid": "boolean", "on_face": "boolean", "judged": "boolean",
                    "violated_layer": "Int64",
                    "violated_neuron": "Int64", "domain_coordinate": "Int64",
                    "margin": "Float64", "domain_value": "Float64"}
        return frame.astype(nullable)

    @property
    def certificates(self) -> Dict[str, "Certificate"]:
        """The certificates of ``certify=``, by their paths relative to the run's folder."""
        return {name: Certificate(c) for name, c in self._native.certificates()}

    def write(self, dir: PathLike, *, csv: bool = False, force: bool = False) -> pathlib.Path:
        """Writes the folder ``dtdcert audit --out dir`` writes (``csv``: also roots.csv;
        ``force``: replace a finished run there): run.json, records.jsonl, summary.json,
        summary.md, summary.html and the certificates. Inputs or targets given as arrays go
        into the folder as inputs.npy and targets.npy, a model exported in memory as
        model.onnx, and run.json names them there, so ``dtdcert audit --resume``,
        ``merge`` and ``check-cert`` work on the folder. Nothing is left behind when it
        fails."""
        self._native.write(os.fspath(dir), bool(csv), bool(force))
        return pathlib.Path(dir)

    def __len__(self) -> int:
        return len(self._native)

    def __repr__(self) -> str:
        t = self.total
        return (f"<dtdcert.Audit {self.samples} samples, {t['roots']} roots: "
                f"{t['roots_outside']} outside the region, {t['roots_out_of_domain']} out of "
                f"the domain, {t['roots_valid']} valid>")


class Region:
    """One input's activation pattern and its linear region ``P_L(x) = {a : G a + h >= 0}``
    seen from layer ``L`` (``Model.region``).

    ``report`` is what ``dtdcert region --json`` prints; ``pattern`` holds one entry per
    layer: a bool array (active ReLU neurons), the winner's index in each window of a
    max-pool layer, or ``None`` for a layer without either. ``G`` and ``h`` are the
    constraints in f64 (each row composed in floating point from the weights); ``rows`` gives
    the (1-based layer, neuron) of each.
    """

    def __init__(self, report: Dict[str, Any], pattern: List[Optional[np.ndarray]],
                 G: np.ndarray, h: np.ndarray, rows: np.ndarray):
        self.report = report
        self.pattern = pattern
        self.G = G
        self.h = h
        self.rows = rows

    @property
    def layer(self) -> int:
        return self.report["layer"]

    @property
    def dimension(self) -> int:
        return self.report["dimension"]

    @property
    def constraints(self) -> int:
        return self.report["constraints"]

    def __repr__(self) -> str:
        return (f"<dtdcert.Region P_{self.layer}(x) in {self.dimension} dimensions, "
                f"{self.constraints} constraints>")


class Certificate:
    """A certificate: the evidence for one claim about a region, which ``check_certificate``
    re-checks exactly."""

    def __init__(self, native: Any):
        self._native = native

    @classmethod
    def load(cls, path: PathLike) -> "Certificate":
        """Reads a certificate file (``InvalidInputError`` for a certificate of another
        format: ``check_certificate`` rejects those with the reason)."""
        native, rejected = _parse_certificate(path)
        if native is None:
            raise InvalidInputError(f"{os.fspath(path)}: {rejected}")
        return cls(native)

    @property
    def claim(self) -> str:
        """What it claims: ``feasible``, ``infeasible``, ``optimal``, ..."""
        return self._native.claim

    @property
    def model_fingerprint(self) -> str:
        """The fingerprint of the model it is about."""
        return self._native.model_fingerprint

    def to_dict(self) -> Dict[str, Any]:
        return json.loads(self._native.to_json())

    def to_json(self) -> str:
        """The certificate file's text, as ``dtdcert certify --out`` writes it."""
        return self._native.to_json()

    def write(self, path: PathLike) -> None:
        """Writes the certificate file (atomically)."""
        self._native.write(os.fspath(path))

    def __repr__(self) -> str:
        return f"<dtdcert.Certificate {self.claim}>"


class Certified:
    """The answer to a region question (``Model.certify``): ``report`` is what ``dtdcert
    certify`` prints, ``answer`` its verdict (``found``, ``none``, ``ball``, ``facet`` or
    ``unknown``; ``None`` for ``step``), ``certificate`` the evidence (``None`` without a
    certified answer)."""

    def __init__(self, report: Dict[str, Any], certificate: Optional[Certificate]):
        self.report = report
        self.certificate = certificate

    @property
    def answer(self) -> Optional[str]:
        return self.report.get("answer")

    @property
    def claim(self) -> Optional[str]:
        """The certificate's claim (``feasible``, ``infeasible``, ``optimal``, ...); ``None``
        without a certificate."""
        return None if self.certificate is None else self.certificate.claim

    def __repr__(self) -> str:
        return f"<dtdcert.Certified {self.report.get('problem')}: {self.answer}>"


class CheckResult:
    """The outcome of a certificate check: true when accepted, with the proved ``claim`` and
    the certified interval ``[lower, upper]`` of an optimum; else false with the ``reason``."""

    def __init__(self, accepted: bool, claim: Optional[str], lower: Optional[float],
                 upper: Optional[float], point: Optional[List[float]], reason: Optional[str]):
        self.accepted = accepted
        self.claim = claim
        self.lower = lower
        self.upper = upper
        self.point = point
        self.reason = reason

    def __bool__(self) -> bool:
        return self.accepted

    def __repr__(self) -> str:
        if not self.accepted:
            return f"<dtdcert.CheckResult rejected: {self.reason}>"
        interval = "" if self.lower is None else f" [{self.lower!r}, {self.upper!r}]"
        return f"<dtdcert.CheckResult accepted ({self.claim}){interval}>"
