#!/usr/bin/env bash
# The Rust client's CI hook. Its own tests run with the workspace's (`cargo test
# --workspace`); here, the README's example in a fresh cargo project that depends on this
# folder by path, against a real daemon (SEMANTICA_BIN, else ../../target/*/semantica).
set -euo pipefail
if [[ -n "${SEMANTICA_BIN:-}" && "${SEMANTICA_BIN}" != /* ]]; then
    SEMANTICA_BIN="$PWD/$SEMANTICA_BIN"
    export SEMANTICA_BIN
fi
cd "$(dirname "${BASH_SOURCE[0]}")"
bash ../readme_examples.sh rust
