#!/usr/bin/env bash
# The benchmarks, on release builds: the session check against an in-memory baseline (with the
# bearer path, the tail, the broker's CPU per login and refresh, and a million sessions), then the
# OpenID Provider's token endpoint and userinfo. Installs wrk if it is missing. Needs Redis at
# 127.0.0.1:6379 (BROKER_BENCH_REDIS=host:port for another). Arguments go to cargo, e.g.
# `bash bench/run.sh --target x86_64-unknown-linux-gnu`; BROKER_BENCH_SECONDS, _ROUNDS, _SESSIONS
# and _ONLY shorten a run (docs/performance.md).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
# Builds the bench and the broker binary it runs (cargo's release settings for benches).
cargo bench "$@" --bench session_check
cargo bench "$@" --bench op_tokens
