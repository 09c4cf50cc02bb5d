#!/usr/bin/env bash
# Regenerates the Captum/Zennit conformance fixtures in tests/data/conformance/
# (scripts/make_conformance_fixtures.py in the pinned reference environment; see scripts/pyref.sh).
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/pyref.sh" make_conformance_fixtures.py "$@"
