#!/usr/bin/env bash
# The simulator's CI budget, under 2 minutes on 2 cores once built: a swarm on MemStore,
# the differential swarm (MemStore against the real SQLite store, every answer and the
# whole stores compared, crashes reopening the SQLite files), a short swarm with SQLite
# as the primary store, and the determinism check (each seed run twice, trace hashes
# compared) on both stores. The two differential halves run side by side, one per core.
# Then the same on the Postgres store (one engine): a differential swarm against
# MemStore with crashes reconnecting, and the determinism check, in about a minute. It
# needs SEMANTICA_TEST_PG_URL (`source .ci/postgres.sh`, as .ci/run does) and fails
# without it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${SEMANTICA_TEST_PG_URL:-}" ]; then
    echo "sim/ci.sh: SEMANTICA_TEST_PG_URL is not set; run \`source .ci/postgres.sh\` first" >&2
    exit 1
fi
cargo build --release --locked -p semantica-sim
target="${CARGO_TARGET_DIR:-target}"
sim="$target/release/semantica-sim"

# The SQLite backend's temporary directories go here, so that none can outlive the run
# (a killed run leaves its directory; the trap removes it) and so that a run that does
# not clean up after itself fails CI.
scratch="$(mktemp -d "${TMPDIR:-/tmp}/semantica-sim-ci.XXXXXX")"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$scratch"' EXIT
export TMPDIR="$scratch"

start=$(date +%s)
"$sim" --seed 100000 --seeds 75 --steps 2000 --differential > "$target"/sim-differential-1.log &
first_half=$!
"$sim" --seed 100075 --seeds 75 --steps 2000 --differential > "$target"/sim-differential-2.log &
second_half=$!
"$sim" --seed 1 --seeds 200 --steps 2000 > "$target"/sim-swarm.log
"$sim" --seed 200000 --seeds 50 --steps 2000 --check-determinism > "$target"/sim-determinism.log
wait "$first_half"
wait "$second_half"
"$sim" --seed 300000 --seeds 10 --steps 2000 --backend sqlite > "$target"/sim-sqlite.log &
sqlite_swarm=$!
"$sim" --seed 400000 --seeds 10 --steps 1000 --backend sqlite --check-determinism > "$target"/sim-sqlite-determinism.log
wait "$sqlite_swarm"
"$sim" --seed 500000 --seeds 40 --steps 2000 --backend postgres --differential > "$target"/sim-postgres.log &
postgres_swarm=$!
"$sim" --seed 600000 --seeds 10 --steps 1000 --backend postgres --check-determinism \
    > "$target"/sim-postgres-determinism.log
wait "$postgres_swarm"

leftovers=$(find "$scratch" -mindepth 1 | head -5)
if [ -n "$leftovers" ]; then
    printf 'the simulator left temporary files behind:\n%s\n' "$leftovers" >&2
    exit 1
fi
for log in sim-swarm sim-differential-1 sim-differential-2 sim-determinism sim-sqlite sim-sqlite-determinism \
    sim-postgres sim-postgres-determinism; do
    printf '%s: %s seeds ok\n' "$target/$log.log" "$(grep -c 'result=ok' "$target/$log.log")"
done
echo "simulator: $(( $(date +%s) - start )) s"
