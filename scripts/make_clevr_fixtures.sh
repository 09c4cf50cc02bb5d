#!/usr/bin/env bash
# Regenerates the CLEVR and CLEVR-XAI fixtures in tests/data/clevr/
# (scripts/make_clevr_fixtures.py in the pinned reference environment; see scripts/pyref.sh).
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/pyref.sh" make_clevr_fixtures.py "$@"
