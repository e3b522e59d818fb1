#!/usr/bin/env bash
# The Python client's CI hook: a venv at clients/python/.venv (made if missing), the
# package installed editable with its test and dev extras, then pytest against a real daemon
# (SEMANTICA_BIN, else ../../target/release/semantica, else ../../target/debug/semantica),
# mypy --strict, the Python 3.9 checks (vermin and mypy for 3.9) and the README's example.
set -euo pipefail

# A relative SEMANTICA_BIN is taken from where the caller stands, before the cd below.
if [[ -n "${SEMANTICA_BIN:-}" && "${SEMANTICA_BIN}" != /* ]]; then
    SEMANTICA_BIN="$PWD/$SEMANTICA_BIN"
    export SEMANTICA_BIN
fi
cd "$(dirname "${BASH_SOURCE[0]}")"

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))'; then
    echo "clients/python needs Python 3.9 or newer; $PYTHON is $("$PYTHON" --version 2>&1)" >&2
    exit 1
fi
if [[ ! -x .venv/bin/python ]]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test,dev]'
.venv/bin/python -m pytest -q "$@"
.venv/bin/python -m mypy src/semantica

# Python 3.9 (requires-python), checked without a 3.9 interpreter: vermin fails on any
# syntax or standard-library feature newer than 3.9 (kw_only dataclasses, match, ...), and
# mypy checks for 3.9 against the dependencies pip picks for 3.9 (websockets 15, not the
# newest, which needs 3.10), installed into a venv of their own that mypy only reads.
.venv/bin/vermin --target=3.9- --no-tips --violations src/semantica
if [[ ! -x .venv-py39-types/bin/python ]]; then
    "$PYTHON" -m venv --without-pip .venv-py39-types
fi
py39_site="$(.venv-py39-types/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
# The package's own dependencies (not its extras), as the installed metadata lists them.
mapfile -t dependencies < <(.venv/bin/python -c '
from importlib.metadata import requires
print("\n".join(r for r in requires("semantica") or [] if "extra ==" not in r))')
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade --target "$py39_site" \
    --python-version 3.9 --only-binary=:all: "${dependencies[@]}"
.venv/bin/python -m mypy --python-version 3.9 --python-executable .venv-py39-types/bin/python src/semantica

# The README's example, in a fresh venv of its own.
bash ../readme_examples.sh python
