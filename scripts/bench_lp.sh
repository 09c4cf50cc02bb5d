#!/usr/bin/env bash
# Times certified LP answers (benches/lp_certify.rs) and prints one table: the microlp backend
# of the default build, then the HiGHS backend when a build with `--features highs` succeeds.
#
#   scripts/bench_lp.sh [BENCH OPTIONS...]
#
# Options go to the bench, e.g. `--only c6`, `--neurons 10`, `--linf-neurons 0`,
# `--time-limit 10`, `--mlp-domain free` (see the header of benches/lp_certify.rs).
# HIGHS=0 skips the HiGHS run; HIGHS=1 makes a failed HiGHS build an error (default: try it,
# and report a failed build without failing). The HiGHS build needs cmake, clang and
# libclang-dev and takes several minutes the first time; HIGHS_TARGET_DIR gives it a target
# directory of its own (default: cargo's).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

highs="${HIGHS:-auto}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//')"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

cargo bench --bench lp_certify -- --backend microlp "$@" >"$out/microlp.txt"

highs_note=""
if [ "$highs" != 0 ]; then
    highs_cargo=(cargo)
    if [ -n "${HIGHS_TARGET_DIR:-}" ]; then
        highs_cargo=(env CARGO_TARGET_DIR="$HIGHS_TARGET_DIR" cargo)
    fi
    if "${highs_cargo[@]}" bench --features highs --bench lp_certify --no-run >"$out/highs-build.txt" 2>&1; then
        "${highs_cargo[@]}" bench --features highs --bench lp_certify -- --backend highs "$@" >"$out/highs.txt"
    elif [ "$highs" = 1 ]; then
        tail -n 30 "$out/highs-build.txt" >&2
        echo "error: the HiGHS build failed" >&2
        exit 1
    else
        highs_note="HiGHS: build failed, not timed (last lines of the build log below)"
    fi
fi

# The first run's title and header, then every table row of every run, then what else the
# runs printed (the reasons of Unknown answers).
grep -m1 -v '^|' "$out/microlp.txt"
grep -m2 '^|' "$out/microlp.txt"
for run in microlp highs; do
    if [ -f "$out/$run.txt" ]; then
        grep '^|' "$out/$run.txt" | grep -v '^| workload\|^|---' || true
    fi
done
for run in microlp highs; do
    if [ -f "$out/$run.txt" ]; then
        tail -n +2 "$out/$run.txt" | grep -v '^|' | grep -v '^$' || true
    fi
done
if [ -n "$highs_note" ]; then
    echo
    echo "$highs_note"
    tail -n 15 "$out/highs-build.txt"
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
