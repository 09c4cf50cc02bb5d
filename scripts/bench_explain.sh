#!/usr/bin/env bash
# `dtdcert explain` against Zennit 0.5.1 (PyTorch 2.11), side by side in one run on the same
# inputs and THREADS threads each: VGG-16 and ResNet-50 at 224×224 (a batch of 8, z+ and
# EpsilonPlusFlat; dtdcert's default engine in f64 and its libtorch backend in f32, Zennit in
# f64 and f32) and the 784-256-256-128-10 MLP (z+, 8,192 inputs, f64).
#
#   scripts/bench_explain.sh DIR [THREADS] [RUNS]     (defaults: 2 threads, best of 1 run)
#
# DIR: a folder of `scripts/make_cnn_conformance.sh --full DIR` (the full-size networks, their
# inputs, Zennit's references and manifest.json). Needs two release builds: the default build
# (target/release/dtdcert, `cargo build --release`) for the f64 rows, and one with `--features
# torch` for the libtorch rows, by default in target/torch (`LIBTORCH=$(scripts/setup_torch.sh)
# cargo build --release --features torch --target-dir target/torch`; DTDCERT_TORCH_BIN names
# another), so that the f64 commands do not pay for loading libtorch; and the pinned Python
# environment of scripts/pyref.sh. Writes DIR/bench-jobs/
# (the batches, the MLP and zennit.json) and prints one table; peak memory is the largest
# resident set of each dtdcert process. dtdcert's seconds are the whole command's and, from its
# --profile, the relevances' alone (Zennit's are its attribution call alone).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:?usage: scripts/bench_explain.sh DIR [THREADS] [RUNS]}"
threads="${2:-2}"
runs="${3:-1}"
bin="$root/target/release/dtdcert"
torch_bin="${DTDCERT_TORCH_BIN:-$root/target/torch/release/dtdcert}"
if [ ! -x "$bin" ]; then
    echo "error: $bin: missing; build it with cargo build --release" >&2
    exit 2
fi
if [ ! -x "$torch_bin" ] || ! "$torch_bin" explain --help | grep -q -- '--backend'; then
    echo "error: $torch_bin: missing or built without --features torch" >&2
    exit 2
fi
jobs="$(cd "$dir" && pwd)/bench-jobs"
mkdir -p "$jobs"
export RAYON_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"

echo "== Zennit (writes the batches dtdcert reads)"
"$root/scripts/pyref.sh" bench_cnn_reference.py "$(cd "$dir" && pwd)" --threads "$threads" \
    --runs "$runs" --arch vgg16 --arch resnet50 --write-jobs "$jobs" --json "$jobs/zennit.json"

# best_of NAME BIN ARGS...: the best wall time of RUNS runs of `BIN ARGS`, the seconds of its
# relevances alone in that run (`--profile`: without reading the model and the inputs, copying
# the weights to the device, or writing), and the largest resident set, appended to
# $jobs/dtdcert.tsv.
best_of() {
    local name="$1" exe="$2" best="" compute="" rss=0 t m c
    shift 2
    for _ in $(seq "$runs"); do
        /usr/bin/time -f "%e %M" -o "$jobs/time.txt" "$exe" "$@" --profile "$jobs/profile.json" \
            > /dev/null
        read -r t m < "$jobs/time.txt"
        c="$(python3 -c 'import json, sys; print(round(json.load(open(sys.argv[1]))["relevances_s"], 2))' \
            "$jobs/profile.json")"
        if [ -z "$best" ] || awk "BEGIN{exit !($t < $best)}"; then best="$t"; compute="$c"; fi
        if [ "$m" -gt "$rss" ]; then rss="$m"; fi
    done
    printf '%s\t%s\t%s\t%s\n' "$name" "$best" "$compute" "$((rss / 1024))" | tee -a "$jobs/dtdcert.tsv"
}

echo "== dtdcert ($(uptime | sed 's/.*load/load/')): command s, relevances s, peak MiB"
: > "$jobs/dtdcert.tsv"
best_of "mlp z+ f64 (8192 inputs)" "$bin" explain --model "$jobs/mlp.onnx" \
    --inputs "$jobs/mlp.inputs.npy" --rule z+ --out "$jobs/out.npy"
for arch in vgg16 resnet50; do
    for rule in zplus EpsilonPlusFlat; do
        mapfile -t args < "$jobs/$arch.$rule.args"
        common=(explain --model "$dir/$arch.onnx" --inputs "$jobs/$arch.batch.npy"
            --targets "$jobs/$arch.batch_targets.npy" "${args[@]}" --out "$jobs/out.npy")
        best_of "$arch $rule f64 (batch 8)" "$bin" "${common[@]}"
        best_of "$arch $rule f32 torch (batch 8)" "$torch_bin" "${common[@]}" --backend torch \
            --precision f32
    done
done
echo "== done ($(uptime | sed 's/.*load/load/')): seconds and MiB in $jobs/dtdcert.tsv, Zennit in $jobs/zennit.json"
