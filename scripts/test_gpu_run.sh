#!/usr/bin/env bash
# Checks scripts/gpu_run.sh on this machine's CPU at a tiny size (`--cpu --tiny`), with the
# bundle BUNDLE (scripts/build_gpu_bundle.sh), and its refusals:
#
#   scripts/test_gpu_run.sh BUNDLE
#
# - every step but `references` (which needs Python torch) ends ok, the parity comparison
#   passes, and the results each step promises are there;
# - without --cpu on a machine without CUDA, with a missing bundle, and into a finished run's
#   folder, the script stops with one `error:` line and exit code 2, and the finished run is
#   left as it was.
set -euo pipefail
bundle="${1:?usage: scripts/test_gpu_run.sh BUNDLE}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
run="$root/scripts/gpu_run.sh"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
problem() { echo "test_gpu_run: $*" >&2; exit 1; }

"$run" --cpu --tiny --bundle "$bundle" "$tmp/out" || problem "the tiny run failed"
out="$tmp/out"
for step in parity throughput generate train eval sanity roots; do
    grep -q '"status": "ok"' "$out/$step.step.json" || problem "$step: $(cat "$out/$step.step.json")"
done
grep -q '"status": "\(ok\|skipped\)"' "$out/references.step.json" || problem "references failed"
python3 - "$out" <<'PY' || problem "the results are not what the steps promise"
import json, os, sys
out = sys.argv[1]
parity = json.load(open(os.path.join(out, "parity.json")))
assert parity["passed"] and parity["cases"], "parity"
assert all(c["passed"] for c in parity["cases"] if c["checked"]), "parity cases"
assert any(c["parity"]["roots"] > 0 for c in parity["cases"]), "parity compared no root"
rows = json.load(open(os.path.join(out, "throughput.json")))["rows"]
assert rows and all(r["relevances_per_second"] > 0 for r in rows), "throughput"
training = json.load(open(os.path.join(out, "model", "training.json")))
assert len(training["epochs"]) == 1, "one epoch"
for f in ["model/rn.json", "model/rn.safetensors", "eval.json", "roots/summary.json"]:
    assert os.path.getsize(os.path.join(out, f)) > 0, f
assert "overall" in json.dumps(json.load(open(os.path.join(out, "eval.json")))), "eval"
summary = json.load(open(os.path.join(out, "summary.json")))
assert [s["step"] for s in summary["steps"]] == [
    "parity", "throughput", "references", "generate", "train", "eval", "sanity", "roots"]
PY

# refused STDERR-NEEDLE ARGS...: exit code 2, one error line containing the needle.
refused() {
    local needle="$1" code=0
    shift
    "$run" "$@" 2>"$tmp/err" >/dev/null || code=$?
    [ "$code" = 2 ] || problem "$* exited with $code, not 2"
    [ "$(wc -l <"$tmp/err")" = 1 ] && grep -q "^error: .*$needle" "$tmp/err" \
        || problem "$*: $(cat "$tmp/err")"
}
before="$(sha256sum "$out/summary.json")"
refused "finished run" --cpu --tiny --bundle "$bundle" "$out"
[ "$(sha256sum "$out/summary.json")" = "$before" ] || problem "the finished run was changed"
refused "build_gpu_bundle.sh" --cpu --bundle "$tmp/no-bundle" "$tmp/out2"
if ! nvidia-smi >/dev/null 2>&1; then
    refused "no CUDA device" --tiny --bundle "$bundle" "$tmp/out3"
fi
refused "expected whole seconds" --cpu --budget soon --bundle "$bundle" "$tmp/out4"
echo "test_gpu_run: ok"
