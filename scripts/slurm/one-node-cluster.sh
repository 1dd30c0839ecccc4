#!/usr/bin/env bash
# A private one-node Slurm cluster in a folder, for trying the sweep scripts
# and for the test suite (crates/trainer/tests/slurm.rs); as root, with
# Debian's slurm-wlm and munge (`cargo xtask setup --slurm` installs them).
#
#   scripts/slurm/one-node-cluster.sh start DIR   # prints: export SLURM_CONF=DIR/slurm.conf
#   scripts/slurm/one-node-cluster.sh stop DIR    # stops its three daemons, waits until they are gone
#
# Everything lives in DIR: munged with its own key and socket, slurmctld and
# slurmd with a generated slurm.conf (proctrack/linuxproc, task/none,
# select/cons_tres, accounting off, the machine's CPUs and 80% of its
# memory), their logs, state and pid files. Nothing in /etc or /run is used.
# Ports: SLURM_PORT_BASE (default 16817) for slurmctld, the next for slurmd.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
command=$1
dir=$(realpath -m "$2")

need() {
    for program in "$@"; do
        command -v "$program" >/dev/null || {
            echo "$0: $program is missing: install Debian's slurm-wlm and munge (as root: cargo xtask setup --slurm)" >&2
            exit 1
        }
    done
}

start() {
    need munged slurmctld slurmd sinfo
    [[ $(id -u) -eq 0 ]] || { echo "$0: run as root (slurmd and munged's private key need it)" >&2; exit 1; }
    mkdir -p "$dir/munge" "$dir/ctld" "$dir/d"
    # munged runs as user munge and checks every folder on the way to its socket.
    chmod 755 "$dir"
    head -c 1024 /dev/urandom > "$dir/munge/munge.key"
    chown -R munge:munge "$dir/munge"
    chmod 711 "$dir/munge"
    chmod 400 "$dir/munge/munge.key"
    su -s /bin/sh munge -c "munged --socket=$dir/munge/munge.socket --key-file=$dir/munge/munge.key \
        --pid-file=$dir/munge/munged.pid --log-file=$dir/munge/munged.log --seed-file=$dir/munge/munged.seed"
    local base=${SLURM_PORT_BASE:-16817}
    local cpus memory
    cpus=$(nproc)
    memory=$(awk '/MemTotal/ { print int($2 / 1024 * 0.8) }' /proc/meminfo)
    cat > "$dir/slurm.conf" <<CONF
ClusterName=private
SlurmctldHost=localhost
SlurmctldPort=$base
SlurmdPort=$((base + 1))
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmdSpoolDir=$dir/d
StateSaveLocation=$dir/ctld
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmUser=root
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
KillWait=30
NodeName=localhost CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
    export SLURM_CONF=$dir/slurm.conf
    slurmctld
    slurmd -N localhost
    for _ in $(seq 100); do
        if sinfo --noheader --states=idle --format=%N 2>/dev/null | grep -q localhost; then
            echo "export SLURM_CONF=$dir/slurm.conf"
            return 0
        fi
        sleep 0.2
    done
    echo "$0: the node did not become idle within 20 s; logs in $dir" >&2
    stop
    exit 1
}

stop() {
    local pids=()
    for file in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
        [[ -s $file ]] && pids+=("$(cat "$file")")
    done
    [[ ${#pids[@]} -gt 0 ]] || return 0
    kill "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 100); do
        local alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [[ $alive -eq 0 ]] && return 0
        sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
}

case $command in
    start) start ;;
    stop) stop ;;
    *) usage ;;
esac
