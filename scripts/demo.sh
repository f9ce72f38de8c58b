#!/usr/bin/env bash
# The main job, start to finish: set the node up, run a container that opts
# in to tracing, and print the syscalls it made.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/setup.sh"
id=crt-demo-$$
image=localhost/crt-test:latest
echo
echo "demo: ctr run --runtime io.containerd.crt.v2 --annotation crt.dev/trace=%file,%network,%process $image $id ..."
ctr run --rm --runtime io.containerd.crt.v2 \
  --annotation 'crt.dev/trace=%file,%network,%process' \
  "$image" "$id" sh -c 'cat /etc/crt-test-release; ls /tmp; nc -w 1 127.0.0.1 9 </dev/null || true'
echo
echo "demo: crtctl trace $id"
crtctl trace "$id"
echo
echo "demo: the same as JSON lines (first 3): crtctl trace --json $id"
crtctl trace --json "$id" | grep '"event":"syscall"' | head -3
