#!/usr/bin/env bash
# Runs a Python fixture script of scripts/ in the reference environment:
#
#   scripts/pyref.sh SCRIPT.py [ARGS...]
#
# Creates (or reuses) a virtual environment outside the repository, installs the
# pinned packages from scripts/requirements-fixtures.txt and runs scripts/SCRIPT.py
# with the remaining arguments.
#
# Environment:
#   DTDCERT_PYREF_VENV  venv location (default: ~/.cache/dtdcert/pyref)
#   PYTHON              interpreter used to create the venv (default: python3, >= 3.10)
set -euo pipefail

if [[ $# -lt 1 || "$1" != *.py ]]; then
  echo "usage: scripts/pyref.sh SCRIPT.py [ARGS...]" >&2
  exit 2
fi
script="$1"
shift

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "${script_dir}/.." && pwd)"
requirements="${script_dir}/requirements-fixtures.txt"
venv="${DTDCERT_PYREF_VENV:-${HOME}/.cache/dtdcert/pyref}"
python="${PYTHON:-python3}"

case "${venv}" in
  "${repo_root}"|"${repo_root}"/*)
    echo "error: the venv (${venv}) must live outside the repository" >&2
    exit 1 ;;
esac

# Exit status 0 iff every `name==version` line of the requirements file is
# installed in the venv with exactly that version.
pins_satisfied() {
  "${venv}/bin/python" - "${requirements}" <<'PY'
import re, sys
from importlib import metadata
ok = True
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, want = re.split(r"\s*==\s*", line)
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        have = None
    # torch reports e.g. "2.11.0+cu130"; the local label does not matter here.
    if have is None or have.split("+", 1)[0] != want:
        print(f"  {name}: want {want}, have {have}", file=sys.stderr)
        ok = False
sys.exit(0 if ok else 1)
PY
}

if [[ ! -x "${venv}/bin/python" ]]; then
  "${python}" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || {
    echo "error: ${python} must be Python >= 3.10" >&2; exit 1; }
  echo "Creating virtual environment ${venv}"
  mkdir -p "$(dirname "${venv}")"
  "${python}" -m venv "${venv}"
fi

if pins_satisfied 2>/dev/null; then
  echo "Reusing ${venv} (pinned versions already installed)"
else
  echo "Installing pinned packages into ${venv} (torch is a ~2.7 GB download)"
  pins_satisfied || true
  "${venv}/bin/python" -m pip install --disable-pip-version-check --no-cache-dir \
    -r "${requirements}"
  pins_satisfied
fi

cd "${repo_root}"
exec "${venv}/bin/python" "${script_dir}/${script}" "$@"
