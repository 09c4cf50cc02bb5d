#!/usr/bin/env bash
# Regenerate lp_models/: LP files of region problems exported with `dtdcert export-lp`, and
# lp_models/manifest.json with the status and objective of each as the built-in solver
# (microlp) finds them; then confirm every entry with GLPK (scripts/check_lp_models.sh).
#
# The generated networks (a random 784-256-256-128-10 MLP and a badly scaled copy of
# examples/c6) are rebuilt from fixed seeds by examples/make_lp_models.rs into a temporary
# folder. The samples and neurons below were picked with its search mode, e.g.
#   target/release/examples/make_lp_models search -- --model examples/c6/model.onnx \
#       --inputs examples/c6/inputs.npy --problem nearest-l1 --rule z --domain 0:4
# which prints the status of every neuron's problem.
#
# Needs cargo and glpsol (Debian/Ubuntu: apt-get install glpk-utils). Takes about a minute.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"

cargo build --release --quiet --bin dtdcert --example make_lp_models
target="${CARGO_TARGET_DIR:-target}"
bin="${target}/release/dtdcert"
gen="${target}/release/examples/make_lp_models"

tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT
"${gen}" models "${tmp}"

out=lp_models
mkdir -p "${out}"
rm -f "${out}"/*.lp "${out}"/manifest.json

# export NAME ARGS...: lp_models/NAME.lp from `dtdcert export-lp ARGS`.
export_lp() {
  local name="$1"
  shift
  "${bin}" export-lp "$@" -o "${out}/${name}.lp"
}

c6=(--model examples/c6/model.onnx --inputs examples/c6/inputs.npy)
scaled=(--model "${tmp}/c6-scaled.json" --inputs examples/c6/inputs.npy)
mlp=(--model "${tmp}/mlp784.json" --inputs "${tmp}/mlp784-inputs.npy")

# The 10-10-10-2 network of examples/c6, z+ unless named otherwise.
export_lp c6-s3-l1-n0-nearest-l1 "${c6[@]}" --sample 3 --layer 1 --neuron 0 --problem nearest-l1
export_lp c6-s3-l1-n0-nearest-linf "${c6[@]}" --sample 3 --layer 1 --neuron 0 --problem nearest-linf
export_lp c6-s0-l1-n6-nearest-l1 "${c6[@]}" --sample 0 --layer 1 --neuron 6 --problem nearest-l1
export_lp c6-s0-l2-n6-nearest-l1 "${c6[@]}" --sample 0 --layer 2 --neuron 6 --problem nearest-l1
export_lp c6-s0-l2-n6-nearest-linf "${c6[@]}" --sample 0 --layer 2 --neuron 6 --problem nearest-linf
# The same z-rule neuron: a valid root exists in the unbounded input space, none in [0, 4]^10.
export_lp c6-s2-l1-n9-z-exists "${c6[@]}" --rule z --sample 2 --layer 1 --neuron 9 --problem exists
export_lp c6-s2-l1-n9-z-box-exists "${c6[@]}" --rule z --domain 0:4 --sample 2 --layer 1 --neuron 9 --problem exists
export_lp c6-s2-l1-n9-z-box-nearest-l1 "${c6[@]}" --rule z --domain 0:4 --sample 2 --layer 1 --neuron 9 --problem nearest-l1
# w2 relevance exceeds what the hidden neuron can give up inside its region.
export_lp c6-s0-l2-n8-w2-nearest-linf "${c6[@]}" --rule w2 --sample 0 --layer 2 --neuron 8 --problem nearest-linf
# Degenerate: zero relevance (the hyperplane passes through the centre, optimum 0), and the
# explained output neuron, whose z+ root hyperplane is the face z3_0 = 0 of the region itself
# (for sample 1 both rows round to the same f64 right-hand side).
export_lp c6-s3-l2-n4-zero-relevance-nearest-l1 "${c6[@]}" --sample 3 --layer 2 --neuron 4 --problem nearest-l1
export_lp c6-s1-l3-n0-face-nearest-l1 "${c6[@]}" --sample 1 --layer 3 --neuron 0 --problem nearest-l1
export_lp c6-s3-l1-chebyshev-box "${c6[@]}" --domain 0:4 --sample 3 --layer 1 --problem chebyshev

# Badly scaled: examples/c6 with weights times 1e4, 1e-4, 1e4. Layer-1 problems have the same
# geometry as their c6 twins above (same optimum up to rounding) with coefficients from 1e-5
# to 1e4.
export_lp c6scaled-s0-l1-n6-nearest-l1 "${scaled[@]}" --sample 0 --layer 1 --neuron 6 --problem nearest-l1
export_lp c6scaled-s2-l1-n9-z-box-exists "${scaled[@]}" --rule z --domain 0:4 --sample 2 --layer 1 --neuron 9 --problem exists
export_lp c6scaled-s3-l1-chebyshev-box "${scaled[@]}" --domain 0:4 --sample 3 --layer 1 --problem chebyshev

# The random 784-256-256-128-10 MLP: a 784-dimensional problem (about 6 MB) and two in the
# 256-dimensional input space of layer 2.
export_lp mlp784-s0-l1-n1-nearest-l1 "${mlp[@]}" --domain 0:1 --sample 0 --layer 1 --neuron 1 --problem nearest-l1
export_lp mlp784-s0-l2-n21-w2-nearest-l1 "${mlp[@]}" --rule w2 --sample 0 --layer 2 --neuron 21 --problem nearest-l1
export_lp mlp784-s0-l2-n73-nearest-linf "${mlp[@]}" --sample 0 --layer 2 --neuron 73 --problem nearest-linf

"${gen}" manifest "${out}"
du -ch "${out}"/*.lp | tail -1
scripts/check_lp_models.sh
