"""The part of the client that does no I/O, shared by ``Client`` and ``AsyncClient``.

It finds the daemon (``find_daemon``), turns each method into a :class:`Call` (the
JSON-RPC method, its params, how to read its result), encodes requests, decodes answers
and errors, decides when a throttled call is tried again, and runs the protocol of a
``logs.follow.v1`` subscription (:class:`FollowSession`). The two clients only move
bytes and sleep; so every rule of the wire lives here once.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from ._errors import (
    START_HINT,
    DaemonNotRunningError,
    SemanticaError,
    ThrottledError,
    TransportError,
    WaitTimeoutError,
    error_from_wire,
)
from ._types import (
    Enqueued,
    EnqueueOptions,
    Health,
    Job,
    JobFilter,
    JobPage,
    JobSpec,
    LogChunk,
    Maintenance,
    QueueState,
    Recurring,
    RecurringSet,
    Reload,
    Stats,
    UiLogin,
)

__version__ = "0.1.0"

T = TypeVar("T")

#: Every JSON-RPC method of the wire contract and the client method that calls it. The
#: OpenRPC coverage test holds this table against ``docs/openrpc.json``.
METHODS: Mapping[str, str] = {
    "dev.enqueue.v1": "enqueue",
    "dev.enqueue_batch.v1": "enqueue_batch",
    "dev.get.v1": "get",
    "dev.wait.v1": "wait",
    "dev.cancel.v1": "cancel",
    "dev.query_jobs.v1": "jobs",
    "dev.event.v1": "event",
    "logs.tail.v1": "logs",
    "logs.follow.v1": "follow",
    "logs.unfollow.v1": "follow",
    "admin.stats.v1": "stats",
    "admin.maintenance.v1": "maintenance",
    "admin.queue.pause.v1": "pause",
    "admin.queue.resume.v1": "resume",
    "admin.reload.v1": "reload",
    "admin.ui_login.v1": "ui_login",
    "dev.retry.v1": "retry",
    "dev.recurring.set.v1": "recurring_set",
    "dev.recurring.list.v1": "recurring_list",
    "dev.recurring.delete.v1": "recurring_delete",
    "rpc.discover": "discover",
}

#: What a throttled answer without ``retry_after_ms`` waits before it is tried again.
THROTTLE_DELAY_MS_DEFAULT = 100
#: A daemon asking for a longer wait than this still gets only this much per try.
THROTTLE_DELAY_MS_MAX = 60_000
#: ``dev.wait.v1`` waits at most this long per call (API.md).
WAIT_MS_MAX = 300_000
#: Slack on the HTTP timeout of a call the daemon holds open on purpose (``dev.wait.v1``).
WAIT_SLACK_S = 30.0
#: A WebSocket message larger than this is refused (a log chunk is at most 1 MiB of text).
WS_MESSAGE_BYTES_MAX = 16 * 1024 * 1024


# --- finding the daemon ---------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """Where the daemon listens: a Unix socket (no token) or a TCP URL (bearer token)."""

    socket_path: str | None = None
    url: str | None = None
    token: str | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        return f"socket {self.socket_path}" if self.socket_path else f"{self.url}"

    @property
    def http_base(self) -> str:
        # Over a Unix socket the host part only fills the Host header.
        return self.url or "http://localhost"

    @property
    def ws_uri(self) -> str:
        if self.url is None:
            return "ws://localhost/"
        scheme, rest = self.url.split("://", 1)
        return ("wss" if scheme == "https" else "ws") + "://" + rest.rstrip("/") + "/"

    def headers(self) -> dict[str, str]:
        headers = {"user-agent": f"semantica-python/{__version__}"}
        if self.url is not None and self.token:
            headers["authorization"] = f"Bearer {self.token}"
        return headers


def semantica_home(home: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> Path:
    """``home``, else ``SEMANTICA_HOME``, else ``~/.semantica`` (as the daemon decides)."""
    chosen = home if home is not None else environ.get("SEMANTICA_HOME") or "~/.semantica"
    return Path(chosen).expanduser()


def _read_token(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def find_daemon(
    url: str | None = None,
    *,
    token: str | None = None,
    home: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Endpoint:
    """The daemon to talk to.

    A URL (``url``, else ``SEMANTICA_URL``) means TCP with a bearer token (``token``,
    else ``SEMANTICA_TOKEN``, else ``$SEMANTICA_HOME/token``); ``unix:///path`` names a
    socket. Without one, ``$SEMANTICA_HOME/daemon.json`` names the socket of the daemon
    running for that home, and its absence means no daemon runs there.
    """
    environ = os.environ if environ is None else environ
    home_path = semantica_home(home, environ)
    url = url or environ.get("SEMANTICA_URL") or None
    if url is not None:
        return _endpoint_for_url(url, token, home_path, environ)
    daemon_json = home_path / "daemon.json"
    try:
        info = json.loads(daemon_json.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DaemonNotRunningError(
            f"no Semantica daemon runs for {home_path} (no {daemon_json}): {START_HINT}",
            kind="daemon_not_running",
        ) from None
    except (OSError, ValueError) as error:
        raise DaemonNotRunningError(
            f"cannot read {daemon_json} ({error}): is the daemon running? {START_HINT}",
            kind="daemon_not_running",
        ) from None
    socket = info.get("socket") if isinstance(info, dict) else None
    if not isinstance(socket, str) or not socket:
        socket = str(home_path / "semantica.sock")
    return Endpoint(socket_path=socket)


def _endpoint_for_url(url: str, token: str | None, home_path: Path, environ: Mapping[str, str]) -> Endpoint:
    if url.startswith("unix://"):
        path = url[len("unix://") :]
        if not path:
            raise ValueError(f"{url!r}: a unix:// URL names the socket's path, e.g. unix:///tmp/s.sock")
        return Endpoint(socket_path=path)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{url!r}: want http://HOST:PORT (or unix:///path/to/semantica.sock)")
    token = token or environ.get("SEMANTICA_TOKEN") or _read_token(home_path / "token")
    return Endpoint(url=f"{parts.scheme}://{parts.netloc}", token=token)


# --- calls ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Call(Generic[T]):
    """One JSON-RPC call: the method, its params, and how its result is read."""

    method: str
    params: dict[str, Any]
    decode: Callable[[Any], T]
    #: Seconds to wait for the answer; ``None``: the client's default.
    timeout_s: float | None = None


def _present(**params: Any) -> dict[str, Any]:
    """The params that were given (``None`` means absent, as the daemon reads it)."""
    return {key: value for key, value in params.items() if value is not None}


def _identity(result: Any) -> Any:
    return result


def _field(name: str, kind: type[T]) -> Callable[[Any], T]:
    def decode(result: Any) -> T:
        value = result.get(name) if isinstance(result, dict) else None
        if not isinstance(value, kind):
            raise TransportError(f"expected {name!r} ({kind.__name__}) in the answer, got {result!r:.200}")
        return value

    return decode


def call(method: str, params: Mapping[str, Any] | None = None) -> Call[Any]:
    """Any method, its result as received: for methods newer than this client."""
    return Call(method, dict(params or {}), _identity)


def enqueue(job_type: str, subject_key: str, queue: str, options: EnqueueOptions) -> Call[Enqueued]:
    params = _present(**options)
    params.update(job_type=job_type, queue=queue, subject_key=subject_key)
    return Call("dev.enqueue.v1", params, Enqueued.from_wire)


def enqueue_batch(jobs: Sequence[JobSpec]) -> Call[list[Enqueued]]:
    return Call("dev.enqueue_batch.v1", {"jobs": [_present(**job) for job in jobs]}, Enqueued.list_from_wire)


def get(job_id: str) -> Call[Job]:
    return Call("dev.get.v1", {"job_id": job_id}, Job.from_wire)


def _waited(result: Any) -> Job:
    if isinstance(result, dict) and result.get("timed_out") is True:
        job = Job.from_wire(result.get("job"))
        raise WaitTimeoutError(f"job {job.id} is still {job.state}", job=job)
    return Job.from_wire(result)


def wait(job_id: str, timeout_ms: int) -> Call[Job]:
    # The daemon holds the request open up to timeout_ms: the HTTP timeout must outlast it.
    timeout_s = max(timeout_ms, 0) / 1000 + WAIT_SLACK_S
    return Call("dev.wait.v1", {"job_id": job_id, "timeout_ms": timeout_ms}, _waited, timeout_s)


def cancel(job_id: str | None, tag: str | None, chain_group_id: str | None) -> Call[int]:
    params = _present(job_id=job_id, tag=tag, chain_group_id=chain_group_id)
    return Call("dev.cancel.v1", params, _field("cancelled_count", int))


def jobs_page(filter: JobFilter, sort: str | None, limit: int | None, cursor: str | None) -> Call[JobPage]:
    params = _present(filter=_present(**filter) or None, sort=sort, limit=limit, cursor=cursor)
    return Call("dev.query_jobs.v1", params, JobPage.from_wire)


def next_cursor(previous: str | None, page: JobPage) -> str | None:
    """The cursor of the page after ``page``, or ``None`` when it was the last.

    A daemon that hands back the cursor it was given would make a caller loop forever:
    that is refused instead.
    """
    if page.next_cursor is None:
        return None
    if page.next_cursor == previous or not page.items:
        raise TransportError(f"the daemon's cursor does not advance ({page.next_cursor!r})")
    return page.next_cursor


def event(name: str) -> Call[int]:
    return Call("dev.event.v1", {"name": name}, _field("released_count", int))


def logs(job_id: str, offset: int, limit: int | None) -> Call[LogChunk]:
    return Call("logs.tail.v1", _present(job_id=job_id, offset=offset, limit=limit), LogChunk.from_wire)


def stats() -> Call[Stats]:
    return Call("admin.stats.v1", {}, Stats.from_wire)


def maintenance(force_vacuum: bool) -> Call[Maintenance]:
    return Call("admin.maintenance.v1", {"force_vacuum": force_vacuum}, Maintenance.from_wire)


def pause(queue: str) -> Call[QueueState]:
    return Call("admin.queue.pause.v1", {"queue": queue}, QueueState.from_wire)


def resume(queue: str) -> Call[QueueState]:
    return Call("admin.queue.resume.v1", {"queue": queue}, QueueState.from_wire)


def reload() -> Call[Reload]:
    return Call("admin.reload.v1", {}, Reload.from_wire)


def ui_login() -> Call[UiLogin]:
    return Call("admin.ui_login.v1", {}, UiLogin.from_wire)


def retry(job_id: str | None, filter: JobFilter | None, limit: int | None) -> Call[list[Enqueued]]:
    params = _present(job_id=job_id, filter=None if filter is None else _present(**filter), limit=limit)
    return Call("dev.retry.v1", params, Enqueued.list_from_wire)


def recurring_set(name: str, cron: str, job: JobSpec, timezone: str | None) -> Call[RecurringSet]:
    params = _present(name=name, cron=cron, timezone=timezone, job=_present(**job))
    return Call("dev.recurring.set.v1", params, RecurringSet.from_wire)


def recurring_list() -> Call[list[Recurring]]:
    return Call("dev.recurring.list.v1", {}, Recurring.list_from_wire)


def recurring_delete(name: str) -> Call[bool]:
    return Call("dev.recurring.delete.v1", {"name": name}, _field("deleted", bool))


def discover() -> Call[dict[str, Any]]:
    def decode(result: Any) -> dict[str, Any]:
        if not isinstance(result, dict):
            raise TransportError(f"rpc.discover answered no OpenRPC document: {result!r:.200}")
        return result

    return Call("rpc.discover", {}, decode)


# --- the envelope ---------------------------------------------------------------------


@dataclass
class Core:
    """What both clients share: the endpoint, the settings, and the JSON-RPC envelope."""

    endpoint: Endpoint
    timeout_s: float
    max_throttle_retries: int
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1), init=False, repr=False)

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, not {self.timeout_s}")
        if self.max_throttle_retries < 0:
            raise ValueError(f"max_throttle_retries must be >= 0, not {self.max_throttle_retries}")

    def encode(self, call: Call[Any]) -> tuple[int, bytes]:
        """The request id and the body of ``call``."""
        request_id = next(self._ids)
        body = {"jsonrpc": "2.0", "id": request_id, "method": call.method, "params": call.params}
        return request_id, json.dumps(body, separators=(",", ":")).encode("utf-8")

    def timeout(self, call: Call[Any]) -> float:
        return call.timeout_s if call.timeout_s is not None else self.timeout_s

    def decode(self, call: Call[T], request_id: int, status: int, content: bytes) -> T:
        """The result of ``call``, or its error raised as a typed exception."""
        answer = _json_answer(status, content)
        if "error" in answer:
            raise error_from_wire(answer["error"])
        if "result" not in answer or answer.get("id") != request_id:
            raise TransportError(f"not the answer to request {request_id}: {content[:200]!r}")
        return call.decode(answer["result"])

    def decode_health(self, status: int, content: bytes) -> Health:
        if status != 200:
            raise TransportError(f"GET /health answered HTTP {status}")
        return Health.from_wire(_json_answer(status, content))

    def throttle_delay_s(self, error: ThrottledError, attempt: int) -> float | None:
        """How long to sleep before try ``attempt + 1`` of a throttled call; ``None``: give up."""
        if attempt >= self.max_throttle_retries:
            return None
        delay_ms = error.retry_after_ms
        if delay_ms is None:
            delay_ms = THROTTLE_DELAY_MS_DEFAULT
        return min(delay_ms, THROTTLE_DELAY_MS_MAX) / 1000

    def connection_error(self, error: Exception) -> SemanticaError:
        """The typed error for a failure to reach the daemon or to read its answer."""
        if _is_refused(error):
            return DaemonNotRunningError(
                f"no Semantica daemon answers at {self.endpoint.where} ({error}): {START_HINT}",
                kind="daemon_not_running",
            )
        if isinstance(error, TimeoutError) or type(error).__name__.endswith("Timeout"):
            return TransportError(f"{self.endpoint.where} did not answer in time ({error})", kind="timeout")
        return TransportError(f"talking to {self.endpoint.where} failed: {error}", kind="transport")

    def ws_rejected(self, status: int, body: bytes) -> SemanticaError:
        """The typed error for a refused WebSocket upgrade (a wrong token: 401, 4010)."""
        try:
            return error_from_wire(_json_answer(status, body).get("error"))
        except SemanticaError as error:
            return error


def _is_refused(error: BaseException) -> bool:
    """Connection refused, or no socket file: nobody listens there."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (ConnectionRefusedError, FileNotFoundError)):
            return True
        if type(current).__name__ == "ConnectError":
            return True
        current = current.__cause__ or current.__context__
    return False


def _json_answer(status: int, content: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(content)
    except ValueError:
        raise TransportError(f"HTTP {status} with a body that is not JSON: {content[:200]!r}") from None
    if not isinstance(answer, dict):
        raise TransportError(f"HTTP {status} with an unexpected body: {content[:200]!r}")
    return answer


# --- logs.follow.v1 -------------------------------------------------------------------


class FollowSession:
    """One ``logs.follow.v1`` subscription, as frames in and text out.

    A driver sends :meth:`subscribe_frame`, hands every frame it receives to
    :meth:`handle_frame` (which returns the log text it carried) until :attr:`ended`,
    and sends :meth:`unsubscribe_frame` when it stops early.
    """

    _SUBSCRIBE_ID = 1
    _UNSUBSCRIBE_ID = 2

    def __init__(self, job_id: str, offset: int) -> None:
        self.job_id = job_id
        self.next_offset = offset
        self.subscription: Any = None
        self.ended = False

    def subscribe_frame(self) -> str:
        return json.dumps(
            {
                "jsonrpc": "2.0",
                "id": self._SUBSCRIBE_ID,
                "method": "logs.follow.v1",
                "params": {"job_id": self.job_id, "offset": self.next_offset},
            }
        )

    def unsubscribe_frame(self) -> str | None:
        if self.subscription is None or self.ended:
            return None
        return json.dumps(
            {"jsonrpc": "2.0", "id": self._UNSUBSCRIBE_ID, "method": "logs.unfollow.v1", "params": [self.subscription]}
        )

    def handle_frame(self, frame: str | bytes) -> str:
        """The log text ``frame`` carried ('' for none); raises if the subscription was refused."""
        try:
            message = json.loads(frame)
        except ValueError:
            raise TransportError(f"a log stream frame that is not JSON: {frame[:200]!r}") from None
        if not isinstance(message, dict):
            return ""
        if message.get("id") == self._SUBSCRIBE_ID:
            if "error" in message:
                self.ended = True
                raise error_from_wire(message["error"])
            self.subscription = message.get("result")
            return ""
        params = message.get("params")
        if "method" not in message or not isinstance(params, dict):
            return ""
        if self.subscription is not None and params.get("subscription") != self.subscription:
            return ""
        result = params.get("result")
        if not isinstance(result, dict):
            return ""
        next_offset = result.get("next_offset")
        if isinstance(next_offset, int):
            self.next_offset = next_offset
        if result.get("eof") is True:
            self.ended = True
        chunk = result.get("chunk")
        return chunk if isinstance(chunk, str) else ""

    def closed_early(self) -> TransportError:
        return TransportError(
            f"the daemon closed the log stream of job {self.job_id} before it ended (at offset {self.next_offset})"
        )
