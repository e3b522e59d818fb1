"""A real daemon for the tests: `$SEMANTICA_BIN serve` on a temp home and port 0.

The binary is `SEMANTICA_BIN`, else `../../target/release/semantica`, else
`../../target/debug/semantica` (relative to clients/python). Without one the tests that
need a daemon fail, saying where they looked: a client test that passes without a
daemon proves nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = PACKAGE_DIR.parent.parent
#: How long a daemon may take to write daemon.json, and to stop on SIGTERM.
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 15.0
#: Variables that would point a test's client at some other daemon.
CLIENT_ENV = ("SEMANTICA_HOME", "SEMANTICA_URL", "SEMANTICA_TOKEN", "SEMANTICA_SOCKET")


def find_binary() -> Path:
    from_env = os.environ.get("SEMANTICA_BIN")
    if from_env:
        # Named on purpose: a wrong path must not quietly fall back to some older build.
        candidates = [Path(from_env)]
    else:
        candidates = [REPO_DIR / "target" / "release" / "semantica", REPO_DIR / "target" / "debug" / "semantica"]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    pytest.fail(
        f"no semantica daemon binary found (looked at: {looked}). Build it with "
        "`cargo build --release -p semantica` at the repository root, or set SEMANTICA_BIN "
        "to the binary's path.",
        pytrace=False,
    )


@dataclass
class Daemon:
    """A running `semantica serve` on its own home."""

    process: subprocess.Popen[bytes]
    home: Path
    rpc_addr: str
    socket: str
    token: str
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{self.rpc_addr}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_daemon(home: Path, *, config_toml: str | None = None) -> Daemon:
    binary = find_binary()
    home.mkdir(parents=True, exist_ok=True)
    if config_toml is not None:
        (home / "config.toml").write_text(config_toml)
    env = {key: value for key, value in os.environ.items() if not key.startswith("SEMANTICA_")}
    env.update(
        SEMANTICA_HOME=str(home),
        SEMANTICA_RPC_ADDR="127.0.0.1:0",
        SEMANTICA_WORKERS="4",
        RUST_LOG=env.get("RUST_LOG", "warn"),
    )
    log_path = home.parent / f"{home.name}.daemon.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(binary), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    daemon_json = home / "daemon.json"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"`{binary} serve` exited with {process.returncode}:\n{log_path.read_text()}", pytrace=False)
        try:
            info = json.loads(daemon_json.read_text())
            break
        except (FileNotFoundError, ValueError):
            time.sleep(0.02)
    else:
        process.kill()
        pytest.fail(f"`{binary} serve` wrote no {daemon_json} in {START_TIMEOUT_S} s:\n{log_path.read_text()}")
    return Daemon(
        process=process,
        home=home,
        rpc_addr=info["rpc_addr"],
        socket=info["socket"],
        token=(home / "token").read_text().strip(),
        log_path=log_path,
    )


@pytest.fixture(autouse=True)
def _no_outside_daemon(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own SEMANTICA_* variables must not steer the tests' clients."""
    for key in CLIENT_ENV:
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon shared by the tests; each test works in its own queue, subject and tag."""
    running = start_daemon(tmp_path_factory.mktemp("shared") / "home")
    yield running
    running.stop()


@pytest.fixture
def fresh_daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A daemon of the test's own, for tests that stop it or need its own config."""
    running = start_daemon(tmp_path / "home")
    yield running
    running.stop()


@pytest.fixture
def unique() -> str:
    """A name no other test uses (queues take a-z0-9_.-)."""
    return "t" + uuid.uuid4().hex[:12]
