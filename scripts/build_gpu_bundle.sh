#!/usr/bin/env bash
# Builds what the GPU run (scripts/gpu_run.sh) needs on a CUDA machine that has Python torch
# 2.11.0 but no Rust toolchain and no package registry, into one folder:
#
#   scripts/build_gpu_bundle.sh [--profile release|dev] [OUT]     (OUT: target/gpu-bundle)
#
#   OUT/bin/dtdcert           the command line, `--features cuda`
#   OUT/bin/gpu_parity        examples/gpu_parity.rs: the torch backend against the exact engine
#   OUT/bin/torch_relevance   benches/torch_relevance.rs: relevances per second
#   OUT/wheels/               Zennit 0.5.1 and Captum 0.9.0 (pure Python, no dependencies
#                             fetched: the GPU machine's Python has theirs)
#   OUT/bundle.json           the commit, the profile and the pinned versions
#
# The binaries are built against the pinned libtorch (scripts/setup_torch.sh) and carry no
# libtorch: at run time they find libtorch in LD_LIBRARY_PATH, which gpu_run.sh points at the
# torch package of the machine's python3, and `--device cuda` loads libtorch's CUDA library
# from there. The folder must stay under 64 MiB to travel with the working tree.
set -euo pipefail

profile=release
out=
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile="${2:?--profile needs release or dev}"; shift 2 ;;
        -*) echo "error: unknown option $1 (usage: scripts/build_gpu_bundle.sh [--profile release|dev] [OUT])" >&2; exit 2 ;;
        *) out="$1"; shift ;;
    esac
done
case "$profile" in
    release|dev) ;;
    *) echo "error: --profile $profile: expected release or dev" >&2; exit 2 ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${out:-$root/target/gpu-bundle}"
cd "$root"
export LIBTORCH="${LIBTORCH:-$(scripts/setup_torch.sh)}"
export LIBTORCH_BYPASS_VERSION_CHECK=1

# The three programs, and where cargo put them.
built="$(mktemp)"
trap 'rm -f "$built"' EXIT
cargo build --profile "$profile" --features cuda --bin dtdcert --example gpu_parity \
    --bench torch_relevance --message-format=json-render-diagnostics >"$built"
executables="$(python3 - "$built" <<'EOF'
import json, sys
found = {}
for line in open(sys.argv[1]):
    if not line.startswith("{"):
        continue
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        found[m["target"]["name"]] = m["executable"]
for name in ("dtdcert", "gpu_parity", "torch_relevance"):
    print(found[name])
EOF
)"

rm -rf "$out"
mkdir -p "$out/bin" "$out/wheels"
for exe in $executables; do
    name="$(basename "$exe")"
    name="${name%%-*}"
    cp "$exe" "$out/bin/$name"
    strip "$out/bin/$name"
done

# pip from python3, or from a virtual environment made for it where python3 has none.
pip=(python3 -m pip)
if ! python3 -m pip --version >/dev/null 2>&1; then
    python3 -m venv "$built.venv"
    trap 'rm -rf "$built" "$built.venv"' EXIT
    pip=("$built.venv/bin/pip")
fi
"${pip[@]}" download --disable-pip-version-check --quiet --no-deps --only-binary=:all: \
    -d "$out/wheels" zennit==0.5.1 captum==0.9.0

cat >"$out/bundle.json" <<EOF
{
  "commit": "$(git rev-parse HEAD 2>/dev/null || echo unknown)",
  "profile": "$profile",
  "features": ["cuda"],
  "libtorch": "2.11.0 (tch 0.24.0)",
  "wheels": ["zennit==0.5.1", "captum==0.9.0"]
}
EOF

bytes="$(du -sb "$out" | cut -f1)"
if [ "$bytes" -ge $((64 * 1024 * 1024)) ]; then
    echo "error: $out holds $bytes bytes, more than the 64 MiB that travels" >&2
    exit 1
fi
echo "$out: $((bytes / 1024 / 1024)) MiB ($(ls "$out/bin" | tr '\n' ' '))"
