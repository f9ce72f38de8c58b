#!/usr/bin/env bash
# Holds the workspace's declared rust-version true: it must be at least the
# highest rust-version of any package the lockfile resolves for this
# platform (tests included), so that a toolchain that meets the declared
# version builds the project. Prints the packages that set the floor.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export PATH="${HOME:-/root}/.cargo/bin:$PATH"
declared=$(sed -n '/^\[workspace.package\]/,/^\[/{s/^rust-version *= *"\(.*\)"/\1/p}' Cargo.toml)
[ -n "$declared" ] || { echo "check-msrv: [workspace.package] rust-version is not set" >&2; exit 1; }
triple=$(rustc -vV | sed -n 's/^host: //p')
needed=$(cargo metadata --format-version 1 --locked --filter-platform "$triple" |
  jq -r '[.resolve.nodes[].id] as $ids | .packages[]
         | select(.id as $i | $ids | index($i)) | select(.rust_version != null)
         | "\(.rust_version) \(.name) \(.version)"' | sort -V)
floor=$(printf '%s\n' "$needed" | tail -1 | cut -d' ' -f1)
# Every workspace member inherits the declared version.
missing=$(grep -L 'rust-version.workspace = true' */Cargo.toml || true)
if [ -n "$missing" ]; then
  echo "check-msrv: these crates do not inherit the workspace rust-version: $missing" >&2
  exit 1
fi
# 1.89 and 1.89.0 are one version.
full() { case "$1" in *.*.*) echo "$1" ;; *) echo "$1.0" ;; esac; }
lowest=$(printf '%s\n%s\n' "$(full "$declared")" "$(full "$floor")" | sort -V | head -1)
if [ "$lowest" != "$(full "$floor")" ]; then
  echo "check-msrv: Cargo.toml declares rust-version $declared, but the locked dependencies need $floor:" >&2
  printf '%s\n' "$needed" | awk -v f="$floor" '$1 == f' | sed 's/^/  /' >&2
  exit 1
fi
echo "check-msrv: rust-version $declared covers every locked dependency (highest: $floor)"
