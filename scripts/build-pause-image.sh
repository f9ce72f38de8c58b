#!/usr/bin/env bash
# Builds the pod sandbox ("pause") image locally and imports it into
# containerd's CRI namespace under the name containerd's CRI plugin is
# configured to use (its sandbox_image), so CRI never pulls one: no registry
# is reachable from the test nodes.
#
#   scripts/build-pause-image.sh [NAMESPACE]     (default: k8s.io)
#
# The archive lands in target/crt-pause/image.tar, named localhost/crt-pause:latest.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=oci-lib.sh
. "$repo/scripts/oci-lib.sh"
out="$repo/target/crt-pause"
name="localhost/crt-pause:latest"
ns=${1:-k8s.io}

rm -rf "$out"
mkdir -p "$out/rootfs"
cc -O2 -static -o "$out/rootfs/pause" "$repo/scripts/image/pause.c"
strip "$out/rootfs/pause"
oci_archive "$out/rootfs" "$out" "$name" '{"Entrypoint":["/pause"],"WorkingDir":"/","User":"65535:65535"}'

oci_publish "pause image" "$out/image.tar" "$name" "$ns"
ctr version >/dev/null 2>&1 || exit 0
sandbox=$(containerd config dump 2>/dev/null | sed -n 's/^ *sandbox_image = "\(.*\)"$/\1/p' | head -1)
if [ -n "$sandbox" ] && [ "$sandbox" != "$name" ]; then
  ctr -n "$ns" image tag --force "$name" "$sandbox" >/dev/null
fi
echo "pause image $name is also containerd's sandbox image ${sandbox:-(none configured)}"
