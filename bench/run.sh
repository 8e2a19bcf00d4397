#!/usr/bin/env bash
# The benchmarks (release build): the session check, then the OpenID Provider's token endpoint and
# userinfo. Installs wrk if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo bench --bench session_check
cargo bench --bench op_tokens
