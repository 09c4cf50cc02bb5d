#!/usr/bin/env bash
# Relevances per second of Captum and Zennit on the networks of benches/torch_relevance.rs
# (scripts/bench_lrp_reference.py in the pinned reference environment; see scripts/pyref.sh).
#
#   scripts/bench_lrp_reference.sh [THREADS]     (default 2)
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/pyref.sh" bench_lrp_reference.py "$@"
