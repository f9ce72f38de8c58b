#!/usr/bin/env bash
# Benchmarks pods through Kubernetes' CRI and prints a Markdown section
# (scripts/bench.sh puts it into BENCHMARKS.md; run alone, it prints it).
# integration/src/bin/crt-cri-bench plays the kubelet against containerd's
# CRI plugin, for pods on the runtime handlers `runc` (the baseline), `crt`
# and `crt` with the Pod annotation crt.dev/trace:
#
#   1. start-to-ready of a one-container pod: RunPodSandbox, CreateContainer,
#      StartContainer, then ContainerStatus until RUNNING and an exec
#      readiness probe (ExecSync of `true`) until it exits 0; beside it, the
#      teardown (StopContainer with a grace period, StopPodSandbox,
#      RemoveContainer, RemovePodSandbox);
#   2. the shim's memory per pod of three containers: RSS, PSS and private
#      bytes (/proc/PID/smaps_rollup) of containerd-shim-crt-v2, untraced and
#      traced, and of containerd-shim-runc-v2 for the same pod.
#
# The variants take turns round by round, in a rotating order; figures are
# medians. Pods run in containerd's CRI namespace (k8s.io), named crtb-RUN-*,
# labelled crt.dev/bench-run=RUN, and are removed after their round, on an
# error, and on SIGINT/SIGTERM. Takes about 3 minutes with the defaults.
#
#   sudo ./scripts/bench-cri.sh              (needs scripts/setup.sh done)
#
# Environment (defaults in brackets): POD_RUNS [25] and POD_WARMUP [2] rounds
# of start-to-ready; POD_MEM_RUNS [3] rounds of memory readings with
# POD_MEM_PODS [3] pods of each variant at once; POD_TRACE [%file] the
# crt.dev/trace value of traced pods; CRI_SOCKET
# [/run/containerd/containerd.sock]; BENCH_CRI_OUT [stdout]; BENCH_CRI_JSON
# [none: a file for every round's figures]; BENCH_CRI_NOTE [none: a sentence
# for the section, e.g. how the containerd at CRI_SOCKET was configured].
set -euo pipefail
export LC_ALL=C

repo=$(cd "$(dirname "$0")/.." && pwd)
POD_RUNS=${POD_RUNS:-25}
POD_WARMUP=${POD_WARMUP:-2}
POD_MEM_RUNS=${POD_MEM_RUNS:-3}
POD_MEM_PODS=${POD_MEM_PODS:-3}
POD_TRACE=${POD_TRACE:-%file}
CRI_SOCKET=${CRI_SOCKET:-/run/containerd/containerd.sock}
BENCH_CRI_OUT=${BENCH_CRI_OUT:-/dev/stdout}
image=localhost/crt-test:latest

log() { printf 'bench-cri: %s\n' "$*" >&2; }
die() { printf 'bench-cri: error: %s\n' "$*" >&2; exit 1; }
for v in POD_RUNS POD_MEM_RUNS POD_MEM_PODS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a whole number of at least 1 (got '${!v}')"
done
[[ $POD_WARMUP =~ ^[0-9]+$ ]] || die "POD_WARMUP must be a whole number (got '$POD_WARMUP')"
[ "$(id -u)" = 0 ] || die "run as root (it starts pods through containerd's CRI plugin)"
for c in ctr containerd jq awk; do
  command -v "$c" >/dev/null 2>&1 || die "$c is not installed (run scripts/setup.sh first)"
done
for s in containerd-shim-crt-v2 containerd-shim-runc-v2; do
  command -v "$s" >/dev/null 2>&1 || die "$s is not on PATH: run scripts/setup.sh first"
done
[ -S "$CRI_SOCKET" ] || die "no containerd socket at $CRI_SOCKET (CRI_SOCKET): start containerd, e.g. with scripts/setup.sh"
ctrn() { ctr --address "$CRI_SOCKET" -n k8s.io "$@"; }
ctrn version >/dev/null 2>&1 || die "containerd at $CRI_SOCKET does not answer (ctr version failed)"
images=$(ctrn image ls -q 2>/dev/null) || die "could not list the images of namespace k8s.io"
grep -qxF "$image" <<<"$images" || die "image $image is not in containerd's namespace k8s.io: run scripts/setup.sh first"
sandbox_image=$(containerd config dump 2>/dev/null | sed -n 's/^ *sandbox_image = "\(.*\)"$/\1/p' | head -n 1) || true
if [ "$CRI_SOCKET" = /run/containerd/containerd.sock ] && [ -n "$sandbox_image" ]; then
  grep -qxF "$sandbox_image" <<<"$images" \
    || die "the sandbox image $sandbox_image is not in namespace k8s.io (CRI would try to pull it): run scripts/setup.sh first"
fi

# shellcheck source=scripts/bench-lib.sh
. "$repo/scripts/bench-lib.sh"

# Where the shim keeps traces (the traces of this run are removed).
crt_config=${CRT_CONFIG:-/etc/crt/config.toml}
state_dir=/var/lib/crt
if [ -f "$crt_config" ]; then
  sd=$(awk -F'"' '/^[[:space:]]*state_dir[[:space:]]*=/ { print $2; exit }' "$crt_config")
  [ -n "$sd" ] && state_dir=$sd
fi

export PATH="${HOME:-/root}/.cargo/bin:$PATH"
command -v cargo >/dev/null 2>&1 || die "cargo is not installed (crt-cri-bench is built from this repository)"
log "building crt-cri-bench"
cargo build --quiet --release --locked -p crt-integration --bin crt-cri-bench --manifest-path "$repo/Cargo.toml" \
  || die "building crt-cri-bench failed"
bench=$repo/target/release/crt-cri-bench

tmp=$(mktemp -d /tmp/crt-bench-cri.XXXXXX)
run_id="$$-$RANDOM"
common=(--run-id "$run_id" --socket "$CRI_SOCKET" --trace-dir "$state_dir/traces/k8s.io")
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # crt-cri-bench removes its pods itself, even when interrupted; this
  # catches what a killed one left.
  "$bench" cleanup "${common[@]}" || log "cleanup of run $run_id failed: remove its pods (label crt.dev/bench-run=$run_id) by hand"
  rm -rf -- "$tmp" "/tmp/crt-cri-bench-$run_id"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "run $run_id against $CRI_SOCKET: $((POD_WARMUP + POD_RUNS)) start rounds, $POD_MEM_RUNS memory rounds of $POD_MEM_PODS pods per variant"
load_begin=$(cut -d' ' -f1-3 /proc/loadavg)
t_begin=$EPOCHREALTIME
"$bench" run "${common[@]}" --out "$tmp/cri.json" --runs "$POD_RUNS" --warmup "$POD_WARMUP" \
  --mem-runs "$POD_MEM_RUNS" --mem-pods "$POD_MEM_PODS" --trace "$POD_TRACE" --image "$image" \
  || die "crt-cri-bench failed"
elapsed=$(awk -v a="$t_begin" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f\n", b - a }')
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
if [ -n "${BENCH_CRI_JSON:-}" ]; then cp -- "$tmp/cri.json" "$BENCH_CRI_JSON"; fi

# figures of the run: med/lo/hi SECTION VARIANT FIELD
vals() { jq -r --arg v "$2" --arg f "$3" ".$1[\$v][\$f][]" "$tmp/cri.json"; }
med() { local -a a; mapfile -t a < <(vals "$@"); median "${a[@]}"; }
lo() { local -a a; mapfile -t a < <(vals "$@"); minimum "${a[@]}"; }
hi() { local -a a; mapfile -t a < <(vals "$@"); maximum "${a[@]}"; }
diff1() { # A - B in whole ms, signed ("±0" when it rounds to nothing)
  awk -v a="$1" -v b="$2" 'BEGIN { d = sprintf("%.0f", a - b) + 0; if (d == 0) print "±0"; else printf "%+d\n", d }'
}

s_runc=$(med start runc total_ms); s_crt=$(med start crt total_ms); s_tr=$(med start crt-traced total_ms)
r_crt=$(ratio "$s_crt" "$s_runc"); k_crt=$(met "$r_crt" le 1.05)
r_tr=$(ratio "$s_tr" "$s_runc"); k_tr=$(met "$r_tr" le 1.15)
d_runc=$(med start runc teardown_ms); d_crt=$(med start crt teardown_ms); d_tr=$(med start crt-traced teardown_ms)
declare -A mem
for v in runc crt crt-traced; do
  for f in rss_kb pss_kb private_kb; do mem[$v.$f]=$(med memory "$v" "$f"); done
done
mrow() { # label field: a memory row of the results table, both crt variants
  local f=$2
  printf '| %s, crt untraced | %s | %s | %s | — | — |\n' "$1" "$(fmt0 "${mem[crt.$f]}")" "$(fmt0 "${mem[runc.$f]}")" "$(ratio "${mem[crt.$f]}" "${mem[runc.$f]}")"
  printf '| %s, crt traced (%s) | %s | %s | %s | — | — |\n' "$1" "$POD_TRACE" "$(fmt0 "${mem[crt-traced.$f]}")" "$(fmt0 "${mem[runc.$f]}")" "$(ratio "${mem[crt-traced.$f]}" "${mem[runc.$f]}")"
}
phase_row() { # label field
  printf '| %s | %s | %s | %s |\n' "$1" "$(fmt1 "$(med start runc "$2")")" "$(fmt1 "$(med start crt "$2")")" "$(fmt1 "$(med start crt-traced "$2")")"
}
range() { printf '%s (%s–%s)' "$(fmt0 "$(med "$@")")" "$(fmt0 "$(lo "$@")")" "$(fmt0 "$(hi "$@")")"; }
mem_row() { # variant label
  printf '| %s | %s | %s | %s | %s | %s |\n' "$2" "$(range memory "$1" rss_kb)" "$(range memory "$1" pss_kb)" \
    "$(range memory "$1" private_kb)" "$(fmt0 "$(med memory "$1" processes)")" "$(range memory "$1" same_binary)"
}
# where a variant's extra start-to-ready time goes, phase by phase (medians)
where() { # variant
  local f out=""
  for f in sandbox_ms create_ms start_ms ready_ms; do
    out="$out, ${f%_ms} $(diff1 "$(med start "$1" "$f")" "$(med start runc "$f")")"
  done
  printf '%s' "${out#, }"
}

containerd_v=$(ctr --address "$CRI_SOCKET" version 2>/dev/null | awk '/Version:/ { v = $2 } END { print v }')
runc_v=$(runc --version 2>/dev/null | awk 'NR == 1 { print $3 }')
shim_crt=$(jq -r '.shims.crt' "$tmp/cri.json")
shim_crt_mtime=$(date -u -r "$shim_crt" '+%Y-%m-%d %H:%M UTC' 2>/dev/null) || shim_crt_mtime=unknown
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null) || commit=unknown
if [ -n "$(git -C "$repo" --no-optional-locks status --porcelain 2>/dev/null)" ]; then
  commit="$commit (working tree has local changes)"
fi
j() { jq -r "$1" "$tmp/cri.json"; }
reproduce="POD_RUNS=$POD_RUNS POD_WARMUP=$POD_WARMUP POD_MEM_RUNS=$POD_MEM_RUNS POD_MEM_PODS=$POD_MEM_PODS POD_TRACE=$POD_TRACE"
[ "$CRI_SOCKET" = /run/containerd/containerd.sock ] || reproduce="$reproduce CRI_SOCKET=$CRI_SOCKET"
reproduce="$reproduce ./scripts/bench-cri.sh"
socket_note=""
if [ "$CRI_SOCKET" != /run/containerd/containerd.sock ]; then
  socket_note=" (CRI_SOCKET: a containerd other than the node's)"
fi

{
  cat <<EOF
## Pods through CRI

Generated by \`scripts/bench-cri.sh\` (part of \`scripts/bench.sh\`; run alone, it
prints this section). \`crt-cri-bench\` (\`integration/src/bin/crt-cri-bench.rs\`,
on the tests' CRI client \`crt_integration::cri\`) plays the kubelet against containerd's
CRI plugin over its gRPC socket, for Pods on the runtime handlers \`runc\`
(the baseline, \`io.containerd.runc.v2\`), \`crt\` and \`crt\` with the Pod
annotation \`crt.dev/trace=$POD_TRACE\` (which containerd passes on to the
containers, never traced in the sandbox: checked every round, as is that
untraced pods leave no trace). Every pod has its own network (the CNI
bridge), RuntimeDefault seccomp for its sandbox and containers, and
containers of \`$image\` running \`sh -c 'trap "exit 0" TERM; sleep 3600 & wait'\`.

- **Start-to-ready**: from RunPodSandbox to the container being ready as a
  kubelet with an exec readiness probe sees it: RunPodSandbox,
  CreateContainer, StartContainer, then ContainerStatus until RUNNING and
  ExecSync of \`true\` (timeout $(j .probe_timeout_s) s) until it exits 0 (the probe
  is sent at once, with none of a kubelet's probe delays). Median of
  $POD_RUNS rounds after $POD_WARMUP warm-up rounds, one pod per variant per round,
  the variants in a rotating order.
- **Stop and remove** (a side figure, no goal): StopContainer with a
  $(j .grace_s) s grace period (the container exits on SIGTERM), StopPodSandbox,
  RemoveContainer, RemovePodSandbox.
- **Shim memory per pod of three containers**: $POD_MEM_PODS pods of one variant run at once,
  each with three containers; $(j .mem_settle_ms) ms after all are ready, every pod's shim
  is read from \`/proc/PID/smaps_rollup\`: the long-lived shim process of
  the pod (one per pod for both shims: every container's process is checked
  to be its child) plus its children that run the same binary (crt's
  listener keeper, present when the pod is traced). RSS
  counts shared pages in full; PSS divides them between the processes
  mapping them, so it is the fair per-pod share of the text that all shims
  of one binary share; private bytes are what one more pod adds. Median of
  $POD_MEM_RUNS rounds × $POD_MEM_PODS pods.

- Date: $(date -u '+%Y-%m-%d %H:%M UTC') (measurements took ${elapsed} s)
- Kernel $(uname -r), $(nproc) CPUs; load average (1/5/15 min) at start $load_begin, at end $load_end
- containerd ${containerd_v:-unknown} at $CRI_SOCKET$socket_note, runc ${runc_v:-unknown}; shims $(j .shims.runc) and $shim_crt (modified $shim_crt_mtime)
- Reproduce (as root, after \`scripts/setup.sh\`): \`$reproduce\`
- Repository: $commit${BENCH_CRI_NOTE:+
- Note: $BENCH_CRI_NOTE}

| measurement | crt | baseline: runc | ratio | goal | met? |
|---|---|---|---|---|---|
| pod start-to-ready, crt untraced, ms | $(fmt0 "$s_crt") | $(fmt0 "$s_runc") | $r_crt | ≤ 1.05 | $k_crt |
| pod start-to-ready, crt traced ($POD_TRACE), ms | $(fmt0 "$s_tr") | $(fmt0 "$s_runc") | $r_tr | ≤ 1.15 | $k_tr |
| pod stop and remove, crt untraced, ms | $(fmt0 "$d_crt") | $(fmt0 "$d_runc") | $(ratio "$d_crt" "$d_runc") | — | — |
| pod stop and remove, crt traced ($POD_TRACE), ms | $(fmt0 "$d_tr") | $(fmt0 "$d_runc") | $(ratio "$d_tr" "$d_runc") | — | — |
$(mrow "shim PSS per pod of 3 containers, kB" pss_kb)
$(mrow "shim RSS per pod of 3 containers, kB" rss_kb)
$(mrow "shim private memory per pod of 3 containers, kB" private_kb)

Start-to-ready phase by phase (medians, ms; the phases' medians need not add
up to the total's):

| phase | runc | crt | crt traced ($POD_TRACE) |
|---|---|---|---|
$(phase_row "RunPodSandbox (network, shim start, sandbox)" sandbox_ms)
$(phase_row "CreateContainer" create_ms)
$(phase_row "StartContainer" start_ms)
$(phase_row "until ready (ContainerStatus, ExecSync \`true\`)" ready_ms)
$(phase_row "**start-to-ready**" total_ms)
$(phase_row "stop and remove" teardown_ms)

Against runc, phase by phase (ms, medians): crt untraced $(where crt);
crt traced $(where crt-traced). Start-to-ready ranges (min–max):
runc $(fmt0 "$(lo start runc total_ms)")–$(fmt0 "$(hi start runc total_ms)"), crt $(fmt0 "$(lo start crt total_ms)")–$(fmt0 "$(hi start crt total_ms)"), crt traced $(fmt0 "$(lo start crt-traced total_ms)")–$(fmt0 "$(hi start crt-traced total_ms)").

Shim memory, median (min–max) per pod, kB:

| shim | RSS | PSS | private | processes | processes running its binary at the reading |
|---|---|---|---|---|---|
$(mem_row runc "containerd-shim-runc-v2")
$(mem_row crt "containerd-shim-crt-v2, untraced")
$(mem_row crt-traced "containerd-shim-crt-v2, traced ($POD_TRACE)")

The last column is what PSS divides shared pages by: the $POD_MEM_PODS shims of the
round (twice as many processes for traced pods: shim and keeper) and any
other pod's shim of the same binary then running on the node.
EOF
} >"$BENCH_CRI_OUT"
log "done in ${elapsed}s"
