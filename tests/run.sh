#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the interop peers and playwright-core (npm, pinned
# by tests/peers/package-lock.json) and Chromium (apt), checks formatting and lints, then runs
# every test.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "The interop tests need Node.js 20+ and npm: apt-get install nodejs npm" >&2
  exit 1
fi
# The proxy's tests run Python's standard-library WSGI server as an upstream.
if ! command -v python3 >/dev/null; then
  echo "The proxy tests need python3: apt-get install python3" >&2
  exit 1
fi
# --ignore-scripts: no package needs its install scripts here (the auth emulator runs without
# re2's native build), and they would try to download prebuilt binaries.
npm ci --prefix tests/peers --ignore-scripts --no-audit --no-fund --loglevel=error

# The example page's end-to-end test drives Debian's Chromium (playwright-core never downloads a
# browser here).
if [ -z "${CHROMIUM:-}" ] && ! command -v chromium >/dev/null; then
  echo "Installing Chromium for the browser test (apt-get install chromium)..." >&2
  if ! (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium); then
    echo "The browser test needs Chromium and it could not be installed: run 'apt-get install chromium' as root (or set CHROMIUM to a Chromium binary)" >&2
    exit 1
  fi
fi

# The metrics test checks the exposition with promtool (Debian's prometheus package).
if ! command -v promtool >/dev/null; then
  echo "Installing promtool for the metrics test (apt-get install prometheus)..." >&2
  if ! (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus); then
    echo "The metrics test needs promtool and it could not be installed: run 'apt-get install prometheus' as root" >&2
    exit 1
  fi
fi

# The OpenAPI test runs schemathesis (PyPI) against a live broker, from a venv of its own.
SCHEMATHESIS_VERSION=4.32.5
if ! tests/.venv-schemathesis/bin/schemathesis --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION"; then
  echo "Installing schemathesis $SCHEMATHESIS_VERSION in tests/.venv-schemathesis..." >&2
  if ! (python3 -m venv tests/.venv-schemathesis \
    && tests/.venv-schemathesis/bin/pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"); then
    echo "The OpenAPI test needs schemathesis and it could not be installed: python3 -m venv tests/.venv-schemathesis && tests/.venv-schemathesis/bin/pip install schemathesis==$SCHEMATHESIS_VERSION (Debian: apt-get install python3-venv)" >&2
    exit 1
  fi
fi

# An explicit --target keeps build scripts and proc macros (built for the host) apart from the
# crates built for the target, so clippy's check build and the test build share them instead of
# building them — C libraries included — twice.
TARGET="$(rustc -vV | sed -n 's/^host: //p')"

cargo fmt --all -- --check
cargo clippy --all-targets --locked --target "$TARGET" -- -D warnings

# The suite runs on every store combination users can choose, against the real servers on this
# machine: PostgreSQL at 127.0.0.1:5432 (database `test`) and Redis at 127.0.0.1:6379. Each test
# works in a schema and key prefix of its own; schemas left by earlier runs are dropped first.
PG_URL="${BROKER_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
if ! psql "$PG_URL" -qtAc 'SELECT 1' >/dev/null 2>&1; then
  echo "PostgreSQL does not answer at $PG_URL: start it (pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start)" >&2
  exit 1
fi
if ! redis-cli -u "${BROKER_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}" ping >/dev/null 2>&1; then
  echo "Redis does not answer at 127.0.0.1:6379: start it (redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no)" >&2
  exit 1
fi
psql "$PG_URL" -qtAc "SELECT string_agg(format('DROP SCHEMA %I CASCADE;', nspname), ' ') FROM pg_namespace WHERE nspname ~ '^(t|outage|two)_[a-z0-9_]+$'" \
  | psql "$PG_URL" -q >/dev/null

echo "== on SQLite (the embedded default)"
cargo test --locked --target "$TARGET"
echo "== on Postgres"
BROKER_TEST_BACKEND=postgres cargo test --locked --target "$TARGET" --test it
echo "== on Postgres with sessions in Redis"
BROKER_TEST_BACKEND=postgres+redis cargo test --locked --target "$TARGET" --test it
