#!/usr/bin/env bash
# Sets up a Debian 12 node (as root) for CRT, idempotently:
#   - containerd, runc, crun and the build/test tools from Debian's packages
#   - containerd-shim-crt-v2, crtctl and crtd built and installed to /usr/local/bin
#   - containerd configured with a "crt" runtime class and running
#   - crtd (the node supervisor) running, with a systemd unit for node images
#   - the test image built locally and imported (no registry needed)
# Re-running it changes nothing that is already in place.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
prefix=/usr/local
say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts containerd)"

# --- packages ----------------------------------------------------------------
packages=(containerd runc crun busybox-static ca-certificates gcc libc6-dev linux-libc-dev
          protobuf-compiler strace bsdutils procps util-linux iproute2 jq hyperfine curl python3
          prometheus openssl docker-registry chromium containernetworking-plugins
          python3-venv bash-static clang libbpf-dev)
# prometheus: for promtool, which checks crtd's metrics; docker-registry: a
# local registry the commit tests push to (started by the tests themselves);
# chromium: the browser the web UI's tests drive (Playwright never downloads one).
# python3-venv: for kubernetes-validate (below); bash-static: the shell of the
# installer image (scripts/build-installer-image.sh), which runs install-node.sh.
# containernetworking-plugins: the CNI plugins containerd's CRI plugin gives
# pods their network with (the CRI tests run pods as a kubelet does).
# clang, libbpf-dev: the shim's build compiles its syscall-exit BPF program
# (shim/bpf/exits.bpf.c) with clang against libbpf's <bpf/bpf_helpers.h>.
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  apt-get update -qq
  # Packages must not start their daemons (the prometheus server among
  # them): this script starts what CRT needs, itself.
  policy=/usr/sbin/policy-rc.d
  own_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && own_policy=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -z "$own_policy" ] || { rm -f "$policy"; trap - EXIT; }
fi

# --- Rust toolchain ------------------------------------------------------------
export PATH="${HOME:-/root}/.cargo/bin:$PATH"
command -v cargo >/dev/null || die "cargo is not installed: install a Rust toolchain (1.89 or newer: Cargo.toml rust-version), e.g. with rustup"

# --- cgroups -------------------------------------------------------------------
# crun refuses a hybrid cgroup layout whose v2 hierarchy still holds
# controllers ("cgroups in hybrid mode not supported"). On such nodes the
# stray controllers (typically hugetlb) are bound to a v1 hierarchy of their
# own, as every other controller already is.
if [ -f /sys/fs/cgroup/unified/cgroup.controllers ] && [ ! -f /sys/fs/cgroup/cgroup.controllers ]; then
  for c in $(cat /sys/fs/cgroup/unified/cgroup.controllers); do
    if ! mountpoint -q "/sys/fs/cgroup/$c"; then
      say "binding the $c controller to cgroup v1 (crun needs an empty cgroup v2 in hybrid mode)"
      mkdir -p "/sys/fs/cgroup/$c"
      mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"
    fi
  done
fi

# --- build and install ---------------------------------------------------------
# The node profile links glibc statically (for the host triple, so build
# scripts and proc macros stay dynamic): a shim beside every container
# should map as little as it can.
# crtd embeds the web UI: it is built first (npm, from ui/package-lock.json),
# with the machine's Node.js (20.19+); Debian's own is tried where there is none.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  say "installing Node.js and npm from Debian's packages"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
"$repo/scripts/build-ui.sh"
say "building containerd-shim-crt-v2, crtd and crtctl"
triple=$(rustc -vV | sed -n 's/^host: //p')
(cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --profile node --locked -q --target "$triple" -p crt-shim -p crtctl -p crtd)
built="$repo/target/$triple/node"

# --- TLS for tenants ----------------------------------------------------------------
# Tenants' bearer tokens must not cross the network in clear. Unless the node
# already has a certificate, a local CA (/etc/crt/tls/ca.crt, to hand to
# tenants for crtctl --ca) signs one for this node, naming its host name and
# addresses. Keys are 0600.
tls=/etc/crt/tls
if [ ! -s "$tls/node.crt" ] || [ ! -s "$tls/node.key" ]; then
  say "making a node certificate for crtd from a local CA ($tls/ca.crt)"
  install -d -m 0755 "$tls"
  umask_old=$(umask); umask 077
  if [ ! -s "$tls/ca.key" ] || [ ! -s "$tls/ca.crt" ]; then
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
      -subj "/CN=CRT local CA ($(hostname))" -keyout "$tls/ca.key" -out "$tls/ca.crt" 2>/dev/null
  fi
  san="DNS:$(hostname),DNS:localhost,IP:127.0.0.1,IP:::1"
  for ip in $(hostname -I 2>/dev/null); do san="$san,IP:$ip"; done
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=$(hostname)" -keyout "$tls/node.key" -out "$tls/node.csr" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' "$san" >"$tls/node.ext"
  openssl x509 -req -in "$tls/node.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial \
    -days 825 -extfile "$tls/node.ext" -out "$tls/node.crt" 2>/dev/null
  rm -f "$tls/node.csr" "$tls/node.ext" "$tls/ca.srl"
  umask "$umask_old"
  chmod 0644 "$tls/ca.crt" "$tls/node.crt"
  chmod 0600 "$tls/ca.key" "$tls/node.key"
fi

# --- install, and the runtime class in containerd ---------------------------------
# scripts/install-node.sh does what a node image's build does: the binaries,
# crtd's unit, the node config (only where there is none: here one that
# serves tenants over TLS), crtd's state directories, and the "crt" runtime
# class in containerd's config (pod annotations crt.dev/* passed through to
# the containers, so Pods can opt in). It restarts nothing: what changed is
# restarted below.
node_config=$(mktemp)
trap 'rm -f "$node_config"' EXIT
cat > "$node_config" <<TOML
# Written by scripts/setup.sh; every key is in /etc/crt/config.example.toml.
[api]
# HTTPS for tenants (crtctl --server https://$(hostname):7420 --ca $tls/ca.crt).
# Serve it beyond this node with listen = "0.0.0.0:7420".
listen = "127.0.0.1:7420"
tls_cert = "$tls/node.crt"
tls_key = "$tls/node.key"
TOML
conf=/etc/containerd/config.toml
# (A missing file counts as empty; cat reports it, cksum still prints.)
fingerprint() { cat "$@" 2>/dev/null | cksum || true; }
containerd_before=$(fingerprint "$conf" /etc/containerd/conf.d/crt.toml)
crtd_before=$(fingerprint /usr/local/bin/crtd /etc/crt/config.toml)
"$repo/scripts/install-node.sh" --bin-dir "$built" --node-config "$node_config" --no-restart-hint
changed=0
[ "$(fingerprint "$conf" /etc/containerd/conf.d/crt.toml)" = "$containerd_before" ] || changed=1
crtd_changed=0
[ "$(fingerprint /usr/local/bin/crtd /etc/crt/config.toml)" = "$crtd_before" ] || crtd_changed=1
# Every pod sandbox asks for oom_score_adj -998, and lowering a score needs
# CAP_SYS_RESOURCE (bit 24). Where this node runs without it (inside a
# container or a restricted VM) runc would fail every pod ("failed to update
# /proc/self/oom_score_adj: Permission denied"): containerd's CRI plugin
# (config version 2, containerd 1.x) is told to clamp the scores to its own.
capeff=$(awk '/^CapEff:/ {print $2}' /proc/self/status)
if ! (( (16#$capeff >> 24) & 1 )) && grep -q '^version *= *2' "$conf" &&
   ! grep -q '^ *restrict_oom_score_adj' "$conf"; then
  say "no CAP_SYS_RESOURCE here: containerd's CRI plugin gets restrict_oom_score_adj = true"
  cri_table='^ *\[plugins\."io\.containerd\.grpc\.v1\.cri"\] *$'
  if grep -q "$cri_table" "$conf"; then
    sed -i "/$cri_table/a restrict_oom_score_adj = true" "$conf"
  else
    printf '\n[plugins."io.containerd.grpc.v1.cri"]\n  restrict_oom_score_adj = true\n' >> "$conf"
  fi
  changed=1
fi

# Daemons started here must not keep whatever descriptors this script was
# given (a caller's lock file, a CI runner's pipes): they would hold them for
# as long as they run.
start_daemon() {
  local log=$1; shift
  (
    for fd in /proc/self/fd/*; do
      fd=${fd##*/}
      [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-" 2>/dev/null
    done
    exec setsid "$@" >>"$log" 2>&1 </dev/null
  ) &
}

containerd_up() { ctr version >/dev/null 2>&1; }
systemd_running() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }
if systemd_running; then
  systemctl enable containerd >/dev/null 2>&1 || true
  if [ $changed = 1 ] && containerd_up; then systemctl restart containerd; else systemctl start containerd; fi
else
  if [ $changed = 1 ] && containerd_up; then
    say "restarting containerd to load the new configuration"
    pkill -x containerd || true
    for _ in $(seq 50); do containerd_up || break; sleep 0.1; done
  fi
  if ! containerd_up; then
    say "starting containerd (log: /var/log/containerd.log)"
    PATH="$prefix/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
      start_daemon /var/log/containerd.log containerd
  fi
fi
for _ in $(seq 100); do containerd_up && break; sleep 0.2; done
containerd_up || die "containerd did not come up (see /var/log/containerd.log)"

# --- crtd ------------------------------------------------------------------------
crtd_up() { [ -S /run/crt/crtd.sock ] && pgrep -x crtd >/dev/null; }
if systemd_running; then
  systemctl daemon-reload
  systemctl enable crtd >/dev/null 2>&1 || true
  if [ $crtd_changed = 1 ]; then systemctl restart crtd; else systemctl start crtd; fi
else
  if [ $crtd_changed = 1 ] && crtd_up; then
    say "restarting crtd (new binary)"
    pkill -x crtd || true
    # It finishes the requests in hand (up to 5 s) and its ingest turn first.
    for _ in $(seq 300); do pgrep -x crtd >/dev/null || break; sleep 0.1; done
  fi
  if ! crtd_up; then
    say "starting crtd (log: /var/log/crtd.log)"
    start_daemon /var/log/crtd.log "$prefix/bin/crtd"
  fi
fi
# It opens its history store before it listens: seconds on a node with a large one.
for _ in $(seq 300); do crtd_up && break; sleep 0.1; done
crtd_up || die "crtd did not start within 30 s (see /var/log/crtd.log; is /etc/crt/config.toml valid? crtd names the line)"

# --- pod network ------------------------------------------------------------------
# containerd's CRI plugin looks for CNI plugins in /opt/cni/bin; Debian puts
# them in /usr/lib/cni. A node with no CNI configuration of its own gets a
# bridge network for its pods (what a kubelet's node would have from its
# network add-on).
install -d -m 0755 /opt/cni/bin /etc/cni/net.d
for plugin in /usr/lib/cni/*; do
  [ -e "/opt/cni/bin/${plugin##*/}" ] || ln -s "$plugin" "/opt/cni/bin/${plugin##*/}"
done
if [ -z "$(find /etc/cni/net.d -maxdepth 1 \( -name '*.conf' -o -name '*.conflist' -o -name '*.json' \) -print -quit)" ]; then
  say "writing /etc/cni/net.d/10-crt-bridge.conflist (a bridge network for pods, 10.88.0.0/16)"
  cat > /etc/cni/net.d/10-crt-bridge.conflist <<'JSON'
{
  "cniVersion": "1.0.0",
  "name": "crt-pods",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "crt0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "10.88.0.0/16"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
fi

# --- test images ----------------------------------------------------------------
# k8s.io is the CRI plugin's namespace: pods find their images there, and the
# sandbox ("pause") image, built here, under the name containerd looks for.
"$repo/scripts/build-test-image.sh" default crt-test k8s.io
"$repo/scripts/build-pause-image.sh" k8s.io

# --- Kubernetes manifests ------------------------------------------------------------
# The tests validate deploy/*.yaml offline against the Kubernetes object
# schemas with kubernetes-validate (from PyPI, pinned), in a venv of its own.
kv_version=1.37.0
kv=/opt/crt-tools/venv/bin/kubernetes-validate
if [ "$("$kv" --version 2>/dev/null)" != "$kv_version" ]; then
  say "installing kubernetes-validate $kv_version into /opt/crt-tools/venv"
  python3 -m venv /opt/crt-tools/venv
  /opt/crt-tools/venv/bin/pip install -q --disable-pip-version-check "kubernetes-validate==$kv_version"
fi

say "ready: containerd $(ctr version 2>/dev/null | awk '/Version:/ {print $2; exit}'), runc $(runc --version | awk 'NR==1 {print $3}'), crun $(crun --version | awk 'NR==1 {print $3}')"
