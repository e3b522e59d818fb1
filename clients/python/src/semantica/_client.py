"""``Client`` and ``AsyncClient``: the I/O around :mod:`semantica._core`.

Each method builds its call with ``_core`` and hands it to ``_call``; the two classes
differ only in how they send (``httpx.Client`` or ``httpx.AsyncClient``, websockets'
sync or asyncio client) and how they sleep between throttled tries.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import websockets
from websockets.asyncio import client as ws_async
from websockets.sync import client as ws_sync

from . import _core
from ._core import Call, Core, Endpoint, FollowSession
from ._errors import ThrottledError
from ._types import (
    Enqueued,
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

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._types import EnqueueOptions

T = TypeVar("T")

TIMEOUT_S_DEFAULT = 30.0
THROTTLE_RETRIES_DEFAULT = 3


def _make_core(
    url: str | None,
    token: str | None,
    home: str | os.PathLike[str] | None,
    timeout_s: float,
    max_throttle_retries: int,
) -> Core:
    endpoint = _core.find_daemon(url, token=token, home=home)
    return Core(endpoint, timeout_s=timeout_s, max_throttle_retries=max_throttle_retries)


class Client:
    """A blocking client of the local Semantica daemon.

    ``Client()`` finds the daemon of ``$SEMANTICA_HOME`` (default ``~/.semantica``)
    through its ``daemon.json`` and talks over its Unix socket. ``Client(url)`` (or
    ``SEMANTICA_URL``) talks TCP with a bearer token: ``token``, else
    ``SEMANTICA_TOKEN``, else ``$SEMANTICA_HOME/token``. A call answered 4003 (throttled)
    is tried again after the daemon's ``retry_after_ms``, up to ``max_throttle_retries``
    times, then raised.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        home: str | os.PathLike[str] | None = None,
        timeout_s: float = TIMEOUT_S_DEFAULT,
        max_throttle_retries: int = THROTTLE_RETRIES_DEFAULT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._core = _make_core(url, token, home, timeout_s, max_throttle_retries)
        endpoint = self._core.endpoint
        if transport is None:
            transport = httpx.HTTPTransport(uds=endpoint.socket_path)
        self._http = httpx.Client(
            base_url=endpoint.http_base, transport=transport, headers=endpoint.headers(), timeout=timeout_s
        )

    @property
    def endpoint(self) -> Endpoint:
        return self._core.endpoint

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, call: Call[T]) -> T:
        for attempt in range(self._core.max_throttle_retries + 1):
            try:
                return self._send(call)
            except ThrottledError as error:
                delay_s = self._core.throttle_delay_s(error, attempt)
                if delay_s is None:
                    raise
                time.sleep(delay_s)
        raise AssertionError("unreachable: the last try raises")

    def _send(self, call: Call[T]) -> T:
        request_id, body = self._core.encode(call)
        try:
            response = self._http.post(
                "/", content=body, headers={"content-type": "application/json"}, timeout=self._core.timeout(call)
            )
        except httpx.HTTPError as error:
            raise self._core.connection_error(error) from error
        return self._core.decode(call, request_id, response.status_code, response.content)

    # --- methods, in the order of API.md -------------------------------------------------

    def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """Calls any method and returns its result as received (errors are still typed)."""
        return self._call(_core.call(method, params))

    def health(self) -> Health:
        """``GET /health``: answered without a token."""
        try:
            response = self._http.get("/health")
        except httpx.HTTPError as error:
            raise self._core.connection_error(error) from error
        return self._core.decode_health(response.status_code, response.content)

    def enqueue(
        self, job_type: str, *, subject_key: str, queue: str = "default", **options: Unpack[EnqueueOptions]
    ) -> Enqueued:
        """``dev.enqueue.v1``. Give ``exec={"command": ..., "args": [...]}`` for a subprocess job."""
        return self._call(_core.enqueue(job_type, subject_key, queue, options))

    def enqueue_batch(self, jobs: Sequence[JobSpec]) -> list[Enqueued]:
        """``dev.enqueue_batch.v1``: all or nothing; results in the order of ``jobs``."""
        return self._call(_core.enqueue_batch(jobs))

    def cancel(self, job_id: str | None = None, *, tag: str | None = None, chain_group_id: str | None = None) -> int:
        """``dev.cancel.v1``: how many jobs were cancelled."""
        return self._call(_core.cancel(job_id, tag, chain_group_id))

    def get(self, job_id: str) -> Job:
        """``dev.get.v1``."""
        return self._call(_core.get(job_id))

    def wait(self, job_id: str, *, timeout_ms: int = _core.WAIT_MS_MAX) -> Job:
        """``dev.wait.v1``: the job once terminal; :class:`WaitTimeoutError` (with ``.job``) if not in time."""
        return self._call(_core.wait(job_id, timeout_ms))

    def jobs_page(
        self,
        *,
        cursor: str | None = None,
        sort: str | None = None,
        limit: int | None = None,
        **filter: Unpack[JobFilter],
    ) -> JobPage:
        """One page of ``dev.query_jobs.v1``."""
        return self._call(_core.jobs_page(filter, sort, limit, cursor))

    def jobs(
        self, *, sort: str | None = None, page_size: int | None = None, **filter: Unpack[JobFilter]
    ) -> Generator[Job, None, None]:
        """Every job that matches ``filter``, following ``next_cursor`` through every page."""
        cursor: str | None = None
        while True:
            page = self._call(_core.jobs_page(filter, sort, page_size, cursor))
            yield from page.items
            cursor = _core.next_cursor(cursor, page)
            if cursor is None:
                return

    def event(self, name: str) -> int:
        """``dev.event.v1``: how many waiting jobs were released."""
        return self._call(_core.event(name))

    def logs(self, job_id: str, *, offset: int = 0, limit: int | None = None) -> LogChunk:
        """``logs.tail.v1``: one chunk of the job's log from ``offset`` (bytes)."""
        return self._call(_core.logs(job_id, offset, limit))

    def follow(self, job_id: str, *, offset: int = 0) -> Generator[str, None, None]:
        """``logs.follow.v1``: the job's log text as it is written, ending after the job ends."""
        session = FollowSession(job_id, offset)
        with self._ws_connect() as connection:
            connection.send(session.subscribe_frame())
            try:
                while not session.ended:
                    try:
                        frame = connection.recv()
                    except websockets.ConnectionClosed:
                        raise session.closed_early() from None
                    text = session.handle_frame(frame)
                    if text:
                        yield text
            finally:
                goodbye = session.unsubscribe_frame()
                if goodbye is not None:
                    try:
                        connection.send(goodbye)
                    except websockets.ConnectionClosed:
                        pass

    @contextlib.contextmanager
    def _ws_connect(self) -> Iterator[ws_sync.ClientConnection]:
        endpoint = self._core.endpoint
        options: dict[str, Any] = {
            "additional_headers": endpoint.headers(),
            "max_size": _core.WS_MESSAGE_BYTES_MAX,
            "open_timeout": self._core.timeout_s,
        }
        with contextlib.ExitStack() as stack:
            try:
                if endpoint.socket_path is not None:
                    opening = ws_sync.unix_connect(endpoint.socket_path, endpoint.ws_uri, **options)
                else:
                    opening = ws_sync.connect(endpoint.ws_uri, **options)
                # Entering gives the connection back; websockets < 16 (what Python 3.9 gets)
                # types that as the base `Connection`, so keep the `ClientConnection` itself.
                connection = opening
                stack.enter_context(connection)
            except websockets.InvalidStatus as error:
                raise self._core.ws_rejected(error.response.status_code, bytes(error.response.body or b"")) from None
            except (OSError, TimeoutError, websockets.WebSocketException) as error:
                raise self._core.connection_error(error) from error
            yield connection

    def stats(self) -> Stats:
        """``admin.stats.v1``."""
        return self._call(_core.stats())

    def maintenance(self, *, force_vacuum: bool = False) -> Maintenance:
        """``admin.maintenance.v1``: removes expired jobs and logs now."""
        return self._call(_core.maintenance(force_vacuum))

    def pause(self, queue: str) -> QueueState:
        """``admin.queue.pause.v1``."""
        return self._call(_core.pause(queue))

    def resume(self, queue: str) -> QueueState:
        """``admin.queue.resume.v1``."""
        return self._call(_core.resume(queue))

    def retry(
        self, job_id: str | None = None, *, filter: JobFilter | None = None, limit: int | None = None
    ) -> list[Enqueued]:
        """``dev.retry.v1``: one ended job by id, or every one ``filter`` matches (up to ``limit``)."""
        return self._call(_core.retry(job_id, filter, limit))

    def recurring_set(self, name: str, *, cron: str, job: JobSpec, timezone: str | None = None) -> RecurringSet:
        """``dev.recurring.set.v1``: creates or replaces the recurring job ``name``."""
        return self._call(_core.recurring_set(name, cron, job, timezone))

    def recurring_list(self) -> list[Recurring]:
        """``dev.recurring.list.v1``."""
        return self._call(_core.recurring_list())

    def recurring_delete(self, name: str) -> bool:
        """``dev.recurring.delete.v1``: whether there was one to delete."""
        return self._call(_core.recurring_delete(name))

    def reload(self) -> Reload:
        """``admin.reload.v1``: reads ``config.toml`` again."""
        return self._call(_core.reload())

    def ui_login(self) -> UiLogin:
        """``admin.ui_login.v1``: a one-time sign-in URL for the web dashboard."""
        return self._call(_core.ui_login())

    def discover(self) -> dict[str, Any]:
        """``rpc.discover``: the daemon's OpenRPC document."""
        return self._call(_core.discover())


class AsyncClient:
    """The asyncio twin of :class:`Client`: the same methods, awaited."""

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        home: str | os.PathLike[str] | None = None,
        timeout_s: float = TIMEOUT_S_DEFAULT,
        max_throttle_retries: int = THROTTLE_RETRIES_DEFAULT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._core = _make_core(url, token, home, timeout_s, max_throttle_retries)
        endpoint = self._core.endpoint
        if transport is None:
            transport = httpx.AsyncHTTPTransport(uds=endpoint.socket_path)
        self._http = httpx.AsyncClient(
            base_url=endpoint.http_base, transport=transport, headers=endpoint.headers(), timeout=timeout_s
        )

    @property
    def endpoint(self) -> Endpoint:
        return self._core.endpoint

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _call(self, call: Call[T]) -> T:
        for attempt in range(self._core.max_throttle_retries + 1):
            try:
                return await self._send(call)
            except ThrottledError as error:
                delay_s = self._core.throttle_delay_s(error, attempt)
                if delay_s is None:
                    raise
                await asyncio.sleep(delay_s)
        raise AssertionError("unreachable: the last try raises")

    async def _send(self, call: Call[T]) -> T:
        request_id, body = self._core.encode(call)
        try:
            response = await self._http.post(
                "/", content=body, headers={"content-type": "application/json"}, timeout=self._core.timeout(call)
            )
        except httpx.HTTPError as error:
            raise self._core.connection_error(error) from error
        return self._core.decode(call, request_id, response.status_code, response.content)

    async def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """Calls any method and returns its result as received (errors are still typed)."""
        return await self._call(_core.call(method, params))

    async def health(self) -> Health:
        """``GET /health``: answered without a token."""
        try:
            response = await self._http.get("/health")
        except httpx.HTTPError as error:
            raise self._core.connection_error(error) from error
        return self._core.decode_health(response.status_code, response.content)

    async def enqueue(
        self, job_type: str, *, subject_key: str, queue: str = "default", **options: Unpack[EnqueueOptions]
    ) -> Enqueued:
        """``dev.enqueue.v1``. Give ``exec={"command": ..., "args": [...]}`` for a subprocess job."""
        return await self._call(_core.enqueue(job_type, subject_key, queue, options))

    async def enqueue_batch(self, jobs: Sequence[JobSpec]) -> list[Enqueued]:
        """``dev.enqueue_batch.v1``: all or nothing; results in the order of ``jobs``."""
        return await self._call(_core.enqueue_batch(jobs))

    async def cancel(
        self, job_id: str | None = None, *, tag: str | None = None, chain_group_id: str | None = None
    ) -> int:
        """``dev.cancel.v1``: how many jobs were cancelled."""
        return await self._call(_core.cancel(job_id, tag, chain_group_id))

    async def get(self, job_id: str) -> Job:
        """``dev.get.v1``."""
        return await self._call(_core.get(job_id))

    async def wait(self, job_id: str, *, timeout_ms: int = _core.WAIT_MS_MAX) -> Job:
        """``dev.wait.v1``: the job once terminal; :class:`WaitTimeoutError` (with ``.job``) if not in time."""
        return await self._call(_core.wait(job_id, timeout_ms))

    async def jobs_page(
        self,
        *,
        cursor: str | None = None,
        sort: str | None = None,
        limit: int | None = None,
        **filter: Unpack[JobFilter],
    ) -> JobPage:
        """One page of ``dev.query_jobs.v1``."""
        return await self._call(_core.jobs_page(filter, sort, limit, cursor))

    async def jobs(
        self, *, sort: str | None = None, page_size: int | None = None, **filter: Unpack[JobFilter]
    ) -> AsyncGenerator[Job, None]:
        """Every job that matches ``filter``, following ``next_cursor`` through every page."""
        cursor: str | None = None
        while True:
            page = await self._call(_core.jobs_page(filter, sort, page_size, cursor))
            for job in page.items:
                yield job
            cursor = _core.next_cursor(cursor, page)
            if cursor is None:
                return

    async def event(self, name: str) -> int:
        """``dev.event.v1``: how many waiting jobs were released."""
        return await self._call(_core.event(name))

    async def logs(self, job_id: str, *, offset: int = 0, limit: int | None = None) -> LogChunk:
        """``logs.tail.v1``: one chunk of the job's log from ``offset`` (bytes)."""
        return await self._call(_core.logs(job_id, offset, limit))

    async def follow(self, job_id: str, *, offset: int = 0) -> AsyncGenerator[str, None]:
        """``logs.follow.v1``: the job's log text as it is written, ending after the job ends."""
        session = FollowSession(job_id, offset)
        async with self._ws_connect() as connection:
            await connection.send(session.subscribe_frame())
            try:
                while not session.ended:
                    try:
                        frame = await connection.recv()
                    except websockets.ConnectionClosed:
                        raise session.closed_early() from None
                    text = session.handle_frame(frame)
                    if text:
                        yield text
            finally:
                goodbye = session.unsubscribe_frame()
                if goodbye is not None:
                    try:
                        await connection.send(goodbye)
                    except websockets.ConnectionClosed:
                        pass

    @contextlib.asynccontextmanager
    async def _ws_connect(self) -> AsyncIterator[ws_async.ClientConnection]:
        endpoint = self._core.endpoint
        options: dict[str, Any] = {
            "additional_headers": endpoint.headers(),
            "max_size": _core.WS_MESSAGE_BYTES_MAX,
            "open_timeout": self._core.timeout_s,
        }
        async with contextlib.AsyncExitStack() as stack:
            try:
                if endpoint.socket_path is not None:
                    opening = ws_async.unix_connect(endpoint.socket_path, endpoint.ws_uri, **options)
                else:
                    opening = ws_async.connect(endpoint.ws_uri, **options)
                connection = await stack.enter_async_context(opening)
            except websockets.InvalidStatus as error:
                raise self._core.ws_rejected(error.response.status_code, bytes(error.response.body or b"")) from None
            except (OSError, TimeoutError, websockets.WebSocketException) as error:
                raise self._core.connection_error(error) from error
            yield connection

    async def stats(self) -> Stats:
        """``admin.stats.v1``."""
        return await self._call(_core.stats())

    async def maintenance(self, *, force_vacuum: bool = False) -> Maintenance:
        """``admin.maintenance.v1``: removes expired jobs and logs now."""
        return await self._call(_core.maintenance(force_vacuum))

    async def pause(self, queue: str) -> QueueState:
        """``admin.queue.pause.v1``."""
        return await self._call(_core.pause(queue))

    async def resume(self, queue: str) -> QueueState:
        """``admin.queue.resume.v1``."""
        return await self._call(_core.resume(queue))

    async def retry(
        self, job_id: str | None = None, *, filter: JobFilter | None = None, limit: int | None = None
    ) -> list[Enqueued]:
        """``dev.retry.v1``: one ended job by id, or every one ``filter`` matches (up to ``limit``)."""
        return await self._call(_core.retry(job_id, filter, limit))

    async def recurring_set(self, name: str, *, cron: str, job: JobSpec, timezone: str | None = None) -> RecurringSet:
        """``dev.recurring.set.v1``: creates or replaces the recurring job ``name``."""
        return await self._call(_core.recurring_set(name, cron, job, timezone))

    async def recurring_list(self) -> list[Recurring]:
        """``dev.recurring.list.v1``."""
        return await self._call(_core.recurring_list())

    async def recurring_delete(self, name: str) -> bool:
        """``dev.recurring.delete.v1``: whether there was one to delete."""
        return await self._call(_core.recurring_delete(name))

    async def reload(self) -> Reload:
        """``admin.reload.v1``: reads ``config.toml`` again."""
        return await self._call(_core.reload())

    async def ui_login(self) -> UiLogin:
        """``admin.ui_login.v1``: a one-time sign-in URL for the web dashboard."""
        return await self._call(_core.ui_login())

    async def discover(self) -> dict[str, Any]:
        """``rpc.discover``: the daemon's OpenRPC document."""
        return await self._call(_core.discover())


__all__ = ["AsyncClient", "Client"]
