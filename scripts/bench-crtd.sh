#!/usr/bin/env bash
# Benchmarks crtd, the node supervisor, and prints a Markdown section
# (scripts/bench.sh puts it into BENCHMARKS.md; run alone, it prints it):
#
#   1. the fastest rate the tracer produces events on this machine: traced
#      getppid loops (crt-loop, crt.dev/trace=getppid) in 1 and in 2 crt
#      containers at once, events/s summed over the containers
#   2. crtd's ingest rate: a complete synthetic trace of CRTD_EVENTS events
#      (what a shim writes: openat with paths, read, write with data, close,
#      getppid, over CRTD_SPAN_SECS seconds) taken in by a fresh crtd while a
#      query loop runs against it
#   3. history query latency over those events: container + syscall + a
#      60-second window, 100 events a page, p50 and p99 of CRTD_QUERIES
#   4. crtd's resident memory (VmRSS) while holding them: peak during ingest,
#      and after the queries
#
# Every figure is the median of CRTD_RUNS runs; the crtd measured is the one
# installed (command -v crtd).
#
#   sudo ./scripts/bench-crtd.sh             (needs scripts/setup.sh done)
#
# Environment (defaults in brackets): CRTD_RUNS [3], CRTD_EVENTS [10000000],
# CRTD_SPAN_SECS [3600], CRTD_QUERIES [300], N_RATE [300000] getppid calls per
# tracer-rate container, RUN_TIMEOUT [180], BENCH_CRTD_OUT [stdout].
set -euo pipefail
export LC_ALL=C

repo=$(cd "$(dirname "$0")/.." && pwd)
ns=crt-bench
image=localhost/crt-test:latest
image_tar=$repo/target/crt-image/image.tar
CRTD_RUNS=${CRTD_RUNS:-3}
CRTD_EVENTS=${CRTD_EVENTS:-10000000}
CRTD_SPAN_SECS=${CRTD_SPAN_SECS:-3600}
CRTD_QUERIES=${CRTD_QUERIES:-300}
N_RATE=${N_RATE:-300000}
RUN_TIMEOUT=${RUN_TIMEOUT:-180}
BENCH_CRTD_OUT=${BENCH_CRTD_OUT:-/dev/stdout}

log() { printf 'bench-crtd: %s\n' "$*" >&2; }
die() { printf 'bench-crtd: error: %s\n' "$*" >&2; exit 1; }
for v in CRTD_RUNS CRTD_EVENTS CRTD_SPAN_SECS CRTD_QUERIES N_RATE RUN_TIMEOUT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a whole number of at least 1 (got '${!v}')"
done

# median, ratio, met, fmt0
# shellcheck source=scripts/bench-lib.sh
. "$repo/scripts/bench-lib.sh"
kv() { awk -F= -v k="$1" '$1 == k { print $2; found = 1 } END { if (!found) exit 1 }' "$2"; }

[ "$(id -u)" = 0 ] || die "run as root (it starts containers through containerd)"
command -v crtd >/dev/null || die "crtd is not installed: run scripts/setup.sh first"
ctr version >/dev/null 2>&1 || die "containerd is not reachable: run scripts/setup.sh first"
export PATH="${HOME:-/root}/.cargo/bin:$PATH"
if ! ctr -n "$ns" image ls -q | grep -qx "$image"; then
  [ -f "$image_tar" ] || die "$image_tar is missing: run scripts/setup.sh first"
  ctr -n "$ns" image import "$image_tar" >/dev/null
fi

log "building crt-bench (release)"
cargo build --quiet --release -p crt-bench --manifest-path "$repo/Cargo.toml" || die "building crt-bench failed"
bench=$repo/target/release/crt-bench

tmp=$(mktemp -d /tmp/crtd-bench.XXXXXX)
prefix="crtdb-$$"
crtd_pid=
cleanup() {
  local rc=$? id
  trap - EXIT INT TERM
  set +e
  [ -n "$crtd_pid" ] && kill "$crtd_pid" 2>/dev/null && wait "$crtd_pid" 2>/dev/null
  for id in $(ctr -n "$ns" container ls -q 2>/dev/null | grep "^$prefix-"); do
    ctr -n "$ns" task rm -f "$id" >/dev/null 2>&1
    ctr -n "$ns" container rm "$id" >/dev/null 2>&1
    rm -rf -- "/var/lib/crt/traces/$ns/$id"
  done
  rm -rf -- "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
t_begin=$SECONDS

# --- 1. the tracer's fastest rate --------------------------------------------------
# The containers wait for a file on a shared mount, so their loops overlap.
tracer_round() { # parallel -> prints events/s summed over the containers
  local par=$1 i pids=() rate=0 v
  rm -rf "$tmp/sync" && mkdir -p "$tmp/sync"
  for i in $(seq 1 "$par"); do
    timeout "$RUN_TIMEOUT" ctr -n "$ns" run --rm --runtime io.containerd.crt.v2 \
      --annotation crt.dev/trace=getppid \
      --mount "type=bind,src=$tmp/sync,dst=/sync,options=rbind:ro" \
      "$image" "$prefix-rate-$par-$i-$RANDOM" \
      sh -c "while [ ! -e /sync/go ]; do sleep 0.01; done; crt-loop getppid $N_RATE" \
      >"$tmp/rate.$i" 2>&1 &
    pids+=($!)
  done
  sleep 1.5
  touch "$tmp/sync/go"
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || { cat "$tmp/rate.$((i + 1))" >&2; return 1; }; done
  for i in $(seq 1 "$par"); do
    v=$(awk '$1 == "getppid" && $3 == "ns/call" { print $2 }' "$tmp/rate.$i")
    [ -n "$v" ] || { cat "$tmp/rate.$i" >&2; return 1; }
    rate=$(awk -v r="$rate" -v ns="$v" 'BEGIN { printf "%.0f\n", r + 1e9 / ns }')
  done
  rm -rf /var/lib/crt/traces/"$ns"/"$prefix"-rate-* 2>/dev/null || true
  echo "$rate"
}
rates1=(); rates2=()
for r in $(seq 1 "$CRTD_RUNS"); do
  log "tracer rate, round $r/$CRTD_RUNS"
  rates1+=("$(tracer_round 1)") || die "a tracer-rate run failed"
  rates2+=("$(tracer_round 2)") || die "a tracer-rate run failed"
done
m_rate1=$(median "${rates1[@]}")
m_rate2=$(median "${rates2[@]}")
tracer_max=$m_rate1; tracer_how="1 traced container"
if awk -v a="$m_rate2" -v b="$m_rate1" 'BEGIN { exit !(a > b) }'; then tracer_max=$m_rate2; tracer_how="2 traced containers at once"; fi

# --- 2-4. crtd: ingest under a query loop, then queries, memory ---------------------
start_crtd() { # dir
  local d=$1
  cat >"$d/config.toml" <<EOF
[trace]
state_dir = "$d/state"
[api]
listen = "off"
socket = "$d/crtd.sock"
[store]
dir = "$d/store"
max_bytes = "64GiB"
EOF
  crtd --config "$d/config.toml" 2>"$d/crtd.log" &
  crtd_pid=$!
  local i
  for i in $(seq 1 100); do [ -S "$d/crtd.sock" ] && return 0; sleep 0.1; done
  cat "$d/crtd.log" >&2; die "crtd did not start"
}

ingest_rates=(); ingest_rss=(); loop_p50=(); loop_p99=(); loop_n=(); q_p50=(); q_p99=(); q_rss=(); returned=()
for r in $(seq 1 "$CRTD_RUNS"); do
  d=$tmp/run$r; mkdir -p "$d/state/traces"
  log "crtd round $r/$CRTD_RUNS: writing a trace of $CRTD_EVENTS events"
  "$bench" gen --traces "$d/state/traces" --namespace bench --container app-1 \
    --events "$CRTD_EVENTS" --span-secs "$CRTD_SPAN_SECS" >"$d/gen" || die "crt-bench gen failed"
  from=$(kv start_ns "$d/gen"); to=$(kv end_ns "$d/gen")
  sync
  start_crtd "$d"
  "$bench" query --socket "$d/crtd.sock" --namespace bench --container app-1 --syscall openat \
    --from-ns "$from" --to-ns "$to" --window-secs 60 --stop-file "$d/stop" --duration-secs "$RUN_TIMEOUT" \
    >"$d/loop" 2>"$d/loop.err" &
  loop_pid=$!
  "$bench" watch --socket "$d/crtd.sock" --pid "$crtd_pid" --target "$CRTD_EVENTS" --timeout-secs "$RUN_TIMEOUT" \
    >"$d/watch" || { cat "$d/crtd.log" >&2; die "crtd did not take in the trace"; }
  touch "$d/stop"; wait "$loop_pid" || { cat "$d/loop.err" >&2; die "the query loop failed"; }
  ingest_rates+=("$(kv rate "$d/watch")"); ingest_rss+=("$(kv peak_rss_kb "$d/watch")")
  loop_p50+=("$(kv p50_ms "$d/loop")"); loop_p99+=("$(kv p99_ms "$d/loop")"); loop_n+=("$(kv queries "$d/loop")")
  log "crtd round $r: $CRTD_QUERIES queries over the stored events"
  "$bench" query --socket "$d/crtd.sock" --namespace bench --container app-1 --syscall openat \
    --from-ns "$from" --to-ns "$to" --window-secs 60 --count "$CRTD_QUERIES" >"$d/query" || die "the queries failed"
  [ "$(kv errors "$d/query")" = 0 ] || die "queries failed: $(cat "$d/query")"
  q_p50+=("$(kv p50_ms "$d/query")"); q_p99+=("$(kv p99_ms "$d/query")"); returned+=("$(kv events_returned "$d/query")")
  q_rss+=("$(awk '/^VmRSS:/ { print $2 }' "/proc/$crtd_pid/status")")
  stored=$(curl -s --unix-socket "$d/crtd.sock" "http://crtd/v1/containers/bench/app-1" | awk -F'"events_stored":' 'NF > 1 { split($2, a, /[,}]/); print a[1] }')
  kill "$crtd_pid"; wait "$crtd_pid" 2>/dev/null || true; crtd_pid=
  rm -rf -- "$d"
done

m_ingest=$(median "${ingest_rates[@]}")
m_ingest_rss=$(median "${ingest_rss[@]}")
m_loop_p50=$(median "${loop_p50[@]}"); m_loop_p99=$(median "${loop_p99[@]}"); m_loop_n=$(median "${loop_n[@]}")
m_q50=$(median "${q_p50[@]}"); m_q99=$(median "${q_p99[@]}")
m_qrss=$(median "${q_rss[@]}")
rss_mb=$(awk -v a="$m_ingest_rss" -v b="$m_qrss" 'BEGIN { m = (a > b) ? a : b; printf "%.1f\n", m / 1024 }')
r_ingest=$(ratio "$m_ingest" "$tracer_max")
keeps_up=$(awk -v a="$m_ingest" -v t="$tracer_max" 'BEGIN { print (a >= t && a >= 300000) ? "yes" : "no" }')
elapsed=$((SECONDS - t_begin))

cat >"$BENCH_CRTD_OUT" <<EOF
## crtd, the node supervisor

Measured by \`./scripts/bench-crtd.sh\` (part of \`./scripts/bench.sh\`; took ${elapsed} s),
median of $CRTD_RUNS runs each, with the crtd installed at $(command -v crtd):

1. the tracer's fastest rate on this machine: traced \`getppid\` loops
   (\`crt-loop getppid $N_RATE\`, \`crt.dev/trace=getppid\`) in 1 crt container,
   and in 2 at once (events/s summed);
2. crtd taking in a complete trace of $CRTD_EVENTS events (synthetic, as a shim
   writes them: openat with paths, read, write with data, close, getppid over
   $CRTD_SPAN_SECS s) into a fresh store, while a loop of history queries runs
   against it;
3. then $CRTD_QUERIES history queries over the stored events, each for the
   container + \`syscall=openat\` + a random 60 s window, 100 events a page,
   over crtd's root socket (client-side time, connection included);
4. crtd's VmRSS: its peak during ingest, and after the queries.

| measurement | crtd | baseline | ratio | target | met? |
|---|---|---|---|---|---|
| ingest, events/s, with a query loop running | $(fmt0 "$m_ingest") | $(fmt0 "$tracer_max") (tracer's fastest: $tracer_how) | $r_ingest | ≥ tracer and ≥ 300000 | $keeps_up |
| history query p99, ms ($CRTD_EVENTS events stored) | $m_q99 | — | — | < 100 | $(met "$m_q99" le 100) |
| history query p50, ms | $m_q50 | — | — | — | — |
| crtd VmRSS holding $CRTD_EVENTS events, MB (max of peak during ingest, after queries) | $rss_mb | — | — | < 150 | $(met "$rss_mb" le 150) |

| raw | median | all runs |
|---|---|---|
| tracer, 1 container, events/s | $(fmt0 "$m_rate1") | ${rates1[*]} |
| tracer, 2 containers at once, events/s (sum) | $(fmt0 "$m_rate2") | ${rates2[*]} |
| crtd ingest, events/s | $(fmt0 "$m_ingest") | ${ingest_rates[*]} |
| queries during ingest: count, p50 ms, p99 ms | $m_loop_n, $m_loop_p50, $m_loop_p99 | p99: ${loop_p99[*]} |
| queries after ingest: p50 ms / p99 ms | $m_q50 / $m_q99 | p99: ${q_p99[*]} |
| events returned per $CRTD_QUERIES queries | ${returned[0]} | ${returned[*]} |
| crtd VmRSS peak during ingest, kB | $m_ingest_rss | ${ingest_rss[*]} |
| crtd VmRSS after the queries, kB | $m_qrss | ${q_rss[*]} |
| events crtd reports stored (last run) | ${stored:-?} | — |

crtd keeps no events in memory: its store is files of 8 MiB chunks with a
small index per 256-record block (time range, syscall bitmap), which queries
use to skip blocks; what it holds in memory is those indexes and per-container
counters.
EOF
log "done"
