#!/usr/bin/env bash
# The committed reading-component bundle (dashboard/reading_component/static/reader.js) must be
# what its TypeScript sources build to: install the locked npm packages, build into a
# temporary folder, compare byte for byte. Needs Node and npm (not needed to run the app).
set -euo pipefail
cd "$(dirname "$0")/../dashboard/reading_component/frontend"
npm ci --no-audit --no-fund --loglevel=error >/dev/null
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
CHECK_OUT_DIR="$out" npm run --silent build:check >/dev/null
if ! cmp -s "$out/reader.js" ../static/reader.js; then
  echo "dashboard/reading_component/static/reader.js differs from a fresh build of frontend/: run npm run build there and commit it" >&2
  exit 1
fi
echo "reading component bundle: equal to a fresh build"
