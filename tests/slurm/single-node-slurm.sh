#!/usr/bin/env bash
# A single-node Slurm for tests, in a folder of its own (recipe:
# shared ENGINEERING-NOTES, "A single-node Slurm for tests").
#   single-node-slurm.sh start DIR   starts munged (unless one runs), slurmctld and slurmd on
#                                    127.0.0.1 with unprivileged ports; writes DIR/slurm.conf
#                                    and DIR/pids; returns when the node is idle
#   single-node-slurm.sh stop DIR    stops every daemon it started, by the pids in DIR/pids
# Needs root (CI runs as root) and Debian's slurm-wlm and munge (scripts/setup.sh).
set -euo pipefail
command=${1:?start|stop}
dir=${2:?folder}

stop_all() {
  [ -f "$dir/pids" ] || return 0
  # Slurm first, munged last.
  tac "$dir/pids" | while read -r name pid; do
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  : > "$dir/pids"
}

# Waits for a daemon's pid file and records the pid, so that stop finds it.
record_pid() {
  local name=$1 file=$2
  for _ in $(seq 100); do [ -s "$file" ] && break; sleep 0.1; done
  [ -s "$file" ] || { echo "single-node-slurm: $name wrote no pid file $file" >&2; return 1; }
  echo "$name $(cat "$file")" >> "$dir/pids"
}

# A start that fails stops what it started and shows the daemons' logs.
failed_start() {
  echo "single-node-slurm: could not start Slurm in $dir" >&2
  for log in "$dir"/log/*.log; do [ -f "$log" ] && { echo "== $log" >&2; tail -n 20 "$log" >&2; }; done
  stop_all
  exit 1
}

case "$command" in
start)
  trap failed_start ERR
  mkdir -p "$dir/state" "$dir/spool" "$dir/log"
  : > "$dir/pids"
  host=$(hostname -s)
  # Ports from the folder's name hash, so that two runs at once do not meet.
  base=$((20000 + $(printf '%s' "$dir" | cksum | cut -d' ' -f1) % 20000))
  cat > "$dir/slurm.conf" <<CONF
ClusterName=fusionflowtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$base
SlurmdPort=$((base + 1))
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
SlurmUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  # A munged that already runs (its pid file names a live process) is used, and left running.
  if ! { [ -s /run/munge/munged.pid ] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; }; then
    mkdir -p /run/munge && chown munge: /run/munge
    chown -R munge: /etc/munge /var/lib/munge /var/log/munge
    rm -f /run/munge/munged.pid
    runuser -u munge -- munged
    record_pid munged /run/munge/munged.pid
  fi
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld
  record_pid slurmctld "$dir/slurmctld.pid"
  slurmd
  record_pid slurmd "$dir/slurmd.pid"
  for _ in $(seq 150); do
    if sinfo -h -o %t 2>/dev/null | grep -q '^idle'; then exit 0; fi
    sleep 0.2
  done
  echo "single-node-slurm: the node did not become idle" >&2
  false
  ;;
stop)
  stop_all
  ;;
esac
