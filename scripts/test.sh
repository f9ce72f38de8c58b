#!/usr/bin/env bash
# Runs every test: unit tests, then the end-to-end tests against the real
# containerd with runc and crun. Sets the node up first (scripts/setup.sh).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/setup.sh"
export PATH="${HOME:-/root}/.cargo/bin:$PATH"
cd "$repo"
echo "test: lint (rust-version, rustfmt, clippy)"
./scripts/check-msrv.sh
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -q -- -D warnings
echo "test: unit tests"
cargo test --release --locked --no-fail-fast -p crt-config -p crt-tracer -p crt-seccomp-notify -p crt-shim -p crtctl -p crtd
# The end-to-end tests own these namespaces: what an earlier run left there
# (containers, and the traces the shims keep of ended ones, gigabytes after
# the flood tests) would be read again by every crtd the tests start.
echo "test: clearing what earlier runs left in the test namespaces"
for ns in crt-test crt-alpha crt-beta crt-dbg; do
  for c in $(ctr -n "$ns" containers ls -q 2>/dev/null); do
    ctr -n "$ns" tasks rm -f "$c" >/dev/null 2>&1 || true
    ctr -n "$ns" containers rm "$c" >/dev/null 2>&1 || true
  done
  rm -rf "/var/lib/crt/traces/$ns" "/var/lib/crt/containers/$ns"
done
echo "test: end-to-end tests (containerd $(ctr version | awk '/Version:/ {print $2; exit}'), runc, crun)"
cargo test --release --locked --no-fail-fast -p crt-integration -- --test-threads=2
