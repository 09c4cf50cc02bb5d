#!/usr/bin/env bash
# Runs the Slurm example of examples/slurm/ on a single-node Slurm started here, and checks that
# the merged results equal one run over all samples.
#
# Needs root (it installs packages and runs the daemons) and Debian's registry when slurm-wlm or
# munge is missing. It installs them with apt, writes a munge key and a slurm.conf (this host's
# short name, `nproc` cores) into a state folder of its own, starts munged, slurmctld and slurmd
# in the foreground as its children, waits for the node to be idle, submits the job array and
# the dependent merge with examples/slurm/submit.sh exactly as the guide shows, waits for both,
# audits the same model and inputs in one run without Slurm, and compares the two folders
# byte for byte. The daemons are stopped by their process ids when the script exits, however it
# exits (a run killed outright leaves them to the next run, which stops them first). Nothing is written to /etc: the daemons read their configuration from the state
# folder (SLURM_CONF) and talk to munged over a socket there.
#
# Usage: scripts/slurm_test.sh
#   DTDCERT_BIN          the dtdcert binary (default: `cargo build`, then target/debug/dtdcert)
#   SLURM_TEST_DIR       the state folder (default: ${TMPDIR:-/tmp}/dtdcert-slurm-test);
#                        its work/ subfolder is emptied on every run
#   SLURM_TEST_PORT      slurmctld's port; slurmd takes the next one (default: 6817)
#   SLURM_TEST_SHARDS    the array size (default: 4)
#   SLURM_TEST_TIMEOUT   seconds to wait for the node, and again for the jobs (default: 120)
# Exits 0 when the merged folder equals the single run's, 1 on any failure.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="${SLURM_TEST_DIR:-${TMPDIR:-/tmp}/dtdcert-slurm-test}"
port="${SLURM_TEST_PORT:-6817}"
shards="${SLURM_TEST_SHARDS:-4}"
timeout="${SLURM_TEST_TIMEOUT:-120}"
model="${repo_root}/examples/c6/model.onnx"
inputs="${repo_root}/examples/c6/inputs.npy"
started=$(date +%s)

fail() {
  echo "slurm test: error: $*" >&2
  exit 1
}
say() {
  echo "slurm test [$(($(date +%s) - started))s]: $*"
}

[[ "$(id -u)" = 0 ]] || fail "must run as root (it installs packages and starts the Slurm daemons)"

# --- Packages -------------------------------------------------------------------------------
if ! [[ -x /usr/sbin/slurmctld && -x /usr/sbin/slurmd && -x /usr/sbin/munged ]] ||
  ! command -v sbatch >/dev/null; then
  say "installing slurm-wlm and munge with apt"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || fail "apt-get update failed"
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null ||
    fail "apt-get install slurm-wlm munge failed"
fi
id munge >/dev/null 2>&1 || fail "the munge package did not create the user munge"

# --- The binary -----------------------------------------------------------------------------
if [[ -n "${DTDCERT_BIN:-}" ]]; then
  bin="$DTDCERT_BIN"
else
  say "building dtdcert (cargo build)"
  (cd "$repo_root" && cargo build --quiet) || fail "cargo build failed"
  bin="${CARGO_TARGET_DIR:-${repo_root}/target}/debug/dtdcert"
fi
[[ -x "$bin" ]] || fail "no dtdcert binary at $bin"
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

# --- Daemons: started as children, stopped by their process ids -----------------------------
conf="$state/slurm.conf"
pids=()
names=()

# stop_pid NAME PID: SIGTERM, then SIGKILL after 10 s (slurmstepd ignores SIGTERM).
stop_pid() {
  kill -TERM "$2" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 "$2" 2>/dev/null || return 0
    sleep 0.2
  done
  echo "slurm test: $1 (pid $2) still runs 10 s after SIGTERM; sending SIGKILL" >&2
  kill -KILL "$2" 2>/dev/null || true
}

# The processes that slurmd started for this state folder's jobs (slurmstepd, job scripts,
# dtdcert): those with SLURM_CONF=$conf in their environment, this script's own aside.
processes_of_our_jobs() {
  local pid
  for pid in $(grep -lszxF "SLURM_CONF=$conf" /proc/[0-9]*/environ | cut -d/ -f3); do
    [[ "$pid" = "$$" ]] && continue
    # When called from this script, only slurmstepd: the others are its own commands.
    if [[ "${1:-}" = stepd ]] && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" != slurmstepd ]]; then
      continue
    fi
    echo "$pid"
  done
}

stop_daemons() {
  local i pid
  # Jobs first, while the controller and slurmd can still end them cleanly.
  if ((${#pids[@]} == 3)) && kill -0 "${pids[1]}" 2>/dev/null &&
    [[ -n "$(squeue -h -o %i 2>/dev/null)" ]]; then
    scancel --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 50); do
      [[ -z "$(squeue -h -o %i 2>/dev/null)" ]] && break
      sleep 0.2
    done
  fi
  # Last started first: slurmd, slurmctld, munged.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[i]}
    stop_pid "${names[i]}" "$pid"
    wait "$pid" 2>/dev/null || true
    rm -f "$state/run/${names[i]}.pid"
    # A job step that outlived slurmd would report to the next run's controller.
    if [[ "${names[i]}" = slurmd ]]; then
      for pid in $(processes_of_our_jobs stepd); do
        stop_pid slurmstepd "$pid"
      done
    fi
  done
  pids=()
  names=()
}
trap stop_daemons EXIT
trap 'exit 1' INT TERM

# A run killed outright (SIGKILL) cannot stop what it started: the daemons by the process ids
# in the state folder (where they still run from it), then the rest of its jobs.
for name in slurmd slurmctld munged; do
  file="$state/run/$name.pid"
  [[ -f "$file" ]] || continue
  pid=$(cat "$file")
  if [[ "$pid" =~ ^[0-9]+$ ]] && grep -qF "$state" "/proc/$pid/cmdline" 2>/dev/null; then
    say "stopping $name (pid $pid) left by an earlier run"
    stop_pid "$name" "$pid"
  fi
  rm -f "$file"
done
for pid in $(processes_of_our_jobs); do
  say "stopping $(cat "/proc/$pid/comm" 2>/dev/null) (pid $pid) left by an earlier run"
  stop_pid "process of a job" "$pid"
done

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
for p in "$port" "$((port + 1))"; do
  port_in_use "$p" && fail "port $p is in use (another Slurm on this machine?); set SLURM_TEST_PORT"
done

# started NAME PID: records a daemon and its pid file (for the clean-up of a killed run).
started() {
  names+=("$1")
  pids+=("$2")
  echo "$2" >"$state/run/$1.pid"
}

# --- munge: a key and a socket of its own ---------------------------------------------------
rm -rf "$state/munge" "$state/spool" "$state/work"
mkdir -p "$state/munge" "$state/run" "$state/log" "$state/spool/ctld" "$state/spool/d" "$state/work"
chmod 755 "$state"
chown munge:munge "$state/munge"
chmod 755 "$state/munge" # clients reach the socket through it
dd if=/dev/urandom of="$state/munge/munge.key" bs=1024 count=1 status=none
chown munge:munge "$state/munge/munge.key"
chmod 400 "$state/munge/munge.key"
socket="$state/munge/munge.socket"
setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground \
  --key-file="$state/munge/munge.key" --socket="$socket" \
  --pid-file="$state/munge/munged.pid" --seed-file="$state/munge/munged.seed" \
  --log-file="$state/munge/munged.log" >"$state/log/munged.out" 2>&1 &
started munged $!
for _ in $(seq 50); do
  [[ -S "$socket" ]] && break
  kill -0 "${pids[-1]}" 2>/dev/null || fail "munged exited at start; see $state/munge/munged.log"
  sleep 0.1
done
munge -n -S "$socket" | unmunge -S "$socket" >/dev/null ||
  fail "munge does not work (munge -n | unmunge); see $state/munge/munged.log"

# --- slurm.conf -----------------------------------------------------------------------------
host=$(hostname -s)
cpus=$(nproc)
export SLURM_CONF="$conf"
cat >"$SLURM_CONF" <<EOF
ClusterName=dtdcert-test
SlurmctldHost=${host}
SlurmctldPort=${port}
SlurmdPort=$((port + 1))
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${socket}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
DependencyParameters=kill_invalid_depend
StateSaveLocation=${state}/spool/ctld
SlurmdSpoolDir=${state}/spool/d
SlurmctldPidFile=${state}/spool/slurmctld.pid
SlurmdPidFile=${state}/spool/slurmd.pid
SlurmctldLogFile=${state}/log/slurmctld.log
SlurmdLogFile=${state}/log/slurmd.log
NodeName=${host} CPUs=${cpus} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
EOF

say "starting munged, slurmctld and slurmd (node ${host}, ${cpus} cores, port ${port})"
# -c: no state from an earlier run (job ids, queued jobs).
/usr/sbin/slurmctld -D -c -f "$SLURM_CONF" >"$state/log/slurmctld.out" 2>&1 &
started slurmctld $!
/usr/sbin/slurmd -D -f "$SLURM_CONF" -N "$host" >"$state/log/slurmd.out" 2>&1 &
started slurmd $!

deadline=$(($(date +%s) + timeout))
until [[ "$(sinfo -h -n "$host" -o %T 2>/dev/null)" = idle ]]; do
  for i in 1 2; do
    kill -0 "${pids[i]}" 2>/dev/null ||
      fail "${names[i]} exited at start; see $state/log/${names[i]}.log and .out"
  done
  if (($(date +%s) > deadline)); then
    fail "node ${host} not idle after ${timeout}s (sinfo: $(sinfo -h -o '%N %T' 2>&1 | head -n 1)); see $state/log/"
  fi
  sleep 0.5
done
say "node ${host} idle"

# --- The example, submitted as the guide shows ----------------------------------------------
work="$state/work"
submitted=$(cd "$work" && DTDCERT_BIN="$bin" DTDCERT_MODEL="$model" DTDCERT_INPUTS="$inputs" \
  DTDCERT_SHARDS="$shards" "$repo_root/examples/slurm/submit.sh") ||
  fail "examples/slurm/submit.sh failed: $submitted"
echo "$submitted"
array=$(sed -n 's/.*shards job \([0-9]*\).*/\1/p' <<<"$submitted")
merge=$(sed -n 's/.*merge job \([0-9]*\).*/\1/p' <<<"$submitted")
[[ -n "$array" && -n "$merge" ]] || fail "no job ids in submit.sh's output: $submitted"

deadline=$(($(date +%s) + timeout))
while [[ -n "$(squeue -h -r -j "$array,$merge" -o %i 2>/dev/null)" ]]; do
  if (($(date +%s) > deadline)); then
    squeue -r -j "$array,$merge" -o '%i %j %T %r' >&2 || true
    fail "jobs $array and $merge not finished after ${timeout}s"
  fi
  sleep 0.5
done
# The controller keeps finished jobs for MinJobAge (300 s): their final states.
states=$(scontrol -o show job "$array" | sed -n 's/.*JobId=\([0-9]*\) ArrayJobId=[0-9]* ArrayTaskId=\([0-9]*\) .* JobState=\([A-Z_]*\) .*/\2 \3/p')
[[ $(wc -l <<<"$states") = "$shards" ]] || fail "expected $shards array tasks, scontrol shows: $states"
while read -r task jobstate; do
  [[ "$jobstate" = COMPLETED ]] ||
    fail "shard task $task ended $jobstate; see $work/slurm-${array}_${task}.out"
done <<<"$states"
jobstate=$(scontrol -o show job "$merge" | sed -n 's/.* JobState=\([A-Z_]*\) .*/\1/p')
[[ "$jobstate" = COMPLETED ]] || fail "merge job $merge ended $jobstate; see $work/slurm-$merge.out"
say "$shards shard tasks and the merge completed"

# --- One run without Slurm, same settings as audit-shards.sbatch ----------------------------
"$bin" audit --model "$model" --inputs "$inputs" --rule z+ --quiet --out "$work/single" >/dev/null ||
  fail "the single run failed"
# Both folders name the same model and inputs by the same absolute paths, and no file holds a
# time, so the merged folder equals the single run's byte for byte (summary.json first).
merged="$work/audit"
[[ -f "$merged/summary.json" ]] || fail "no $merged/summary.json"
if ! cmp -s "$merged/summary.json" "$work/single/summary.json"; then
  diff "$work/single/summary.json" "$merged/summary.json" | head -n 20 >&2 || true
  fail "merged summary.json differs from the single run's"
fi
for file in "$work/single"/*; do
  name=$(basename "$file")
  cmp -s "$file" "$merged/$name" || fail "merged $name differs from the single run's"
done
[[ $(ls "$merged" | wc -l) = $(ls "$work/single" | wc -l) ]] ||
  fail "the merged folder holds other files than the single run's: $(ls "$merged")"
say "merged results equal the single run's ($(ls "$merged" | tr '\n' ' '))"

stop_daemons
say "daemons stopped; passed"
