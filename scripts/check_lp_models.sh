#!/usr/bin/env bash
# Solve every LP file listed in lp_models/manifest.json with GLPK (`glpsol --lp`) and fail
# unless its status (optimal or infeasible) and objective agree with the manifest: objectives
# within 1e-6 relative plus 1e-9 absolute (glpsol prints 10 significant digits).
#
# Needs glpsol (Debian/Ubuntu: apt-get install glpk-utils) and POSIX awk.
# Usage: scripts/check_lp_models.sh [DIR]   (default: lp_models)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-${repo_root}/lp_models}"
manifest="${dir}/manifest.json"

command -v glpsol >/dev/null || {
  echo "error: glpsol not found (apt-get install glpk-utils)" >&2
  exit 2
}
[[ -f "${manifest}" ]] || {
  echo "error: ${manifest} not found" >&2
  exit 2
}

tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT

# One line per entry: FILE STATUS OBJECTIVE (the manifest is written one field per line).
awk '
  /"file":/      { v = $0; sub(/.*"file": *"/, "", v); sub(/".*/, "", v); file = v }
  /"status":/    { v = $0; sub(/.*"status": *"/, "", v); sub(/".*/, "", v); status = v }
  /"objective":/ { v = $0; sub(/.*"objective": */, "", v); sub(/[,} ].*/, "", v); objective = v }
  /}/ { if (file != "") print file, status, objective; file = ""; status = ""; objective = "" }
' "${manifest}" > "${tmp}/entries"

[[ -s "${tmp}/entries" ]] || {
  echo "error: no entries in ${manifest}" >&2
  exit 2
}

failures=0
count=0
while read -r file status objective; do
  count=$((count + 1))
  report="${tmp}/report.txt"
  if ! glpsol --lp "${dir}/${file}" --nopresol -o "${report}" >"${tmp}/log" 2>&1; then
    echo "FAIL ${file}: glpsol failed:" >&2
    tail -5 "${tmp}/log" >&2
    failures=$((failures + 1))
    continue
  fi
  glpk_status="$(awk '/^Status:/ { $1 = ""; sub(/^ +/, ""); print; exit }' "${report}")"
  glpk_objective="$(awk '/^Objective:/ { print $4; exit }' "${report}")"
  case "${glpk_status}" in
    OPTIMAL) got=optimal ;;
    "INFEASIBLE (FINAL)") got=infeasible ;;
    *) got="${glpk_status}" ;;
  esac
  if [[ "${got}" != "${status}" ]]; then
    echo "FAIL ${file}: glpsol says ${glpk_status}, the manifest ${status}" >&2
    failures=$((failures + 1))
    continue
  fi
  if [[ "${status}" == optimal ]]; then
    if ! awk -v a="${glpk_objective}" -v b="${objective}" 'BEGIN {
        d = a - b; if (d < 0) d = -d
        m = (a < 0 ? -a : a); n = (b < 0 ? -b : b); if (n > m) m = n
        exit !(d <= 1e-9 + 1e-6 * m) }'; then
      echo "FAIL ${file}: glpsol objective ${glpk_objective}, the manifest ${objective}" >&2
      failures=$((failures + 1))
      continue
    fi
    echo "ok   ${file}: optimal, objective ${glpk_objective} (manifest ${objective})"
  else
    echo "ok   ${file}: ${status}"
  fi
done < "${tmp}/entries"

if [[ ${failures} -gt 0 ]]; then
  echo "${failures} of ${count} LP models disagree with ${manifest}" >&2
  exit 1
fi
echo "all ${count} LP models agree with glpsol"
