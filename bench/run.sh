#!/usr/bin/env bash
# The session-check benchmark (release build). Installs wrk if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo bench --bench session_check
