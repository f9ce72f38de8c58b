#!/usr/bin/env bash
# Builds the installer image of deploy/installer.yaml from the project's own
# node binaries: static busybox and bash, the three binaries, and
# install-node.sh with the files it installs. Run by the DaemonSet, it installs
# into the node's root mounted at /host:
#
#   /opt/crt/scripts/install-node.sh --root /host --bin-dir /opt/crt/bin
#
# (containerd's version from CRT_CONTAINERD_VERSION, which the DaemonSet sets).
#
#   scripts/build-installer-image.sh [--bin-dir DIR] [NAMESPACE...]
#
# --bin-dir: the node binaries (default: target/x86_64-unknown-linux-gnu/node,
# built by scripts/setup.sh). The archive lands in target/crt-installer/image.tar,
# named localhost/crt-installer:latest, and is imported into each containerd
# NAMESPACE given (k8s.io for the node's kubelet). Re-running it with the same
# binaries gives the same bytes. To serve a cluster, push the archive to the
# cluster's registry and name it in deploy/installer.yaml.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=oci-lib.sh
. "$repo/scripts/oci-lib.sh"
out="$repo/target/crt-installer"
name="localhost/crt-installer:latest"
bin_dir="$repo/target/x86_64-unknown-linux-gnu/node"
if [ "${1:-}" = --bin-dir ]; then
  [ $# -ge 2 ] || { echo "build-installer-image: --bin-dir needs a directory" >&2; exit 1; }
  bin_dir=$2; shift 2
fi
namespaces=("$@")

bash_static=/bin/bash-static
[ -x "$bash_static" ] || { echo "build-installer-image: $bash_static is missing (apt-get install bash-static)" >&2; exit 1; }
for b in containerd-shim-crt-v2 crtd crtctl; do
  [ -f "$bin_dir/$b" ] || { echo "build-installer-image: no $bin_dir/$b (build the node binaries first: scripts/setup.sh)" >&2; exit 1; }
done

rm -rf "$out"
root="$out/rootfs"
mkdir -p "$root"/{etc,tmp,proc,sys,dev,host,usr/bin} "$root/opt/crt"/{bin,scripts}
chmod 1777 "$root/tmp"
oci_static_busybox "$root"
# install-node.sh is a bash script (#!/usr/bin/env bash).
rm -f "$root/bin/bash"
cp "$bash_static" "$root/bin/bash"
ln -sf ../../bin/busybox "$root/usr/bin/env"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\n' > "$root/etc/group"
for b in containerd-shim-crt-v2 crtd crtctl; do
  install -m 0755 "$bin_dir/$b" "$root/opt/crt/bin/$b"
done
install -m 0755 "$repo/scripts/install-node.sh" "$root/opt/crt/scripts/install-node.sh"
install -m 0644 "$repo/scripts/crtd.service" "$repo/scripts/config.example.toml" "$root/opt/crt/scripts/"
install -m 0644 "$repo/README.md" "$root/opt/crt/README.md"

oci_archive "$root" "$out" "$name" \
  '{"Env":["PATH=/opt/crt/scripts:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["/opt/crt/scripts/install-node.sh","--root","/host","--bin-dir","/opt/crt/bin"],"WorkingDir":"/"}'

oci_publish "installer image" "$out/image.tar" "$name" "${namespaces[@]}"
