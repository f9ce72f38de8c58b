#!/usr/bin/env bash
# Builds the small test image (busybox-static + crt-loop) as an OCI archive,
# without any registry, and imports it into the given containerd namespaces.
#
#   scripts/build-test-image.sh [NAMESPACE...]     (default: default crt-test)
#
# The archive lands in target/crt-image/image.tar; the image is named
# localhost/crt-test:latest. Re-running rebuilds it byte for byte the same.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out="$repo/target/crt-image"
image_name="localhost/crt-test:latest"
namespaces=("$@")
[ ${#namespaces[@]} -gt 0 ] || namespaces=(default crt-test)

busybox=/bin/busybox
[ -x "$busybox" ] || { echo "build-test-image: $busybox is missing (apt-get install busybox-static)" >&2; exit 1; }
file "$busybox" 2>/dev/null | grep -q 'statically linked' || ldd "$busybox" 2>&1 | grep -q 'not a dynamic' \
  || { echo "build-test-image: $busybox is not statically linked (install busybox-static, not busybox)" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out/rootfs" "$out/oci/blobs/sha256"
root="$out/rootfs"

mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,proc,sys,dev,root,var/tmp}
chmod 1777 "$root/tmp" "$root/var/tmp"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
cc -O2 -static -o "$root/bin/crt-loop" "$repo/scripts/image/crt-loop.c"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
printf 'crt test image\n' > "$root/etc/crt-test-release"

layer="$out/layer.tar"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$root" -cf "$layer" .
layer_digest=$(sha256sum "$layer" | cut -d' ' -f1)
layer_size=$(stat -c %s "$layer")
mv "$layer" "$out/oci/blobs/sha256/$layer_digest"

blob() { # write stdin as a blob, print "digest size"
  local tmp="$out/blob.tmp" digest size
  cat > "$tmp"
  digest=$(sha256sum "$tmp" | cut -d' ' -f1)
  size=$(stat -c %s "$tmp")
  mv "$tmp" "$out/oci/blobs/sha256/$digest"
  echo "$digest $size"
}

blob_out=$(printf '%s' \
  '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:'"$layer_digest"'"]}}' | blob)
read -r config_digest config_size <<<"$blob_out"

blob_out=$(printf '%s' \
  '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'"$config_digest"'","size":'"$config_size"'},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:'"$layer_digest"'","size":'"$layer_size"'}]}' | blob)
read -r manifest_digest manifest_size <<<"$blob_out"

printf '%s' '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'"$manifest_digest"'","size":'"$manifest_size"',"annotations":{"io.containerd.image.name":"'"$image_name"'","org.opencontainers.image.ref.name":"latest"},"platform":{"architecture":"amd64","os":"linux"}}]}' > "$out/oci/index.json"
printf '%s' '{"imageLayoutVersion":"1.0.0"}' > "$out/oci/oci-layout"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$out/oci" -cf "$out/image.tar" .

if command -v ctr >/dev/null 2>&1 && ctr version >/dev/null 2>&1; then
  for ns in "${namespaces[@]}"; do
    ctr -n "$ns" image import --all-platforms "$out/image.tar" >/dev/null
    ctr -n "$ns" image ls -q | grep -qx "$image_name" \
      || { echo "build-test-image: import into namespace $ns did not create $image_name" >&2; exit 1; }
  done
  echo "test image $image_name imported into: ${namespaces[*]}"
else
  echo "test image archive at $out/image.tar (containerd is not running: not imported)"
fi
