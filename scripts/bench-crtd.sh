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
#   5. a tenant's request latency (p99) and crtd's memory with LOAD_STREAMS live
#      streams open, against the same crtd with none
#   6. that latency while LOAD_IDLE idle unauthenticated connections are held
#   7. catch-up time after a full store disk is given space again
#
# Every figure is the median of CRTD_RUNS runs; the crtd measured is the one
# installed (command -v crtd).
#
#   sudo ./scripts/bench-crtd.sh             (needs scripts/setup.sh done)
#
# Environment (defaults in brackets): CRTD_RUNS [3], CRTD_EVENTS [10000000],
# CRTD_SPAN_SECS [3600], CRTD_QUERIES [300], N_RATE [300000] getppid calls per
# tracer-rate container, LOAD_STREAMS [1000], LOAD_IDLE [256], LOAD_REQUESTS
# [300], CATCHUP_EVENTS [2000000], RUN_TIMEOUT [180], BENCH_CRTD_OUT [stdout].
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
LOAD_STREAMS=${LOAD_STREAMS:-1000}
LOAD_IDLE=${LOAD_IDLE:-256}
LOAD_REQUESTS=${LOAD_REQUESTS:-300}
CATCHUP_EVENTS=${CATCHUP_EVENTS:-2000000}
RUN_TIMEOUT=${RUN_TIMEOUT:-180}
BENCH_CRTD_OUT=${BENCH_CRTD_OUT:-/dev/stdout}

log() { printf 'bench-crtd: %s\n' "$*" >&2; }
die() { printf 'bench-crtd: error: %s\n' "$*" >&2; exit 1; }
for v in CRTD_RUNS CRTD_EVENTS CRTD_SPAN_SECS CRTD_QUERIES N_RATE RUN_TIMEOUT LOAD_STREAMS LOAD_IDLE LOAD_REQUESTS CATCHUP_EVENTS; do
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
start_crtd() { # dir [listen] [extra config]
  local d=$1 listen=${2:-off} extra=${3:-}
  start_own_crtd "$d" <<EOF || die "crtd did not start"
[trace]
state_dir = "$d/state"
[api]
listen = "$listen"
socket = "$d/crtd.sock"
[store]
dir = "$d/store"
max_bytes = "64GiB"
$extra
EOF
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

# --- 5-6. crtd under connections ----------------------------------------------------
# A tenant's request latency and crtd's memory with LOAD_STREAMS live streams
# open on the root socket (never read: the worst case for memory), and with
# LOAD_IDLE idle TCP connections that never send a request; against the same
# crtd with neither, in the same run.
load_token=bench-token-$$
load_hash=$(printf %s "$load_token" | sha256sum | cut -d' ' -f1)
load_port=$((20000 + RANDOM % 20000))
base_p99=(); streams_p99=(); streams_rss=(); streams_rss0=(); streams_after=(); streams_open=(); idle_p99=(); idle_errors=(); idle_open=()
for r in $(seq 1 "$CRTD_RUNS"); do
  d=$tmp/load$r; mkdir -p "$d/state/traces"
  "$bench" gen --traces "$d/state/traces" --namespace bench --container app-1 \
    --events 100000 --span-secs 600 >"$d/gen" || die "crt-bench gen failed"
  start_crtd "$d" "127.0.0.1:$load_port" "[[tenants]]
name = \"bench\"
namespaces = [\"bench\"]
token_sha256 = [\"$load_hash\"]"
  "$bench" watch --socket "$d/crtd.sock" --pid "$crtd_pid" --target 100001 --timeout-secs "$RUN_TIMEOUT" >/dev/null \
    || { cat "$d/crtd.log" >&2; die "crtd did not take in the trace"; }
  load() { "$bench" load --socket "$d/crtd.sock" --addr "127.0.0.1:$load_port" --token "$load_token" \
    --pid "$crtd_pid" --count "$LOAD_REQUESTS" "$@"; }
  log "load round $r/$CRTD_RUNS: baseline, $LOAD_STREAMS live streams, $LOAD_IDLE idle connections"
  load --streams 0 --idle 0 >"$d/base" || die "crt-bench load failed"
  load --streams "$LOAD_STREAMS" --idle 0 >"$d/streams" || die "crt-bench load failed"
  load --streams 0 --idle "$LOAD_IDLE" >"$d/idle" || die "crt-bench load failed"
  base_p99+=("$(kv p99_ms "$d/base")")
  streams_p99+=("$(kv p99_ms "$d/streams")"); streams_rss0+=("$(kv rss_before_kb "$d/streams")")
  streams_rss+=("$(kv rss_kb "$d/streams")"); streams_after+=("$(kv rss_after_close_kb "$d/streams")")
  streams_open+=("$(kv streams_open "$d/streams")")
  idle_p99+=("$(kv p99_ms "$d/idle")"); idle_errors+=("$(kv errors "$d/idle")"); idle_open+=("$(kv idle_open "$d/idle")")
  kill "$crtd_pid"; wait "$crtd_pid" 2>/dev/null || true; crtd_pid=
  rm -rf -- "$d"
done

# --- 7. catching up after a full store disk ---------------------------------------
# crtd's store on a tmpfs too small for a trace of CATCHUP_EVENTS events; once
# crtd says it is blocked, the tmpfs grows, and the time until every event is
# stored is measured.
catchup_s=(); catchup_rate=()
for r in $(seq 1 "$CRTD_RUNS"); do
  d=$tmp/full$r; mkdir -p "$d/state/traces" "$d/store"
  mount -t tmpfs -o size=8m,mode=0700 tmpfs "$d/store"
  "$bench" gen --traces "$d/state/traces" --namespace bench --container app-1 \
    --events "$CATCHUP_EVENTS" --span-secs 600 >"$d/gen" || die "crt-bench gen failed"
  start_crtd "$d"
  blocked=
  for _ in $(seq 1 300); do
    if curl -s --unix-socket "$d/crtd.sock" http://crtd/metrics | grep -q '^crtd_store_blocked_streams [1-9]'; then blocked=1; break; fi
    sleep 0.1
  done
  [ -n "$blocked" ] || { umount -l "$d/store"; die "crtd never found its store full"; }
  sleep 2
  mount -o remount,size=4g "$d/store"
  log "catch-up round $r/$CRTD_RUNS: space is back"
  "$bench" watch --socket "$d/crtd.sock" --pid "$crtd_pid" --target "$((CATCHUP_EVENTS + 1))" --timeout-secs "$RUN_TIMEOUT" \
    >"$d/watch" || { cat "$d/crtd.log" >&2; umount -l "$d/store"; die "crtd did not catch up"; }
  catchup_s+=("$(kv seconds "$d/watch")"); catchup_rate+=("$(kv rate "$d/watch")")
  kill "$crtd_pid"; wait "$crtd_pid" 2>/dev/null || true; crtd_pid=
  umount -l "$d/store"
  rm -rf -- "$d"
done

m_base_p99=$(median "${base_p99[@]}")
m_streams_p99=$(median "${streams_p99[@]}"); m_streams_rss=$(median "${streams_rss[@]}")
m_streams_rss0=$(median "${streams_rss0[@]}"); m_streams_after=$(median "${streams_after[@]}")
m_idle_p99=$(median "${idle_p99[@]}")
m_catchup_s=$(median "${catchup_s[@]}"); m_catchup_rate=$(median "${catchup_rate[@]}")
mb() { awk -v k="$1" 'BEGIN { printf "%.1f\n", k / 1024 }'; }

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

### Under connections, and after a full disk

5. $LOAD_STREAMS live streams opened as root and never read, then
   $LOAD_REQUESTS tenant requests (\`GET /v1/containers\` with a bearer token
   over TCP, one connection each); 6. the same requests while $LOAD_IDLE TCP
   connections that never send a request are held; both against the same
   crtd with neither (baseline), in the same run;
7. a trace of $CATCHUP_EVENTS events for a crtd whose store is an 8 MiB tmpfs:
   once crtd says its store is full, the tmpfs grows to 4 GiB, and the time
   until every event is stored is measured.

| measurement | crtd | baseline | ratio |
|---|---|---|---|
| tenant request p99, ms, with $LOAD_STREAMS live streams open | $m_streams_p99 | $m_base_p99 | $(ratio "$m_streams_p99" "$m_base_p99") |
| crtd VmRSS, MB, with $LOAD_STREAMS live streams open | $(mb "$m_streams_rss") | $(mb "$m_streams_rss0") (before) | $(ratio "$m_streams_rss" "$m_streams_rss0") |
| crtd VmRSS, MB, 2 s after they closed | $(mb "$m_streams_after") | $(mb "$m_streams_rss0") | $(ratio "$m_streams_after" "$m_streams_rss0") |
| tenant request p99, ms, with $LOAD_IDLE idle connections held | $m_idle_p99 | $m_base_p99 | $(ratio "$m_idle_p99" "$m_base_p99") |
| catch-up after a full disk: seconds to store $CATCHUP_EVENTS events | $m_catchup_s | — | — |
| catch-up rate, events/s | $(fmt0 "$m_catchup_rate") | $(fmt0 "$m_ingest") (ingest above) | $(ratio "$m_catchup_rate" "$m_ingest") |

| raw | all runs |
|---|---|
| streams accepted of $LOAD_STREAMS | ${streams_open[*]} |
| idle connections held of $LOAD_IDLE; failed tenant requests meanwhile | ${idle_open[*]}; ${idle_errors[*]} |
| p99 ms: baseline / streams / idle | ${base_p99[*]} / ${streams_p99[*]} / ${idle_p99[*]} |
| catch-up seconds | ${catchup_s[*]} |

crtd keeps no events in memory: its store is files of 8 MiB chunks with a
small index per 256-record block (time range, syscall bitmap), which queries
use to skip blocks; what it holds in memory is those indexes and per-container
counters.
EOF
log "done"
