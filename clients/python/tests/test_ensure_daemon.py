"""``ensure_daemon()`` against the real binary: it starts a daemon only when none answers."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

import semantica

from .conftest import find_binary


def _stop(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    for _ in range(300):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def test_ensure_daemon_starts_one_only_when_none_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SEMANTICA_HOME", "SEMANTICA_URL", "SEMANTICA_TOKEN", "SEMANTICA_SOCKET"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    env = {"SEMANTICA_RPC_ADDR": "127.0.0.1:0", "SEMANTICA_WORKERS": "2"}
    client = semantica.ensure_daemon(home=home, binary=find_binary(), env=env)
    pid = json.loads((home / "daemon.json").read_text())["pid"]
    try:
        with client:
            job = client.enqueue("noop", subject_key="ensured")
            assert client.wait(job.job_id, timeout_ms=30_000).state == "DONE"
        with semantica.ensure_daemon(home=home, binary=find_binary(), env=env) as again:
            assert again.get(job.job_id).state == "DONE"
        assert json.loads((home / "daemon.json").read_text())["pid"] == pid, "a second daemon was started"
    finally:
        _stop(pid)


def test_ensure_daemon_says_when_it_cannot_start_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SEMANTICA_HOME", "SEMANTICA_URL", "SEMANTICA_TOKEN", "SEMANTICA_SOCKET"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(semantica.DaemonNotRunning, match="cannot start"):
        semantica.ensure_daemon(home=tmp_path, binary=tmp_path / "no-such-semantica")
    assert semantica.NotFound is semantica.NotFoundError
