#!/usr/bin/env bash
# Seconds per batch of Zennit on VGG-16 and ResNet-50 at 224×224 (the networks and rules of
# `scripts/make_cnn_conformance.sh --full DIR`, batch 8, z+ and EpsilonPlusFlat, float64 and
# float32) and on the 784-256-256-128-10 MLP (z+, 8,192 inputs, float64), for comparison with
# `dtdcert explain` (scripts/bench_cnn_reference.py in the pinned reference environment; see
# scripts/pyref.sh).
#
#   scripts/bench_cnn_reference.sh [DIR] [--threads 2] [--runs 3] [--batch 8] [--json FILE]
#       [--arch vgg16|resnet50]... [--rule zplus|EpsilonPlusFlat]... [--dtype f64|f32]... [--no-mlp]
#
# DIR (relative to the repository root; default target/conformance_cnn_full) is a folder
# written by `scripts/make_cnn_conformance.sh --full DIR`.
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/pyref.sh" bench_cnn_reference.py "$@"
