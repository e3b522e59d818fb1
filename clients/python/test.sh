#!/usr/bin/env bash
# The Python client's CI hook: a venv at clients/python/.venv (made if missing), the
# package installed editable with its test extras, then pytest against a real daemon
# (SEMANTICA_BIN, else ../../target/release/semantica, else ../../target/debug/semantica).
set -euo pipefail

# A relative SEMANTICA_BIN is taken from where the caller stands, before the cd below.
if [[ -n "${SEMANTICA_BIN:-}" && "${SEMANTICA_BIN}" != /* ]]; then
    SEMANTICA_BIN="$PWD/$SEMANTICA_BIN"
    export SEMANTICA_BIN
fi
cd "$(dirname "${BASH_SOURCE[0]}")"

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "clients/python needs Python 3.10 or newer; $PYTHON is $("$PYTHON" --version 2>&1)" >&2
    exit 1
fi
if [[ ! -x .venv/bin/python ]]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
.venv/bin/python -m pytest -q "$@"
# The README's example, in a fresh venv of its own.
bash ../readme_examples.sh python
