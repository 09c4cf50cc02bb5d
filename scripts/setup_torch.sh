#!/usr/bin/env bash
# Installs the libtorch that the `torch` feature builds against (tch 0.24.0 ↔ torch 2.11.0) from
# the PyPI wheel, into a virtual environment outside the clone, and prints the LIBTORCH folder.
#
#   scripts/setup_torch.sh            installs (or reuses) ~/.cache/dtdcert/torch-2.11.0
#   export LIBTORCH="$(scripts/setup_torch.sh)"
#
# DTDCERT_TORCH_DIR overrides the folder. The wheel is a CUDA build; only libtorch's CPU part
# is used on a machine without a GPU, which needs two small NVIDIA libraries besides torch
# (installed with --no-deps, so Python's `import torch` does not work in this environment).
# About 540 MB to download and 1.3 GB on disk; a second run finds it and downloads nothing.
set -euo pipefail

version=2.11.0
dir="${DTDCERT_TORCH_DIR:-$HOME/.cache/dtdcert/torch-$version}"
python="${PYTHON:-python3}"

purelib() {
    "$dir/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'
}

if [ -x "$dir/bin/python" ] && [ -f "$(purelib)/torch/lib/libtorch_cpu.so" ] \
    && [ -f "$dir/.complete-$version" ]; then
    echo "$(purelib)/torch"
    exit 0
fi

echo "installing torch==$version (libtorch for tch 0.24.0) into $dir" >&2
rm -rf "$dir"
"$python" -m venv "$dir" >&2
"$dir/bin/pip" install --quiet --no-cache-dir --no-deps \
    "torch==$version" nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85 >&2
test -f "$(purelib)/torch/lib/libtorch_cpu.so"
test -f "$(purelib)/torch/include/torch/all.h" || test -d "$(purelib)/torch/include/torch"
touch "$dir/.complete-$version"
echo "$(purelib)/torch"
