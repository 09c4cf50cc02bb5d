#!/usr/bin/env bash
# Regenerates the ONNX test fixtures in tests/data/onnx/
# (scripts/make_onnx_fixtures.py in the pinned reference environment; see scripts/pyref.sh).
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/pyref.sh" make_onnx_fixtures.py "$@"
