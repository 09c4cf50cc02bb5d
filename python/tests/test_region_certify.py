"""Model.region, Model.certify and check_certificate: the reports of `dtdcert region --json`
and `dtdcert certify`, the certificates `certify --out` writes, and the exact check."""

from __future__ import annotations

import json

import numpy as np
import pytest

import dtdcert
from conftest import C6_INPUTS, C6_MODEL, ONNX, cli_error, valid_fixtures


@pytest.mark.parametrize("sample, layer", [(3, 1), (0, 2), (57, 3)])
def test_region_reports_equal_the_command_lines(c6, c6_inputs, cli, sample, layer):
    done = cli("region", "--model", C6_MODEL, "--inputs", C6_INPUTS, "--sample", sample,
               "--layer", layer, "--json")
    region = c6.region(c6_inputs, layer, sample=sample)
    assert region.report == json.loads(done.stdout)
    # One input alone is the same input.
    alone = c6.region(c6_inputs[sample], layer).report
    assert alone.pop("sample") == 0
    assert alone == {k: v for k, v in region.report.items() if k != "sample"}
    assert region.G.shape == (region.constraints, region.dimension)
    assert region.h.shape == (region.constraints,)
    assert region.rows.shape == (region.constraints, 2)
    assert set(region.rows[:, 0]) <= set(range(layer, c6.num_layers + 1))


def test_the_pattern_and_polytope_describe_the_input(c6, c6_inputs):
    x = c6_inputs[3]
    region = c6.region(x, 1)
    bits = [layer["pattern"] for layer in region.report["layers"]]
    for mask, text in zip(region.pattern, bits):
        assert "".join("1" if b else "0" for b in mask) == text
    # The input lies inside its own region: every constraint's slack is non-negative (f64
    # rows, so up to their rounding).
    slack = region.G @ x + region.h
    assert np.all(slack >= -1e-12)
    # A neuron's row is its pre-activation with the sign of its pattern bit.
    active = np.concatenate(region.pattern)
    assert np.all((slack > 0) <= np.ones_like(active))


def test_max_pool_patterns_are_window_winners(cli):
    model = ONNX / "conv_maxpool_1x6x6_opset13.onnx"
    inputs = ONNX / "conv_maxpool_1x6x6_opset13.inputs.npy"
    done = cli("region", "--model", model, "--inputs", inputs, "--sample", 0, "--json")
    region = dtdcert.load(model).region(inputs, sample=0)
    assert region.report == json.loads(done.stdout)
    for layer, pattern in zip(region.report["layers"], region.pattern):
        if layer.get("max_pool"):
            window = layer["max_pool"]
            assert ".".join(str(w % window) for w in pattern) == layer["pattern"]


@pytest.mark.parametrize("problem, args, flags", [
    ("nearest-l1", {"neuron": 2}, ["--neuron", "2"]),
    ("nearest-linf", {"neuron": 2}, ["--neuron", "2"]),
    ("exists", {"neuron": 5}, ["--neuron", "5"]),
    ("chebyshev", {}, []),
    ("facet", {"constraint": (2, 4)}, ["--constraint", "2:4"]),
])
def test_certify_equals_the_command_line(c6, cli, tmp_path, problem, args, flags):
    out = tmp_path / "cert.json"
    done = cli("certify", "--model", C6_MODEL, "--inputs", C6_INPUTS, "--sample", 3, "--layer",
               1, "--problem", problem, *flags, "--explain", 0, "--out", out, check=False)
    expected = json.loads(done.stdout)
    certified = c6.certify(C6_INPUTS, 1, problem=problem, sample=3, explain=0, **args)
    report = dict(certified.report)
    for key in ("seconds", "certificate"):
        expected.pop(key), report.pop(key)
    assert report == expected
    assert certified.answer == expected["answer"]
    # Exit code 1: no certified answer (the region holds arbitrarily large balls).
    if done.returncode == 1:
        assert certified.answer == "unknown" and certified.certificate is None
        assert not out.exists()
        return
    assert done.returncode == 0
    assert certified.certificate.to_dict() == json.loads(out.read_text())
    check = dtdcert.check_certificate(c6, certified.certificate)
    assert check and check.claim == certified.certificate.claim
    # The file the command line wrote checks the same.
    from_file = dtdcert.check_certificate(c6, out)
    assert (from_file.claim, from_file.lower, from_file.upper) == (check.claim, check.lower,
                                                                   check.upper)


def test_the_step_is_exact_and_needs_no_certificate(c6, cli):
    done = cli("certify", "--model", C6_MODEL, "--inputs", C6_INPUTS, "--sample", 3, "--layer",
               1, "--neuron", 2, "--problem", "step", "--explain", 0)
    certified = c6.certify(C6_INPUTS, 1, 2, "step", sample=3, explain=0)
    assert certified.report == json.loads(done.stdout)
    assert certified.certificate is None and certified.answer is None


def test_rejected_certificates_say_why(c6, tmp_path):
    certified = c6.certify(C6_INPUTS, 1, 2, sample=3, explain=0)
    cert = certified.certificate.to_dict()
    # Another model: the fingerprint check refuses it.
    other = dtdcert.load(ONNX / "mlp_10_10_10_2_relu_last_opset11.onnx")
    result = dtdcert.check_certificate(other, certified.certificate)
    assert not result
    assert "the certificate is for model" in result.reason
    assert c6.fingerprint in result.reason
    # Tampered evidence: a distance interval that excludes the true one.
    lower = cert["interval"]["lower"]
    cert["interval"]["lower"] = "2" if lower != "2" else "3"
    result = dtdcert.check_certificate(c6, cert)
    assert not result and result.reason
    # The JSON text and a file of it check as the dict does.
    assert not dtdcert.check_certificate(c6, json.dumps(cert))
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(cert))
    assert not dtdcert.check_certificate(c6, path)
    # Another format is rejected, not read.
    cert["format"] = "dtdcert-certificate/1"
    result = dtdcert.check_certificate(c6, cert)
    assert not result and "format" in result.reason
    with pytest.raises(dtdcert.InvalidInputError, match="not a certificate"):
        dtdcert.check_certificate(c6, {"format": "dtdcert-certificate/2"})


def test_a_certificate_round_trips_through_its_file(c6, tmp_path):
    cert = c6.certify(C6_INPUTS, 1, 2, sample=3, explain=0).certificate
    cert.write(tmp_path / "c.json")
    again = dtdcert.Certificate.load(tmp_path / "c.json")
    assert again.to_json() == cert.to_json()
    assert dtdcert.check_certificate(c6, again)


@pytest.mark.parametrize("fixture", valid_fixtures(), ids=lambda f: f["file"])
def test_every_onnx_fixture_answers_as_on_the_command_line(cli, tmp_path, fixture):
    path = ONNX / fixture["file"]
    inputs = ONNX / fixture["inputs"]
    done = cli("region", "--model", path, "--inputs", inputs, "--sample", 1, "--json",
               check=False)
    if done.returncode != 0:
        with pytest.raises(dtdcert.DtdcertError) as raised:
            dtdcert.load(path).region(inputs, sample=1)
        assert str(raised.value) == cli_error(done)
        return
    model = dtdcert.load(path)
    assert model.region(inputs, sample=1).report == json.loads(done.stdout)
    out = tmp_path / "cert.json"
    done = cli("certify", "--model", path, "--inputs", inputs, "--sample", 1, "--layer", 1,
               "--neuron", 0, "--problem", "exists", "--out", out, check=False)
    assert done.returncode in (0, 1), done.stderr
    certified = model.certify(inputs, 1, 0, "exists", sample=1)
    expected = json.loads(done.stdout)
    for report in (expected, certified.report):
        report.pop("seconds"), report.pop("certificate")
    assert certified.report == expected
    if certified.certificate is not None:
        assert certified.certificate.to_dict() == json.loads(out.read_text())
        assert dtdcert.check_certificate(model, certified.certificate)
