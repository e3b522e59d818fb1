# A throwaway PostgreSQL cluster for the tests that need one. Source it (bash):
#
#     source .ci/postgres.sh        # CI (.ci/run) and a developer's shell alike
#
# It installs Debian's `postgresql` when its binaries are missing, creates a cluster in
# a temporary directory as the `postgres` user (initdb refuses root), starts it on a
# Unix socket in that directory and on a free loopback port, creates the role and the
# database `semantica_test`, and exports
#
#     SEMANTICA_TEST_PG_URL=postgres://semantica_test:semantica_test@127.0.0.1:PORT/semantica_test
#
# Each test makes its own schema (or database) in it, so tests run in parallel. The
# cluster is stopped and its directory removed when the sourcing shell exits (a trap on
# EXIT that runs any EXIT trap already set, too); `semantica_pg_stop` does it earlier.
# Run as root or as a user that may `sudo`.

semantica_pg_start() {
    local sudo="" bin
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    # `|| true`: .ci/run sources this under `set -euo pipefail`, and on a fresh machine
    # the glob matches nothing.
    bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
    if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql
        bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
    fi
    # Debian's package starts its own cluster on 5432; ours never uses that port or that
    # cluster, so whatever it does does not matter here.
    local dir port as_postgres
    dir="$(mktemp -d "${TMPDIR:-/tmp}/semantica-pg.XXXXXX")"
    chmod 755 "$dir"
    if [ "$(id -un)" = postgres ]; then
        as_postgres=()
    elif [ "$(id -u)" -eq 0 ]; then
        as_postgres=(runuser -u postgres --)
    else
        as_postgres=(sudo -u postgres)
    fi
    $sudo chown postgres "$dir" 2>/dev/null || chown postgres "$dir"
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    "${as_postgres[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync -E UTF8 --locale=C.UTF-8 \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
    # fsync off: a test cluster need not survive a power loss, and the tests commit often.
    # max_connections: parallel tests, each with a few connections, and the simulator.
    "${as_postgres[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
        -o "-k $dir -p $port -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
            -c full_page_writes=off -c max_connections=300" >/dev/null \
        || { cat "$dir/server.log" >&2; return 1; }
    SEMANTICA_PG_DIR="$dir"
    SEMANTICA_PG_BIN="$bin"
    export SEMANTICA_PG_DIR SEMANTICA_PG_BIN
    "${as_postgres[@]}" "$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -qAt -v ON_ERROR_STOP=1 \
        -c "CREATE ROLE semantica_test LOGIN PASSWORD 'semantica_test' CREATEDB" \
        -c "CREATE DATABASE semantica_test OWNER semantica_test" >/dev/null
    export SEMANTICA_TEST_PG_URL="postgres://semantica_test:semantica_test@127.0.0.1:$port/semantica_test"
    echo "postgres: $("$bin/postgres" --version) on 127.0.0.1:$port and $dir; SEMANTICA_TEST_PG_URL=$SEMANTICA_TEST_PG_URL"
}

semantica_pg_stop() {
    [ -n "${SEMANTICA_PG_DIR:-}" ] || return 0
    if [ -f "$SEMANTICA_PG_DIR/data/postmaster.pid" ]; then
        if [ "$(id -u)" -eq 0 ]; then
            runuser -u postgres -- "$SEMANTICA_PG_BIN/pg_ctl" -D "$SEMANTICA_PG_DIR/data" -m immediate -w stop \
                >/dev/null 2>&1 || true
        else
            sudo -u postgres "$SEMANTICA_PG_BIN/pg_ctl" -D "$SEMANTICA_PG_DIR/data" -m immediate -w stop \
                >/dev/null 2>&1 || true
        fi
    fi
    if [ "$(id -u)" -eq 0 ]; then rm -rf "$SEMANTICA_PG_DIR"; else sudo rm -rf "$SEMANTICA_PG_DIR"; fi
    unset SEMANTICA_PG_DIR SEMANTICA_TEST_PG_URL
}

semantica_pg_start
# Keep an EXIT trap that was set before (.ci/run's, a developer's) and stop ours after it.
__semantica_pg_prior_trap="$(trap -p EXIT | sed -E "s/^trap -- '(.*)' EXIT$/\1/")"
# shellcheck disable=SC2064
trap "${__semantica_pg_prior_trap:+$__semantica_pg_prior_trap;} semantica_pg_stop" EXIT
