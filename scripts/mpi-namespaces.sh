#!/usr/bin/env bash
# One `metarl train` job across two "hosts": two network namespaces on this machine joined by
# a veth pair (10.77.0.1 and 10.77.0.2 exist only inside them), one MPI rank in each, talking
# TCP over that link alone; then the same run in one process without mpirun, and a byte
# comparison of the two final checkpoints. The namespaces, the link and the launcher are made
# here and removed on exit. Needs root, iproute2 and Debian's openmpi-bin.
#
#   bash scripts/mpi-namespaces.sh METARL WORKDIR ARGS...
# where ARGS are `metarl train` arguments without --out (they must end on a checkpoint, e.g.
# --checkpoint-every 1). Prints "identical" and exits 0 when the checkpoints are the same.
set -euo pipefail
metarl=$(realpath "$1"); work=$(realpath -m "$2"); shift 2
(( EUID == 0 )) || { echo "error: network namespaces need root" >&2; exit 1; }
command -v ip >/dev/null || { echo "error: ip not found: apt-get install iproute2" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "error: mpirun not found: apt-get install openmpi-bin" >&2; exit 1; }
mkdir -p "$work"
a=metarl-$$-a; b=metarl-$$-b
cleanup() { ip netns del "$a" 2>/dev/null || true; ip netns del "$b" 2>/dev/null || true; }
trap cleanup EXIT

# The two hosts and the cable between them.
ip netns add "$a"; ip netns add "$b"
ip link add "mrl$$a" netns "$a" type veth peer name "mrl$$b" netns "$b"
ip -n "$a" addr add 10.77.0.1/24 dev "mrl$$a"; ip -n "$b" addr add 10.77.0.2/24 dev "mrl$$b"
for ns in "$a" "$b"; do ip -n "$ns" link set lo up; done
ip -n "$a" link set "mrl$$a" up; ip -n "$b" link set "mrl$$b" up
ip -n "$b" -brief address show "mrl$$b" | grep -q 10.77.0.2 || { echo "error: the veth link did not come up" >&2; exit 1; }

# mpirun starts its daemon on a host through a remote-shell agent (ssh on a real cluster);
# here the agent enters that host's namespace, and logs where it started what.
cat >"$work/agent" <<AGENT
#!/bin/sh
while [ "\${1#-}" != "\$1" ]; do shift; done
host=\$1; shift
case \$host in
    10.77.0.1) ns=$a ;;
    10.77.0.2) ns=$b ;;
    *) echo "agent: unknown host \$host" >&2; exit 1 ;;
esac
echo "started on \$host in namespace \$ns" >>"$work/agent.log"
exec ip netns exec \$ns sh -c "\$*"
AGENT
chmod +x "$work/agent"
printf '10.77.0.1 slots=1\n10.77.0.2 slots=1\n' >"$work/hostfile"
rm -rf "$work/two-hosts" "$work/one-process" "$work/agent.log"

ip netns exec "$a" timeout 900 mpirun --allow-run-as-root -np 2 --hostfile "$work/hostfile" --map-by node \
    --mca plm_rsh_agent "$work/agent" --mca btl tcp,self \
    --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 \
    "$metarl" train "$@" --out "$work/two-hosts" 2>&1 | tee "$work/two-hosts.log"
"$metarl" train "$@" --out "$work/one-process" >"$work/one-process.log" 2>&1
cat "$work/agent.log"
last=$(ls "$work/one-process/checkpoints" | sort | tail -1)
cmp "$work/two-hosts/checkpoints/$last" "$work/one-process/checkpoints/$last"
echo "identical: $last ($(stat -c %s "$work/one-process/checkpoints/$last") bytes) from two namespaces over TCP and from one process"
