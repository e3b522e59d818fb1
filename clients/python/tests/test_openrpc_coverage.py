"""Every method the published OpenRPC document names has a client method."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from semantica import METHODS, AsyncClient, Client

from .conftest import REPO_DIR

OPENRPC_PATH = REPO_DIR / "docs" / "openrpc.json"


def uncovered_methods(openrpc_path: Path) -> list[str]:
    """The methods of the OpenRPC document at ``openrpc_path`` that no client method calls."""
    document = json.loads(openrpc_path.read_text())
    names = [method["name"] for method in document["methods"]]
    assert names, f"{openrpc_path} lists no methods"
    return [
        name
        for name in names
        if name not in METHODS
        or not callable(getattr(Client, METHODS[name], None))
        or not callable(getattr(AsyncClient, METHODS[name], None))
    ]


def test_openrpc_coverage() -> None:
    if not OPENRPC_PATH.is_file():
        pytest.fail(
            f"{OPENRPC_PATH} does not exist: the daemon's OpenRPC document (API.md, 'Discovery: "
            "rpc.discover') must be committed there before the client's coverage can be checked",
            pytrace=False,
        )
    missing = uncovered_methods(OPENRPC_PATH)
    assert not missing, (
        f"methods in {OPENRPC_PATH} with no client method (add them to semantica._core.METHODS): {missing}"
    )


def test_the_coverage_check_names_what_is_missing(tmp_path: Path) -> None:
    document = tmp_path / "openrpc.json"
    methods = [{"name": name} for name in METHODS] + [{"name": "dev.brand_new.v1"}]
    document.write_text(json.dumps({"openrpc": "1.3.2", "info": {"version": "0"}, "methods": methods}))
    assert uncovered_methods(document) == ["dev.brand_new.v1"]
