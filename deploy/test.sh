#!/usr/bin/env bash
# Builds the image of deploy/Containerfile with podman and runs it as a deployment would.
#
# 1. One container: read-only root filesystem, a data volume, /tmp on tmpfs, configured by BROKER_*
#    variables only (SQLite store). From the host: /readyz answers 200; a sign-in through the dev
#    provider works and /auth/me names the user (the store is written on the volume); the image's
#    HEALTHCHECK passes; the process is not root; the root filesystem is read-only; SIGTERM stops
#    it with exit status 0.
# 2. Two containers sharing PostgreSQL and Redis (this machine's servers, as tests/run.sh uses
#    them), configured as deploy/compose.yaml does ([sessions] in a mounted file, the rest and the
#    sealing key from the environment): session records land in Redis; signed in on one, the
#    session is live on the other; ended on the other, the first refuses the same cookie at once.
# Its containers, volumes, schema and Redis keys are removed in any case.
#
#   bash deploy/test.sh             # as root; installs podman, runc and debootstrap if missing
#
# No image registry is reachable here, so the base image is made locally the first time
# (debootstrap --variant=minbase bookworm from Debian's mirror, then podman import) and kept as
# localhost/debian-bookworm-minbase. The binary is the debug build of this checkout (cargo builds
# it, a no-op after the test suite) unless BROKER_BIN names another; it goes in through the
# Containerfile's `prebuilt` stage. The image build installs ca-certificates with apt, as it would
# on debian:bookworm-slim, so Debian's mirror must answer from inside the build as well.
#
# Variables: BROKER_BIN (a binary to package), DEBIAN_MIRROR, BASE_IMAGE (another base),
# PODMAN_RUNTIME (default: runc where crun cannot run, see below), KEEP_IMAGE=0 (remove the test
# image afterwards), BROKER_TEST_POSTGRES_URL and BROKER_TEST_REDIS_URL (as tests/run.sh),
# DEPLOY_TEST_SHARED=0 (leave out part 2, and say so).
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
step() { printf '== %s (%ss)\n' "$*" "$(($(date +%s) - started))"; }
fail() {
  printf 'deploy test: FAILED: %s\n' "$*" >&2
  exit 1
}

BASE_IMAGE="${BASE_IMAGE:-localhost/debian-bookworm-minbase}"
IMAGE=localhost/oidc-broker:deploy-test
NAME="oidc-broker-deploy-test-$$"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PG_URL="${BROKER_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
REDIS_URL="${BROKER_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"
SHARED="${DEPLOY_TEST_SHARED:-1}"
SCHEMA="deploy_test_$$"
PREFIX="oidc-broker-deploy-test-$$:"

# ---- tools ----------------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || fail "run as root (rootful podman; apt-get for what is missing)"
need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
if [ "$BASE_IMAGE" = localhost/debian-bookworm-minbase ]; then
  command -v debootstrap >/dev/null || need+=(debootstrap)
fi
if [ ${#need[@]} -gt 0 ]; then
  step "installing ${need[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
if [ "$SHARED" != 0 ]; then
  psql "$PG_URL" -qtAc 'SELECT 1' >/dev/null 2>&1 ||
    fail "PostgreSQL does not answer at $PG_URL (start it, or DEPLOY_TEST_SHARED=0 to leave out the two-instance part)"
  redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1 ||
    fail "Redis does not answer at $REDIS_URL (start it, or DEPLOY_TEST_SHARED=0 to leave out the two-instance part)"
fi

# ---- what this machine's sandbox needs -------------------------------------------------------
# crun 1.8 (Debian 12) refuses a cgroup v1 + v2 hybrid layout ("cgroups in hybrid mode not
# supported"); runc runs there. Without CAP_SYS_RESOURCE podman cannot raise the container's file
# and process limits to its defaults (setrlimit: operation not permitted), so they are set to what
# this process already has. Neither changes the image.
run_opts=()
if [ -n "${PODMAN_RUNTIME:-}" ]; then
  run_opts+=(--runtime "$PODMAN_RUNTIME")
elif [ -d /sys/fs/cgroup/unified ]; then
  run_opts+=(--runtime runc)
fi
cap_eff=$(awk '/^CapEff:/ {print $2}' /proc/self/status)
if (((0x$cap_eff >> 24) & 1)); then # CAP_SYS_RESOURCE
  :
else
  nofile=$(ulimit -Hn)
  nproc=$(ulimit -Hu)
  if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then nproc=32768; fi
  run_opts+=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")
fi

# ---- the base image -------------------------------------------------------------------------
if ! podman image exists "$BASE_IMAGE"; then
  [ "$BASE_IMAGE" = localhost/debian-bookworm-minbase ] || fail "no image $BASE_IMAGE"
  step "making $BASE_IMAGE with debootstrap (once)"
  rootfs=$(mktemp -d /var/tmp/bookworm-minbase.XXXXXX)
  if ! debootstrap --variant=minbase bookworm "$rootfs" "$DEBIAN_MIRROR" >"$rootfs.log" 2>&1; then
    tail -20 "$rootfs.log" >&2
    rm -rf "$rootfs" "$rootfs.log"
    fail "debootstrap from $DEBIAN_MIRROR"
  fi
  # What debian:bookworm-slim also leaves out: downloaded packages and package lists.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/*
  tar --numeric-owner -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >>"$rootfs.log" 2>&1 ||
    {
      tail -20 "$rootfs.log" >&2
      fail "podman import"
    }
  rm -rf "$rootfs" "$rootfs.log"
fi

# ---- the binary -----------------------------------------------------------------------------
if [ -z "${BROKER_BIN:-}" ]; then
  host="$(rustc -vV | sed -n 's/^host: //p')"
  step "cargo build --locked --target $host --bin oidc-broker"
  cargo build --quiet --locked --target "$host" --bin oidc-broker
  BROKER_BIN="${CARGO_TARGET_DIR:-target}/$host/debug/oidc-broker"
fi
[ -x "$BROKER_BIN" ] || fail "no binary at $BROKER_BIN"

# ---- build ----------------------------------------------------------------------------------
step "podman build --target prebuilt (binary: $BROKER_BIN)"
context=$(mktemp -d /var/tmp/oidc-broker-context.XXXXXX)
cleanup() {
  for c in "$NAME" "$NAME-a" "$NAME-b"; do podman rm -f -v --time 0 "$c" >/dev/null 2>&1 || true; done
  podman volume rm -f "$NAME-data" >/dev/null 2>&1 || true
  if [ "$SHARED" != 0 ]; then
    psql "$PG_URL" -qc "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1 || true
    redis-cli -u "$REDIS_URL" --scan --pattern "$PREFIX*" 2>/dev/null |
      xargs -r redis-cli -u "$REDIS_URL" del >/dev/null 2>&1 || true
  fi
  rm -rf "$context"
  if [ "${KEEP_IMAGE:-1}" = 0 ]; then podman rmi -f "$IMAGE" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
cp "$BROKER_BIN" "$context/oidc-broker"
previous=$(podman image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
if ! podman build "${run_opts[@]}" --format docker --target prebuilt \
  --build-arg "BASE_IMAGE=$BASE_IMAGE" -f deploy/Containerfile -t "$IMAGE" "$context" >"$context/build.log" 2>&1; then
  tail -30 "$context/build.log" >&2
  fail "podman build"
fi
# The previous run's image, now untagged (a new binary makes a new image).
if [ -n "$previous" ] && [ "$previous" != "$(podman image inspect -f '{{.Id}}' "$IMAGE")" ]; then
  podman rmi "$previous" >/dev/null 2>&1 || true
fi

# A sign-in as a browser does it (the login, the dev provider's page, its form, the callback),
# then /auth/me. With a second URL: the same cookie on the other instance, logout there, and the
# first must refuse the cookie at its next request.
cat >"$context/signin.py" <<'PY'
import html.parser, http.cookiejar, json, sys, urllib.error, urllib.parse, urllib.request

first = sys.argv[1]
other = sys.argv[2] if len(sys.argv) > 2 else None
jar = http.cookiejar.CookieJar()
web = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
page = web.open(first + "/auth/login?provider=dev&return_to=" + urllib.parse.quote(first + "/"), timeout=10)


class Hidden(html.parser.HTMLParser):
    fields = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("type") == "hidden":
            self.fields.append((a["name"], a.get("value") or ""))


form = Hidden()
form.feed(page.read().decode())
body = urllib.parse.urlencode(form.fields + [("user", "alice")]).encode()
web.open(urllib.request.Request(page.url, data=body), timeout=10)
me = json.load(web.open(first + "/auth/me", timeout=10))
assert me["user"]["subject"] == "alice", me
if other is None:
    print(me["user"]["email"])
    sys.exit(0)

there = json.load(web.open(other + "/auth/me", timeout=10))
assert there["session"]["handle"] == me["session"]["handle"], (me, there)
cookie = "; ".join(c.name + "=" + c.value for c in jar)
out = web.open(urllib.request.Request(other + "/auth/logout", method="POST", headers={"X-CSRF": "1"}), timeout=10)
assert out.status == 200, out.status
try:
    urllib.request.urlopen(urllib.request.Request(first + "/auth/me", headers={"Cookie": cookie}), timeout=10)
    sys.exit("the first instance still accepts a session ended on the other")
except urllib.error.HTTPError as e:
    assert e.code == 401, e.code
print(me["session"]["handle"])
PY

logs() {
  echo "--- log of $1" >&2
  podman logs "$1" 2>&1 | tail -30 >&2
}
# Waits until $2/readyz answers 200 and prints its body; fails if container $1 stops first.
wait_ready() {
  local body=""
  for _ in $(seq 1 120); do
    if body=$(curl -fsS --max-time 2 "$2/readyz" 2>/dev/null); then
      echo "$body"
      return 0
    fi
    if [ "$(podman inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" != true ]; then
      logs "$1"
      fail "$1 stopped before /readyz answered"
    fi
    sleep 0.5
  done
  logs "$1"
  fail "$2/readyz did not answer 200 within 60 s: $(curl -sS --max-time 2 "$2/readyz" 2>&1)"
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# ---- 1. one container -----------------------------------------------------------------------
# Podman schedules the HEALTHCHECK with systemd timers; where systemd does not run (here) it says
# so on stderr and the check is run by hand below, so that noise goes to run.err.
# The dev provider's issuer is the broker's own public URL, fetched from inside the container, so
# the container listens on the same port the host publishes.
port=$(free_port)
base="http://127.0.0.1:$port"
step "podman run --read-only on $base"
podman run -d --name "$NAME" "${run_opts[@]}" \
  --read-only --read-only-tmpfs=false --tmpfs /tmp \
  -v "$NAME-data:/var/lib/oidc-broker" -p "127.0.0.1:$port:$port" \
  -e "BROKER_SERVER__LISTEN=0.0.0.0:$port" \
  -e "BROKER_SERVER__PUBLIC_URL=$base" \
  -e BROKER_SERVER__ENVIRONMENT=development \
  -e BROKER_PROVIDERS__DEV__KIND=dev \
  "$IMAGE" >/dev/null 2>>"$context/run.err" || {
  cat "$context/run.err" >&2
  fail "podman run"
}
step "/readyz: $(wait_ready "$NAME" "$base")"

if ! me=$(python3 "$context/signin.py" "$base" 2>&1); then
  echo "$me" >&2
  logs "$NAME"
  fail "sign-in through the dev provider"
fi
step "signed in through the dev provider: /auth/me names $me"

podman exec "$NAME" test -s /var/lib/oidc-broker/broker.db || fail "no database in the data volume"
if podman exec "$NAME" touch /usr/local/bin/probe 2>/dev/null; then fail "the root filesystem is writable"; fi
uid=$(podman exec "$NAME" awk '/^Uid:/ {print $2}' /proc/1/status)
[ "$uid" != 0 ] || fail "the broker runs as root"
podman healthcheck run "$NAME" >/dev/null || fail "the image's HEALTHCHECK failed"
step "store on the volume, root filesystem read-only, uid $uid, HEALTHCHECK healthy"

podman stop --time 10 "$NAME" >/dev/null 2>>"$context/run.err"
code=$(podman inspect -f '{{.State.ExitCode}}' "$NAME")
[ "$code" = 0 ] || {
  logs "$NAME"
  fail "exit status $code after SIGTERM"
}
step "SIGTERM: stopped, exit status 0"

# ---- 2. two containers sharing PostgreSQL and Redis -----------------------------------------
if [ "$SHARED" = 0 ]; then
  echo "== two instances sharing PostgreSQL and Redis: NOT RUN (DEPLOY_TEST_SHARED=0)"
else
  # Host networking, so that the containers reach this machine's servers on loopback. Both use
  # the first one's URL as public_url (one URL behind a load balancer); the second reaches the
  # dev provider there. As in deploy/compose.yaml, [sessions] comes from a mounted file and the
  # rest from the environment, the sealing key included. The first is ready before the second
  # starts: two instances starting at once on a new schema can race on creating the session
  # table (docs/operations.md).
  key=$(podman run --rm "${run_opts[@]}" "$IMAGE" keys generate --id k1 2>/dev/null | sed -n 's/^BROKER_KEYS__RING__K1=//p')
  [ -n "$key" ] || fail "oidc-broker keys generate printed no key"
  printf '[store]\nschema = "%s"\n[sessions]\nurl = "%s"\nprefix = "%s"\n[log]\nformat = "json"\n' \
    "$SCHEMA" "$REDIS_URL" "$PREFIX" >"$context/shared.toml"
  chmod 0644 "$context/shared.toml"
  port_a=$(free_port)
  port_b=$(free_port)
  for n in a b; do
    p=$port_a
    [ "$n" = a ] || p=$port_b
    step "podman run $NAME-$n on 127.0.0.1:$p (store: $PG_URL schema $SCHEMA, sessions: $REDIS_URL)"
    BROKER_KEYS__RING__K1="$key" podman run -d --name "$NAME-$n" "${run_opts[@]}" --network host \
      --read-only --read-only-tmpfs=false --tmpfs /tmp \
      -v "$context/shared.toml:/etc/oidc-broker/broker.toml:ro" \
      -e "BROKER_SERVER__LISTEN=127.0.0.1:$p" \
      -e "BROKER_SERVER__PUBLIC_URL=http://127.0.0.1:$port_a" \
      -e BROKER_SERVER__ENVIRONMENT=development \
      -e BROKER_PROVIDERS__DEV__KIND=dev \
      -e "BROKER_STORE__URL=$PG_URL" \
      -e BROKER_KEYS__CURRENT=k1 -e BROKER_KEYS__RING__K1 \
      "$IMAGE" >/dev/null 2>>"$context/run.err" || {
      cat "$context/run.err" >&2
      fail "podman run $NAME-$n"
    }
    wait_ready "$NAME-$n" "http://127.0.0.1:$p" >/dev/null
  done
  if podman logs "$NAME-a" 2>&1 | grep -q 'no \[keys\]'; then fail "the [keys] ring from the environment was not used"; fi
  python3 "$context/signin.py" "http://127.0.0.1:$port_a" >/dev/null || fail "sign-in on $NAME-a"
  records=$(redis-cli -u "$REDIS_URL" --scan --pattern "$PREFIX*" | wc -l)
  [ "$records" -gt 0 ] || fail "no session record under $PREFIX in Redis: the sessions are not shared there"
  if ! handle=$(python3 "$context/signin.py" "http://127.0.0.1:$port_a" "http://127.0.0.1:$port_b" 2>&1); then
    echo "$handle" >&2
    logs "$NAME-a"
    logs "$NAME-b"
    fail "two instances sharing PostgreSQL and Redis"
  fi
  step "keys from the environment, sessions in Redis; session $handle: signed in on a, live on b, ended on b, refused by a"
fi

size=$(podman image inspect -f '{{.Size}}' "$IMAGE")
echo "image $IMAGE: $((size / 1000000)) MB on $BASE_IMAGE"
echo "deploy test: passed in $(($(date +%s) - started)) s"
