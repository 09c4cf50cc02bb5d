"""Bad input raises the right exception with the command line's message, and leaves nothing
behind: missing files, files that are not models or inputs, unsupported operators, NaN,
wrong widths and dtypes, arguments out of range."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import dtdcert
from conftest import BAD, C6_INPUTS, C6_MODEL, ONNX, cli_error, invalid_fixtures


def assert_cli_message(err, cli, *args, tmp_path):
    done = cli(*args, "--out", tmp_path / "cli-out.npy", check=False)
    assert str(err) == cli_error(done)


def test_a_missing_model_is_file_not_found(cli, tmp_path):
    missing = tmp_path / "absent.onnx"
    with pytest.raises(FileNotFoundError) as raised:
        dtdcert.load(missing)
    assert isinstance(raised.value, dtdcert.DtdcertError)
    assert isinstance(raised.value, dtdcert.MissingFileError)
    assert raised.value.filename == str(missing)
    assert_cli_message(raised.value, cli, "explain", "--model", missing, "--inputs", C6_INPUTS,
                       tmp_path=tmp_path)


@pytest.mark.parametrize("fixture", invalid_fixtures(), ids=lambda f: f["file"])
def test_models_dtdcert_cannot_read_are_value_errors(cli, tmp_path, fixture):
    path = ONNX / fixture["file"]
    with pytest.raises(ValueError) as raised:
        dtdcert.load(path)
    assert isinstance(raised.value, dtdcert.InvalidInputError)
    assert_cli_message(raised.value, cli, "explain", "--model", path, "--inputs", C6_INPUTS,
                       tmp_path=tmp_path)


def test_an_unsupported_operator_names_the_node():
    with pytest.raises(dtdcert.InvalidInputError, match="node '/1/Sigmoid'.*unsupported operator"):
        dtdcert.load(ONNX / "unsupported_sigmoid.onnx")


@pytest.mark.parametrize("name", ["inputs_i64_4x3.npy", "inputs_nan_4x3.npy",
                                  "inputs_truncated_4x3.npy", "inputs_empty.npy",
                                  "inputs_two_arrays.npz"])
def test_bad_input_files_have_the_command_lines_messages(c6, cli, tmp_path, name):
    with pytest.raises(dtdcert.InvalidInputError) as raised:
        c6.explain(BAD / name)
    assert_cli_message(raised.value, cli, "explain", "--model", C6_MODEL, "--inputs",
                       BAD / name, tmp_path=tmp_path)


def test_bad_arrays(c6, c6_inputs):
    with pytest.raises(ValueError, match=r"<array>: inputs have width 3 but the model expects 10"):
        c6.explain(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"<array>: inputs must be float32 or float64, but the "
                                         r"array has dtype int64"):
        c6.explain(np.zeros((4, 10), dtype=np.int64))
    x = c6_inputs.copy()
    x[7, 4] = np.nan
    with pytest.raises(ValueError, match=r"<array>: row 7, column 4 is NaN"):
        c6.audit(x)
    x[7, 4] = np.inf
    with pytest.raises(ValueError, match=r"row 7, column 4 is inf"):
        c6.explain(x)
    with pytest.raises(ValueError, match=r"<array>: no inputs"):
        c6.explain(np.zeros((0, 10)))
    with pytest.raises(ValueError, match=r"<array>:"):
        c6.explain(np.array([object()] * 10))


def test_a_missing_inputs_file_is_file_not_found(c6, cli, tmp_path):
    missing = tmp_path / "absent.npy"
    with pytest.raises(FileNotFoundError) as raised:
        c6.audit(missing)
    assert_cli_message(raised.value, cli, "explain", "--model", C6_MODEL, "--inputs", missing,
                       tmp_path=tmp_path)


@pytest.mark.parametrize("options, flags", [
    ({"rule": "bogus"}, ["--rule", "bogus"]),
    ({"rule": "gamma:-1"}, ["--rule", "gamma:-1"]),
    ({"layer_rules": {7: "w2"}}, ["--layer-rule", "7=w2"]),
    ({"layer_rules": ["x=w2"]}, ["--layer-rule", "x=w2"]),
    ({"targets": 5}, ["--explain", "5"]),
    ({"stabilizer": -1.0}, ["--stabilizer=-1"]),
    ({"rule": "nearest-valid:l1", "exact": True}, ["--rule", "nearest-valid:l1", "--exact"]),
])
def test_bad_arguments_have_the_command_lines_messages(c6, cli, tmp_path, options, flags):
    with pytest.raises(dtdcert.InvalidInputError) as raised:
        c6.explain(C6_INPUTS, **options)
    assert_cli_message(raised.value, cli, "explain", "--model", C6_MODEL, "--inputs", C6_INPUTS,
                       *flags, tmp_path=tmp_path)


def test_bad_targets_and_layers(c6, cli, tmp_path):
    with pytest.raises(ValueError, match="<targets>"):
        c6.audit(C6_INPUTS, targets=[0, 1, 0])
    with pytest.raises(ValueError, match="<targets>"):
        c6.audit(C6_INPUTS, targets=np.full(100, 7))
    with pytest.raises(ValueError, match="explain and targets"):
        c6.audit(C6_INPUTS, explain=0, targets=[0] * 100)
    with pytest.raises(ValueError) as raised:
        c6.region(C6_INPUTS, layer=9, sample=0)
    done = cli("region", "--model", C6_MODEL, "--inputs", C6_INPUTS, "--sample", 0,
               "--layer", 9, check=False)
    assert str(raised.value) == cli_error(done)
    with pytest.raises(ValueError, match="--sample 100 is out of range"):
        c6.region(C6_INPUTS, sample=100)
    with pytest.raises(ValueError, match="holds 100 inputs; choose one with sample=I"):
        c6.region(C6_INPUTS)
    with pytest.raises(ValueError, match="--problem exists needs --neuron"):
        c6.certify(C6_INPUTS, problem="exists", sample=0)
    with pytest.raises(ValueError, match="--problem 'nearest'"):
        c6.certify(C6_INPUTS, 1, 0, problem="nearest", sample=0)
    with pytest.raises(ValueError, match="--certify 'everything'"):
        c6.audit(C6_INPUTS, certify="everything")
    with pytest.raises(ValueError, match="--domain"):
        c6.audit(C6_INPUTS, domain=(1, 0))


def test_failed_calls_leave_nothing_behind(c6, tmp_path):
    before = sorted(p.name for p in tmp_path.iterdir())
    for call in (lambda: c6.audit(np.zeros((4, 3))), lambda: c6.audit(C6_INPUTS, rule="bogus"),
                 lambda: c6.explain(tmp_path / "absent.npy")):
        with pytest.raises(dtdcert.DtdcertError):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_model_whose_file_changed_is_refused(c6_inputs, tmp_path):
    path = tmp_path / "model.onnx"
    shutil.copy(C6_MODEL, path)
    model = dtdcert.load(path)
    before = model.explain(c6_inputs, targets=0)
    audit = model.audit(c6_inputs, explain=0)
    shutil.copy(ONNX / "mlp_10_10_10_2_relu_last_opset11.onnx", path)
    for call in (lambda: model.explain(c6_inputs), lambda: model.audit(c6_inputs),
                 lambda: model.region(c6_inputs[0]),
                 lambda: model.certify(c6_inputs[0], 1, 0)):
        with pytest.raises(dtdcert.InvalidInputError, match="changed since the model was "
                                                            "loaded") as raised:
            call()
        assert model.fingerprint in str(raised.value)
    # The same network written back: the fingerprint agrees again.
    shutil.copy(C6_MODEL, path)
    np.testing.assert_array_equal(model.explain(c6_inputs, targets=0), before)
    assert audit.total == model.audit(c6_inputs, explain=0).total
    # Gone: refused as well.
    path.unlink()
    with pytest.raises(dtdcert.MissingFileError, match="can no longer be read"):
        model.explain(c6_inputs)
