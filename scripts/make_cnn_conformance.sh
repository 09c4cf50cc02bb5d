#!/usr/bin/env bash
# Regenerates the CNN conformance fixtures against Zennit: the small VGG-16, ResNet-50 and
# MobileNetV2 in tests/data/conformance_cnn/ by default, or the full-size networks with
# `--full DIR` (scripts/make_cnn_conformance.py in the pinned reference environment; see
# scripts/pyref.sh).
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/pyref.sh" make_cnn_conformance.py "$@"
