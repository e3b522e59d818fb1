#!/usr/bin/env bash
# A bounded libFuzzer run of every target in fuzz/ (CI's fuzz smoke): installs cargo-fuzz
# if it is missing, builds the targets on the stable toolchain (RUSTC_BOOTSTRAP=1 lets
# cargo-fuzz pass its sanitizer flags), then runs each for FUZZ_SECONDS seconds (default
# 10) from its seed corpus. New inputs go to a temp directory, not to fuzz/corpus/. A
# crash, a leak, a hang (an input over FUZZ_TIMEOUT seconds) or a build failure fails it;
# the input is left in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-10}"
timeout="${FUZZ_TIMEOUT:-20}"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --version 0.13.2
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for target in $(cargo fuzz list); do
    mkdir -p "$work/$target"
    log="$work/$target.log"
    if cargo fuzz run "$target" "$work/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1; then
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
        echo "fuzz $target: ${seconds} s, $runs runs, no crash"
    else
        cat "$log"
        echo "fuzz $target: FAILED (input in fuzz/artifacts/$target/)" >&2
        exit 1
    fi
done
