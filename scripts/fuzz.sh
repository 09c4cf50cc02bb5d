#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ one after another, each for a fixed time, single job.
#
#   scripts/fuzz.sh [TARGET|all] [SECONDS]      (defaults: all, 60)
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`); set
# FUZZ_TOOLCHAIN to use another toolchain than `nightly`. The committed seeds in
# fuzz/seeds/TARGET are copied into the working corpus fuzz/corpus/TARGET (ignored by git)
# before each run; fuzz/dicts/TARGET.dict, when present, is passed as the libFuzzer dictionary.
# Extra libFuzzer flags can be given in FUZZ_FLAGS. FUZZ_ONE_BUILD=1 builds root_verdict with
# the others (under AddressSanitizer) instead of in a build of its own: for short smoke runs,
# where a second full build costs more than the slower fuzzing. Each run's log is written to
# fuzz/artifacts/TARGET.log, and a crash input to fuzz/artifacts/TARGET/.
#
# Prints, per target, the seconds, the executions (libFuzzer's final
# `stat::number_of_executed_units`), the coverage of its last status line (`cov:` edges,
# `ft:` features, `corp:` inputs in the corpus) and whether it finished clean; exits 1 when any
# target crashed, 2 on bad usage.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

toolchain="${FUZZ_TOOLCHAIN:-nightly}"
mapfile -t all < <(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^dtdcert-fuzz$')

which="${1:-all}"
seconds="${2:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "error: SECONDS must be a positive whole number, got '$seconds'" >&2
    exit 2
fi
if [ "$which" = all ]; then
    targets=("${all[@]}")
elif printf '%s\n' "${all[@]}" | grep -qx -- "$which"; then
    targets=("$which")
else
    echo "error: unknown target '$which'; expected all or one of: ${all[*]}" >&2
    exit 2
fi

# The loaders run under AddressSanitizer (cargo-fuzz's default; the .npy loader maps files with
# `unsafe`). root_verdict is safe numeric code spending its time in big-rational arithmetic,
# which AddressSanitizer slows down 2.5 times, so it runs without, built in its own folder.
build_flags() {
    if [ "${FUZZ_ONE_BUILD:-0}" = 1 ]; then
        echo ""
        return
    fi
    case "$1" in
        root_verdict) echo "--sanitizer none --target-dir fuzz/target/sanitizer-none" ;;
        *) echo "" ;;
    esac
}

# Build everything first, so that the time limits measure fuzzing only.
for t in "${targets[@]}"; do
    # shellcheck disable=SC2046 # the flags are split on purpose
    cargo "+$toolchain" fuzz build $(build_flags "$t") "$t"
done

mkdir -p fuzz/artifacts
summary=()
failed=0
for t in "${targets[@]}"; do
    corpus="fuzz/corpus/$t"
    mkdir -p "$corpus"
    if [ -d "fuzz/seeds/$t" ]; then
        cp -n fuzz/seeds/"$t"/* "$corpus"/ 2>/dev/null || true
    fi
    flags=(-max_total_time="$seconds" -print_final_stats=1 -timeout=60)
    if [ -f "fuzz/dicts/$t.dict" ]; then
        flags+=(-dict="fuzz/dicts/$t.dict")
    fi
    # shellcheck disable=SC2206 # FUZZ_FLAGS is split on purpose
    flags+=(${FUZZ_FLAGS:-})
    log="fuzz/artifacts/$t.log"
    echo "== $t: ${seconds}s, corpus $corpus ($(find "$corpus" -type f | wc -l) files), log $log"
    start=$(date +%s)
    status=clean
    # shellcheck disable=SC2046
    if ! cargo "+$toolchain" fuzz run $(build_flags "$t") "$t" "$corpus" -- "${flags[@]}" >"$log" 2>&1; then
        status="CRASH (see $log and fuzz/artifacts/$t/)"
        failed=1
    fi
    elapsed=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    # libFuzzer's last status line: "#N DONE cov: C ft: F corp: K/SIZE ...".
    last=$(grep -E '^#[0-9]+[[:space:]]+(DONE|NEW|REDUCE|pulse|INITED)' "$log" | tail -n 1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
    line=$(printf '%-18s %6ss %14s %7s %7s %7s  %s' "$t" "$elapsed" "${execs:-?}" "${cov:-?}" \
        "${ft:-?}" "${corp:-?}" "$status")
    echo "$line"
    summary+=("$line")
done

echo
echo "target              seconds     executions     cov      ft  corpus"
printf '%s\n' "${summary[@]}"
exit "$failed"
