#!/usr/bin/env bash
# Regenerates the relation-network fixture in tests/data/relnet/
# (scripts/make_relnet_fixture.py in the pinned reference environment; see scripts/pyref.sh).
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/pyref.sh" make_relnet_fixture.py "$@"
