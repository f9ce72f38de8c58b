#!/usr/bin/env bash
# Checks a live debug clone (processes and memory too, through CRIU) on a
# node whose CRIU passes `criu check` -- 4.2 or newer on Linux 6.13+, which
# Debian 12 does not package, so this is not part of scripts/test.sh (whose
# end-to-end test checks the refusal a node without one gives). Run it by
# hand, as root, after scripts/setup.sh:
#
#   sudo ./scripts/verify-live-clone.sh /path/to/criu
#
# It names CRIU in the node config for the run (debug.criu, read by the shim
# and by a crtd of its own), clones a container that counts in memory, and
# checks that the clone goes on counting from where the source was at the
# freeze while the source goes on too, that its processes are the source's,
# that its lo is up, and that it is removed with everything of it. CRIU needs
# iptables-restore (package iptables) to lock the network while it dumps.
set -euo pipefail
criu=${1:?usage: verify-live-clone.sh /path/to/criu}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
"$criu" check >/dev/null 2>&1 || { echo "verify-live-clone: $criu does not pass criu check" >&2; exit 1; }
command -v iptables-restore >/dev/null || { echo "verify-live-clone: CRIU needs iptables-restore (apt-get install iptables)" >&2; exit 1; }

ns=crt-test
tmp=$(mktemp -d /tmp/crt-live.XXXXXX)
src="live-src-$RANDOM"
clone="$src-live"
crtd_pid=
cp /etc/crt/config.toml "$tmp/node-config.toml"
cleanup() {
  cp "$tmp/node-config.toml" /etc/crt/config.toml
  [ -n "$crtd_pid" ] && kill "$crtd_pid" 2>/dev/null && wait "$crtd_pid" 2>/dev/null
  for c in "$clone" "$src"; do
    ctr -n "$ns" task rm -f "$c" >/dev/null 2>&1 || true
    ctr -n "$ns" container rm "$c" >/dev/null 2>&1 || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "verify-live-clone: FAILED: $*" >&2; exit 1; }

printf '\n[debug]\ncriu = "%s"\n' "$criu" >> /etc/crt/config.toml
# shellcheck source=scripts/bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"
start_own_crtd "$tmp" <<TOML || fail "crtd did not start"
[api]
listen = "off"
socket = "$tmp/crtd.sock"
[store]
dir = "$tmp/store"
[debug]
criu = "$criu"
TOML
export CRT_CONFIG=$tmp/config.toml

ctr -n "$ns" image ls -q | grep -qx localhost/crt-test:latest || "$(dirname "$0")/build-test-image.sh" "$ns" >/dev/null
# The count lives in the shell's memory; the file only shows it.
ctr -n "$ns" run -d --runtime io.containerd.crt.v2 localhost/crt-test:latest "$src" \
  sh -c 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done' >/dev/null
sleep 2
in_src() { ctr -n "$ns" task exec --exec-id "v$RANDOM" "$src" "$@"; }
in_clone() { crtctl exec -n "$ns" "$clone" -- "$@"; }

before=$(in_src cat /tmp/count)
out=$(crtctl debug --json -d --live -n "$ns" --name "$clone" "$src") || fail "crtctl debug --live: $out"
echo "crtctl debug --live: $out"
[ "$(jq -r .live <<<"$out")" = true ] || fail "not a live clone"
first=$(in_clone cat /tmp/count)
sleep 1
second=$(in_clone cat /tmp/count)
source_now=$(in_src cat /tmp/count)
echo "source before: $before; clone: $first then $second; source now: $source_now"
[ "$first" -ge "$before" ] || fail "the clone started over ($first < $before): its memory was not cloned"
[ "$second" -gt "$first" ] || fail "the clone does not go on counting"
[ "$source_now" -gt "$before" ] || fail "the source stopped"
init=$(in_clone cat /proc/1/cmdline | tr '\0' ' ')
case "$init" in *"echo \$i > /tmp/count"*) ;; *) fail "the clone's init is not the source's command: $init" ;; esac
in_clone sh -c 'ip link show lo 2>/dev/null || cat /sys/class/net/lo/operstate' | grep -Eq 'UP|unknown' || fail "lo is down in the clone"
[ "$(echo 'echo shell-$((6*7))' | crtctl exec -i -n "$ns" "$clone")" = shell-42 ] || fail "no shell in the clone"
crtctl debug rm -n "$ns" "$clone" >/dev/null || fail "crtctl debug rm"
ctr -n "$ns" container ls -q | grep -qx "$clone" && fail "the clone outlived its removal"
echo "verify-live-clone: ok (freeze window $(jq -r .freeze_ms <<<"$out") ms, including CRIU's dump)"
