#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the interop peers (npm, pinned by
# tests/peers/package-lock.json), checks formatting and lints, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "The interop tests need Node.js 20+ and npm: apt-get install nodejs npm" >&2
  exit 1
fi
# --ignore-scripts: no package needs its install scripts here (the auth emulator runs without
# re2's native build), and they would try to download prebuilt binaries.
npm ci --prefix tests/peers --ignore-scripts --no-audit --no-fund --loglevel=error

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
