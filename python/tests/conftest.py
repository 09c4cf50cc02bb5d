"""Shared helpers of the Python tests: the repository's files, and the `dtdcert` binary they
compare against (DTDCERT_BIN, else target/debug/dtdcert or target/release/dtdcert)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
C6_MODEL = REPO / "examples" / "c6" / "model.onnx"
C6_INPUTS = REPO / "examples" / "c6" / "inputs.npy"
ONNX = REPO / "tests" / "data" / "onnx"
BAD = REPO / "tests" / "data" / "bad"


def _binary() -> pathlib.Path | None:
    given = os.environ.get("DTDCERT_BIN")
    if given:
        path = pathlib.Path(given)
        if not path.is_file():
            raise RuntimeError(f"DTDCERT_BIN={given}: no such file")
        return path
    for profile in ("debug", "release"):
        path = REPO / "target" / profile / "dtdcert"
        if path.is_file():
            return path
    return None


@pytest.fixture(scope="session")
def cli():
    """Runs the command line: `cli(*args)` returns the finished process (stdout, stderr and
    the exit code as text)."""
    binary = _binary()
    if binary is None:
        pytest.skip("no dtdcert binary to compare with: cargo build, or set DTDCERT_BIN")

    def run(*args, check=True):
        done = subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True,
                              cwd=REPO)
        if check and done.returncode != 0:
            raise AssertionError(f"dtdcert {' '.join(map(str, args))}: {done.stderr}")
        return done

    return run


def cli_error(done) -> str:
    """The message of the command line's `error: ...` line."""
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("error: "), line
    return line[len("error: "):]


@pytest.fixture(scope="session")
def c6():
    import dtdcert

    return dtdcert.load(C6_MODEL)


@pytest.fixture(scope="session")
def c6_inputs() -> np.ndarray:
    return np.load(C6_INPUTS)


def valid_fixtures():
    manifest = json.loads((ONNX / "manifest.json").read_text())
    return [f for f in manifest["files"] if f["kind"] == "valid"]


def invalid_fixtures():
    manifest = json.loads((ONNX / "manifest.json").read_text())
    return [f for f in manifest["files"] if f["kind"] == "invalid"]
