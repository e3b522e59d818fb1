"""``ensure_daemon()``: a client of the local daemon, starting one when none answers."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping

from . import _core
from ._client import THROTTLE_RETRIES_DEFAULT, TIMEOUT_S_DEFAULT, Client
from ._errors import START_HINT, DaemonNotRunningError, SemanticaError, TransportError

#: How long ``ensure_daemon`` waits for a daemon it started to answer.
ENSURE_WAIT_S = 30.0


def _answering(
    url: str | None, token: str | None, home: str | os.PathLike[str] | None, timeout_s: float, retries: int
) -> Client | None:
    """A client whose daemon answers a call (an error answer counts), else ``None``."""
    try:
        client = Client(url, token=token, home=home, timeout_s=timeout_s, max_throttle_retries=retries)
    except DaemonNotRunningError:
        return None
    try:
        client.stats()
    except (DaemonNotRunningError, TransportError):
        client.close()
        return None
    except SemanticaError:
        pass  # a daemon answered
    return client


def ensure_daemon(
    url: str | None = None,
    *,
    token: str | None = None,
    home: str | os.PathLike[str] | None = None,
    binary: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    wait_s: float = ENSURE_WAIT_S,
    timeout_s: float = TIMEOUT_S_DEFAULT,
    max_throttle_retries: int = THROTTLE_RETRIES_DEFAULT,
) -> Client:
    """A connected :class:`Client`, after starting ``semantica serve`` when none answers.

    The daemon is found as ``Client`` finds it. When none answers and no URL is given (a
    daemon elsewhere is not ours to start), ``binary`` (else ``SEMANTICA_BIN``, else
    ``semantica`` on ``PATH``) is started as ``serve`` in the background, in a session of
    its own so that it outlives this process, with ``SEMANTICA_HOME`` set to the data
    directory and ``env`` added to the environment; then this waits up to ``wait_s`` for
    it to answer. Raises :class:`DaemonNotRunningError` when it cannot start or answer.
    """
    client = _answering(url, token, home, timeout_s, max_throttle_retries)
    if client is not None:
        return client
    if url or os.environ.get("SEMANTICA_URL"):
        raise DaemonNotRunningError(
            f"no Semantica daemon answers at {url or os.environ['SEMANTICA_URL']}; a daemon behind a URL "
            "is not started from here",
            kind="daemon_not_running",
        )
    program = os.fspath(binary) if binary is not None else os.environ.get("SEMANTICA_BIN") or shutil.which("semantica")
    if not program:
        raise DaemonNotRunningError(
            f"no Semantica daemon runs and `semantica` is not on PATH (or set SEMANTICA_BIN): {START_HINT}",
            kind="daemon_not_running",
        )
    environment = dict(os.environ)
    environment.update(env or {})
    environment["SEMANTICA_HOME"] = str(_core.semantica_home(home, os.environ))
    try:
        process = subprocess.Popen(
            [program, "serve"],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as error:
        raise DaemonNotRunningError(f"cannot start `{program} serve`: {error}", kind="daemon_not_running") from None
    # Reaped when it ends, so that it leaves no zombie while this process runs.
    threading.Thread(target=process.wait, daemon=True).start()
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        time.sleep(0.05)
        client = _answering(None, token, home, timeout_s, max_throttle_retries)
        if client is not None:
            return client
        code = process.poll()
        # 2: another daemon holds the home (one started beside us), which answers soon.
        if code is not None and code != 2:
            raise DaemonNotRunningError(f"`{program} serve` exited with code {code}", kind="daemon_not_running")
    process.kill()
    raise DaemonNotRunningError(f"`{program} serve` did not answer within {wait_s} s", kind="daemon_not_running")
