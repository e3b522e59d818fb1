"""Semantica: the Python client of the local Semantica job-queue daemon.

``Client`` (blocking) and ``AsyncClient`` (asyncio) find the daemon by themselves
(``$SEMANTICA_HOME/daemon.json`` and its Unix socket, or ``SEMANTICA_URL`` with a bearer
token), call every method of the wire contract with typed results, and raise a typed
error for every error code. They never start a daemon: when none runs they say so
(:class:`DaemonNotRunningError`); :func:`ensure_daemon` starts one when none answers.
The error classes are also named as the issue that made them names them (``NotFound``,
``Conflict``, ``Throttled``, ``Unauthorized``, ``DaemonNotRunning``).
"""

from ._client import AsyncClient, Client
from ._core import METHODS, Endpoint, __version__, find_daemon
from ._ensure import ENSURE_WAIT_S, ensure_daemon
from ._errors import (
    ConflictError,
    DaemonNotRunningError,
    DatabaseError,
    InternalError,
    InvalidParamsError,
    InvalidRequestError,
    MethodNotFoundError,
    NotFoundError,
    ParseError,
    ProtocolError,
    SemanticaError,
    ServerError,
    SystemResourceError,
    ThrottledError,
    TransportError,
    UnauthorizedError,
    ValidationError,
    WaitTimeoutError,
)

# The short names (the same classes).
NotFound = NotFoundError
Conflict = ConflictError
Throttled = ThrottledError
Unauthorized = UnauthorizedError
DaemonNotRunning = DaemonNotRunningError

from ._types import (  # noqa: E402
    TERMINAL_STATES,
    Artifact,
    Backoff,
    Conditions,
    Enqueued,
    EnqueueOptions,
    Exec,
    Health,
    Job,
    JobError,
    JobFilter,
    JobPage,
    JobSpec,
    JobState,
    LogChunk,
    Maintenance,
    NodeStats,
    QueueState,
    QueueStats,
    Recurring,
    RecurringSet,
    Reload,
    Schedule,
    Stats,
    SystemStats,
    UiLogin,
)

__all__ = [
    "ENSURE_WAIT_S",
    "Conflict",
    "DaemonNotRunning",
    "NotFound",
    "Throttled",
    "Unauthorized",
    "ensure_daemon",
    "METHODS",
    "TERMINAL_STATES",
    "Artifact",
    "AsyncClient",
    "Backoff",
    "Client",
    "Conditions",
    "ConflictError",
    "DaemonNotRunningError",
    "DatabaseError",
    "Endpoint",
    "EnqueueOptions",
    "Enqueued",
    "Exec",
    "Health",
    "InternalError",
    "InvalidParamsError",
    "InvalidRequestError",
    "Job",
    "JobError",
    "JobFilter",
    "JobPage",
    "JobSpec",
    "JobState",
    "LogChunk",
    "Maintenance",
    "MethodNotFoundError",
    "NodeStats",
    "NotFoundError",
    "ParseError",
    "ProtocolError",
    "QueueState",
    "QueueStats",
    "Recurring",
    "RecurringSet",
    "Reload",
    "Schedule",
    "SemanticaError",
    "ServerError",
    "Stats",
    "SystemResourceError",
    "SystemStats",
    "ThrottledError",
    "TransportError",
    "UiLogin",
    "UnauthorizedError",
    "ValidationError",
    "WaitTimeoutError",
    "__version__",
    "find_daemon",
]
