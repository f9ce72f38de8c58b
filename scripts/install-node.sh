#!/usr/bin/env bash
# Installs CRT on a node or into a node image, and registers the "crt" runtime
# class with containerd. For image builders (--root) and for running nodes.
#
#   scripts/install-node.sh [--root DIR] [--bin-dir DIR] [--node-config FILE]
#                           [--containerd VERSION] [--restart] [--no-restart-hint]
#   scripts/install-node.sh [--root DIR] [--containerd VERSION] [--restart] --uninstall
#
#   --root DIR          install under DIR instead of / (an image's root); no
#                       daemon is touched, whatever else is asked
#   --bin-dir DIR       where containerd-shim-crt-v2, crtd and crtctl are
#                       (default: the repository's node build,
#                       target/x86_64-unknown-linux-gnu/node)
#   --node-config FILE  the node config to install as /etc/crt/config.toml when
#                       the node has none (default: one that keeps every
#                       default: see config.example.toml)
#   --containerd VER    the containerd version to register the runtime with
#                       (default: $CRT_CONTAINERD_VERSION, else what
#                       `containerd --version` says); decides how the runtime
#                       is registered, see below
#   --restart           on a running node (not with --root): after a change,
#                       `systemctl daemon-reload`; restart containerd if its
#                       config changed, crtd if its binary, unit or config did.
#                       Without it nothing is restarted: containers started
#                       after the next containerd restart use the runtime class.
#   --uninstall         remove what earlier runs installed (see the manifest)
#   --no-restart-hint   say nothing of restarting what changed: the caller
#                       restarts it (scripts/setup.sh does)
#
# What it installs, under the root:
#   /usr/local/bin/{containerd-shim-crt-v2,crtd,crtctl}      0755
#   /etc/systemd/system/crtd.service                         0644 (not enabled)
#   /etc/crt/config.example.toml                             0644
#   /etc/crt/config.toml   0600, only when there is none: a node's own config is never replaced
#   /usr/local/share/doc/crt/README.md                       0644 (when the README is beside it)
#   /var/lib/crt 0711, /run/crt 0700                         (crtd's state)
#   the runtime class "crt" in containerd's config:
#     containerd 1.x: a block between "# BEGIN crt" and "# END crt" marker
#       comments appended to /etc/containerd/config.toml. containerd 1.x
#       imports config files plugin by plugin, each imported plugin table
#       replacing the main file's whole table, so a drop-in naming the CRI
#       plugin would drop every CRI setting of the main file.
#     containerd 2.x: a drop-in, /etc/containerd/conf.d/crt.toml, which 2.x
#       merges key by key into the main file's CRI settings, plus (when the
#       main file does not import it yet) a marked `imports` line at the top of
#       /etc/containerd/config.toml. A main file with an `imports` list of its
#       own is refused, with what to add to it.
#     Naming any runtime replaces containerd's built-in runtime table, so runc
#     is registered beside crt unless the config names it already. A config
#     that already names a "crt" runtime (by hand, or by an older setup.sh) is
#     left as it is.
#   /usr/local/share/crt/install-manifest: what it added, for --uninstall.
#
# Running it twice changes nothing (the second run says so). --uninstall
# removes the marked blocks, the drop-in, and each installed file whose
# content is still what was installed: a file changed since (a node config an
# operator edited, a binary replaced by hand) is kept and named. Directories
# go only if it created them and they are empty (traces in /var/lib/crt stay).
set -euo pipefail
# (It runs in the installer image too, on busybox: no coreutils `install`.)

here=$(cd "$(dirname "$0")" && pwd)
say() { printf 'install-node: %s\n' "$*"; }
die() { printf 'install-node: %s\n' "$*" >&2; exit 1; }

root=/
bin_dir=
node_config=
ctd_version=${CRT_CONTAINERD_VERSION:-}
restart=0
uninstall=0
hint=1
while [ $# -gt 0 ]; do
  case $1 in
    --root) [ $# -ge 2 ] || die "--root needs a directory"; root=$2; shift 2 ;;
    --bin-dir) [ $# -ge 2 ] || die "--bin-dir needs a directory"; bin_dir=$2; shift 2 ;;
    --node-config) [ $# -ge 2 ] || die "--node-config needs a file"; node_config=$2; shift 2 ;;
    --containerd) [ $# -ge 2 ] || die "--containerd needs a version, e.g. 1.6 or 2.1"; ctd_version=$2; shift 2 ;;
    --restart) restart=1; shift ;;
    --uninstall) uninstall=1; shift ;;
    --no-restart-hint) hint=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[ -d "$root" ] || die "--root '$root': not a directory"
root=$(cd "$root" && pwd)
[ "$root" = / ] && R= || R=$root
if [ -n "$R" ] && [ $restart = 1 ]; then
  say "--restart ignored with --root: nothing runs in an image root"
  restart=0
fi

# (Uninstalling needs no version: it removes whatever the manifest records.)
if [ -z "$ctd_version" ] && [ $uninstall = 0 ]; then
  command -v containerd >/dev/null \
    || die "containerd is not on the PATH: say which version the node runs with --containerd (e.g. --containerd 1.7)"
  ctd_version=$(containerd --version | awk '{print $3}')
fi
ctd_major=${ctd_version#v}
ctd_major=${ctd_major%%.*}
case $ctd_major in
  '') ctd_mode=none ;;
  1) ctd_mode=edit ;;
  [2-9]) ctd_mode=dropin ;;
  *) die "--containerd '$ctd_version': expected a version such as 1.6.20 or 2.1" ;;
esac

manifest_rel=/usr/local/share/crt/install-manifest
manifest=$R$manifest_rel
ctd_conf_rel=/etc/containerd/config.toml
ctd_conf=$R$ctd_conf_rel
dropin_rel=/etc/containerd/conf.d/crt.toml
begin_mark='# BEGIN crt'
end_mark='# END crt'

# The manifest: one entry a line, "file SHA256 PATH" (installed with that
# content), "dir PATH" (created), "block PATH" (holds a marked block),
# "created PATH" (a containerd config made from nothing), PATH without --root.
declare -A entries=()
if [ -f "$manifest" ]; then
  while IFS= read -r line; do
    [ -n "$line" ] && entries[$line]=1
  done <"$manifest"
fi
changes=0
containerd_changed=0
crtd_changed=0
changed() { changes=$((changes + 1)); say "$*"; }

sha() { sha256sum "$1" | cut -d' ' -f1; }

# Text of a file without our marked blocks.
strip_blocks() {
  awk -v b="$begin_mark" -v e="$end_mark" '
    index($0, b) == 1 { skip = 1; next }
    skip && index($0, e) == 1 { skip = 0; next }
    !skip { print }' "$1"
}

# ------------------------------------------------------------------ uninstall
if [ $uninstall = 1 ]; then
  [ -f "$manifest" ] || { say "nothing to remove: no $manifest_rel (install-node.sh never installed here)"; exit 0; }
  mapfile -t lines < <(printf '%s\n' "${!entries[@]}" | sort)
  for line in "${lines[@]}"; do
    read -r kind a b <<<"$line"
    case $kind in
      file)
        f=$R$b
        if [ ! -e "$f" ]; then :
        elif [ "$(sha "$f")" = "$a" ]; then
          rm -f "$f"; changed "removed $b"
          [ "$b" != "$dropin_rel" ] || containerd_changed=1
        else say "kept $b: changed since it was installed"
        fi ;;
      block)
        f=$R$a
        if [ -f "$f" ] && grep -q "^$begin_mark" "$f"; then
          cp -p "$f" "$f.crt-new"
          strip_blocks "$f" >"$f.crt-new"
          mv -f "$f.crt-new" "$f"
          changed "removed the marked crt block from $a"
          [ "$a" = "$ctd_conf_rel" ] && containerd_changed=1
        fi ;;
    esac
  done
  # A containerd config made from nothing goes when only its version line is left.
  for line in "${lines[@]}"; do
    read -r kind a _ <<<"$line"
    if [ "$kind" = created ] && [ -f "$R$a" ] && ! grep -qv '^version = [0-9]$' "$R$a"; then
      rm -f "$R$a"; changed "removed $a (it made it)"
    fi
  done
  rm -f "$manifest"
  # Deepest first: a directory goes only when it is empty.
  mapfile -t dirs < <(for line in "${lines[@]}"; do [ "${line%% *}" = dir ] && printf '%s\n' "${line#dir }"; done | sort -r)
  for d in "${dirs[@]}"; do
    if [ -d "$R$d" ]; then
      if rmdir "$R$d" 2>/dev/null; then say "removed $d/"; else say "kept $d/: not empty"; fi
    fi
  done
  if [ $restart = 1 ] && [ $containerd_changed = 1 ]; then
    if [ -d /run/systemd/system ]; then say "restarting containerd"; systemctl restart containerd
    else say "restart containerd yourself: it still has the crt runtime class (no systemd here)"; fi
  elif [ $containerd_changed = 1 ] && [ -z "$R" ]; then
    say "containerd keeps the crt runtime class until it restarts"
  fi
  say "uninstalled"
  exit 0
fi

# -------------------------------------------------------------------- install
[ -n "$bin_dir" ] || bin_dir=$here/../target/x86_64-unknown-linux-gnu/node
binaries=(containerd-shim-crt-v2 crtd crtctl)
for b in "${binaries[@]}"; do
  [ -f "$bin_dir/$b" ] || die "--bin-dir '$bin_dir': no $b there (build the node binaries first, see scripts/setup.sh)"
done
for f in crtd.service config.example.toml; do
  [ -f "$here/$f" ] || die "$here/$f is missing: install-node.sh needs the files beside it"
done
[ -z "$node_config" ] || [ -f "$node_config" ] || die "--node-config '$node_config': no such file"

# Directories, each created one recorded (mode for the last component).
mkdirs() {
  local path=$1 mode=$2 cur= part parts
  IFS=/ read -ra parts <<<"${path#/}"
  for part in "${parts[@]}"; do
    cur=$cur/$part
    if [ ! -d "$R$cur" ]; then
      mkdir "$R$cur"
      if [ "$cur" = "$path" ]; then chmod "$mode" "$R$cur"; else chmod 0755 "$R$cur"; fi
      entries["dir $cur"]=1
      changed "created $cur/"
    fi
  done
  if [ "$(stat -c %a "$R$path")" != "${mode#0}" ]; then
    chmod "$mode" "$R$path"; changed "mode of $path/ set to $mode"
  fi
}

# A file installed with a mode, recorded with its content's hash; sets
# put_changed when the content was new.
put_changed=0
put() {
  local src=$1 rel=$2 mode=$3 dst=$R$2 sum old
  put_changed=0
  mkdirs "$(dirname "$rel")" 0755
  sum=$(sha "$src")
  for old in "${!entries[@]}"; do
    case $old in "file "*" $rel") unset "entries[$old]" ;; esac
  done
  entries["file $sum $rel"]=1
  if [ -f "$dst" ] && cmp -s "$src" "$dst"; then
    if [ "$(stat -c %a "$dst")" != "${mode#0}" ]; then chmod "$mode" "$dst"; changed "mode of $rel set to $mode"; fi
    return 0
  fi
  cp "$src" "$dst.crt-new"
  chmod "$mode" "$dst.crt-new"
  mv -f "$dst.crt-new" "$dst"
  changed "installed $rel"
  put_changed=1
}

# The containerd part is worked out first: a config it cannot edit safely
# stops it before anything is installed.
cri_tables() { # the runtime tables' prefix for a config version
  case $1 in
    1) echo 'plugins.cri.containerd.runtimes' ;;
    2) echo 'plugins."io.containerd.grpc.v1.cri".containerd.runtimes' ;;
    3) echo 'plugins."io.containerd.cri.v1.runtime".containerd.runtimes' ;;
  esac
}
runtime_tables() { # the tables registering crt (and runc when $2 = 1)
  local p=$1 runc=$2
  printf '[%s.crt]\n  runtime_type = "io.containerd.crt.v2"\n  pod_annotations = ["crt.dev/*"]\n  container_annotations = ["crt.dev/*"]\n' "$p"
  [ "$runc" = 0 ] || printf '[%s.runc]\n  runtime_type = "io.containerd.runc.v2"\n' "$p"
}
names_runtime() { # does this TOML text (stdin) name runtime $1 in a CRI table?
  grep -Eq "^[[:space:]]*\[plugins\.(cri|\"io\.containerd\.grpc\.v1\.cri\"|\"io\.containerd\.cri\.v1\.runtime\")\.containerd\.runtimes\.\"?$1\"?\]"
}

base=$(mktemp); want=$(mktemp); want_dropin=$(mktemp)
trap 'rm -f "$base" "$want" "$want_dropin"' EXIT
ctd_created=0
if [ -f "$ctd_conf" ]; then
  strip_blocks "$ctd_conf" >"$base"
elif [ $ctd_mode = edit ]; then
  printf 'version = 2\n' >"$base"; ctd_created=1
else
  printf 'version = 3\n' >"$base"; ctd_created=1
fi
conf_version=$(sed -n 's/^version[[:space:]]*=[[:space:]]*\([0-9]\)[[:space:]]*$/\1/p' "$base" | head -1)
[ -n "$conf_version" ] || conf_version=1
prefix=$(cri_tables "$conf_version")
[ -n "$prefix" ] || die "$ctd_conf_rel: version = $conf_version is not a containerd config version it knows (1, 2, 3)"
has_crt=0; has_runc=0
names_runtime crt <"$base" && has_crt=1
names_runtime runc <"$base" && has_runc=1
: >"$want_dropin"
if [ $has_crt = 1 ]; then
  # Registered already, outside any block of ours: leave it.
  cp "$base" "$want"
elif [ $ctd_mode = edit ]; then
  [ "$conf_version" != 3 ] || die "$ctd_conf_rel is a version 3 config, which containerd $ctd_version does not read"
  runc=1; [ $has_runc = 0 ] || runc=0
  {
    cat "$base"
    echo "$begin_mark runtime class (added by install-node.sh; install-node.sh --uninstall removes it)"
    echo "# Pods opt in to tracing with the annotation crt.dev/trace, passed through to containers."
    runtime_tables "$prefix" "$runc"
    echo "$end_mark runtime class"
  } >"$want"
else
  [ "$conf_version" != 1 ] || die "$ctd_conf_rel is a version 1 config: containerd $ctd_version imports no drop-in into it; run 'containerd config migrate' first"
  runc=1; [ $has_runc = 0 ] || runc=0
  {
    echo "# Written by install-node.sh: the \"crt\" runtime class (io.containerd.crt.v2)."
    echo "# Pods opt in to tracing with the annotation crt.dev/trace, passed through to"
    echo "# containers. install-node.sh --uninstall removes this file."
    echo "version = $conf_version"
    runtime_tables "$prefix" "$runc"
  } >"$want_dropin"
  imports=$(grep -E '^[[:space:]]*imports[[:space:]]*=' "$base" || true)
  if [ -z "$imports" ]; then
    {
      echo "$begin_mark imports (added by install-node.sh; install-node.sh --uninstall removes it)"
      echo "imports = [\"$dropin_rel\"]"
      echo "$end_mark imports"
      cat "$base"
    } >"$want"
  elif printf '%s' "$imports" | grep -Fq -e "\"$dropin_rel\"" -e '"/etc/containerd/conf.d/*.toml"'; then
    cp "$base" "$want"
  else
    die "$ctd_conf_rel has an imports list of its own ($imports): add \"$dropin_rel\" to it and run install-node.sh again"
  fi
fi

# Binaries, unit, docs.
for b in "${binaries[@]}"; do
  put "$bin_dir/$b" "/usr/local/bin/$b" 0755
  if [ "$b" = crtd ] && [ $put_changed = 1 ]; then crtd_changed=1; fi
done
put "$here/crtd.service" /etc/systemd/system/crtd.service 0644
unit_changed=$put_changed
if [ -f "$here/../README.md" ]; then put "$here/../README.md" /usr/local/share/doc/crt/README.md 0644; fi

# Node config: the example always, the config itself only where there is none.
mkdirs /etc/crt 0755
put "$here/config.example.toml" /etc/crt/config.example.toml 0644
if [ ! -e "$R/etc/crt/config.toml" ]; then
  cfg=$(mktemp)
  if [ -n "$node_config" ]; then cat "$node_config" >"$cfg"
  else printf '# CRT node configuration, written by install-node.sh. Every key is optional;\n# each is described, with its default, in config.example.toml beside this file.\n' >"$cfg"
  fi
  put "$cfg" /etc/crt/config.toml 0600
  rm -f "$cfg"
  crtd_changed=1
fi

# crtd's state: traces and history (root only; 0711 so the shims' per-container
# directories can be reached by their exact names), sockets.
mkdirs /var/lib/crt 0711
mkdirs /run/crt 0700

# containerd.
if ! { [ -f "$ctd_conf" ] && cmp -s "$want" "$ctd_conf"; }; then
  mkdirs /etc/containerd 0755
  if [ -f "$ctd_conf" ]; then
    cp -p "$ctd_conf" "$ctd_conf.crt-new"; cat "$want" >"$ctd_conf.crt-new"
  else
    cp "$want" "$ctd_conf.crt-new"; chmod 0644 "$ctd_conf.crt-new"
  fi
  mv -f "$ctd_conf.crt-new" "$ctd_conf"
  containerd_changed=1
  changed "registered the crt runtime class in $ctd_conf_rel (containerd $ctd_version: $([ $ctd_mode = edit ] && echo 'a marked block' || echo 'a marked imports line'))"
fi
if grep -q "^$begin_mark" "$ctd_conf"; then entries["block $ctd_conf_rel"]=1; fi
[ $ctd_created = 0 ] || entries["created $ctd_conf_rel"]=1
if [ -s "$want_dropin" ]; then
  put "$want_dropin" "$dropin_rel" 0644
  [ $put_changed = 0 ] || containerd_changed=1
elif [ $has_crt = 1 ] && [ $containerd_changed = 0 ] && [ ! -e "$manifest" ]; then
  say "containerd's config names a crt runtime already: left as it is"
fi

# The manifest (sorted: the same install gives the same bytes).
mkdirs "$(dirname "$manifest_rel")" 0755
mf=$(mktemp)
printf '%s\n' "${!entries[@]}" | LC_ALL=C sort >"$mf"
if ! { [ -f "$manifest" ] && cmp -s "$mf" "$manifest"; }; then
  cp "$mf" "$manifest.crt-new"; chmod 0644 "$manifest.crt-new"; mv -f "$manifest.crt-new" "$manifest"
  changed "recorded what it installed in $manifest_rel"
fi
rm -f "$mf"

if [ $changes = 0 ]; then
  say "nothing changed: everything was in place"
  exit 0
fi
if [ -n "$R" ]; then say "installed into $root"; exit 0; fi
if [ $restart = 1 ]; then
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    if [ $containerd_changed = 1 ]; then say "restarting containerd (its config changed)"; systemctl restart containerd; fi
    if [ $crtd_changed = 1 ] || [ $unit_changed = 1 ]; then
      if systemctl is-active -q crtd; then say "restarting crtd"; systemctl restart crtd; fi
    fi
  else
    say "no systemd here: restart containerd$([ $crtd_changed = 1 ] && echo ' and crtd') yourself"
  fi
elif [ $hint = 1 ]; then
  [ $containerd_changed = 0 ] || say "containerd reads the runtime class when it restarts (or run with --restart)"
  [ $crtd_changed = 0 ] || say "crtd runs the new binary or config when it restarts (or run with --restart)"
fi
