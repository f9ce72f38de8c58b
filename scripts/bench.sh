#!/usr/bin/env bash
# Benchmarks CRT against its baselines, side by side in one run, and writes
# the results to BENCHMARKS.md at the repository root (overwriting it):
#
#   1. cost of a traced getppid() in a crt container (with its return value
#      where the shim's BPF exit program runs) vs the kernel floor of
#      seccomp user notification (notify-floor notify-sync) and vs strace
#   2. cost of an untraced getppid() in a traced container vs a crt container
#      without tracing
#   3. start-to-exit time of `ctr run --rm IMAGE ID sh -c true`: runc.v2 vs
#      crt untraced vs crt traced (%file)
#   4. resident memory (VmRSS) of the shim for one running container
#   5. crtd: ingest rate beside the tracer's fastest rate, history query
#      latency over 10 million events, and crtd's memory (scripts/bench-crtd.sh)
#   6. debug clones: how long the source stays frozen for writable layers of
#      1 MB, 100 MB and 1 GB, beside pause-copy-resume (scripts/bench-debug.sh)
#   7. web UI: the map's render time for 500 containers beside 50, and the
#      trace view's frame times while 1 000 events/s stream in over 100 000
#      lines beside the same view idle (scripts/bench-ui.sh: Node.js, chromium)
#   8. pods through CRI, as a kubelet drives them: start-to-ready of a pod on
#      the runtime handlers crt (untraced and with crt.dev/trace) beside runc,
#      and the shim's memory (RSS, PSS) per pod of three containers
#      (scripts/bench-cri.sh: POD_RUNS, POD_MEM_RUNS, ... in its header)
#   9. the cost the BPF exit program adds to an untraced process elsewhere on
#      the node: a getppid loop on the host while one (and four) traced crt
#      containers run vs while none does
#  10. strace parity: the share of calls of real programs that crt renders as
#      strace does, return values included, and the top mismatches
#      (scripts/bench-parity.sh)
#
# Every figure is the median of several runs; the variants are interleaved
# round by round (in a rotating order) so drift on a noisy machine hits all
# of them equally. Ratios are ratios of those medians.
#
#   sudo ./scripts/bench.sh                  (needs scripts/setup.sh done)
#
# Environment (defaults in brackets):
#   RUNS [5]            rounds of the syscall loops (1 warm-up round extra: WARMUP [1])
#   START_RUNS [15]     rounds of start-to-exit runs (START_WARMUP [2] extra)
#   MEM_RUNS [3]        rounds of shim memory readings
#   N_TRACED [200000]   getppid calls per traced run (crt, notify-floor)
#   N_STRACE [30000]    getppid calls per strace run (strace is much slower per call)
#   N_UNTRACED [5000000] getppid calls per untraced run
#   RUN_TIMEOUT [120]   seconds before one container run is given up
#   BENCH_OUT [BENCHMARKS.md at the repo root]
#   NOTIFY_FLOOR_SRC [/work/shared/bench/notify-floor.c]
#
# Exits 0 when every measurement was taken, even if a target is missed (it is
# a report); non-zero only when a measurement could not be taken.
set -euo pipefail
export LC_ALL=C

repo=$(cd "$(dirname "$0")/.." && pwd)
ns=crt-bench
image=localhost/crt-test:latest
image_tar=$repo/target/crt-image/image.tar

RUNS=${RUNS:-5}
WARMUP=${WARMUP:-1}
START_RUNS=${START_RUNS:-15}
START_WARMUP=${START_WARMUP:-2}
MEM_RUNS=${MEM_RUNS:-3}
N_TRACED=${N_TRACED:-200000}
N_STRACE=${N_STRACE:-30000}
N_UNTRACED=${N_UNTRACED:-5000000}
RUN_TIMEOUT=${RUN_TIMEOUT:-120}
BENCH_OUT=${BENCH_OUT:-$repo/BENCHMARKS.md}
NOTIFY_FLOOR_SRC=${NOTIFY_FLOOR_SRC:-/work/shared/bench/notify-floor.c}

log() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

for v in RUNS WARMUP START_RUNS START_WARMUP MEM_RUNS N_TRACED N_STRACE N_UNTRACED RUN_TIMEOUT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number (got '${!v}')"
done
for v in RUNS START_RUNS MEM_RUNS N_TRACED N_STRACE N_UNTRACED RUN_TIMEOUT; do
  [ "${!v}" -gt 0 ] || die "$v must be at least 1"
done

# --- helpers -------------------------------------------------------------------
# median, minimum, maximum, ratio, met, fmt1, fmt0
# shellcheck source=scripts/bench-lib.sh
. "$repo/scripts/bench-lib.sh"
# the "ns/call" figure of a line "<name> <ns> ns/call ..." in file $2
parse_ns() {
  awk -v w="$1" '$1 == w && $3 == "ns/call" { v = $2; found = 1 } END { if (!found) exit 1; print v }' "$2"
}

# --- preconditions -------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "run as root (it starts containers through containerd)"
for tool in ctr runc cc strace pgrep timeout awk sort; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (run scripts/setup.sh first)"
done
ctr version >/dev/null 2>&1 || die "containerd is not reachable (ctr version failed): start it, e.g. with scripts/setup.sh"
command -v containerd-shim-crt-v2 >/dev/null 2>&1 \
  || die "containerd-shim-crt-v2 is not on PATH: run scripts/setup.sh first"
# Measurement 7 (scripts/bench-ui.sh) runs last: say now if it cannot.
command -v node >/dev/null 2>&1 || die "node is not installed (the web UI benchmark needs Node.js 20.19+): run scripts/setup.sh first"
[ -x "${CRT_CHROMIUM:-/usr/bin/chromium}" ] || die "no chromium at ${CRT_CHROMIUM:-/usr/bin/chromium} (the web UI benchmark needs it): run scripts/setup.sh first"
command -v jq >/dev/null 2>&1 || die "jq is not installed (the web UI and CRI benchmarks read JSON with it): run scripts/setup.sh first"

if ! ctr -n "$ns" image ls -q | grep -qx "$image"; then
  [ -f "$image_tar" ] || die "image $image is not in namespace $ns and $image_tar is missing: run scripts/setup.sh first"
  log "importing $image into namespace $ns"
  ctr -n "$ns" image import "$image_tar" >/dev/null
  ctr -n "$ns" image ls -q | grep -qx "$image" || die "importing $image_tar did not create $image in namespace $ns"
fi

[ -f "$NOTIFY_FLOOR_SRC" ] \
  || die "$NOTIFY_FLOOR_SRC is missing: it is the kernel-floor benchmark (seccomp user notification) that crt is compared with; set NOTIFY_FLOOR_SRC to its path"

tmp=$(mktemp -d /tmp/crt-bench.XXXXXX)
prefix="crtb-$$-$RANDOM"   # every container of this run is named $prefix-...
seq_no=0

# Where the shim keeps traces (so the traces of this run can be removed).
crt_config=${CRT_CONFIG:-/etc/crt/config.toml}
state_dir=/var/lib/crt
if [ -f "$crt_config" ]; then
  sd=$(awk -F'"' '/^[[:space:]]*state_dir[[:space:]]*=/ { print $2; exit }' "$crt_config")
  [ -n "$sd" ] && state_dir=$sd
fi
trace_dir=$state_dir/traces/$ns

remove_container() { # id: kill and delete its task, then the container and its trace
  local id=$1
  ctr -n "$ns" task rm -f "$id" >/dev/null 2>&1 || true
  ctr -n "$ns" container rm "$id" >/dev/null 2>&1 || true
  case $id in "$prefix"-*) rm -rf -- "${trace_dir:?}/$id" ;; esac
}

cleanup() {
  local rc=$? id
  trap - EXIT INT TERM
  set +e
  for id in $(ctr -n "$ns" container ls -q 2>/dev/null | grep "^$prefix-"); do
    log "cleanup: removing container $id"
    remove_container "$id"
  done
  rm -rf -- "${trace_dir:?}/$prefix"-* "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

new_id() { seq_no=$((seq_no + 1)); cid="$prefix-$1-$seq_no"; }

# --- binaries --------------------------------------------------------------------
log "compiling notify-floor from $NOTIFY_FLOOR_SRC"
cc -O2 -o "$tmp/notify-floor" "$NOTIFY_FLOOR_SRC" || die "compiling $NOTIFY_FLOOR_SRC failed"
crt_loop=$repo/target/crt-image/rootfs/bin/crt-loop
if [ ! -x "$crt_loop" ]; then
  log "building a static crt-loop (target/crt-image/rootfs/bin/crt-loop is missing)"
  crt_loop=$tmp/crt-loop
  cc -O2 -static -o "$crt_loop" "$repo/scripts/image/crt-loop.c" || die "building crt-loop failed"
fi

# --- measurements ----------------------------------------------------------------
run_failed() { # rc: explain why a run failed (its stderr is in $tmp/err)
  if [ "$1" = 124 ]; then log "the run timed out after ${RUN_TIMEOUT}s (RUN_TIMEOUT)"; else log "the run exited with status $1"; fi
  cat "$tmp/err" >&2 2>/dev/null || true
}
# Each variant sets $val (ns/call, ms or kB) or fails.

ctr_loop() { # id N [ctr run options...]: crt-loop in a container, sets val
  local id=$1 n=$2; shift 2
  timeout "$RUN_TIMEOUT" ctr -n "$ns" run --rm "$@" "$image" "$id" crt-loop getppid "$n" \
    >"$tmp/out" 2>"$tmp/err" || { run_failed $?; remove_container "$id"; return 1; }
  val=$(parse_ns getppid "$tmp/out") || { cat "$tmp/out" "$tmp/err" >&2; return 1; }
}

crt_events=()   # events recorded per traced crt run (sanity check: should be N_TRACED)
crt_results=()  # per traced crt run: "yes" when its calls have return values
crt_no_results_why=""
floor_warn=""
loop_crt_traced() {
  new_id tr
  ctr_loop "$cid" "$N_TRACED" --runtime io.containerd.crt.v2 --annotation crt.dev/trace=getppid || return 1
  local ev
  ev=$(crtctl ls -n "$ns" 2>/dev/null | awk -v c="$cid" '$2 == c { print $4; exit }') || true
  crt_events+=("${ev:-?}")
  crt_results+=("$(has_results "$cid")")
  [ "${crt_results[-1]}" = yes ] || crt_no_results_why=$(results_unavailable "$cid")
  rm -rf -- "${trace_dir:?}/$cid"
}
loop_crt_filter() { new_id ft; ctr_loop "$cid" "$N_UNTRACED" --runtime io.containerd.crt.v2 --annotation crt.dev/trace=openat || return 1; rm -rf -- "${trace_dir:?}/$cid"; }
loop_crt_plain()  { new_id pl; ctr_loop "$cid" "$N_UNTRACED" --runtime io.containerd.crt.v2; }
# The same with containerd's default seccomp profile (what Kubernetes'
# RuntimeDefault gives a pod): the container has a filter either way.
loop_crt_prof_filter() { new_id pf; ctr_loop "$cid" "$N_UNTRACED" --seccomp --runtime io.containerd.crt.v2 --annotation crt.dev/trace=openat || return 1; rm -rf -- "${trace_dir:?}/$cid"; }
loop_crt_prof_plain()  { new_id pp; ctr_loop "$cid" "$N_UNTRACED" --seccomp --runtime io.containerd.crt.v2; }
floor_run() { # mode N
  timeout "$RUN_TIMEOUT" "$tmp/notify-floor" "$1" "$2" >"$tmp/out" 2>"$tmp/err" || { run_failed $?; return 1; }
  if grep -q SECCOMP_IOCTL_NOTIF_SET_FLAGS "$tmp/err"; then
    floor_warn="notify-floor could not enable SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP on this kernel ($(head -n 1 "$tmp/err")): the floor is plain notify"
  fi
  val=$(parse_ns "$1" "$tmp/out") || { cat "$tmp/out" "$tmp/err" >&2; return 1; }
}
loop_floor() { floor_run notify-sync "$N_TRACED"; }
loop_allow() { floor_run allow "$N_UNTRACED"; }
loop_none()  { floor_run none "$N_UNTRACED"; }
# 9: the same bare getppid loop on the host (notify-floor none), with no
# traced container of ours running, and while one runs (its shim has the
# BPF exit program loaded, which runs at every syscall exit on the node).
host_idle() { floor_run none "$N_UNTRACED"; }
host_busy_results=()   # per run: "yes" when every running container's trace had return values
host_traced_run() { # K: the loop while K traced crt containers run (each shim attaches its own program)
  local k=$1 j r=yes ids=() id
  for ((j = 0; j < k; j++)); do
    new_id hb; ids+=("$cid")
    timeout "$RUN_TIMEOUT" ctr -n "$ns" run -d --runtime io.containerd.crt.v2 --annotation crt.dev/trace=openat,getppid \
      "$image" "$cid" sh -c 'cat /etc/crt-test-release >/dev/null; exec sleep 600' >/dev/null 2>"$tmp/err" \
      || { run_failed $?; for id in "${ids[@]}"; do remove_container "$id"; done; return 1; }
  done
  # the loop starts once a call of each container has its result (or after 5 s each)
  for id in "${ids[@]}"; do
    for j in $(seq 50); do
      [ "$(has_results "$id")" = yes ] && break
      sleep 0.1
    done
    [ "$(has_results "$id")" = yes ] || r=no
  done
  host_busy_results+=("$r")
  floor_run none "$N_UNTRACED" || { for id in "${ids[@]}"; do remove_container "$id"; done; return 1; }
  for id in "${ids[@]}"; do remove_container "$id"; done
}
host_busy() { host_traced_run 1; }
host_busy4() { host_traced_run 4; }
# "yes" if the trace of container $1 has a syscall with a return value, else
# "no" (a call still running when the trace is read has none yet)
has_results() {
  local found
  # (grep stops at the first match: crtctl's broken pipe is no failure here)
  found=$(set +o pipefail; crtctl trace --local --json -n "$ns" "$1" 2>/dev/null | grep -m 1 -E '"ret":-?[0-9]')
  if [ -n "$found" ]; then echo yes; else echo no; fi
}
# why a trace has no return values, from its meta.json (empty when it says nothing)
results_unavailable() { jq -r '.results_unavailable // empty' "$trace_dir/$1/meta.json" 2>/dev/null || true; }
loop_strace() {
  timeout "$RUN_TIMEOUT" strace -f -qq -o /dev/null -e trace=getppid "$crt_loop" getppid "$N_STRACE" \
    >"$tmp/out" 2>"$tmp/err" || { run_failed $?; return 1; }
  val=$(parse_ns getppid "$tmp/out") || { cat "$tmp/out" "$tmp/err" >&2; return 1; }
}

start_run() { # ctr run options...: start-to-exit of sh -c true in ms, sets val
  local t0 t1
  t0=$EPOCHREALTIME
  timeout "$RUN_TIMEOUT" ctr -n "$ns" run --rm "$@" "$image" "$cid" sh -c true >/dev/null 2>"$tmp/err" \
    || { run_failed $?; remove_container "$cid"; return 1; }
  t1=$EPOCHREALTIME
  val=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", (b - a) * 1000 }')
}
start_runc()       { new_id sr; start_run --runtime io.containerd.runc.v2; }
start_crt()        { new_id sc; start_run --runtime io.containerd.crt.v2; }
start_crt_traced() { new_id st; start_run --runtime io.containerd.crt.v2 --annotation 'crt.dev/trace=%file' || return 1; rm -rf -- "${trace_dir:?}/$cid"; }

mem_run() { # shim-binary ctr-run-options...: VmRSS (kB) of the container's shim, sets val
  local shim=$1 pid; shift
  timeout "$RUN_TIMEOUT" ctr -n "$ns" run -d "$@" "$image" "$cid" \
    sh -c 'cat /etc/crt-test-release >/dev/null; sleep 300' >/dev/null 2>"$tmp/err" \
    || { run_failed $?; remove_container "$cid"; return 1; }
  sleep 1
  pid=$(pgrep -f "$shim .*-id $cid( |\$)" | head -n 1) || true
  if [ -z "$pid" ]; then
    log "no $shim process found for container $cid"; remove_container "$cid"; return 1
  fi
  val=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status") || true
  remove_container "$cid"
  [ -n "$val" ] || { log "could not read VmRSS of pid $pid"; return 1; }
}
mem_runc()       { new_id mr; mem_run containerd-shim-runc-v2 --runtime io.containerd.runc.v2; }
mem_crt()        { new_id mc; mem_run containerd-shim-crt-v2 --runtime io.containerd.crt.v2; }
mem_crt_traced() { new_id mt; mem_run containerd-shim-crt-v2 --runtime io.containerd.crt.v2 --annotation crt.dev/trace=openat || return 1; rm -rf -- "${trace_dir:?}/$cid"; }

declare -A results   # variant -> space-separated values
# rounds WARMUP RUNS variant...: runs every variant once per round, rotating the
# order each round; the first WARMUP rounds are not recorded.
rounds() {
  local warm=$1 runs=$2; shift 2
  local variants=("$@") k=${#variants[@]} r i v total=$((warm + runs))
  for ((r = 0; r < total; r++)); do
    for ((i = 0; i < k; i++)); do
      v=${variants[$(((i + r) % k))]}
      "$v" || die "measurement $v failed (round $((r + 1)) of $total)"
      if ((r >= warm)); then
        results[$v]="${results[$v]:-} $val"
        log "  round $((r - warm + 1))/$runs  $v = $val"
      else
        log "  warm-up $((r + 1))/$warm  $v = $val"
      fi
    done
  done
}
med() { local -a a; read -r -a a <<<"${results[$1]}"; median "${a[@]}"; }
lo()  { local -a a; read -r -a a <<<"${results[$1]}"; minimum "${a[@]}"; }
hi()  { local -a a; read -r -a a <<<"${results[$1]}"; maximum "${a[@]}"; }

t_begin=$EPOCHREALTIME
load_begin=$(cut -d' ' -f1-3 /proc/loadavg)
log "namespace $ns, container ids $prefix-*; RUNS=$RUNS START_RUNS=$START_RUNS MEM_RUNS=$MEM_RUNS"
log "1+2/4: syscall loops ($((WARMUP + RUNS)) rounds; N traced=$N_TRACED strace=$N_STRACE untraced=$N_UNTRACED)"
rounds "$WARMUP" "$RUNS" loop_crt_traced loop_floor loop_strace loop_none loop_allow loop_crt_filter loop_crt_plain loop_crt_prof_filter loop_crt_prof_plain
log "untraced getppid loop on the host, with and without a traced crt container running ($((WARMUP + RUNS)) rounds; N=$N_UNTRACED)"
rounds "$WARMUP" "$RUNS" host_idle host_busy host_busy4
log "3/4: start-to-exit of sh -c true ($((START_WARMUP + START_RUNS)) rounds)"
rounds "$START_WARMUP" "$START_RUNS" start_runc start_crt start_crt_traced
log "4/4: shim memory ($MEM_RUNS rounds)"
rounds 0 "$MEM_RUNS" mem_runc mem_crt mem_crt_traced
# 10. strace parity (its own script, its own section; its share goes into the table).
log "strace parity on a corpus of real programs (scripts/bench-parity.sh)"
BENCH_PARITY_OUT=$tmp/parity.md BENCH_PARITY_SHARE=$tmp/parity.share PARITY_NS=$ns "$repo/scripts/bench-parity.sh" \
  || die "scripts/bench-parity.sh failed"
read -r p_share p_equal p_total <"$tmp/parity.share" || die "scripts/bench-parity.sh wrote no share"
elapsed=$(awk -v a="$t_begin" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f\n", b - a }')
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
log "measurements done in ${elapsed}s (load average at start: $load_begin, at end: $load_end)"

# --- results -----------------------------------------------------------------------
m_crt=$(med loop_crt_traced); m_floor=$(med loop_floor); m_strace=$(med loop_strace)
m_none=$(med loop_none); m_allow=$(med loop_allow)
m_filter=$(med loop_crt_filter); m_plain=$(med loop_crt_plain)
m_pfilter=$(med loop_crt_prof_filter); m_pplain=$(med loop_crt_prof_plain)
m_s_runc=$(med start_runc); m_s_crt=$(med start_crt); m_s_tr=$(med start_crt_traced)
m_m_runc=$(med mem_runc); m_m_crt=$(med mem_crt); m_m_tr=$(med mem_crt_traced)
m_h_idle=$(med host_idle); m_h_busy=$(med host_busy); m_h_busy4=$(med host_busy4)

r1=$(ratio "$m_crt" "$m_floor")
# With return values (every traced run had them) the goal is issue 10's
# 1.3; without them (no BPF exit program) the entry-only goal 1.25.
if printf '%s\n' "${crt_results[@]}" | grep -qvx yes; then
  k1=$(met "$r1" le 1.25); t1="crt/floor ≤ 1.25"
  l1="traced getppid, no return values (\`= ?\`${crt_no_results_why:+: $crt_no_results_why}), ns/call"
else
  k1=$(met "$r1" le 1.3); t1="crt/floor ≤ 1.3"
  l1="traced getppid with its return value (BPF exit program), ns/call"
fi
r9=$(ratio "$m_h_busy" "$m_h_idle"); r9b=$(ratio "$m_h_busy4" "$m_h_idle")
if printf '%s\n' "${host_busy_results[@]}" | grep -qvx yes; then
  k9="n/a: a traced container had no return values, so no exit program ran"; k9b=$k9
else
  k9=$(met "$r9" le 1.05); k9b=$(met "$r9b" le 1.05)
fi
p_pct=$(awk -v s="$p_share" 'BEGIN { printf "%.1f\n", s * 100 }')
k10=$(met "$p_share" ge 0.98)
r2=$(ratio "$m_strace" "$m_crt");  k2=$(met "$r2" ge 5)
r3=$(ratio "$m_filter" "$m_plain"); k3=$(met "$r3" le 1.05)
r3p=$(ratio "$m_pfilter" "$m_pplain"); k3p=$(met "$r3p" le 1.05)
r3k=$(ratio "$m_allow" "$m_none")
r4=$(ratio "$m_s_crt" "$m_s_runc"); k4=$(met "$r4" le 1.05)
r5=$(ratio "$m_s_tr" "$m_s_runc");  k5=$(met "$r5" le 1.15)
r6=$(ratio "$m_m_crt" "$m_m_runc"); k6=$(met "$r6" le 0.5)
r7=$(ratio "$m_m_tr" "$m_m_runc");  k7=$(met "$r7" le 0.5)

table=$(cat <<EOF
| measurement | crt | baseline (name) | ratio | target | met? |
|---|---|---|---|---|---|
| $l1 | $(fmt1 "$m_crt") | $(fmt1 "$m_floor") (kernel floor: notify-floor notify-sync) | $r1 | $t1 | $k1 |
| traced getppid, ns/call | $(fmt1 "$m_crt") | $(fmt1 "$m_strace") (strace -f) | $r2 | strace/crt ≥ 5 | $k2 |
| untraced getppid in a traced container (trace=openat), ns/call | $(fmt1 "$m_filter") | $(fmt1 "$m_plain") (crt, no annotation, so no filter at all) | $r3 | ≤ 1.05 | $k3 |
| the same, both with containerd's default seccomp profile (\`--seccomp\`), ns/call | $(fmt1 "$m_pfilter") | $(fmt1 "$m_pplain") (crt, default profile, no annotation) | $r3p | ≤ 1.05 | $k3p |
| (kernel: any seccomp filter at all, notify-floor allow vs none) | $(fmt1 "$m_allow") | $(fmt1 "$m_none") (no filter) | $r3k | — | — |
| start-to-exit \`sh -c true\`, crt untraced, ms | $(fmt0 "$m_s_crt") | $(fmt0 "$m_s_runc") (io.containerd.runc.v2) | $r4 | ≤ 1.05 | $k4 |
| start-to-exit \`sh -c true\`, crt traced (%file), ms | $(fmt0 "$m_s_tr") | $(fmt0 "$m_s_runc") (io.containerd.runc.v2) | $r5 | ≤ 1.15 | $k5 |
| shim VmRSS, one container, crt untraced, kB | $(fmt0 "$m_m_crt") | $(fmt0 "$m_m_runc") (containerd-shim-runc-v2) | $r6 | ≤ 0.5 | $k6 |
| shim VmRSS, one container, crt traced (openat), kB | $(fmt0 "$m_m_tr") | $(fmt0 "$m_m_runc") (containerd-shim-runc-v2) | $r7 | ≤ 0.5 | $k7 |
| untraced getppid loop on the host while a traced crt container runs, ns/call | $(fmt1 "$m_h_busy") | $(fmt1 "$m_h_idle") (the same loop, no traced container running) | $r9 | ≤ 1.05 | $k9 |
| the same while 4 traced crt containers run, ns/call | $(fmt1 "$m_h_busy4") | $(fmt1 "$m_h_idle") (the same loop, no traced container running) | $r9b | ≤ 1.05 | $k9b |
| strace parity: calls of real programs rendered as strace renders them, return values included | $p_equal of $p_total calls | strace -f on the host (section "strace parity") | $p_pct % | ≥ 98 % | $k10 |
EOF
)

declare -A label=(
  [loop_none]="notify-floor none (bare getppid, no filter)"
  [loop_allow]="notify-floor allow (filter present, getppid allowed)"
  [loop_floor]="notify-floor notify-sync (kernel floor)"
  [loop_strace]="strace -f -e trace=getppid"
  [loop_crt_traced]="crt, crt.dev/trace=getppid"
  [loop_crt_filter]="crt, crt.dev/trace=openat (getppid untraced)"
  [loop_crt_plain]="crt, no annotation"
  [loop_crt_prof_filter]="crt, --seccomp, crt.dev/trace=openat (getppid untraced)"
  [loop_crt_prof_plain]="crt, --seccomp, no annotation"
  [start_runc]="start-to-exit, runc.v2"
  [start_crt]="start-to-exit, crt"
  [start_crt_traced]="start-to-exit, crt trace=%file"
  [mem_runc]="shim VmRSS, containerd-shim-runc-v2"
  [mem_crt]="shim VmRSS, containerd-shim-crt-v2"
  [mem_crt_traced]="shim VmRSS, containerd-shim-crt-v2 trace=openat"
  [host_idle]="host getppid loop (notify-floor none), no traced container"
  [host_busy]="host getppid loop (notify-floor none), a traced crt container running"
  [host_busy4]="host getppid loop (notify-floor none), 4 traced crt containers running"
)
raw_row() { # variant unit N
  printf '| %s | %s | %s | %s | %s | %s |\n' "${label[$1]}" "$(med "$1")" "$(lo "$1")" "$(hi "$1")" "$2" "$3"
}
raw=$(
  echo "| variant | median | min | max | unit | calls per run / runs |"
  echo "|---|---|---|---|---|---|"
  raw_row loop_none "ns/call" "$N_UNTRACED / $RUNS"
  raw_row loop_allow "ns/call" "$N_UNTRACED / $RUNS"
  raw_row loop_floor "ns/call" "$N_TRACED / $RUNS"
  raw_row loop_strace "ns/call" "$N_STRACE / $RUNS"
  raw_row loop_crt_traced "ns/call" "$N_TRACED / $RUNS"
  raw_row loop_crt_filter "ns/call" "$N_UNTRACED / $RUNS"
  raw_row loop_crt_plain "ns/call" "$N_UNTRACED / $RUNS"
  raw_row loop_crt_prof_filter "ns/call" "$N_UNTRACED / $RUNS"
  raw_row loop_crt_prof_plain "ns/call" "$N_UNTRACED / $RUNS"
  raw_row start_runc "ms" "$START_RUNS runs"
  raw_row start_crt "ms" "$START_RUNS runs"
  raw_row start_crt_traced "ms" "$START_RUNS runs"
  raw_row mem_runc "kB" "$MEM_RUNS runs"
  raw_row mem_crt "kB" "$MEM_RUNS runs"
  raw_row mem_crt_traced "kB" "$MEM_RUNS runs"
  raw_row host_idle "ns/call" "$N_UNTRACED / $RUNS"
  raw_row host_busy "ns/call" "$N_UNTRACED / $RUNS"
  raw_row host_busy4 "ns/call" "$N_UNTRACED / $RUNS"
)

containerd_v=$(ctr version 2>/dev/null | awk '/Version:/ { v = $2 } END { print v }')
runc_v=$(runc --version 2>/dev/null | awk 'NR == 1 { print $3 }')
shim_runc_v=$(containerd-shim-runc-v2 -v 2>/dev/null | awk '/Version:/ { print $2; exit }') || true
shim_crt_v=$(containerd-shim-crt-v2 -v 2>/dev/null | head -n 1) || true
strace_v=$(strace -V 2>/dev/null | awk 'NR == 1 { print $NF }') || true
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null) || true
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null) || commit=unknown
if [ -n "$(git -C "$repo" --no-optional-locks status --porcelain 2>/dev/null)" ]; then
  commit="$commit (working tree has local changes)"
fi
events_note="${crt_events[*]}"
if [ "${#crt_events[@]}" -gt 0 ] && printf '%s\n' "${crt_events[@]}" | awk -v n="$N_TRACED" '$1 != n { bad = 1 } END { exit bad }'; then
  events_line="Every traced crt run recorded all its calls in its trace (events per run, warm-up included: $events_note; expected $N_TRACED each), so the crt figure is not flattered by dropped events."
else
  events_line="Not every traced crt run recorded all its calls (events per run, warm-up included: $events_note; expected $N_TRACED each; ? = could not be read with \`crtctl ls\`): where events were dropped the crt figure may be flattered."
fi
r_allow=$(ratio "$m_allow" "$m_none")
sync_cfg="crt uses the same flag unless \`sync_wakeup = false\` is set in its configuration"
if [ -f "$crt_config" ] && grep -Eq '^[[:space:]]*sync_wakeup[[:space:]]*=[[:space:]]*false' "$crt_config"; then
  sync_cfg="but $crt_config sets \`sync_wakeup = false\`, so crt did not use it in this run"
fi
# the noisiest variant of this run: the largest max/min
spread_line=$(for v in "${!results[@]}"; do
  printf '%s %s\n' "$v" "$(ratio "$(hi "$v")" "$(lo "$v")")"
done | sort -k2,2gr | head -n 1)
shim_path=$(command -v containerd-shim-crt-v2)
shim_mtime=$(date -u -r "$shim_path" '+%Y-%m-%d %H:%M UTC' 2>/dev/null) || shim_mtime=unknown

# 5. crtd: ingest, queries and memory (its own script, its own section).
log "crtd: ingest rate, query latency and memory (scripts/bench-crtd.sh)"
BENCH_CRTD_OUT=$tmp/crtd.md RUN_TIMEOUT=$((RUN_TIMEOUT > 180 ? RUN_TIMEOUT : 180)) "$repo/scripts/bench-crtd.sh" \
  || die "scripts/bench-crtd.sh failed"

# 6. debug clones: freeze windows (its own script, its own section).
log "debug clones: freeze windows (scripts/bench-debug.sh)"
BENCH_DEBUG_OUT=$tmp/debug.md RUN_TIMEOUT=$((RUN_TIMEOUT > 180 ? RUN_TIMEOUT : 180)) "$repo/scripts/bench-debug.sh" \
  || die "scripts/bench-debug.sh failed"

# 7. web UI: map render and trace view frames (its own script, its own section).
log "web UI: map render and trace view frame times (scripts/bench-ui.sh)"
BENCH_UI_OUT=$tmp/ui.md "$repo/scripts/bench-ui.sh" || die "scripts/bench-ui.sh failed"

# 8. pods through CRI: start-to-ready and shim memory per pod (its own script, its own section).
log "pods through CRI: start-to-ready and shim memory per pod (scripts/bench-cri.sh)"
BENCH_CRI_OUT=$tmp/cri.md "$repo/scripts/bench-cri.sh" || die "scripts/bench-cri.sh failed"

{
  cat <<EOF
# CRT benchmarks

Generated by \`./scripts/bench.sh\` (run it as root after \`scripts/setup.sh\` to
regenerate this file; \`RUNS\`, \`START_RUNS\`, \`MEM_RUNS\` and \`N_*\` override
the run counts). It measures, side by side in one run:

1. the cost of one **traced** \`getppid()\` inside a crt container (\`crt-loop\`,
   \`crt.dev/trace=getppid\`), with its return value where the shim's BPF
   exit program completes it (the table says whether it did), against the kernel floor of seccomp user
   notification (\`notify-floor notify-sync\`: a supervisor that only does
   RECV + SEND(CONTINUE)) and against \`strace -f\` on the host;
2. the cost of an **untraced** \`getppid()\` in a traced container
   (\`crt.dev/trace=openat\`: the filter exists, getppid is not notified)
   against a crt container without the annotation (which has no filter at
   all), and the same pair again with containerd's default seccomp profile
   (\`ctr run --seccomp\`, what Kubernetes' RuntimeDefault gives a pod), where
   both containers have a filter;
3. the start-to-exit time of \`ctr run --rm IMAGE ID sh -c true\` with
   \`io.containerd.runc.v2\`, crt untraced and crt with \`crt.dev/trace=%file\`;
4. the resident memory (VmRSS) of the shim of one running container, read 1 s
   after \`ctr run -d ... sh -c 'cat /etc/crt-test-release >/dev/null; sleep 300'\`;
5. the cost of a bare \`getppid()\` loop of an **untraced process on the host**
   (\`notify-floor none\`) while a traced crt container runs (its shim's BPF
   exit program, loaded while it runs, is entered at every syscall exit on
   the node and must return after a map lookup for threads it does not
   trace) against the same loop while no traced container of this run
   exists (other containers of the machine, if any, run in both); and the
   same with 4 traced containers running, since each one's shim attaches a
   program of its own;
6. strace parity (section "strace parity" below).

Each figure is the **median** of $RUNS runs (syscall loops, after $WARMUP warm-up
round), $START_RUNS runs (start-to-exit, after $START_WARMUP warm-up rounds) or
$MEM_RUNS runs (memory). The variants are interleaved round by round, in a
rotating order, so that drift on the machine affects all of them alike.
Ratios are ratios of the medians.

- Date: $(date -u '+%Y-%m-%d %H:%M UTC') (measurements took ${elapsed} s)
- Kernel: $(uname -r), $(nproc) CPUs${cpu_model:+ ($cpu_model)}; load average (1/5/15 min) at start $load_begin, at end $load_end
- containerd ${containerd_v:-unknown}, runc ${runc_v:-unknown}, containerd-shim-runc-v2 ${shim_runc_v:-unknown}, ${shim_crt_v:-containerd-shim-crt-v2 (version unknown)}, strace ${strace_v:-unknown}
- Repository: $commit; the shim measured is the one installed at $shim_path (modified $shim_mtime)

## Results

$table

## Raw medians

$raw

## Notes

- \`notify-floor notify-sync\` sets \`SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP\`
  (Linux 6.6+) on the listener, so the woken supervisor runs on the CPU the
  traced task gives up; $sync_cfg.
- \`notify-floor none\` is the bare syscall and \`notify-floor allow\` the same
  under a seccomp filter that allows getppid: the kernel's own price of having
  a filter at all, allow/none = $r_allow in this run, to compare with the
  ratio of measurement 2 ($r3).
- strace runs with fewer calls per run ($N_STRACE) than crt ($N_TRACED)
  because it is much slower per call; the figures are per call, so they
  compare directly.
- $events_line
- Start-to-exit is timed around the whole \`ctr run --rm\` (client, containerd,
  shim, runtime, container) with bash's \`\$EPOCHREALTIME\`, in an
  interleaved loop rather than hyperfine so that the three variants alternate.
- The numbers come from a shared, noisy 2-core VM (see the load averages
  above and the min/max columns); the widest spread in this run was
  "${label[${spread_line% *}]}" with max/min = ${spread_line##* }.
EOF
  if [ -n "$floor_warn" ]; then printf -- '- Warning: %s.\n' "$floor_warn"; fi
  printf '\n'
  cat "$tmp/crtd.md"
  echo
  cat "$tmp/debug.md"
  echo
  cat "$tmp/ui.md"
  echo
  cat "$tmp/cri.md"
  echo
  cat "$tmp/parity.md"
} >"$tmp/BENCHMARKS.md"
mv -f -- "$tmp/BENCHMARKS.md" "$BENCH_OUT"
log "wrote $BENCH_OUT"

printf '%s\n\nraw medians: floor (notify-sync) %s ns/call, none %s ns/call, allow %s ns/call, strace %s ns/call\n' \
  "$table" "$m_floor" "$m_none" "$m_allow" "$m_strace"
