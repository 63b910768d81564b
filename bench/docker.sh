#!/usr/bin/env bash
# Docker with Hull as its runtime, beside runc, in the same run: Debian's
# dockerd 20.10 (its own data root, exec root, socket and managed
# containerd, in a network namespace of this script's) with `--add-runtime
# hull=target/release/hull-oci`; the two runtimes alternate.
#   docker_run_true_ms_hull / docker_run_true_ms_runc   docker run --rm busybox true
#   docker_run_true_ratio                               hull / runc
#   docker_exec_true_ms_hull / docker_exec_true_ms_runc docker exec of `true` in a running one
# Usage: bench/docker.sh [RUNS]   (default 10; medians)
{
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-10}
docker=/usr/bin/docker
for tool in "$docker" /usr/sbin/dockerd nsenter; do
  command -v "$tool" >/dev/null || { echo "bench/docker.sh: $tool is missing (scripts/setup.sh installs docker.io)" >&2; exit 1; }
done
"$repo/scripts/setup.sh" release >/dev/null
median() { python3 -c 'import sys,statistics; v=[float(x) for x in sys.stdin.read().split()]; print(f"{statistics.median(v):.1f}")'; }
ms() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); }

scratch=$(mktemp -d /tmp/hull-bench-docker-XXXXXX)
chmod 711 "$scratch"
netns="hull-bench-docker-$$"
dockerd_pid=
cleanup() {
  set +e
  if [ -n "$dockerd_pid" ]; then
    "$docker" rm -f $("$docker" ps -aq) >/dev/null 2>&1
    kill "$dockerd_pid"
    for _ in $(seq 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$dockerd_pid" 2>/dev/null
  fi
  # What dockerd left: shims (their command lines name our directory), then
  # whatever still runs in the namespace, then its mounts.
  for p in $(grep -l "$scratch" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
    [ "$p" != "$$" ] && kill -9 "$p" 2>/dev/null
  done
  ip netns pids "$netns" 2>/dev/null | xargs -r kill -9
  awk -v d="$scratch" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l
  ip netns del "$netns" 2>/dev/null
  rm -rf "$scratch"
}
trap cleanup EXIT
ip netns add "$netns"
ip netns exec "$netns" ip link set lo up
export DOCKER_HOST="unix://$scratch/docker.sock" DOCKER_CONFIG="$scratch/client"
HULL_ROOT="$scratch/hull-root" HULL_RUN_DIR="$scratch/hull-run" HULL_LIB_DIR="$repo/target/hull" \
  nsenter --net="/run/netns/$netns" -- /usr/sbin/dockerd \
  --data-root="$scratch/data" --exec-root="$scratch/exec" --pidfile="$scratch/dockerd.pid" \
  --host="$DOCKER_HOST" --add-runtime="hull=$repo/target/release/hull-oci" --log-level=warn \
  >"$scratch/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 300); do "$docker" info >/dev/null 2>&1 && break; sleep 0.2; done
"$docker" info >/dev/null 2>&1 || { cat "$scratch/dockerd.log" >&2; echo "bench/docker.sh: dockerd did not come up" >&2; exit 1; }
"$repo/target/release/hull-testimage" "$scratch/busybox.tar" busybox:latest >/dev/null
"$docker" load -q -i "$scratch/busybox.tar" >/dev/null

# Each runtime warmed once, then alternated, and checked: the guest's kernel
# is Hull's, the container's is the host's.
[[ $("$docker" run --rm --runtime hull busybox uname -r) == *-hull ]] || { echo "bench/docker.sh: hull did not run Hull's kernel" >&2; exit 1; }
[[ $("$docker" run --rm --runtime runc busybox uname -r) == "$(uname -r)" ]] || { echo "bench/docker.sh: runc did not run" >&2; exit 1; }
declare -A run_ms exec_ms
for _ in $(seq "$runs"); do
  for runtime in hull runc; do
    run_ms[$runtime]+=" $(ms "$docker" run --rm --runtime "$runtime" busybox true)"
  done
done
for runtime in hull runc; do
  "$docker" run -d --runtime "$runtime" --name "idle-$runtime" busybox sleep 3600 >/dev/null
done
for _ in $(seq "$runs"); do
  for runtime in hull runc; do
    exec_ms[$runtime]+=" $(ms "$docker" exec "idle-$runtime" true)"
  done
done
hull_run=$(median <<<"${run_ms[hull]}") runc_run=$(median <<<"${run_ms[runc]}")
echo "docker_run_true_ms_hull: $hull_run"
echo "docker_run_true_ms_runc: $runc_run"
echo "docker_run_true_ratio: $(python3 -c "print(f'{$hull_run / $runc_run:.2f}')")"
echo "docker_exec_true_ms_hull: $(median <<<"${exec_ms[hull]}")"
echo "docker_exec_true_ms_runc: $(median <<<"${exec_ms[runc]}")"
echo "runs: $runs"
exit 0
}
