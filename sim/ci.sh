#!/usr/bin/env bash
# The simulator's CI budget: a fixed swarm, a differential swarm, and the determinism
# check (each seed run twice, trace hashes compared). Well under 5 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p semantica-sim
target="${CARGO_TARGET_DIR:-target}"
sim="$target/release/semantica-sim"
start=$(date +%s)
"$sim" --seed 1 --seeds 200 --steps 2000 > "$target"/sim-swarm.log
"$sim" --seed 100000 --seeds 50 --steps 2000 --differential > "$target"/sim-differential.log
"$sim" --seed 200000 --seeds 50 --steps 2000 --check-determinism > "$target"/sim-determinism.log
for log in "$target/sim-swarm.log" "$target/sim-differential.log" "$target/sim-determinism.log"; do
    printf '%s: %s seeds ok\n' "$log" "$(grep -c 'result=ok' "$log")"
done
echo "simulator: $(( $(date +%s) - start )) s"
