# Shared by the scripts that build images locally (no registry, no builder):
# source it, then call oci_archive and oci_import. Archives are reproducible:
# the same root and config give the same bytes.

# oci_archive ROOTFS OUT IMAGE_NAME CONFIG
#   Writes OUT/image.tar, an OCI image layout archive of one layer (ROOTFS)
#   named IMAGE_NAME. CONFIG is the image config's "config" object as JSON
#   (Env, Cmd, Entrypoint, WorkingDir, ...). Uses OUT/oci as scratch space.
oci_archive() {
  local root=$1 out=$2 name=$3 config=$4
  local oci="$out/oci" layer="$out/layer.tar" layer_digest layer_size
  rm -rf "$oci"
  mkdir -p "$oci/blobs/sha256"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$root" -cf "$layer" .
  layer_digest=$(sha256sum "$layer" | cut -d' ' -f1)
  layer_size=$(stat -c %s "$layer")
  mv "$layer" "$oci/blobs/sha256/$layer_digest"

  local config_digest config_size manifest_digest manifest_size
  read -r config_digest config_size < <(printf '%s' \
    '{"architecture":"amd64","os":"linux","config":'"$config"',"rootfs":{"type":"layers","diff_ids":["sha256:'"$layer_digest"'"]}}' \
    | _oci_blob "$oci")
  read -r manifest_digest manifest_size < <(printf '%s' \
    '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'"$config_digest"'","size":'"$config_size"'},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:'"$layer_digest"'","size":'"$layer_size"'}]}' \
    | _oci_blob "$oci")
  printf '%s' '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'"$manifest_digest"'","size":'"$manifest_size"',"annotations":{"io.containerd.image.name":"'"$name"'","org.opencontainers.image.ref.name":"'"${name##*:}"'"},"platform":{"architecture":"amd64","os":"linux"}}]}' > "$oci/index.json"
  printf '%s' '{"imageLayoutVersion":"1.0.0"}' > "$oci/oci-layout"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$oci" -cf "$out/image.tar" .
}

# Stores stdin as a blob of the layout at $1; prints "digest size".
_oci_blob() {
  local tmp="$1/blob.tmp" digest size
  cat > "$tmp"
  digest=$(sha256sum "$tmp" | cut -d' ' -f1)
  size=$(stat -c %s "$tmp")
  mv "$tmp" "$1/blobs/sha256/$digest"
  echo "$digest $size"
}

# oci_import ARCHIVE IMAGE_NAME NAMESPACE...
#   Imports the archive into each containerd namespace and checks the image
#   is there. Returns 2 (having imported nothing) when containerd is not running.
oci_import() {
  local archive=$1 name=$2 ns; shift 2
  command -v ctr >/dev/null 2>&1 && ctr version >/dev/null 2>&1 || return 2
  for ns in "$@"; do
    ctr -n "$ns" image import --all-platforms "$archive" >/dev/null
    # (the list is read whole: grep -q leaving early would fail ctr with SIGPIPE)
    ctr -n "$ns" image ls -q | grep -xF "$name" >/dev/null \
      || { echo "oci_import: import into namespace $ns did not create $name" >&2; return 1; }
  done
}

# oci_static_busybox ROOT
#   Puts busybox-static and its applets into ROOT/bin (the base of every image here).
oci_static_busybox() {
  local root=$1 busybox=/bin/busybox applet
  [ -x "$busybox" ] || { echo "oci: $busybox is missing (apt-get install busybox-static)" >&2; return 1; }
  file "$busybox" 2>/dev/null | grep -q 'statically linked' || ldd "$busybox" 2>&1 | grep -q 'not a dynamic' \
    || { echo "oci: $busybox is not statically linked (install busybox-static, not busybox)" >&2; return 1; }
  mkdir -p "$root/bin"
  cp "$busybox" "$root/bin/busybox"
  for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
}

# oci_publish WHAT ARCHIVE IMAGE_NAME NAMESPACE...
#   Imports the archive into the namespaces (none: it only says where the
#   archive is) and says what it did; WHAT names the image in the message.
oci_publish() {
  local what=$1 archive=$2 name=$3 rc=0; shift 3
  if [ $# -eq 0 ]; then
    echo "$what archive at $archive ($name)"
    return 0
  fi
  oci_import "$archive" "$name" "$@" || rc=$?
  case $rc in
    0) echo "$what $name imported into: $*" ;;
    2) echo "$what archive at $archive (containerd is not running: not imported)" ;;
  esac
  [ $rc = 2 ] || return $rc
}
