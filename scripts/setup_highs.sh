#!/usr/bin/env bash
# Installs what building the `highs` feature needs (Debian packages cmake, clang, libclang-dev)
# and builds dtdcert with HiGHS:
#
#   scripts/setup_highs.sh            # then: target/release/dtdcert ... --lp-backend highs
#
# Runs apt-get as root (or through sudo when that exists). The first HiGHS build takes several
# minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
for cmd in cmake clang; do
    command -v "$cmd" >/dev/null || missing+=("$cmd")
done
if [ ! -e /usr/lib/llvm-14/lib/libclang.so ] && ! ldconfig -p 2>/dev/null | grep -q libclang; then
    missing+=(libclang-dev)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    sudo_cmd=()
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
    "${sudo_cmd[@]}" apt-get update
    "${sudo_cmd[@]}" apt-get install -y cmake clang libclang-dev
fi
cargo build --release --features highs
