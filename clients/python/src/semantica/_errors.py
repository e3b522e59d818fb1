"""Errors as types: one class per code of API.md's "Errors" table.

Every error the daemon answers becomes a :class:`SemanticaError` subclass chosen by its
code alone, so a caller can catch exactly the case it handles (``except
NotFoundError``) and still read everything the daemon said (``code``, ``kind``,
``message``, ``field``, ``data``). A code this client does not know yet still maps to
the nearest base (4xxx: :class:`SemanticaError`, 5xxx: :class:`ServerError`), never to
a crash.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._types import Job

START_HINT = "start it with `semantica serve`"


class SemanticaError(Exception):
    """Base of every error this library raises.

    ``code`` is the JSON-RPC error code (``None`` for errors found on this side of the
    wire), ``kind`` the daemon's ``data.kind``, ``field`` the dotted path of the param at
    fault (validation errors), ``data`` the whole ``data`` object as received.
    """

    code: int | None = None

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        kind: str | None = None,
        field: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.kind = kind
        self.field = field
        self.data: dict[str, Any] = dict(data or {})

    def __str__(self) -> str:
        if self.code is None:
            return self.message
        return f"[{self.code}] {self.message}"


class ValidationError(SemanticaError):
    """4000: params missing, of the wrong type, out of range or too large.

    ``field`` names the param (``exec.command``); in a batch ``index`` is the job's index.
    """

    code = 4000

    @property
    def index(self) -> int | None:
        index = self.data.get("index")
        return index if isinstance(index, int) else None


class NotFoundError(SemanticaError):
    """4001: no such job."""

    code = 4001


class ConflictError(SemanticaError):
    """4002: the transition is not allowed from the job's state (``state``)."""

    code = 4002

    @property
    def state(self) -> str | None:
        state = self.data.get("state")
        return state if isinstance(state, str) else None


class ThrottledError(SemanticaError):
    """4003: rate limit or back-pressure. Raised only after the client's own retries."""

    code = 4003

    @property
    def retry_after_ms(self) -> int | None:
        delay = self.data.get("retry_after_ms")
        return delay if isinstance(delay, int) and delay >= 0 else None


class UnauthorizedError(SemanticaError):
    """4010: a TCP call without the right bearer token."""

    code = 4010


class ServerError(SemanticaError):
    """5xxx: the daemon failed; nothing acknowledged is lost."""

    code = 5000


class InternalError(ServerError):
    """5000: a bug in the daemon; it keeps serving."""

    code = 5000


class DatabaseError(ServerError):
    """5001: SQLite I/O, disk full, corruption."""

    code = 5001


class SystemResourceError(ServerError):
    """5002 (SYSTEM_ERROR): the OS refused (spawn failed, out of file descriptors).

    Not named ``SystemError``, which would shadow the Python builtin.
    """

    code = 5002


class ProtocolError(SemanticaError):
    """A JSON-RPC 2.0 protocol error (negative code)."""

    code = -32603


class ParseError(ProtocolError):
    """-32700: the daemon could not parse the request as JSON."""

    code = -32700


class InvalidRequestError(ProtocolError):
    """-32600: the request is not a JSON-RPC call."""

    code = -32600


class MethodNotFoundError(ProtocolError):
    """-32601: the daemon does not know the method (an older daemon than this client)."""

    code = -32601


class InvalidParamsError(ProtocolError):
    """-32602: params the JSON-RPC layer refused before the method saw them."""

    code = -32602


class DaemonNotRunningError(SemanticaError):
    """No daemon answers: no ``daemon.json``, no socket, or the connection was refused."""


class TransportError(SemanticaError):
    """The connection failed after it was made, timed out, or carried a malformed answer."""


class WaitTimeoutError(SemanticaError, TimeoutError):
    """``wait`` ended before the job did; ``job`` is its view at that moment."""

    def __init__(self, message: str, *, job: Job) -> None:
        super().__init__(message, kind="timed_out")
        self.job = job


_BY_CODE: dict[int, type[SemanticaError]] = {
    cls.code: cls
    for cls in (
        ValidationError,
        NotFoundError,
        ConflictError,
        ThrottledError,
        UnauthorizedError,
        InternalError,
        DatabaseError,
        SystemResourceError,
        ParseError,
        InvalidRequestError,
        MethodNotFoundError,
        InvalidParamsError,
    )
}


def error_from_wire(error: Any) -> SemanticaError:
    """The typed error for a JSON-RPC ``error`` object (tolerates missing parts)."""
    if not isinstance(error, dict):
        return TransportError(f"malformed error object: {error!r}")
    code = error.get("code")
    message = error.get("message")
    data = error.get("data")
    data = data if isinstance(data, dict) else {}
    if not isinstance(message, str):
        message = str(message)
    if not isinstance(code, int):
        return TransportError(f"error without a code: {message}", data=data)
    cls = _BY_CODE.get(code)
    if cls is None:
        if 5000 <= code < 6000:
            cls = ServerError
        elif -32768 <= code <= -32000:
            cls = ProtocolError
        else:
            cls = SemanticaError
    kind = data.get("kind")
    field = data.get("field")
    return cls(
        message,
        code=code,
        kind=kind if isinstance(kind, str) else None,
        field=field if isinstance(field, str) else None,
        data=data,
    )
