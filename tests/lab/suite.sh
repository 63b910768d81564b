#!/usr/bin/env bash
# Hull's end-to-end checks on a hardware-virtualization KVM, one per
# capability, with the VMM named by $1 (default hull: Hull's own VMM).
# Runs inside the KVM lab:
#
#   scripts/kvm-lab tests/lab/suite.sh [hull|qemu] [CHECK...]
#
# CHECKs name the checks to run (their functions without `t_`, e.g. `cpus`),
# besides the first (a hardware KVM) and the last (nothing left); default all.
# Prints one TAP line per check ("ok N - name" / "not ok N - name" with
# the output that shows why) and a closing "N passed, M failed" line; exits
# non-zero when a check failed. Everything runs in a network namespace and
# state directories of its own, removed at the end.
set -uo pipefail
vmm=${1:-hull}
only=" ${*:2} "
repo=$(cd "$(dirname "$0")/../.." && pwd)
export HULL_LIB_DIR=${HULL_LIB_DIR:-$repo/target/hull}
# In the lab's /var/tmp (ext4, see scripts/kvm-lab.d/init): overlayfs (the
# writable layers) cannot stack on the lab's overlaid /tmp, and on ext4
# virtiofsd runs unprivileged (idmapped mounts).
scratch=$(mktemp -d /var/tmp/hull-lab-suite-XXXXXX)
chmod 711 "$scratch" # unprivileged VMMs (QEMU) pass through to their directories
export HULL_ROOT=$scratch/root HULL_RUN_DIR=$scratch/run
netns=hull-lab-$$
ip netns add "$netns"
ip netns exec "$netns" ip link set lo up
cleanup() {
  ip netns pids "$netns" 2>/dev/null | xargs -r kill -9 2>/dev/null
  ip netns del "$netns" 2>/dev/null
  rm -rf "$scratch"
}
trap cleanup EXIT
hull_bin=$(command -v hull) || { echo "hull is not on PATH" >&2; exit 1; }
hull() { ip netns exec "$netns" "$hull_bin" "$@"; }
in_ns() { ip netns exec "$netns" "$@"; }

passed=0 failed=0 n=0
# check NAME COMMAND...: one TAP line; the command's output shows on failure.
check() {
  local name=$1; shift
  case "$only" in
    "  ") ;;
    *" ${1#t_} "*) ;;
    *) [ "$1" = t_info ] || [ "$1" = t_clean ] || return 0 ;;
  esac
  n=$((n + 1))
  local out=$scratch/check.out
  if attempt "$out" "$@"; then
    echo "ok $n - $name"; passed=$((passed + 1))
  elif [ -s "$out.stuck" ]; then
    # A stall (both lab CPUs idle, nothing moving) was seen once in ~20
    # runs of the 2-vCPU lab: what the lab was doing is shown, the check's
    # containers go, and it runs once more.
    sed 's/^/#   stalled: /' "$out.stuck"
    local c
    for c in $(hull ps -aq); do hull rm -f "$c" >/dev/null 2>&1; done
    if attempt "$out" "$@"; then
      echo "ok $n - $name # passed when retried after the stall above"; passed=$((passed + 1))
    else
      echo "not ok $n - $name"; failed=$((failed + 1))
      tail -n 25 "$out" | sed 's/^/#   /'
      [ -s "$out.stuck" ] && sed 's/^/#   /' "$out.stuck"
    fi
  else
    echo "not ok $n - $name"; failed=$((failed + 1))
    tail -n 25 "$out" | sed 's/^/#   /'
  fi
  rm -f "$out" "$out.stuck"
}
# attempt OUT COMMAND...: runs the command in the background with a
# deadline, its output in OUT; one that outlives the deadline is ended,
# after what the lab was doing is written to OUT.stuck. Succeeds when the
# command did in time.
attempt() {
  local out=$1; shift
  rm -f "$out.stuck"
  ("$@") >"$out" 2>&1 &
  local pid=$!
  (sleep "$check_timeout" && kill -0 "$pid" 2>/dev/null && {
    stuck "$pid"
    kill_tree "$pid"
  } >"$out.stuck" 2>&1) 2>/dev/null &
  local watcher=$!
  wait "$pid" 2>/dev/null
  local code=$?
  pkill -P "$watcher" sleep 2>/dev/null
  wait "$watcher" 2>/dev/null
  [ "$code" = 0 ] && ! [ -s "$out.stuck" ]
}
# A check may take this long (seconds); HULL_SUITE_CHECK_TIMEOUT changes it.
check_timeout=${HULL_SUITE_CHECK_TIMEOUT:-300}
# kill_tree PID: ends PID and every process below it.
kill_tree() {
  local child
  for child in $(cat /proc/"$1"/task/*/children 2>/dev/null); do kill_tree "$child"; done
  kill -9 "$1" 2>/dev/null
}
# stuck PID: what the lab was doing when check PID ran out of time: its
# processes (with where in the kernel they wait), each VMM thread's kernel
# stack, the sandboxes' guest consoles and the lab kernel's last words.
stuck() {
  echo "timed out after ${check_timeout}s (HULL_SUITE_CHECK_TIMEOUT); what was running:"
  ps -eo pid,ppid,stat,wchan:24,time,args | awk '$NF !~ /^\[/' | cut -c1-200
  local p t
  for p in $(pgrep -f 'hull-vmm|qemu-system|virtiofsd'); do
    for t in /proc/"$p"/task/*; do
      echo "-- thread ${t##*/} of $p ($(cut -d' ' -f3 "$t/stat" 2>/dev/null), $(cat "$t/comm" 2>/dev/null)):"
      head -n 12 "$t/stack" 2>/dev/null
    done
  done
  find "$scratch" -name console.log 2>/dev/null | while read -r log; do
    echo "-- the guest console $log ends with:"
    tail -n 40 "$log"
  done
  echo "-- the lab kernel's log ends with:"
  dmesg | tail -n 20
}
# expect WANT COMMAND...: the command's stdout (trimmed) is WANT.
expect() {
  local want=$1; shift
  local got; got=$("$@") || true
  [ "$got" = "$want" ] || { echo "wanted [$want], got [$got]"; return 1; }
}
# status WANT COMMAND...: the command exits with WANT.
status() {
  local want=$1; shift
  "$@"; local got=$?
  [ "$got" = "$want" ] || { echo "wanted exit $want, got $got"; return 1; }
}
# until_true SECONDS COMMAND...: retried until it succeeds.
until_true() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do [ $SECONDS -lt $deadline ] || return 1; sleep 0.5; done
}
state() { hull inspect -f '{{.State.Status}}' "$1"; }
run() { hull run --vmm "$vmm" "$@"; }

"$repo/target/debug/hull-testimage" "$scratch/busybox.tar" busybox:latest >/dev/null 2>&1 \
  || hull-testimage "$scratch/busybox.tar" busybox:latest >/dev/null
hull load -q -i "$scratch/busybox.tar" >/dev/null

# One function per capability: check runs each in a subshell.
logged() { hull logs "$1" 2>/dev/null | grep "$2" >/dev/null; }
lines_in() { hull exec "$1" cat "$2" | wc -l; }
# (Read whole: grep -q would end hull with SIGPIPE, which pipefail reports.)
t_info() { local out; out=$(hull info) && printf '%s\n' "$out" && grep -q "KVM: hardware" <<<"$out"; }
t_kernel() { run --rm busybox uname -r | grep -- '-hull'; }
t_stdin() { [ "$(echo through-stdin | run --rm -i busybox cat)" = through-stdin ]; }
t_tty() { run --rm -t busybox tty | grep /dev/pts/; }
t_detached() {
  run -d --name bg busybox sh -c 'echo started; exec sleep 600' >/dev/null &&
    until_true 30 logged bg started &&
    expect from-exec hull exec bg echo from-exec &&
    hull rm -f bg >/dev/null
}
t_volume() {
  mkdir -p "$scratch/vol" && echo from-host > "$scratch/vol/in" &&
    expect from-host run --rm -v "$scratch/vol:/v" busybox sh -c 'cat /v/in; echo from-guest > /v/out' &&
    expect from-guest cat "$scratch/vol/out"
}
httpd='mkdir -p /www && echo hello-from-hull > /www/index.html && exec httpd -f -p 80 -h /www'
get_host() { in_ns sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | busybox nc -w 3 $1 $2" 2>/dev/null | grep hello-from-hull >/dev/null; }
t_publish() {
  run -d --name web -p 8080:80 busybox sh -c "$httpd" >/dev/null &&
    until_true 30 get_host 127.0.0.1 8080
  local ok=$?
  hull rm -f web >/dev/null
  return $ok
}
get_peer() { run --rm --network labnet busybox sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 server 80" | grep hello-from-hull >/dev/null; }
t_network() {
  hull network create labnet >/dev/null &&
    run -d --name server --network labnet busybox sh -c "$httpd" >/dev/null &&
    until_true 60 get_peer
  local ok=$?
  hull rm -f server >/dev/null; hull network rm labnet >/dev/null
  return $ok
}
# --network container:NAME: a second container in the first's VM (a pod),
# its files mounted into the running virtiofsd, on the VM's localhost.
get_local() { run --rm --network container:podweb busybox sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 127.0.0.1 80" | grep hello-from-hull >/dev/null; }
same_vmm() { [ "$(hull inspect -f '{{.HullSandbox.VmmPid}}' podweb)" = "$(hull inspect -f '{{.HullSandbox.VmmPid}}' podside)" ]; }
t_pod() {
  run -d --name podweb --network none busybox sh -c "$httpd" >/dev/null &&
    until_true 60 get_local &&
    run -d --name podside --network container:podweb busybox sleep 600 >/dev/null && same_vmm &&
    expect ok hull exec podside echo ok
  local ok=$?
  hull rm -f podweb podside >/dev/null
  return $ok
}
t_commit() {
  run --name changed busybox sh -c 'echo committed > /made' &&
    hull commit changed lab/committed:1 >/dev/null &&
    expect committed run --rm lab/committed:1 cat /made &&
    hull rm changed >/dev/null && hull rmi lab/committed:1 >/dev/null
}
t_restart() {
  run -d --name keeper busybox sh -c 'echo line >> /kept; exec sleep 600' >/dev/null &&
    hull restart -t 1 keeper >/dev/null &&
    expect 2 lines_in keeper /kept &&
    hull rm -f keeper >/dev/null
}
exited() { [ "$(state "$1")" = exited ]; }
t_kill() { # FIELD REASON
  run -d --name victim busybox sleep 600 >/dev/null &&
    kill -9 "$(hull inspect -f "{{.HullSandbox.$1}}" victim)" &&
    until_true 30 exited victim &&
    expect "$2" hull inspect -f '{{.State.Error}}' victim &&
    hull rm victim >/dev/null &&
    expect "" hull ps -aq &&
    ! in_ns ip -o link show | grep hulltap &&
    expect "" ls "$HULL_RUN_DIR"
}
t_oom() {
  run --name hog --network none busybox sh -c 'x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done'
  local code=$?
  hull inspect -f '{{.State.OOMKilled}}' hog
  hull rm hog >/dev/null
  [ "$code" = 137 ] || { echo "exit $code"; return 1; }
}
t_pause() {
  run -d --name frozen busybox sleep 600 >/dev/null &&
    hull pause frozen >/dev/null && expect paused state frozen &&
    hull unpause frozen >/dev/null && expect ok hull exec frozen echo ok &&
    hull rm -f frozen >/dev/null
}
# (Pipes into grep read to the end: `grep -q` would end the writer with
# SIGPIPE, which pipefail reports as a failure.)
t_attach() {
  run -d --name talker busybox sh -c 'while :; do echo tick; sleep 1; done' >/dev/null || return 1
  hull attach talker >"$scratch/attach.out" 2>&1 &
  local attached=$!
  until_true 60 grep -q tick "$scratch/attach.out"
  local ok=$?
  hull rm -f talker >/dev/null
  wait "$attached" 2>/dev/null
  return $ok
}
t_memory() { # the VM is sized from -m; the container's cgroup has the limit
  expect 314572800 run --rm -m 300m --network none busybox cat /sys/fs/cgroup/memory.max
}
t_stats_top() {
  run -d --name busy --network none busybox sleep 600 >/dev/null &&
    hull stats --no-stream busy | grep busy >/dev/null &&
    hull top busy | grep 'sleep 600' >/dev/null
  local ok=$?
  hull rm -f busy >/dev/null
  return $ok
}
made_diff() { hull diff files | grep '^A /made$' >/dev/null; }
t_files() { # diff, cp and export of a running container
  run -d --name files --network none busybox sh -c 'echo inside > /made; exec sleep 600' >/dev/null &&
    until_true 60 made_diff &&
    hull cp files:/made "$scratch/made" && expect inside cat "$scratch/made" &&
    hull export files | tar -t >"$scratch/exported" && grep -qx made "$scratch/exported"
  local ok=$?
  hull rm -f files >/dev/null
  return $ok
}
restarted_twice() { [ "$(hull inspect -f '{{.RestartCount}} {{.State.Status}}' flaky)" = "2 exited" ]; }
t_restart_policy() {
  run -d --name flaky --network none --restart on-failure:2 busybox sh -c 'exit 1' >/dev/null &&
    until_true 180 restarted_twice
  local ok=$?
  hull rm -f flaky >/dev/null
  return $ok
}
t_cni() { # --network ns:PATH, as containerd's CNI plugins leave a pod's namespace
  local pod=hull-lab-pod-$$
  ip netns add "$pod" &&
    in_ns ip link add labveth type veth peer name eth0 netns "$pod" &&
    in_ns ip addr add 10.77.0.1/24 dev labveth && in_ns ip link set labveth up &&
    ip -n "$pod" addr add 10.77.0.2/24 dev eth0 && ip -n "$pod" link set eth0 up &&
    ip -n "$pod" link set lo up && ip -n "$pod" route add default via 10.77.0.1 &&
    expect 10.77.0.2 run --rm --network "ns:/run/netns/$pod" busybox sh -c \
      'ping -c 1 -W 10 10.77.0.1 >/dev/null && ip -4 -o addr show eth0 | sed "s/.*inet \([0-9.]*\).*/\1/"'
  local ok=$?
  ip netns del "$pod" 2>/dev/null
  in_ns ip link del labveth 2>/dev/null
  return $ok
}
t_cpus() { # --cpus 2: two vCPUs (the lab has two), and the cgroup's quota
  expect "2 200000 100000" run --rm --cpus 2 --network none busybox sh -c 'echo $(nproc) $(cat /sys/fs/cgroup/cpu.max)'
}
t_resize() { python3 "$repo/tests/lab/resize.py" "$hull_bin" run -it --rm --vmm "$vmm" --network none busybox sh; }
t_panic() { # a guest kernel that cannot find its init panics: reported so
  HULL_KERNEL_ARGS=rdinit=/no-such-init run --name panicky --network none busybox true 2>"$scratch/panic.err"
  local code=$?
  cat "$scratch/panic.err"
  local error; error=$(hull inspect -f '{{.State.Error}}' panicky)
  hull rm panicky >/dev/null
  [ "$code" = 125 ] && grep -q 'guest kernel panic: VFS: Unable to mount root fs' "$scratch/panic.err" &&
    grep -q 'guest kernel panic' <<<"$error"
}
# the VMM as Hull confines it: a uid of its own, no capabilities, no new
# privileges, its seccomp filters; hull-vmm also in an empty root of its own
field() { awk -v f="$2:" '$1 == f {print $2; exit}' "/proc/$1/status"; }
t_confined() {
  run -d --name jailed busybox sleep 600 >/dev/null || return 1
  local pid; pid=$(hull inspect -f '{{.HullSandbox.VmmPid}}' jailed)
  grep -E '^(Uid|Gid|CapEff|NoNewPrivs|Seccomp):' "/proc/$pid/status"
  local ok=0
  [ "$(field "$pid" Uid)" -ge $((0x70000000)) ] && [ "$(field "$pid" CapEff)" = 0000000000000000 ] &&
    [ "$(field "$pid" NoNewPrivs)" = 1 ] && [ "$(field "$pid" Seccomp)" = 2 ] || ok=1
  if [ "$vmm" = hull ]; then
    # The pid Hull knows is the warden; its one child is the VMM, pid 1 of a
    # pid namespace of its own. Both: every thread filtered, the root
    # empty, the host's mounts gone.
    local child _; read -r child _ <"/proc/$pid/task/$pid/children"
    local nspid; nspid=$(awk '$1 == "NSpid:" {print $2, $3}' "/proc/$child/status")
    echo "warden $pid, VMM $child, its NSpid: $nspid"
    [ "$nspid" = "$child 1" ] || ok=1
    [ "$(readlink "/proc/$child/ns/pid")" != "$(readlink /proc/self/ns/pid)" ] || ok=1
    local p
    for p in $pid $child; do
      [ "$(field "$p" Uid)" -ge $((0x70000000)) ] && [ "$(field "$p" CapEff)" = 0000000000000000 ] &&
        [ "$(field "$p" NoNewPrivs)" = 1 ] || { echo "privileged: $p"; ok=1; }
      for task in /proc/"$p"/task/*; do
        [ "$(awk '$1 == "Seccomp:" {print $2}' "$task/status")" = 2 ] || { echo "unfiltered: $task"; ok=1; }
      done
      local listing; listing=$(ls -A "/proc/$p/root/")
      echo "$p root: [$listing] mounts: $(wc -l <"/proc/$p/mountinfo")"
      [ -z "$listing" ] && [ "$(wc -l <"/proc/$p/mountinfo")" = 1 ] || ok=1
      [ "$(readlink "/proc/$p/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ] || ok=1
    done
  fi
  # virtiofsd: root of a user namespace of its own, unprivileged on the
  # host, filtered from its start, its server under its own filter too.
  local fs server
  fs=$(hull inspect -f '{{.HullSandbox.VirtiofsdPid}}' jailed)
  read -r server _ <"/proc/$fs/task/$fs/children"
  for p in $fs $server; do
    grep -E '^(Uid|NoNewPrivs|Seccomp):' "/proc/$p/status" | tr '\n' ' '; echo "(virtiofsd $p)"
    [ "$(field "$p" Uid)" -ge $((0x80000000)) ] && [ "$(field "$p" NoNewPrivs)" = 1 ] &&
      [ "$(field "$p" Seccomp)" = 2 ] || { echo "virtiofsd $p is privileged"; ok=1; }
  done
  hull exec jailed ping -c 1 -W 5 10.88.0.1 >/dev/null || { echo "no network"; ok=1; }
  hull pause jailed && hull unpause jailed && hull exec jailed true || { echo "pause failed"; ok=1; }
  hull rm -f jailed >/dev/null
  return $ok
}
t_clean() {
  expect "" hull ps -aq && expect "" ls "$HULL_RUN_DIR" && ! in_ns ip -o link show | grep hulltap
}

check "hardware KVM inside the lab" t_info
check "run: Hull's guest kernel on $vmm" t_kernel
check "run: the container's exit code" status 3 run --rm busybox sh -c 'exit 3'
check "run: a missing command is 127" status 127 run --rm busybox no-such-command
check "run -i: stdin reaches the container" t_stdin
check "run -t: the process has a terminal" t_tty
check "run -d, logs, exec" t_detached
check "-v: a host directory, both ways" t_volume
check "-p: a published port answers on the host side" t_publish
check "a user network: containers reach each other by name" t_network
check "--network container:NAME: two containers in one VM" t_pod
check "commit: a container's changes become an image" t_commit
check "restart keeps the container's files" t_restart
check "kill -9 of the VMM: reported, rm leaves nothing" t_kill VmmPid "the VMM exited unexpectedly"
check "kill -9 of virtiofsd: reported, rm leaves nothing" t_kill VirtiofsdPid "virtiofsd exited unexpectedly"
check "kill -9 of the monitor: reported, rm leaves nothing" t_kill MonitorPid "the container's monitor died"
check "a guest out of memory: exit 137, OOMKilled" t_oom
check "pause and unpause" t_pause
check "attach: the running container's output" t_attach
check "-m: the VM and the container's cgroup are sized from it" t_memory
check "stats and top of a running container" t_stats_top
check "diff, cp and export of a running container" t_files
check "--restart on-failure:2 restarts twice" t_restart_policy
check "--network ns:PATH (CNI mode): the guest takes the pod's address" t_cni
if [ "$(nproc)" -ge 2 ]; then
  check "--cpus 2: two vCPUs and the cgroup's quota" t_cpus
elif [ "$only" = "  " ]; then
  n=$((n + 1)) # TAP's skip: tests/tests/lab.rs runs it in a lab of two vCPUs
  echo "ok $n - --cpus 2 # SKIP the lab has one vCPU (HULL_LAB_SMP=2 runs it)"
fi
check "run -it: the container's terminal follows the window's size" t_resize
check "a guest kernel panic: exit 125, reported in State.Error" t_panic
check "the VMM and virtiofsd are confined: own uid, no capabilities, seccomp" t_confined
check "nothing is left" t_clean

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
