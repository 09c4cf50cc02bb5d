"""Model.explain: the relevances `dtdcert explain` saves, value for value, on the shipped
example and the ONNX fixtures; the rule options as the command line takes them; the shape of
the inputs kept."""

from __future__ import annotations

import numpy as np
import pytest

import dtdcert
from conftest import C6_INPUTS, C6_MODEL, ONNX, cli_error, valid_fixtures


def cli_relevances(cli, tmp_path, *args):
    out = tmp_path / "relevance.npy"
    cli("explain", *args, "--out", out)
    return np.load(out)


@pytest.mark.parametrize("options, flags", [
    ({"targets": 0}, ["--explain", "0"]),
    ({}, []),
    ({"rule": "w2", "targets": 1}, ["--rule", "w2", "--explain", "1"]),
    ({"rule": "gamma:0.25", "input_rule": "zb:-3:3"},
     ["--rule", "gamma:0.25", "--input-rule", "zb:-3:3"]),
    ({"rule": "epsilon:0.1", "bias": "include", "layer_rules": {2: "z"}},
     ["--rule", "epsilon:0.1", "--bias", "include", "--layer-rule", "2=z"]),
    ({"initial_relevance": "one", "stabilizer": 1e-6, "targets": 0},
     ["--initial-relevance", "one", "--stabilizer", "1e-6", "--explain", "0"]),
    ({"exact": True, "targets": 0}, ["--exact", "--explain", "0"]),
])
def test_relevances_equal_the_command_line(c6, c6_inputs, cli, tmp_path, options, flags):
    expected = cli_relevances(cli, tmp_path, "--model", C6_MODEL, "--inputs", C6_INPUTS, *flags)
    got = c6.explain(c6_inputs, **options)
    assert got.dtype == np.float64
    assert got.shape == c6_inputs.shape
    np.testing.assert_array_equal(got, expected)
    # The file itself gives the same array.
    np.testing.assert_array_equal(c6.explain(C6_INPUTS, **options), expected)


def test_targets_per_input_equal_a_targets_file(c6, c6_inputs, cli, tmp_path):
    targets = np.arange(len(c6_inputs)) % 2
    np.save(tmp_path / "targets.npy", targets)
    expected = cli_relevances(cli, tmp_path, "--model", C6_MODEL, "--inputs", C6_INPUTS,
                              "--targets", tmp_path / "targets.npy")
    np.testing.assert_array_equal(c6.explain(c6_inputs, targets=targets), expected)
    np.testing.assert_array_equal(c6.explain(c6_inputs, targets=list(targets)), expected)
    # Output 0 everywhere differs from alternating outputs on the odd rows.
    zero = c6.explain(c6_inputs, targets=0)
    assert not np.array_equal(zero[1::2], expected[1::2])
    np.testing.assert_array_equal(zero[0::2], expected[0::2])


@pytest.mark.parametrize("fixture", valid_fixtures(), ids=lambda f: f["file"])
def test_onnx_fixtures_equal_the_command_line(cli, tmp_path, fixture):
    model_path = ONNX / fixture["file"]
    inputs_path = ONNX / fixture["inputs"]
    out = tmp_path / "relevance.npy"
    done = cli("explain", "--model", model_path, "--inputs", inputs_path, "--out", out,
               check=False)
    if done.returncode != 0:
        # What the command line refuses, the bindings refuse with the same message.
        with pytest.raises(dtdcert.DtdcertError) as raised:
            dtdcert.load(model_path).explain(inputs_path)
        assert str(raised.value) == cli_error(done)
        return
    inputs = np.load(inputs_path)
    got = dtdcert.load(model_path).explain(inputs)
    # In the shape the command line writes: the model's declared image shape where it has one.
    expected = np.load(out)
    assert got.shape == expected.shape
    assert got.size == inputs.size
    np.testing.assert_array_equal(got, expected)


def test_shapes_and_dtypes_of_the_inputs(c6, c6_inputs):
    rows = c6.explain(c6_inputs, targets=0)
    one = c6.explain(c6_inputs[3], targets=0)
    assert one.shape == (10,)
    # f64 relevances come from matrix products over the batch, whose blocking depends on the
    # batch's size: an input alone and in a batch agree up to the order of the additions.
    np.testing.assert_allclose(one, rows[3], rtol=1e-12, atol=1e-15)
    # A batch of [N, 2, 5] is N flattened inputs, and comes back in that shape.
    folded = c6.explain(c6_inputs.reshape(-1, 2, 5), targets=0)
    assert folded.shape == (100, 2, 5)
    np.testing.assert_array_equal(folded.reshape(100, 10), rows)
    # float32 inputs are the same numbers widened exactly.
    x32 = c6_inputs.astype(np.float32)
    np.testing.assert_array_equal(c6.explain(x32, targets=0),
                                  c6.explain(x32.astype(np.float64), targets=0))
    # Fortran order holds the same rows.
    np.testing.assert_array_equal(c6.explain(np.asfortranarray(c6_inputs), targets=0), rows)
    # Lists of floats are arrays.
    np.testing.assert_array_equal(c6.explain(c6_inputs[:2].tolist(), targets=0), rows[:2])



def test_split_residual_reads_each_addition_apart_as_the_command_line_does(cli, tmp_path):
    model = ONNX / "residual_conv_2x6x6_f64_opset17.onnx"
    inputs = ONNX / "residual_conv_2x6x6_f64_opset17.inputs.npy"
    merged, split = dtdcert.load(model), dtdcert.load(model, split_residual=True)
    # Two residual additions, each a layer of its own.
    assert split.num_layers == merged.num_layers + 2
    assert split.fingerprint != merged.fingerprint
    expected = cli_relevances(cli, tmp_path, "--model", model, "--inputs", inputs,
                              "--split-residual")
    np.testing.assert_array_equal(split.explain(inputs), expected)
