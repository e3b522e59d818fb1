"""The wire types of API.md, as Python sees them.

Params are ``TypedDict``s (what a caller writes is plain JSON-shaped data); results are
frozen dataclasses built by ``from_wire``. A result keeps every field it does not know
in ``extra``, so a newer daemon that adds fields never breaks an older client. Results are
built by keyword; their fields list the required ones first (no ``kw_only``, which needs
Python 3.10).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict, TypeVar

from ._errors import TransportError

JobState = Literal[
    "QUEUED",
    "SCHEDULED",
    "RUNNING",
    "DONE",
    "FAILED",
    "CANCELLED",
    "SUPERSEDED",
    "SKIPPED_TTL",
    "SKIPPED_DEADLINE",
]

TERMINAL_STATES: frozenset[str] = frozenset(
    {"DONE", "FAILED", "CANCELLED", "SUPERSEDED", "SKIPPED_TTL", "SKIPPED_DEADLINE"}
)

# --- params ---------------------------------------------------------------------------


class Exec(TypedDict, total=False):
    """A subprocess: ``command`` is required, the rest optional."""

    command: str
    args: Sequence[str]
    env: Mapping[str, str]
    cwd: str


class Backoff(TypedDict, total=False):
    base_ms: int
    factor: float
    max_ms: int
    jitter: float


class Schedule(TypedDict, total=False):
    """Either ``at`` (epoch ms) or ``delay_ms``."""

    at: int
    delay_ms: int


class Conditions(TypedDict, total=False):
    wait_for_idle: bool
    require_charging: bool
    wait_for_event: str


class EnqueueOptions(TypedDict, total=False):
    """The optional params of ``dev.enqueue.v1``."""

    generation: int
    payload: Any
    priority: int
    exec: Exec
    max_attempts: int
    backoff: Backoff
    timeout_ms: int
    ttl_ms: int
    deadline: int
    schedule: Schedule
    conditions: Conditions
    parent_job_id: str
    tag: str
    chain_group_id: str
    trace_id: str
    traceparent: str


class _JobSpecRequired(TypedDict):
    job_type: str
    queue: str
    subject_key: str


class JobSpec(_JobSpecRequired, EnqueueOptions, total=False):
    """Every param of ``dev.enqueue.v1``: one job of a batch, or a recurring job's job."""


class JobFilter(TypedDict, total=False):
    """The ``filter`` of ``dev.query_jobs.v1`` and ``dev.retry.v1``."""

    state: JobState | str | Sequence[JobState | str]
    queue: str | Sequence[str]
    job_type: str
    tag: str
    chain_group_id: str
    subject_key_prefix: str
    created_after: int


# --- results --------------------------------------------------------------------------

T = TypeVar("T")


def _build(cls: type[T], data: Any, **converted: Any) -> T:
    """``cls`` from a JSON object: known keys as fields, the others kept in ``extra``."""
    if not isinstance(data, dict):
        raise TransportError(f"expected a {cls.__name__} object, got {data!r:.200}")
    names = {f.name for f in dataclasses.fields(cls)} - {"extra"}  # type: ignore[arg-type]
    kwargs = {key: value for key, value in data.items() if key in names}
    kwargs.update(converted)
    extra = {key: value for key, value in data.items() if key not in names}
    try:
        return cls(**kwargs, extra=extra)  # type: ignore[call-arg]
    except TypeError as error:
        raise TransportError(f"unexpected {cls.__name__} from the daemon: {error}") from None


def _list(data: Any, name: str) -> list[Any]:
    if not isinstance(data, list):
        raise TransportError(f"expected a list for {name}, got {data!r:.200}")
    return data


@dataclass(frozen=True)
class JobError:
    kind: str
    message: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Any) -> JobError:
        return _build(cls, data)


@dataclass(frozen=True)
class Artifact:
    name: str
    bytes: int
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Any) -> Artifact:
        return _build(cls, data)


@dataclass(frozen=True)
class Job:
    """The job view of ``dev.get.v1``. Times are wall-clock epoch ms."""

    id: str
    queue: str
    job_type: str
    subject_key: str
    generation: int
    state: str
    priority: int = 0
    payload: Any = None
    execution_mode: str | None = None
    pid: int | None = None
    attempts: int = 0
    max_attempts: int = 1
    created_at: int | None = None
    scheduled_at: int | None = None
    started_at: int | None = None
    finished_at: int | None = None
    exit_code: int | None = None
    error: JobError | None = None
    result_summary: Any = None
    artifacts: list[Artifact] = field(default_factory=list)
    tag: str | None = None
    chain_group_id: str | None = None
    parent_job_id: str | None = None
    trace_id: str | None = None
    retry_of: str | None = None
    node: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @classmethod
    def from_wire(cls, data: Any) -> Job:
        converted: dict[str, Any] = {}
        if isinstance(data, dict):
            if data.get("error") is not None:
                converted["error"] = JobError.from_wire(data["error"])
            if data.get("artifacts") is not None:
                converted["artifacts"] = [Artifact.from_wire(a) for a in _list(data["artifacts"], "artifacts")]
        return _build(cls, data, **converted)


@dataclass(frozen=True)
class JobPage:
    """One page of ``dev.query_jobs.v1``; ``next_cursor`` is ``None`` on the last."""

    items: list[Job]
    next_cursor: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Any) -> JobPage:
        items = data.get("items") if isinstance(data, dict) else None
        return _build(cls, data, items=[Job.from_wire(item) for item in _list(items, "items")])


@dataclass(frozen=True)
class Enqueued:
    """The answer to one enqueue (also each item of a batch or a retry)."""

    job_id: str
    queue: str
    state: str
    generation: int
    deduplicated: bool = False
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Any) -> Enqueued:
        return _build(cls, data)

    @classmethod
    def list_from_wire(cls, data: Any) -> list[Enqueued]:
        results = data.get("results") if isinstance(data, dict) else None
        return [cls.from_wire(item) for item in _list(results, "results")]


@dataclass(frozen=True)
class LogChunk:
    """A piece of a job's log; ``eof`` once a terminal job's log has been read to its end."""

    chunk: str
    next_offset: int
    eof: bool = False
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Any) -> LogChunk:
        return _build(cls, data)


@dataclass(frozen=True)
class QueueStats:
    name: str
    queued: int = 0
    scheduled: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    cancelled: int = 0
    superseded: int = 0
    skipped: int = 0
    avg_wait_ms: int | float | None = None
    paused: bool = False
    oldest_wait_ms: int = 0
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Any) -> QueueStats:
        return _build(cls, data)


@dataclass(frozen=True)
class SystemStats:
    cpu_usage: float | None = None
    memory_usage: float | None = None
    is_idle: bool | None = None
    on_battery: bool | None = None
    db_size: int | None = None
    db_wal_size: int | None = None
    uptime_ms: int | None = None
    version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Any) -> SystemStats:
        return _build(cls, data)


@dataclass(frozen=True)
class NodeStats:
    """One daemon sharing the store: its lease (epoch ms, ``None`` on SQLite) and its jobs
    that hold a worker."""

    id: str
    lease_expires_at: int | None = None
    running: int = 0
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Any) -> NodeStats:
        return _build(cls, data)


@dataclass(frozen=True)
class Stats:
    queues: list[QueueStats]
    system: SystemStats
    nodes: list[NodeStats] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def queue(self, name: str) -> QueueStats | None:
        """The counts of queue ``name``, or ``None`` when the daemon has never seen it."""
        return next((q for q in self.queues if q.name == name), None)

    @classmethod
    def from_wire(cls, data: Any) -> Stats:
        queues = data.get("queues") if isinstance(data, dict) else None
        system = data.get("system") if isinstance(data, dict) else None
        nodes = data.get("nodes", []) if isinstance(data, dict) else None
        return _build(
            cls,
            data,
            queues=[QueueStats.from_wire(q) for q in _list(queues, "queues")],
            system=SystemStats.from_wire(system),
            nodes=[NodeStats.from_wire(n) for n in _list(nodes, "nodes")],
        )


@dataclass(frozen=True)
class Maintenance:
    deleted_jobs: int
    deleted_logs: int
    vacuumed: bool
    db_size_before: int
    db_size_after: int
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Any) -> Maintenance:
        return _build(cls, data)


@dataclass(frozen=True)
class QueueState:
    """The answer of ``admin.queue.pause.v1`` and ``resume.v1``."""

    queue: str
    paused: bool
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Any) -> QueueState:
        return _build(cls, data)


@dataclass(frozen=True)
class RecurringSet:
    name: str
    next_at: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Any) -> RecurringSet:
        return _build(cls, data)


@dataclass(frozen=True)
class Recurring:
    """A recurring job as ``dev.recurring.list.v1`` shows it; ``job`` is its enqueue params."""

    name: str
    cron: str
    timezone: str | None = None
    job: dict[str, Any] = field(default_factory=dict)
    next_at: int | None = None
    last_enqueued_job_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Any) -> Recurring:
        return _build(cls, data)

    @classmethod
    def list_from_wire(cls, data: Any) -> list[Recurring]:
        items = data.get("items") if isinstance(data, dict) else None
        return [cls.from_wire(item) for item in _list(items, "items")]


@dataclass(frozen=True)
class Reload:
    """The answer of ``admin.reload.v1``: which ``config.toml`` keys changed."""

    reloaded: bool
    changed: list[str] = field(default_factory=list)
    restart_required: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Any) -> Reload:
        return _build(cls, data)


@dataclass(frozen=True)
class UiLogin:
    """The answer of ``admin.ui_login.v1``: a one-time sign-in URL for the dashboard."""

    url: str
    expires_at: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Any) -> UiLogin:
        return _build(cls, data)


@dataclass(frozen=True)
class Health:
    """``GET /health``: answered without a token."""

    status: str
    version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Any) -> Health:
        return _build(cls, data)
