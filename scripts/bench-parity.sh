#!/usr/bin/env bash
# strace parity on real programs: prints a Markdown section (scripts/bench.sh
# puts it into BENCHMARKS.md; run alone, it prints it).
# integration/src/bin/crt-parity-bench runs every program of its corpus
# (busybox applets and shell scripts of the test image, and crt-results)
# traced in a crt container and under `strace -f` on the host, in a copy of
# the same image layer, and counts the calls whose rendering equals
# strace's, return values included. Only what two runs of one program
# legitimately differ in is normalized (integration/src/strace_compare.rs):
# line prefixes, strace's padding, interrupted halves, addresses, pids and
# getrandom's bytes.
#
#   sudo ./scripts/bench-parity.sh           (needs scripts/setup.sh done)
#
# Environment (defaults in brackets): BENCH_PARITY_OUT [stdout];
# BENCH_PARITY_SHARE [none: a file that gets "SHARE EQUAL TOTAL"];
# BENCH_PARITY_JSON [none: a file for every call that differed];
# PARITY_TOP [15] syscalls listed with their mismatches; PARITY_NS [crt-bench]
# the containerd namespace (the test image is imported into it first, so
# that the container runs the very layer the host side unpacks).
set -euo pipefail
export LC_ALL=C

repo=$(cd "$(dirname "$0")/.." && pwd)
BENCH_PARITY_OUT=${BENCH_PARITY_OUT:-/dev/stdout}
PARITY_TOP=${PARITY_TOP:-15}
PARITY_NS=${PARITY_NS:-crt-bench}
image=localhost/crt-test:latest
image_dir=$repo/target/crt-image

log() { printf 'bench-parity: %s\n' "$*" >&2; }
die() { printf 'bench-parity: error: %s\n' "$*" >&2; exit 1; }
[[ $PARITY_TOP =~ ^[1-9][0-9]*$ ]] || die "PARITY_TOP must be a whole number of at least 1 (got '$PARITY_TOP')"
[ "$(id -u)" = 0 ] || die "run as root (it starts containers through containerd and chroots on the host)"
for c in ctr crtctl strace unshare chroot tar jq; do
  command -v "$c" >/dev/null 2>&1 || die "$c is not installed (run scripts/setup.sh first)"
done
ctr version >/dev/null 2>&1 || die "containerd is not reachable (ctr version failed): start it, e.g. with scripts/setup.sh"
command -v containerd-shim-crt-v2 >/dev/null 2>&1 || die "containerd-shim-crt-v2 is not on PATH: run scripts/setup.sh first"
[ -f "$image_dir/image.tar" ] && [ -f "$image_dir/oci/index.json" ] \
  || die "the test image is not built ($image_dir/image.tar, $image_dir/oci): run scripts/build-test-image.sh (scripts/setup.sh does)"

# Where the shim keeps traces (the traces of this run are removed).
crt_config=${CRT_CONFIG:-/etc/crt/config.toml}
state_dir=/var/lib/crt
if [ -f "$crt_config" ]; then
  sd=$(awk -F'"' '/^[[:space:]]*state_dir[[:space:]]*=/ { print $2; exit }' "$crt_config")
  [ -n "$sd" ] && state_dir=$sd
fi

# shellcheck source=scripts/bench-lib.sh
. "$repo/scripts/bench-lib.sh"

export PATH="${HOME:-/root}/.cargo/bin:$PATH"
command -v cargo >/dev/null 2>&1 || die "cargo is not installed (crt-parity-bench is built from this repository)"
log "building crt-parity-bench"
cargo build --quiet --release --locked -p crt-integration --bin crt-parity-bench --manifest-path "$repo/Cargo.toml" \
  || die "building crt-parity-bench failed"
bench=$repo/target/release/crt-parity-bench

log "importing $image_dir/image.tar into namespace $PARITY_NS"
ctr -n "$PARITY_NS" image import "$image_dir/image.tar" >/dev/null || die "importing the test image into $PARITY_NS failed"

tmp=$(mktemp -d /tmp/crt-bench-parity.XXXXXX)
prefix="crtp-$$-$RANDOM"
cleanup() {
  local rc=$? id
  trap - EXIT INT TERM
  set +e
  for id in $(ctr -n "$PARITY_NS" container ls -q 2>/dev/null | grep "^$prefix-"); do
    ctr -n "$PARITY_NS" task rm -f "$id" >/dev/null 2>&1
    ctr -n "$PARITY_NS" container rm "$id" >/dev/null 2>&1
  done
  rm -rf -- "${state_dir:?}/traces/$PARITY_NS/$prefix"-* "/tmp/$prefix-work" "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

t_begin=$EPOCHREALTIME
"$bench" --oci "$image_dir/oci" --out "$tmp/parity.json" --namespace "$PARITY_NS" --image "$image" \
  --id-prefix "$prefix" --trace-dir "$state_dir/traces/$PARITY_NS" || die "crt-parity-bench failed"
elapsed=$(awk -v a="$t_begin" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f\n", b - a }')
if [ -n "${BENCH_PARITY_JSON:-}" ]; then cp -- "$tmp/parity.json" "$BENCH_PARITY_JSON"; fi

j() { jq -r "$1" "$tmp/parity.json"; }
share=$(j .share); equal=$(j .equal); n_strace=$(j .strace_calls); n_crt=$(j .crt_calls)
total=$((n_strace > n_crt ? n_strace : n_crt))
pct=$(awk -v s="$share" 'BEGIN { printf "%.1f\n", s * 100 }')
k=$(met "$share" ge 0.98)
if [ -n "${BENCH_PARITY_SHARE:-}" ]; then printf '%s %s %s\n' "$share" "$equal" "$total" >"$BENCH_PARITY_SHARE"; fi

# A trace without return values says why in its meta.json; crt-parity-bench
# removed its traces, so one short traced run tells.
probe="$prefix-probe"
ctr -n "$PARITY_NS" run --rm --runtime io.containerd.crt.v2 --annotation crt.dev/trace=openat "$image" "$probe" \
  cat /etc/crt-test-release >/dev/null 2>&1 || true
unavailable=$(jq -r '.results_unavailable // empty' "$state_dir/traces/$PARITY_NS/$probe/meta.json" 2>/dev/null) || true
rm -rf -- "${state_dir:?}/traces/$PARITY_NS/$probe"

md_code() { # text -> a Markdown code span (backticks in it become ')
  local t=${1//\`/\'}
  printf '`%s`' "$t"
}

commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null) || commit=unknown
if [ -n "$(git -C "$repo" --no-optional-locks status --porcelain 2>/dev/null)" ]; then
  commit="$commit (working tree has local changes)"
fi
shim_path=$(command -v containerd-shim-crt-v2)
shim_mtime=$(date -u -r "$shim_path" '+%Y-%m-%d %H:%M UTC' 2>/dev/null) || shim_mtime=unknown
strace_v=$(strace -V 2>/dev/null | awk 'NR == 1 { print $NF }') || true

{
  cat <<EOF
## strace parity

Generated by \`scripts/bench-parity.sh\` (part of \`scripts/bench.sh\`; run alone, it
prints this section). \`crt-parity-bench\` (\`integration/src/bin/crt-parity-bench.rs\`)
runs each program below twice: traced in a crt container (runc,
\`crt.dev/trace=$(j .trace)\`) and under \`strace -f\` ${strace_v:+$strace_v }on the host with the
same syscalls, chrooted into a copy of the same image layer, as pid 1 of a
pid namespace of its own with its own /proc, with the container's
environment, open-files limit and open fds. From each program's own execve
on (what the runtime's init or the host's launcher did before is left out),
every call crt printed (\`crtctl trace\`) is set beside strace's line for it.
Only what two runs of one program legitimately differ in is normalized
(\`integration/src/strace_compare.rs\`): the line prefixes (time, pid),
strace's padding before \` = \`, \`<unfinished ...>\`/\`resumed\` halves
(joined), addresses (hex of 6 digits or more outside strings), process ids
(of fork/clone/wait4/getpid results and pid arguments) and the bytes
getrandom returns. Everything else — flags, strings, structs, return values,
errno names — must be equal. Calls are matched as a multiset (the order in
which processes interleave is timing); a call missing on one side counts
against the share, whose denominator is the larger of the two counts.

- Date: $(date -u '+%Y-%m-%d %H:%M UTC') (took ${elapsed} s); repository $commit; the shim
  measured is the one installed at $shim_path (modified $shim_mtime)
EOF
  if [ -n "$unavailable" ]; then
    printf -- '- The traces of this run have no return values (`= ?`): %s\n' "$unavailable"
  fi
  cat <<EOF

| measurement | crt | strace | share | target | met? |
|---|---|---|---|---|---|
| calls rendered as strace renders them (return values included), corpus of $(j '.programs | length') programs | $equal equal | $n_strace calls (crt: $n_crt) | $pct % | ≥ 98 % | $k |

| program | strace calls | crt calls | equal | share |
|---|---|---|---|---|
EOF
  jq -r '.programs[] | "| `\(.argv | join(" ") | gsub("\\|"; "\\|"))` | \(.strace_calls) | \(.crt_calls) | \(.equal) | \(.share * 1000 | round / 10) % |"' "$tmp/parity.json"
  echo
  if [ "$(j '.top_mismatches | length')" = 0 ]; then
    echo "Every call was rendered as strace renders it."
  else
    echo "The syscalls with the most calls rendered differently, with the first such"
    echo "call of each (normalized):"
    echo
    jq -c ".top_mismatches[:$PARITY_TOP][]" "$tmp/parity.json" | while IFS= read -r m; do
      s=$(jq -r '.strace // "(no such call)"' <<<"$m")
      c=$(jq -r '.crt // "(no such call)"' <<<"$m")
      n=$(jq -r .count <<<"$m")
      printf -- '- **%s**, %s call%s\n  - strace: %s\n  - crt: %s\n' "$(jq -r .syscall <<<"$m")" "$n" "$([ "$n" = 1 ] || echo s)" "$(md_code "$s")" "$(md_code "$c")"
    done
  fi
} >"$tmp/section.md"
cat "$tmp/section.md" >"$BENCH_PARITY_OUT"
log "share $pct % ($equal of $total calls)"
