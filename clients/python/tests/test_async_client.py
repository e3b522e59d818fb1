"""`AsyncClient` against a real daemon: the essentials, over the socket and over TCP."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

import semantica
from semantica import (
    AsyncClient,
    ConflictError,
    DaemonNotRunningError,
    MethodNotFoundError,
    NotFoundError,
    UnauthorizedError,
    ValidationError,
    WaitTimeoutError,
)

from .conftest import Daemon

WAIT_MS = 10_000


async def test_a_subprocess_job_runs_and_its_log_is_followed(daemon: Daemon, unique: str) -> None:
    for client in (AsyncClient(home=daemon.home), AsyncClient(daemon.url, token=daemon.token)):
        async with client:
            script = "echo one; sleep 0.2; echo two"
            enqueued = await client.enqueue(
                "exec", queue=unique, subject_key=unique, exec={"command": "sh", "args": ["-c", script]}
            )
            pieces = [piece async for piece in client.follow(enqueued.job_id)]
            assert "".join(pieces) == "one\ntwo\n"
            job = await client.wait(enqueued.job_id, timeout_ms=WAIT_MS)
            assert (job.state, job.exit_code) == ("DONE", 0)
            assert (await client.logs(enqueued.job_id)).chunk == "one\ntwo\n"
            assert await client.get(enqueued.job_id) == job


async def test_no_arguments_finds_the_daemon(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMANTICA_HOME", str(daemon.home))
    async with AsyncClient() as client:
        assert client.endpoint.socket_path == daemon.socket
        assert (await client.health()).status == "ok"


async def test_jobs_iterates_across_every_page(daemon: Daemon, unique: str) -> None:
    async with AsyncClient(home=daemon.home) as client:
        specs: list[semantica.JobSpec] = [
            {"job_type": "noop", "queue": unique, "subject_key": f"{unique}-{i}", "tag": unique} for i in range(5)
        ]
        ids = [r.job_id for r in await client.enqueue_batch(specs)]
        assert [job.id async for job in client.jobs(tag=unique, page_size=2)] == ids
        page = await client.jobs_page(tag=unique, limit=4)
        assert len(page.items) == 4 and page.next_cursor is not None


async def test_errors_are_typed(daemon: Daemon, unique: str, tmp_path: Path) -> None:
    async with AsyncClient(home=daemon.home) as client:
        with pytest.raises(ValidationError) as raised:
            await client.enqueue("exec", queue=unique, subject_key=unique, exec={"command": ""})
        assert raised.value.field == "exec.command"
        with pytest.raises(NotFoundError):
            await client.get(str(uuid.uuid4()))
        with pytest.raises(NotFoundError):
            [piece async for piece in client.follow(str(uuid.uuid4()))]
        job_id = (await client.enqueue("noop", queue=unique, subject_key=unique, schedule={"delay_ms": 60_000})).job_id
        with pytest.raises(WaitTimeoutError):
            await client.wait(job_id, timeout_ms=50)
        assert await client.cancel(job_id) == 1
        with pytest.raises(ConflictError):
            await client.cancel(job_id)
        with pytest.raises(MethodNotFoundError):
            await client.call("no.such.method.v1")
    async with AsyncClient(daemon.url, token="wrong") as client:
        with pytest.raises(UnauthorizedError):
            await client.stats()
        with pytest.raises(UnauthorizedError):
            [piece async for piece in client.follow(str(uuid.uuid4()))]
    with pytest.raises(DaemonNotRunningError, match="semantica serve"):
        AsyncClient(home=tmp_path)
    async with AsyncClient("http://127.0.0.1:1", token="x") as client:
        with pytest.raises(DaemonNotRunningError, match="semantica serve"):
            await client.stats()


async def test_queue_controls_retry_recurring_event_and_admin(daemon: Daemon, unique: str) -> None:
    async with AsyncClient(home=daemon.home) as client:
        assert (await client.pause(unique)).paused is True
        job_id = (await client.enqueue("fail", queue=unique, subject_key=unique)).job_id
        with pytest.raises(WaitTimeoutError):
            await client.wait(job_id, timeout_ms=100)
        assert (await client.resume(unique)).paused is False
        assert (await client.wait(job_id, timeout_ms=WAIT_MS)).state == "FAILED"
        (retried,) = await client.retry(job_id)
        assert (await client.wait(retried.job_id, timeout_ms=WAIT_MS)).retry_of == job_id

        job: semantica.JobSpec = {"job_type": "noop", "queue": unique, "subject_key": unique}
        assert (await client.recurring_set(unique, cron="*/5 * * * *", job=job)).next_at
        assert unique in [r.name for r in await client.recurring_list()]
        assert await client.recurring_delete(unique) is True

        waiting = await client.enqueue(
            "noop", queue=unique, subject_key=f"{unique}-ev", conditions={"wait_for_event": unique}
        )
        assert await client.event(unique) == 1
        assert (await client.wait(waiting.job_id, timeout_ms=WAIT_MS)).state == "DONE"

        stats = await client.stats()
        mine = stats.queue(unique)
        assert mine is not None and mine.failed == 2
        assert (await client.maintenance()).vacuumed is False
        assert (await client.reload()).reloaded is True


async def test_concurrent_calls_share_one_client(daemon: Daemon, unique: str) -> None:
    async with AsyncClient(home=daemon.home) as client:
        results = await asyncio.gather(
            *(client.enqueue("noop", queue=unique, subject_key=f"{unique}-{i}") for i in range(20))
        )
        assert len({r.job_id for r in results}) == 20
        jobs = await asyncio.gather(*(client.wait(r.job_id, timeout_ms=WAIT_MS) for r in results))
        assert {j.state for j in jobs} == {"DONE"}
