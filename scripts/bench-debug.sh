#!/usr/bin/env bash
# Benchmarks debug clones and prints a Markdown section (scripts/bench.sh puts
# it into BENCHMARKS.md; run alone, it prints it). For a container whose
# writable layer holds 1 MB, 100 MB and 1 GB (one file written by the
# container, plus a counter it keeps rewriting):
#
#   1. how long `crtctl debug` keeps the source frozen (crtd's own figure,
#      freeze_ms: freeze request to the end of the thaw), and how long a person
#      at a terminal waits from typing `crtctl debug` to the clone's shell
#      prompt (scripts/bench-prompt.py runs it on a pseudo-terminal);
#   2. beside it, in the same run, the stall of freezing first and copying
#      after: `ctr task pause`, a copy of the writable layer (cp -a), `ctr task
#      resume` -- what a checkpoint of the layer with the task paused costs
#      (containerd 1.6's `ctr c checkpoint --task --rw` keeps the task paused
#      while it diffs the layer; it needs a CRIU this kernel cannot run).
#
# Every figure is the median of DEBUG_RUNS runs; crtd, crtctl and the shim
# measured are those installed.
#
#   sudo ./scripts/bench-debug.sh            (needs scripts/setup.sh done)
#
# Environment (defaults in brackets): DEBUG_RUNS [3], DEBUG_SIZES_MB [1 100 1024],
# RUN_TIMEOUT [180], BENCH_DEBUG_OUT [stdout].
set -euo pipefail
export LC_ALL=C

repo=$(cd "$(dirname "$0")/.." && pwd)
ns=crt-bench
image=localhost/crt-test:latest
image_tar=$repo/target/crt-image/image.tar
DEBUG_RUNS=${DEBUG_RUNS:-3}
DEBUG_SIZES_MB=${DEBUG_SIZES_MB:-1 100 1024}
RUN_TIMEOUT=${RUN_TIMEOUT:-180}
BENCH_DEBUG_OUT=${BENCH_DEBUG_OUT:-/dev/stdout}

log() { printf 'bench-debug: %s\n' "$*" >&2; }
die() { printf 'bench-debug: error: %s\n' "$*" >&2; exit 1; }
[[ $DEBUG_RUNS =~ ^[1-9][0-9]*$ ]] || die "DEBUG_RUNS must be a whole number of at least 1 (got '$DEBUG_RUNS')"
for s in $DEBUG_SIZES_MB; do
  [[ $s =~ ^[1-9][0-9]*$ ]] || die "DEBUG_SIZES_MB must hold whole numbers of MB (got '$s')"
done
[ "$(id -u)" = 0 ] || die "run as root (it starts containers through containerd)"
for c in ctr crtd crtctl jq python3; do command -v "$c" >/dev/null || die "$c is not installed (run scripts/setup.sh)"; done

# shellcheck source=scripts/bench-lib.sh
. "$repo/scripts/bench-lib.sh"

ctr -n "$ns" image ls -q | grep -qx "$image" || ctr -n "$ns" image import "$image_tar" >/dev/null \
  || die "cannot import the test image $image_tar"

tmp=$(mktemp -d /tmp/crt-bench-debug.XXXXXX)
crtd_pid=
containers=()
cleanup() {
  [ -n "$crtd_pid" ] && kill "$crtd_pid" 2>/dev/null && wait "$crtd_pid" 2>/dev/null
  for c in "${containers[@]}"; do
    ctr -n "$ns" task rm -f "$c" >/dev/null 2>&1 || true
    ctr -n "$ns" container rm "$c" >/dev/null 2>&1 || true
  done
  rm -rf "$tmp" 2>/dev/null || true
}
trap cleanup EXIT

# A crtd of this run's own (the root socket; it sees every container), which
# crtctl reaches through CRT_CONFIG.
start_own_crtd "$tmp" <<EOF || die "crtd did not start"
[api]
listen = "off"
socket = "$tmp/crtd.sock"
[store]
dir = "$tmp/store"
EOF
export CRT_CONFIG=$tmp/config.toml


declare -A freeze total stall
for mb in $DEBUG_SIZES_MB; do
  src="bench-debug-$mb-$RANDOM"
  containers+=("$src")
  log "$mb MB: starting a container that writes it"
  timeout "$RUN_TIMEOUT" ctr -n "$ns" run -d --runtime io.containerd.crt.v2 "$image" "$src" \
    sh -c "dd if=/dev/urandom of=/layer bs=1M count=$mb 2>/dev/null; touch /written; i=0; while true; do i=\$((i+1)); echo \$i > /counter; sleep 0.05; done" \
    >/dev/null || die "the $mb MB container did not start"
  for _ in $(seq 1 "$RUN_TIMEOUT"); do
    ctr -n "$ns" task exec --exec-id "w$RANDOM" "$src" test -e /written 2>/dev/null && break
    sleep 1
  done
  upper=$(ctr -n "$ns" snapshots mounts /x "$src" | sed -n 's/.*upperdir=\([^,]*\).*/\1/p')
  [ -d "$upper" ] || die "no writable layer found for $src"
  # Both ways read the layer from the page cache alike: read it once first.
  cat "$upper/layer" >/dev/null
  f=(); t=(); s=()
  for r in $(seq 1 "$DEBUG_RUNS"); do
    log "$mb MB, round $r/$DEBUG_RUNS: crtctl debug"
    clone="$src-c$r"
    containers+=("$clone")
    out=$(timeout "$RUN_TIMEOUT" "$repo/scripts/bench-prompt.py" crtctl debug --json -n "$ns" --name "$clone" "$src") \
      || { cat "$tmp/crtd.log" >&2; die "crtctl debug failed for $mb MB"; }
    f+=("$(jq -r .printed.freeze_ms <<<"$out")")
    t+=("$(jq -r .prompt_ms <<<"$out")")
    crtctl debug rm -n "$ns" "$clone" >/dev/null || die "crtctl debug rm failed"
    log "$mb MB, round $r/$DEBUG_RUNS: pause, copy, resume"
    rm -rf "$tmp/copy"
    t0=$(date +%s%N)
    ctr -n "$ns" task pause "$src"
    cp -a "$upper" "$tmp/copy"
    ctr -n "$ns" task resume "$src"
    t1=$(date +%s%N)
    s+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", (b - a) / 1e6 }')")
    rm -rf "$tmp/copy"
  done
  freeze[$mb]=$(median "${f[@]}")
  total[$mb]=$(median "${t[@]}")
  stall[$mb]=$(median "${s[@]}")
  ctr -n "$ns" task rm -f "$src" >/dev/null 2>&1 || true
  ctr -n "$ns" container rm "$src" >/dev/null 2>&1 || true
done

goal() { # MB -> the issue's freeze goal in ms, or nothing
  case $1 in 100) echo 50 ;; 1024) echo 200 ;; *) echo "" ;; esac
}
{
  echo "## Debug clones"
  echo
  echo "Generated by \`scripts/bench-debug.sh\` (part of \`scripts/bench.sh\`): a container"
  echo "writes N MB of random data into its writable layer and keeps rewriting a counter; each"
  echo "figure is the median of $DEBUG_RUNS runs. **Frozen** is how long \`crtctl debug\` kept the"
  echo "source frozen (crtd's figure: the freeze request to the end of the thaw; the layer is"
  echo "copied once while the source runs, and only what changed since while it is frozen)."
  echo "**To a shell prompt** is what a person at a terminal waits from starting \`crtctl debug\` to"
  echo "the clone's shell prompt (a pseudo-terminal; the shell is an exec through crtd's WebSocket)."
  echo "**Pause, copy, resume**"
  echo "is the stall of freezing first and copying after (\`ctr task pause\`, \`cp -a\` of the"
  echo "writable layer, \`ctr task resume\`), measured on the same container in the same run."
  echo
  echo "| writable layer | frozen (crtctl debug) | to a shell prompt | pause, copy, resume | goal (frozen) | goal (prompt) |"
  echo "|---|---|---|---|---|---|"
  for mb in $DEBUG_SIZES_MB; do
    g=$(goal "$mb")
    verdict="-"
    [ -n "$g" ] && verdict="≤ $g ms: $(met "${freeze[$mb]}" le "$g")"
    prompt="-"
    [ "$mb" = 100 ] && prompt="< 1000 ms: $(met "${total[$mb]}" le 999.9)"
    echo "| $mb MB | $(fmt1 "${freeze[$mb]}") ms | $(fmt1 "${total[$mb]}") ms | $(fmt1 "${stall[$mb]}") ms | $verdict | $prompt |"
  done
} >"$BENCH_DEBUG_OUT"
