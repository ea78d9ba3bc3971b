#!/usr/bin/env bash
# Throwaway services for the store's tests, on 127.0.0.1 with free ports:
#
#   scripts/services.sh run -- CMD [ARG...]
#
# starts a PostgreSQL server (trust auth, data in a temp dir, durability off for speed) and an S3
# API server (moto), runs CMD with
#   MASKLAB_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:PORT/postgres  (superuser)
#   MASKLAB_TEST_S3_ENDPOINT=http://127.0.0.1:PORT
#   AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
# then stops both and removes their temp dirs whatever CMD does, and exits with CMD's status.
# A service that cannot start is reported on stderr and left out (its variable stays unset); the
# tests then skip, or fail under CI=true. PYTHON (default .venv/bin/python) runs moto.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
START_TIMEOUT_S=30

say() { echo "services: $*" >&2; }

usage() {
    say "usage: $0 run -- CMD [ARG...]"
    exit 2
}

# A port no one listens on now (the OS picks it; a tiny race until the server binds it).
free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- PostgreSQL ----------------------------------------------------------------------------
PG_DIR="" PG_BIN="" PG_AS=()

find_pg_bin() {
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [ -z "$dir" ] && command -v pg_config >/dev/null; then dir="$(pg_config --bindir)"; fi
    if [ -z "$dir" ] && command -v initdb >/dev/null; then dir="$(dirname "$(command -v initdb)")"; fi
    [ -n "$dir" ] && [ -x "$dir/initdb" ] && PG_BIN="$dir"
}

start_postgres() {
    find_pg_bin || true
    if [ -z "$PG_BIN" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "initdb not found: installing the Debian package postgresql"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } \
            >&2 || true
        find_pg_bin || true
    fi
    if [ -z "$PG_BIN" ]; then
        say "PostgreSQL left out: initdb not found (install the postgresql package)"
        return 0
    fi
    # postgres refuses to run as root: as root, run it as the postgres system user
    if [ "$(id -u)" = 0 ]; then
        if ! id postgres >/dev/null 2>&1; then
            say "PostgreSQL left out: running as root and there is no 'postgres' user to run it as"
            return 0
        fi
        PG_AS=(runuser -u postgres --)
    fi
    PG_DIR="$(mktemp -d -t masklab-pg.XXXXXX)"
    [ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR"
    local port
    port="$(free_port)"
    if ! "${PG_AS[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 \
        --locale=C --no-sync >"$PG_DIR/initdb.log" 2>&1; then
        say "PostgreSQL left out: initdb failed:"
        cat "$PG_DIR/initdb.log" >&2
        return 0
    fi
    # trust auth (initdb -A trust), loopback only, socket in the temp dir, no durability
    if ! "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" \
        -w -t "$START_TIMEOUT_S" start -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_DIR \
        -c fsync=off -c synchronous_commit=off -c full_page_writes=off" >/dev/null 2>&1 ||
        ! "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -t 5; then
        say "PostgreSQL left out: the server did not accept connections in ${START_TIMEOUT_S}s:"
        cat "$PG_DIR/server.log" >&2
        return 0
    fi
    export MASKLAB_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
    say "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') at $MASKLAB_TEST_POSTGRES_URL"
}

stop_postgres() {
    [ -n "$PG_DIR" ] || return 0
    if [ -f "$PG_DIR/data/postmaster.pid" ]; then
        "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1
    fi
    rm -rf "$PG_DIR"
}

# --- S3 (moto server) ----------------------------------------------------------------------
MOTO_DIR="" MOTO_PID=""

start_moto() {
    if ! "$PYTHON" -c 'import moto.server' 2>/dev/null; then
        say "S3 left out: $PYTHON cannot import moto.server (pip install 'moto[server]')"
        return 0
    fi
    MOTO_DIR="$(mktemp -d -t masklab-s3.XXXXXX)"
    local port waited=0
    port="$(free_port)"
    "$PYTHON" -m moto.server -H 127.0.0.1 -p "$port" >"$MOTO_DIR/server.log" 2>&1 &
    MOTO_PID=$!
    # ready when the port accepts a TCP connection (bash's /dev/tcp); give up after the timeout
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        if ! kill -0 "$MOTO_PID" 2>/dev/null || [ "$waited" -ge $((START_TIMEOUT_S * 10)) ]; then
            say "S3 left out: moto did not answer on 127.0.0.1:$port in ${START_TIMEOUT_S}s:"
            cat "$MOTO_DIR/server.log" >&2
            return 0
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    export MASKLAB_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
    say "S3 (moto $("$PYTHON" -c 'import moto; print(moto.__version__)')) at $MASKLAB_TEST_S3_ENDPOINT"
}

stop_moto() {
    if [ -n "$MOTO_PID" ]; then
        kill "$MOTO_PID" 2>/dev/null
        wait "$MOTO_PID" 2>/dev/null
    fi
    [ -z "$MOTO_DIR" ] || rm -rf "$MOTO_DIR"
}

# --- run -----------------------------------------------------------------------------------
cleanup() {
    set +e
    stop_moto
    stop_postgres
}

[ "${1:-}" = run ] && [ "${2:-}" = -- ] && [ $# -ge 3 ] || usage
shift 2

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_postgres
start_moto
# test credentials only: never a real account's, and loopback never through a proxy
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
unset AWS_SESSION_TOKEN AWS_PROFILE
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"

set +e
"$@"
status=$?
exit "$status"
