# Type stubs of the extension module (python/src/*.rs); the package `dtdcert` wraps it.
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

__version__: str
FORMAT: str

Rules = Tuple[str, Optional[str], List[str], str, float, float, str]
Progress = Optional[Callable[[int, int], None]]
Inputs = Union[str, bytes]

class NativeModel:
    @staticmethod
    def load(path: str, keep_batch_norm: bool = ..., question: Optional[Sequence[float]] = ...,
             strip_softmax: bool = ..., split_residual: bool = ...) -> NativeModel: ...
    @staticmethod
    def from_onnx(onnx: bytes, keep_batch_norm: bool = ..., strip_softmax: bool = ...) -> NativeModel: ...
    fingerprint: str
    path: Optional[str]
    architecture: str
    input_dim: int
    output_dim: int
    num_layers: int
    def explain(self, inputs: Inputs, inputs_key: Optional[str], explain: Optional[int],
                targets: Optional[bytes], rules: Rules, exact: bool, domain: Optional[str],
                lp_time_limit: float, lp_backend: str, progress: Progress) -> np.ndarray: ...
    def audit(self, inputs: Inputs, inputs_key: Optional[str], explain: Optional[int],
              targets: Optional[bytes], rules: Rules, domain: Optional[str], exact: bool,
              roots: bool, certify: Optional[str], certify_all: bool, lp_time_limit: float,
              lp_backend: str, root_sample: Optional[Tuple[int, int]],
              progress: Progress) -> NativeAudit: ...
    def region(self, inputs: Inputs, inputs_key: Optional[str], sample: Optional[int],
               layer: int) -> Tuple[str, List[Optional[np.ndarray]], np.ndarray, np.ndarray,
                                    np.ndarray]: ...
    def certify(self, inputs: Inputs, inputs_key: Optional[str], sample: Optional[int],
                layer: int, neuron: Optional[int], problem: str,
                constraint: Optional[Tuple[int, int]], domain: Optional[str],
                explain: Optional[int], targets: Optional[bytes], rules: Rules,
                lp_time_limit: float, lp_backend: str,
                progress: Progress) -> Tuple[str, Optional[NativeCertificate]]: ...
    def check_certificate(self, certificate: NativeCertificate) -> Tuple[
        bool, Optional[str], Optional[float], Optional[float], Optional[List[float]],
        Optional[str]]: ...

class NativeAudit:
    def summary_json(self) -> str: ...
    def run_json(self) -> str: ...
    def __len__(self) -> int: ...
    def line(self, i: int) -> Optional[str]: ...
    def lines(self) -> List[str]: ...
    def root_columns(self) -> dict[str, list[Any]]: ...
    def certificates(self) -> List[Tuple[str, NativeCertificate]]: ...
    def write(self, dir: str, csv: bool = ..., force: bool = ...) -> str: ...

class NativeCertificate:
    @staticmethod
    def parse(text: str, name: str) -> Tuple[Optional[NativeCertificate], Optional[str]]: ...
    def to_json(self) -> str: ...
    def write(self, path: str) -> None: ...
    claim: str
    model_fingerprint: str
