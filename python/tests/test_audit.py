"""Model.audit: the counts of summary.json, the records, the per-root table, and the folder
`Audit.write` writes, byte for byte the folder of `dtdcert audit --out` on the same inputs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import dtdcert
from conftest import C6_INPUTS, C6_MODEL, ONNX, cli_error, valid_fixtures

FILES = ["run.json", "records.jsonl", "summary.json", "summary.md", "summary.html"]


def assert_same_folder(a, b, files=FILES):
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), f"{name} differs"


@pytest.mark.parametrize("options, flags", [
    ({"explain": 0}, ["--explain", "0"]),
    ({}, []),
    ({"rule": "w2", "domain": (-4, 4), "explain": 1}, ["--rule", "w2", "--domain", "-4.0:4.0",
                                                      "--explain", "1"]),
    ({"rule": "z+", "input_rule": "zb:-3:3", "roots": True},
     ["--input-rule", "zb:-3:3", "--roots"]),
    ({"exact": True, "explain": 0}, ["--exact", "--explain", "0"]),
    ({"roots_per_layer": 2, "seed": 7, "explain": 0},
     ["--roots-per-layer", "2", "--seed", "7", "--explain", "0"]),
    ({"roots_per_layer": 3}, ["--roots-per-layer", "3"]),
])
def test_the_folder_equals_the_command_lines(c6, cli, tmp_path, options, flags):
    cli("audit", "--model", C6_MODEL, "--inputs", C6_INPUTS, *flags, "--csv", "--quiet",
        "--out", tmp_path / "cli")
    audit = c6.audit(C6_INPUTS, **options)
    audit.write(tmp_path / "py", csv=True)
    assert_same_folder(tmp_path / "cli", tmp_path / "py", FILES + ["roots.csv"])
    on_disk = json.loads((tmp_path / "cli" / "summary.json").read_text())
    assert audit.summary == on_disk
    assert audit.total == on_disk["total"]
    assert audit.layers == on_disk["layers"]
    assert audit.samples == 100 == len(audit)
    lines = (tmp_path / "cli" / "records.jsonl").read_text().splitlines()
    assert audit.records == [json.loads(line) for line in lines]


def test_an_array_goes_into_the_folder_as_its_inputs(c6, c6_inputs, cli, tmp_path):
    audit = c6.audit(c6_inputs[:40], explain=0)
    assert audit.summary["inputs"]["path"] == "<array>"
    audit.write(tmp_path / "py")
    written = tmp_path / "py" / "inputs.npy"
    np.testing.assert_array_equal(np.load(written), c6_inputs[:40])
    run = json.loads((tmp_path / "py" / "run.json").read_text())
    assert run["inputs"]["path"] == str(written)
    cli("audit", "--model", C6_MODEL, "--inputs", written, "--explain", "0", "--quiet",
        "--out", tmp_path / "cli")
    assert_same_folder(tmp_path / "cli", tmp_path / "py")
    # The folder is a finished run the command line knows.
    done = cli("audit", "--resume", tmp_path / "py", "--quiet")
    assert "40 samples" in done.stdout


def test_targets_per_input_go_into_the_folder(c6, cli, tmp_path):
    targets = np.arange(100) % 2
    audit = c6.audit(C6_INPUTS, targets=targets)
    audit.write(tmp_path / "py")
    written = tmp_path / "py" / "targets.npy"
    np.testing.assert_array_equal(np.load(written), targets)
    cli("audit", "--model", C6_MODEL, "--inputs", C6_INPUTS, "--targets", written, "--quiet",
        "--out", tmp_path / "cli")
    assert_same_folder(tmp_path / "cli", tmp_path / "py")
    assert [r["explained"] for r in audit.records] == list(targets)


def test_per_root_rows_are_the_csv_rows(c6, tmp_path):
    audit = c6.audit(C6_INPUTS, explain=0)
    audit.write(tmp_path / "py", csv=True)
    with open(tmp_path / "py" / "roots.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    roots = audit.roots
    assert len(roots) == len(rows) == 100 * (10 + 10 + 2)

    def text(v):
        if v is None:
            return ""
        if isinstance(v, bool):
            return str(v).lower()
        return repr(v) if isinstance(v, float) else str(v)

    for got, want in zip(roots, rows):
        assert list(got) == list(want)
        for key in want:
            if key in ("relevance", "margin", "domain_value") and want[key]:
                assert got[key] == float(want[key]), key
            else:
                assert text(got[key]) == want[key], key
    counted = sum(1 for r in roots if r["has_root"] and r["region"] == "outside")
    assert counted == audit.total["roots_outside"]


def test_to_pandas_holds_the_rows(c6):
    pd = pytest.importorskip("pandas", reason="pandas is not installed")
    audit = c6.audit(C6_INPUTS, explain=0)
    frame = audit.to_pandas()
    assert len(frame) == len(audit.roots)
    assert list(frame.columns) == list(audit.roots[0])
    assert int(frame["has_root"].sum()) == audit.total["roots"]
    outside = frame[frame["region"] == "outside"]
    assert len(outside) == audit.total["roots_outside"]
    per_layer = outside.groupby("layer").size().to_dict()
    for layer in audit.layers:
        assert per_layer.get(layer["layer"], 0) == layer["roots_outside"]
    assert frame["valid"].dtype == pd.BooleanDtype()


def test_write_refuses_a_finished_run_and_leaves_it(c6, tmp_path):
    first = c6.audit(C6_INPUTS, explain=0)
    first.write(tmp_path / "run")
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    other = c6.audit(C6_INPUTS, explain=1)
    with pytest.raises(dtdcert.InvalidInputError, match="finished"):
        other.write(tmp_path / "run")
    assert before == {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    other.write(tmp_path / "run", force=True)
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == other.summary


def test_a_write_that_fails_leaves_nothing(c6, tmp_path):
    audit = c6.audit(C6_INPUTS, explain=0)
    with pytest.raises(dtdcert.DtdcertError):
        audit.write(tmp_path / "missing" / "run")
    assert list(tmp_path.iterdir()) == []


def test_certified_roots_are_checked_certificates(c6, c6_inputs, cli, tmp_path):
    audit = c6.audit(c6_inputs[:6], explain=0, certify="nearest")
    certificates = audit.certificates
    assert certificates
    outside = sum(layer["roots_outside"] + layer["roots_out_of_domain"]
                  for layer in audit.layers)
    assert outside > 0
    for name, cert in certificates.items():
        assert name.startswith("certificates/")
        assert cert.model_fingerprint == c6.fingerprint
        assert dtdcert.check_certificate(c6, cert)
    audit.write(tmp_path / "py")
    for name in certificates:
        assert (tmp_path / "py" / name).is_file()
    done = cli("check-cert", "--model", C6_MODEL,
               *sorted((tmp_path / "py" / "certificates").iterdir()))
    assert done.stdout.count(": accepted") == len(certificates)


def test_a_sample_of_roots_per_layer_is_drawn_from_its_seed(c6):
    every = c6.audit(C6_INPUTS, explain=0)
    assert "root_sample" not in every.summary or every.summary["root_sample"] is None
    drawn = [c6.audit(C6_INPUTS, explain=0, roots_per_layer=2, seed=s) for s in (1, 1, 2)]
    sample = drawn[0].summary["root_sample"]
    assert sample["roots_per_layer"] == 2 and sample["seed"] == 1
    # At most 2 roots judged per layer and input; the same seed draws the same roots.
    for layer in drawn[0].layers:
        assert layer["roots"] <= 2 * drawn[0].samples
    assert drawn[0].records == drawn[1].records
    assert drawn[0].records != drawn[2].records
    assert drawn[0].total["roots"] < every.total["roots"]


@pytest.mark.parametrize("options, words", [
    ({"roots_per_layer": 0}, "roots_per_layer=0"),
    ({"roots_per_layer": 1.5}, "roots_per_layer=1.5"),
    ({"roots_per_layer": True}, "roots_per_layer=True"),
    ({"roots_per_layer": 2, "seed": -1}, "seed=-1"),
    ({"roots_per_layer": 2, "seed": 2**64}, "seed=18446744073709551616"),
    ({"roots_per_layer": 2, "seed": "7"}, "seed='7'"),
    ({"seed": 3}, "give roots_per_layer=K"),
])
def test_a_bad_sample_of_roots_is_refused(c6, options, words):
    with pytest.raises(dtdcert.InvalidInputError, match=words.replace(".", r"\.")):
        c6.audit(C6_INPUTS, **options)


@pytest.mark.parametrize("fixture", valid_fixtures(), ids=lambda f: f["file"])
def test_every_onnx_fixture_audits_as_on_the_command_line(cli, tmp_path, fixture):
    model = ONNX / fixture["file"]
    inputs = ONNX / fixture["inputs"]
    done = cli("audit", "--model", model, "--inputs", inputs, "--csv", "--quiet", "--out",
               tmp_path / "cli", check=False)
    if done.returncode != 0:
        with pytest.raises(dtdcert.DtdcertError) as raised:
            dtdcert.load(model).audit(inputs)
        assert str(raised.value) == cli_error(done)
        return
    dtdcert.load(model).audit(inputs).write(tmp_path / "py", csv=True)
    assert_same_folder(tmp_path / "cli", tmp_path / "py", FILES + ["roots.csv"])
