#!/usr/bin/env bash
# Builds the web UI (ui/) into ui/dist, which crtd embeds when it is
# compiled: the front end's packages come from the npm registry as
# ui/package-lock.json pins them, TypeScript is checked, Vite bundles.
# No browser is downloaded (the browser tests use Debian's chromium).
# Re-running it with nothing changed does nothing.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
ui="$repo/ui"
say() { printf 'build-ui: %s\n' "$*"; }
die() { printf 'build-ui: %s\n' "$*" >&2; exit 1; }

command -v node >/dev/null && command -v npm >/dev/null \
  || die "Node.js 20.19 or newer and npm are needed to build the web UI (Debian: nodejs from NodeSource, or the nodejs package of Debian 13)"
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' \
  || die "Node.js $(node --version) is too old to build the web UI: Vite needs 20.19 or newer"

export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
cd "$ui"
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.crt-lock 2>/dev/null)" != "$lock_sum" ]; then
  say "installing the UI's packages (npm ci, from package-lock.json)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > node_modules/.crt-lock
fi

# The sources' fingerprint: dist is rebuilt only when they changed.
src_sum=$( (cat package-lock.json index.html vite.config.ts tsconfig.json; find src -type f | sort | xargs cat) | sha256sum | cut -d' ' -f1)
if [ -f dist/index.html ] && [ "$(cat node_modules/.crt-dist 2>/dev/null)" = "$src_sum" ]; then
  exit 0
fi
say "building the web UI into ui/dist"
npx tsc --noEmit
npx vite build --logLevel warn
echo "$src_sum" > node_modules/.crt-dist
