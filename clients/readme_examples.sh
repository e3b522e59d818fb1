#!/usr/bin/env bash
# Runs the README's example of one client (python, typescript or rust) as a new user
# would: the client installed from this repository into a fresh project (a new venv, a
# new npm project, a new cargo project), the example copied from README.md, run against
# a real daemon (SEMANTICA_BIN, else target/release/semantica, else target/debug/semantica)
# on a temp SEMANTICA_HOME. Passes when the example printed the job's log and its state.
#
#   clients/readme_examples.sh python|typescript|rust
set -euo pipefail

language="${1:?usage: $0 python|typescript|rust}"
if [[ -n "${SEMANTICA_BIN:-}" && "${SEMANTICA_BIN}" != /* ]]; then
    SEMANTICA_BIN="$PWD/$SEMANTICA_BIN"
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${SEMANTICA_BIN:-}"
if [[ -z "$bin" ]]; then
    for candidate in "$root/target/release/semantica" "$root/target/debug/semantica"; do
        if [[ -x "$candidate" ]]; then bin="$candidate"; break; fi
    done
fi
[[ -x "$bin" ]] || { echo "no semantica binary: build it or set SEMANTICA_BIN" >&2; exit 1; }

work="$(mktemp -d)"
daemon=""
cleanup() {
    if [[ -n "$daemon" ]]; then kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# The fenced block after `<!-- readme-example: LANGUAGE -->` in README.md.
example() {
    awk -v marker="<!-- readme-example: $1 -->" '
        $0 == marker { found = 1; next }
        found && /^```/ { if (inside) exit; inside = 1; next }
        inside { print }
    ' "$root/README.md"
}
code="$(example "$language")"
[[ -n "$code" ]] || { echo "README.md has no example marked readme-example: $language" >&2; exit 1; }

export SEMANTICA_HOME="$work/home"
mkdir -p "$SEMANTICA_HOME"
unset SEMANTICA_URL SEMANTICA_TOKEN
SEMANTICA_RPC_ADDR=127.0.0.1:0 SEMANTICA_WORKERS=2 "$bin" serve 2>"$work/daemon.log" &
daemon=$!
for _ in $(seq 300); do
    [[ -f "$SEMANTICA_HOME/daemon.json" ]] && break
    kill -0 "$daemon" 2>/dev/null || { cat "$work/daemon.log" >&2; exit 1; }
    sleep 0.1
done
[[ -f "$SEMANTICA_HOME/daemon.json" ]] || { echo "the daemon wrote no daemon.json in 30 s" >&2; exit 1; }

project="$work/project"
mkdir -p "$project"
cd "$project"
case "$language" in
    python)
        "${PYTHON:-python3}" -m venv .venv
        .venv/bin/python -m pip install --quiet --disable-pip-version-check "$root/clients/python"
        printf '%s\n' "$code" > example.py
        output="$(.venv/bin/python example.py)"
        want_state="DONE"
        ;;
    typescript)
        # The package as a fresh checkout has it: no dist/, no node_modules/.
        package="$work/clients-typescript"
        mkdir -p "$package"
        (cd "$root/clients/typescript" && git ls-files -z . | xargs -0 cp --parents -t "$package")
        npm init -y >/dev/null
        npm install --no-audit --no-fund "$package"
        printf '%s\n' "$code" > example.mjs
        output="$(node example.mjs)"
        want_state="DONE"
        ;;
    rust)
        cat > Cargo.toml <<EOF
[package]
name = "readme-example"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
semantica-client = { path = "$root/clients/rust" }
tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
futures-util = "0.3"

[workspace]
EOF
        mkdir src
        printf '%s\n' "$code" > src/main.rs
        # The workspace's versions and build directory: nothing is built twice.
        cp "$root/Cargo.lock" .
        output="$(CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}" cargo run --quiet)"
        want_state="Done"
        ;;
    *)
        echo "unknown language $language" >&2
        exit 2
        ;;
esac
printf '%s\n' "$output"
if [[ "$output" != *hello* || "$output" != *"$want_state"* ]]; then
    echo "the $language example of README.md did not print the log (hello) and $want_state" >&2
    exit 1
fi
echo "README example ($language): ok"
