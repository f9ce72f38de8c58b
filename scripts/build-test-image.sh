#!/usr/bin/env bash
# Builds the small test image (busybox-static + crt-loop + crt-results) as an OCI archive,
# without any registry, and imports it into the given containerd namespaces.
#
#   scripts/build-test-image.sh [NAMESPACE...]     (default: default crt-test)
#
# The archive lands in target/crt-image/image.tar; the image is named
# localhost/crt-test:latest. Re-running rebuilds it byte for byte the same.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=oci-lib.sh
. "$repo/scripts/oci-lib.sh"
out="$repo/target/crt-image"
image_name="localhost/crt-test:latest"
namespaces=("$@")
[ ${#namespaces[@]} -gt 0 ] || namespaces=(default crt-test)

rm -rf "$out"
mkdir -p "$out/rootfs"
root="$out/rootfs"

mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,proc,sys,dev,root,var/tmp}
chmod 1777 "$root/tmp" "$root/var/tmp"
oci_static_busybox "$root"
cc -O2 -static -o "$root/bin/crt-loop" "$repo/scripts/image/crt-loop.c"
cc -O2 -static -o "$root/bin/crt-results" "$repo/scripts/image/crt-results.c"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
printf 'crt test image\n' > "$root/etc/crt-test-release"
# A link of known target, for crt-results' readlink.
ln -s crt-test-release "$root/etc/crt-test-link"

oci_archive "$root" "$out" "$image_name" \
  '{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"WorkingDir":"/"}'

oci_publish "test image" "$out/image.tar" "$image_name" "${namespaces[@]}"
