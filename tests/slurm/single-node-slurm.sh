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
case "$command" in
start)
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
  if ! pgrep -x munged > /dev/null; then
    mkdir -p /run/munge && chown munge: /run/munge
    chown -R munge: /etc/munge /var/lib/munge /var/log/munge
    runuser -u munge -- munged
    for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
    echo "munged $(cat /run/munge/munged.pid)" >> "$dir/pids"
  fi
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld
  slurmd
  for _ in $(seq 100); do [ -s "$dir/slurmctld.pid" ] && [ -s "$dir/slurmd.pid" ] && break; sleep 0.1; done
  echo "slurmctld $(cat "$dir/slurmctld.pid")" >> "$dir/pids"
  echo "slurmd $(cat "$dir/slurmd.pid")" >> "$dir/pids"
  for _ in $(seq 150); do
    if sinfo -h -o %t 2>/dev/null | grep -q '^idle'; then exit 0; fi
    sleep 0.2
  done
  echo "single-node-slurm: the node did not become idle; see $dir/log" >&2
  exit 1
  ;;
stop)
  [ -f "$dir/pids" ] || exit 0
  # Slurm first, munged last.
  tac "$dir/pids" | while read -r name pid; do
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  : > "$dir/pids"
  ;;
esac
