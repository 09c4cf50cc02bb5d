#!/usr/bin/env bash
# The GPU programme in one command, for a CUDA machine with Python torch 2.11.0 and the bundle
# of scripts/build_gpu_bundle.sh (carried with the working tree):
#
#   scripts/gpu_run.sh [--cpu] [--tiny] [--bundle DIR] [--budget SECONDS] OUT
#
# Steps, each writing its results under OUT and OUT/NAME.step.json (status ok, failed,
# timed-out or skipped, exit code, seconds, reason); a step that fails does not stop the next:
#   parity         the torch backend on the device against the exact engine (OUT/parity.json)
#   throughput     relevances per second of the torch backend (OUT/throughput.json)
#   references     Zennit's and Captum's on the same device (OUT/references.json)
#   generate       Sort-of-CLEVR: 9,800 training images, 250 held out (5,000 questions)
#   train          up to 20 epochs, until the held-out accuracy has not risen for 3 epochs or
#                  the time left is needed by the later steps (OUT/model/: rn.json,
#                  rn.safetensors, training.json)
#   eval           the held-out accuracy per question type and kind (OUT/eval.json)
#   sanity         relnet sanity on 1,000 held-out questions (OUT/sanity/)
#   roots          relnet roots on 100 held-out questions, 16 roots a layer (OUT/roots/; the
#                  exact engine, on the machine's CPUs)
# OUT/summary.json lists the steps. --budget (default 540 s) is the whole programme's time:
# training stops early and later steps are skipped (with a line) rather than overrun it.
# --cpu runs on the CPU; --tiny shrinks every step (CI runs `--cpu --tiny` in under two
# minutes). libtorch comes from LIBTORCH when set, else from python3's torch package.
set -uo pipefail

usage="usage: scripts/gpu_run.sh [--cpu] [--tiny] [--bundle DIR] [--budget SECONDS] OUT"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cpu=0 tiny=0 bundle="$root/target/gpu-bundle" budget=540 out=
while [ $# -gt 0 ]; do
    case "$1" in
        --cpu) cpu=1; shift ;;
        --tiny) tiny=1; shift ;;
        --bundle) bundle="${2:?--bundle needs a folder}"; shift 2 ;;
        --budget) budget="${2:?--budget needs seconds}"; shift 2 ;;
        -*) echo "error: unknown option $1 ($usage)" >&2; exit 2 ;;
        *) [ -z "$out" ] || { echo "error: one OUT folder, not also $1 ($usage)" >&2; exit 2; }
           out="$1"; shift ;;
    esac
done
fail() { echo "error: $*" >&2; exit 2; }
[ -n "$out" ] || fail "no OUT folder ($usage)"
[[ "$budget" =~ ^[0-9]+$ ]] && [ "$budget" -gt 0 ] || fail "--budget $budget: expected whole seconds above 0"
for b in dtdcert gpu_parity torch_relevance; do
    [ -x "$bundle/bin/$b" ] || fail "$bundle/bin/$b: no GPU bundle there (build it with scripts/build_gpu_bundle.sh)"
done
[ ! -e "$out/summary.json" ] || fail "$out holds a finished run (summary.json); name another folder"
python="${PYTHON:-python3}"

# libtorch at run time: LIBTORCH, or the torch package of the machine's python3.
torch="${LIBTORCH:-$("$python" -c 'import torch, os; print(os.path.dirname(torch.__file__))' 2>/dev/null)}"
[ -n "$torch" ] && [ -d "$torch/lib" ] || fail "no libtorch: LIBTORCH is not set and $python cannot import torch"
export LD_LIBRARY_PATH="$torch/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
dtdcert="$bundle/bin/dtdcert"

device=cuda
[ "$cpu" = 1 ] && device=cpu
mkdir -p "$out" || fail "$out: cannot create the folder"
out="$(cd "$out" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$root"
if [ "$device" = cuda ]; then
    probe="$("$dtdcert" explain --model examples/c6/model.onnx --inputs examples/c6/inputs.npy \
        --backend torch --device cuda --out "$work/probe.npy" 2>&1 >/dev/null)" \
        || { probe="$(tail -n 1 <<<"$probe")"
             fail "no CUDA device here (${probe#error: }); --cpu runs the programme on the CPU"; }
fi

if [ "$tiny" = 1 ]; then
    train_images=12 test_images=4 max_epochs=1 sanity_samples=4 root_samples=1 roots=2
else
    train_images=9800 test_images=250 max_epochs=20 sanity_samples=1000 root_samples=100 roots=16
fi
patience=3
started=$(date +%s)
left() { echo $((budget - ($(date +%s) - started))); }
steps=()

# step NAME CAP CMD...: runs CMD (output in OUT/NAME.log) for at most CAP seconds, or the time
# left if that is less, and records the outcome.
step() {
    local name="$1" cap="$2"
    shift 2
    local t0 rc status reason=""
    local time_left
    time_left=$(left)
    [ "$time_left" -lt "$cap" ] && cap=$time_left
    t0=$(date +%s)
    if [ "$cap" -lt 5 ]; then
        status=skipped rc=null reason="$time_left s of the budget left"
        echo "[$name] skipped: $reason"
    else
        echo "[$name] started (at most $cap s)"
        timeout "$cap" "$@" >"$out/$name.log" 2>&1
        rc=$?
        case $rc in
            0) status=ok ;;
            124) status=timed-out reason="stopped after $cap s" ;;
            *) status=failed reason="exit code $rc; see $name.log" ;;
        esac
        echo "[$name] $status in $(($(date +%s) - t0)) s${reason:+ ($reason)}"
    fi
    printf '{"step": "%s", "status": "%s", "exit_code": %s, "seconds": %s, "reason": "%s"}\n' \
        "$name" "$status" "$rc" "$(($(date +%s) - t0))" "$reason" >"$out/$name.step.json"
    steps+=("$name")
    [ "$status" = ok ]
}

# skip NAME REASON: records a step that cannot run.
skip() {
    echo "[$1] skipped: $2"
    printf '{"step": "%s", "status": "skipped", "exit_code": null, "seconds": 0, "reason": "%s"}\n' \
        "$1" "$2" >"$out/$1.step.json"
    steps+=("$1")
}

tiny_flag=()
[ "$tiny" = 1 ] && tiny_flag=(--tiny)

# 1. Parity with the exact engine on the shipped fixtures.
step parity 120 "$bundle/bin/gpu_parity" --device "$device" "${tiny_flag[@]}" "$out/parity.json"

# 2. Relevances per second: the torch backend (the device's rows; the CPU's with --cpu), then
#    Zennit and Captum on the same device.
if [ "$device" = cuda ]; then
    step throughput 90 "$bundle/bin/torch_relevance" --bench cuda --skip-cpu "${tiny_flag[@]}" \
        --json "$out/throughput.json"
else
    step throughput 90 "$bundle/bin/torch_relevance" --bench "${tiny_flag[@]}" \
        --json "$out/throughput.json"
fi
site="$work/site"
if ! "$python" -c 'import torch' 2>/dev/null; then
    skip references "$python cannot import torch"
elif ! "$python" -m pip install -q --no-index --no-deps --no-compile --target "$site" \
        "$bundle"/wheels/*.whl >"$out/references.log" 2>&1; then
    skip references "the bundle's Zennit and Captum wheels do not install (references.log)"
else
    step references 90 env PYTHONPATH="$site" "$python" scripts/bench_lrp_reference.py \
        "$(nproc)" --devices "$device" "${tiny_flag[@]}" --json "$out/references.json"
fi

# 3. The Sort-of-CLEVR relation network: data, training, accuracy, sanity check, roots.
data="$work/soc-train" held="$work/soc-test" model="$work/rn"
step generate 60 bash -c "'$dtdcert' relnet generate --out '$data' --images $train_images --seed 1 -q \
    && '$dtdcert' relnet generate --out '$held' --images $test_images --seed 2 -q"
generated=$?

# The time the steps after training keep for themselves.
reserve=0
[ "$tiny" = 0 ] && reserve=200
epoch_summary() {
    "$python" - "$model/training.json" <<'EOF'
import json, sys
epochs = json.load(open(sys.argv[1]))["epochs"]
accuracies = [e["eval"]["overall"] for e in epochs]
best = max(range(len(accuracies)), key=accuracies.__getitem__)
# epochs done, seconds of the last, epochs since the best held-out accuracy
print(len(epochs), int(epochs[-1]["seconds"]) + 1, len(epochs) - 1 - best)
EOF
}
train() {
    local epochs=0 seconds=0 stale=0 common=(--data "$data" --eval "$held" --device "$device" -q)
    "$dtdcert" relnet train "${common[@]}" --epochs 1 --out "$model" || return 1
    read -r epochs seconds stale < <(epoch_summary) || return 1
    while [ "$epochs" -lt "$max_epochs" ] && [ "$stale" -lt "$patience" ]; do
        if [ $(($(left) - reserve)) -lt $((seconds + seconds / 5 + 5)) ]; then
            echo "stopped after epoch $epochs: the next one (about $seconds s) would not fit"
            return 0
        fi
        "$dtdcert" relnet train "${common[@]}" --epochs $((epochs + 1)) --resume "$model" || return 1
        read -r epochs seconds stale < <(epoch_summary) || return 1
    done
    echo "stopped after epoch $epochs ($stale epochs without a better held-out accuracy)"
}
if [ "$generated" = 0 ]; then
    # The loop runs under `timeout` as a shell of its own, with its functions and settings.
    step train $(($(left) - reserve)) bash -c "$(declare -p data held model device max_epochs \
        patience reserve dtdcert python budget started); $(declare -f left epoch_summary train); train"
    trained=$?
else
    skip train "no data (generate failed)"
    trained=1
fi

if [ "$trained" = 0 ] || [ -f "$model/rn.json" ]; then
    mkdir -p "$out/model"
    cp "$model/rn.json" "$model/rn.safetensors" "$model/training.json" "$out/model/" 2>/dev/null
    step eval 60 bash -c "'$dtdcert' relnet eval --model '$model' --data '$held' --device $device \
        > '$out/eval.json'"
    step sanity 120 "$dtdcert" relnet sanity --model "$model" --data "$held" \
        --samples "$sanity_samples" --device "$device" --out "$out/sanity" -q
    step roots 120 "$dtdcert" relnet roots --model "$model/rn.json" --data "$held" \
        --samples "$root_samples" --roots "$roots" --out "$out/roots" -q
else
    for s in eval sanity roots; do skip "$s" "no trained model"; done
fi

# The summary: every step's outcome, the device and the budget.
{
    printf '{\n  "device": "%s", "tiny": %s, "budget_seconds": %s, "seconds": %s,\n' \
        "$device" "$([ "$tiny" = 1 ] && echo true || echo false)" "$budget" \
        "$(($(date +%s) - started))"
    printf '  "bundle": %s,\n  "steps": [\n' "$(cat "$bundle/bundle.json" 2>/dev/null || echo null)"
    sep=""
    for s in "${steps[@]}"; do
        printf '%s    %s' "$sep" "$(cat "$out/$s.step.json")"
        sep=$',\n'
    done
    printf '\n  ]\n}\n'
} >"$out/summary.json.part" && mv "$out/summary.json.part" "$out/summary.json"
failed=0 skipped=0
for s in "${steps[@]}"; do
    grep -q '"status": "skipped"' "$out/$s.step.json" && skipped=$((skipped + 1))
    grep -q '"status": "\(failed\|timed-out\)"' "$out/$s.step.json" && failed=$((failed + 1))
done
echo "$out/summary.json: ${#steps[@]} steps, $failed failed or timed out, $skipped skipped," \
    "$(($(date +%s) - started)) s"
# Exit code 1 when a step failed or timed out; skipped steps say why in their files.
[ "$failed" = 0 ]
