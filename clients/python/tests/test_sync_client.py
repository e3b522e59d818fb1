"""`Client` against a real daemon: discovery, every method, and the typed errors."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import semantica
from semantica import (
    Client,
    ConflictError,
    DaemonNotRunningError,
    MethodNotFoundError,
    NotFoundError,
    ThrottledError,
    UnauthorizedError,
    ValidationError,
    WaitTimeoutError,
)

from .conftest import Daemon, start_daemon

WAIT_MS = 10_000
ECHO_HI: semantica.Exec = {"command": "echo", "args": ["hi"]}


@pytest.fixture
def client(daemon: Daemon) -> Iterator[Client]:
    with Client(home=daemon.home) as client:
        yield client


# --- finding the daemon -----------------------------------------------------------------


def test_no_arguments_finds_the_daemon_of_semantica_home_over_its_socket(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEMANTICA_HOME", str(daemon.home))
    with Client() as client:
        assert client.endpoint.socket_path == daemon.socket
        assert client.endpoint.url is None
        assert client.health().status == "ok"
        stats = client.stats()
        assert stats.system.version == client.health().version
        # SQLite: this daemon alone, without a lease.
        assert [(node.lease_expires_at, node.running) for node in stats.nodes] == [(None, 0)]


def test_a_url_uses_tcp_with_the_token_given(daemon: Daemon) -> None:
    with Client(daemon.url, token=daemon.token) as client:
        assert client.endpoint.socket_path is None
        assert isinstance(client.stats(), semantica.Stats)


def test_a_url_from_the_environment_takes_the_token_from_env_or_the_home(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEMANTICA_URL", daemon.url)
    monkeypatch.setenv("SEMANTICA_HOME", str(daemon.home))
    with Client() as client:  # token from $SEMANTICA_HOME/token
        assert client.endpoint.url == daemon.url
        client.stats()
    monkeypatch.setenv("SEMANTICA_HOME", str(daemon.home.parent / "elsewhere"))
    monkeypatch.setenv("SEMANTICA_TOKEN", daemon.token)
    with Client() as client:
        client.stats()


def test_a_wrong_token_is_unauthorized_for_calls_and_log_streams(daemon: Daemon) -> None:
    with Client(daemon.url, token="not-the-token") as client:
        with pytest.raises(UnauthorizedError) as raised:
            client.stats()
        assert raised.value.code == 4010
        assert raised.value.kind == "unauthorized"
        with pytest.raises(UnauthorizedError):
            list(client.follow(str(uuid.uuid4())))
        # /health needs no token.
        assert client.health().status == "ok"


def test_no_daemon_json_says_to_start_the_daemon(tmp_path: Path) -> None:
    with pytest.raises(DaemonNotRunningError) as raised:
        Client(home=tmp_path)
    assert "semantica serve" in str(raised.value)


def test_a_refused_connection_says_to_start_the_daemon(tmp_path: Path) -> None:
    with Client("http://127.0.0.1:1", token="x") as client:
        with pytest.raises(DaemonNotRunningError) as raised:
            client.stats()
        assert "semantica serve" in str(raised.value)
    # daemon.json left behind by a daemon that died: the socket is gone.
    (tmp_path / "daemon.json").write_text(
        '{"pid": 1, "rpc_addr": "127.0.0.1:1", "socket": "%s", "version": "0"}' % (tmp_path / "gone.sock")
    )
    with Client(home=tmp_path) as client:
        with pytest.raises(DaemonNotRunningError, match="semantica serve"):
            client.get(str(uuid.uuid4()))
        with pytest.raises(DaemonNotRunningError, match="semantica serve"):
            list(client.follow(str(uuid.uuid4())))


def test_a_stopped_daemon_is_not_running(fresh_daemon: Daemon) -> None:
    client = Client(home=fresh_daemon.home)
    client.stats()
    fresh_daemon.stop()
    with pytest.raises(DaemonNotRunningError, match="semantica serve"):
        client.stats()
    with pytest.raises(DaemonNotRunningError, match="semantica serve"):
        Client(home=fresh_daemon.home)


# --- jobs -------------------------------------------------------------------------------


def test_a_subprocess_job_runs_and_its_log_can_be_read_and_followed(client: Client, unique: str) -> None:
    enqueued = client.enqueue("exec", queue=unique, subject_key=unique, exec=ECHO_HI, tag=unique)
    assert (enqueued.queue, enqueued.state, enqueued.generation, enqueued.deduplicated) == (unique, "QUEUED", 1, False)
    job = client.wait(enqueued.job_id, timeout_ms=WAIT_MS)
    assert (job.state, job.exit_code, job.execution_mode, job.tag) == ("DONE", 0, "SUBPROCESS", unique)
    assert job.is_terminal and job.retry_of is None and job.error is None
    assert client.get(enqueued.job_id) == job
    chunk = client.logs(enqueued.job_id)
    assert (chunk.chunk, chunk.next_offset, chunk.eof) == ("hi\n", 3, True)
    assert client.logs(enqueued.job_id, offset=1, limit=1).chunk == "i"
    assert "".join(client.follow(enqueued.job_id)) == "hi\n"
    assert "".join(client.follow(enqueued.job_id, offset=3)) == ""


def test_follow_streams_a_running_job_until_it_ends(daemon: Daemon, unique: str) -> None:
    script = "echo one; sleep 0.3; echo two"
    for client in (Client(home=daemon.home), Client(daemon.url, token=daemon.token)):
        with client:
            job_id = client.enqueue(
                "exec", queue=unique, subject_key=unique, exec={"command": "sh", "args": ["-c", script]}
            ).job_id
            pieces = list(client.follow(job_id))
            assert "".join(pieces) == "one\ntwo\n"
            assert client.get(job_id).state == "DONE"


def test_leaving_a_follow_early_closes_the_stream(client: Client, unique: str) -> None:
    job_id = client.enqueue(
        "exec", queue=unique, subject_key=unique, exec={"command": "sh", "args": ["-c", "echo a; sleep 30"]}
    ).job_id
    stream = client.follow(job_id)
    assert next(stream) == "a\n"
    stream.close()
    assert client.cancel(job_id) == 1
    assert client.wait(job_id, timeout_ms=WAIT_MS).state == "CANCELLED"


def test_an_in_process_job_keeps_its_payload_and_result(client: Client, unique: str) -> None:
    job_id = client.enqueue("echo", queue=unique, subject_key=unique, payload={"n": [1, 2]}, priority=5).job_id
    job = client.wait(job_id, timeout_ms=WAIT_MS)
    assert (job.state, job.payload, job.result_summary, job.priority) == ("DONE", {"n": [1, 2]}, {"n": [1, 2]}, 5)
    assert job.execution_mode == "IN_PROCESS"


def test_enqueueing_the_same_generation_again_is_deduplicated(client: Client, unique: str) -> None:
    first = client.enqueue("noop", queue=unique, subject_key=unique, generation=3, schedule={"delay_ms": 60_000})
    again = client.enqueue("noop", queue=unique, subject_key=unique, generation=3, schedule={"delay_ms": 60_000})
    assert first.state == "SCHEDULED"
    assert (again.job_id, again.deduplicated) == (first.job_id, True)
    newer = client.enqueue("noop", queue=unique, subject_key=unique, schedule={"delay_ms": 60_000})
    assert newer.generation == 4
    assert client.get(first.job_id).state == "SUPERSEDED"
    assert client.cancel(tag=None, chain_group_id=None, job_id=newer.job_id) == 1


def test_a_batch_is_all_or_nothing_and_names_the_failing_job(client: Client, unique: str) -> None:
    jobs: list[semantica.JobSpec] = [
        {"job_type": "noop", "queue": unique, "subject_key": f"{unique}-{i}", "tag": unique} for i in range(3)
    ]
    results = client.enqueue_batch(jobs)
    assert [r.generation for r in results] == [1, 1, 1]
    broken = jobs + [{"job_type": "exec", "queue": unique, "subject_key": "x", "exec": {"command": ""}}]
    with pytest.raises(ValidationError) as raised:
        client.enqueue_batch(broken)
    assert (raised.value.index, raised.value.field) == (3, "exec.command")
    assert len(list(client.jobs(tag=unique))) == 3


def test_jobs_iterates_across_every_page(client: Client, unique: str) -> None:
    specs: list[semantica.JobSpec] = [
        {"job_type": "noop", "queue": unique, "subject_key": f"{unique}-{i}", "tag": unique} for i in range(7)
    ]
    ids = [r.job_id for r in client.enqueue_batch(specs)]
    assert [job.id for job in client.jobs(tag=unique, page_size=2)] == ids
    assert [job.id for job in client.jobs(tag=unique, page_size=2, sort="DESC")] == ids[::-1]
    first = client.jobs_page(tag=unique, limit=3)
    assert len(first.items) == 3 and first.next_cursor is not None
    rest = client.jobs_page(tag=unique, limit=200, cursor=first.next_cursor)
    assert [j.id for j in first.items + rest.items] == ids and rest.next_cursor is None
    assert list(client.jobs(tag=unique, state=["RUNNING"], queue=unique)) == []
    assert list(client.jobs(subject_key_prefix=f"{unique}-6", page_size=1))[0].id == ids[6]


def test_cancel_by_id_and_by_tag_then_conflict(client: Client, unique: str) -> None:
    later: semantica.Schedule = {"delay_ms": 60_000}
    one = client.enqueue("noop", queue=unique, subject_key=f"{unique}-a", schedule=later).job_id
    for i in range(3):
        client.enqueue("noop", queue=unique, subject_key=f"{unique}-b{i}", schedule=later, tag=unique)
    assert client.cancel(one) == 1
    assert client.get(one).state == "CANCELLED"
    with pytest.raises(ConflictError) as raised:
        client.cancel(one)
    assert (raised.value.code, raised.value.state) == (4002, "CANCELLED")
    assert client.cancel(tag=unique) == 3
    assert {j.state for j in client.jobs(tag=unique)} == {"CANCELLED"}


def test_validation_errors_carry_the_field_path(client: Client, unique: str) -> None:
    cases: list[tuple[semantica.EnqueueOptions, str]] = [
        ({"exec": {"command": ""}}, "exec.command"),
        ({"exec": ECHO_HI, "backoff": {"factor": "2"}}, "backoff.factor"),  # type: ignore[typeddict-item]
        ({"exec": ECHO_HI, "max_attempts": 0}, "max_attempts"),
    ]
    for options, field in cases:
        with pytest.raises(ValidationError) as raised:
            client.enqueue("exec", queue=unique, subject_key=unique, **options)
        assert (raised.value.code, raised.value.field) == (4000, field), raised.value
        assert raised.value.kind
    with pytest.raises(ValidationError) as raised:
        client.enqueue("no_such_type", queue=unique, subject_key=unique)
    assert raised.value.kind == "unknown_job_type"
    with pytest.raises(ValidationError):
        client.cancel()


def test_unknown_jobs_are_not_found(client: Client) -> None:
    missing = str(uuid.uuid4())
    for call in (client.get, lambda job_id: client.wait(job_id, timeout_ms=10), client.logs, client.cancel):
        with pytest.raises(NotFoundError) as raised:
            call(missing)
        assert (raised.value.code, raised.value.kind) == (4001, "not_found")
    with pytest.raises(NotFoundError):
        list(client.follow(missing))


def test_wait_that_times_out_gives_the_job_as_it_is(client: Client, unique: str) -> None:
    job_id = client.enqueue("noop", queue=unique, subject_key=unique, schedule={"delay_ms": 60_000}).job_id
    with pytest.raises(WaitTimeoutError) as raised:
        client.wait(job_id, timeout_ms=50)
    assert isinstance(raised.value, TimeoutError)
    assert (raised.value.job.id, raised.value.job.state) == (job_id, "SCHEDULED")
    client.cancel(job_id)


def test_a_paused_queue_starts_nothing_until_resumed(client: Client, unique: str) -> None:
    assert client.pause(unique) == semantica.QueueState(queue=unique, paused=True)
    queue_stats = client.stats().queue(unique)
    assert queue_stats is not None and queue_stats.paused
    job_id = client.enqueue("noop", queue=unique, subject_key=unique).job_id
    with pytest.raises(WaitTimeoutError) as raised:
        client.wait(job_id, timeout_ms=200)
    assert raised.value.job.state == "QUEUED"
    assert client.resume(unique).paused is False
    assert client.wait(job_id, timeout_ms=WAIT_MS).state == "DONE"


def test_retry_enqueues_an_ended_job_again(client: Client, unique: str) -> None:
    failed = client.enqueue("exec", queue=unique, subject_key=unique, exec={"command": "false"}, tag=unique).job_id
    job = client.wait(failed, timeout_ms=WAIT_MS)
    assert job.state == "FAILED" and job.error is not None and job.error.kind == "exit_code"
    (retried,) = client.retry(failed)
    assert retried.generation == 2
    again = client.wait(retried.job_id, timeout_ms=WAIT_MS)
    assert (again.retry_of, again.state) == (failed, "FAILED")
    done = client.enqueue("noop", queue=unique, subject_key=f"{unique}-done").job_id
    client.wait(done, timeout_ms=WAIT_MS)
    with pytest.raises(ConflictError):
        client.retry(done)
    by_filter = client.retry(filter={"tag": unique, "state": ["FAILED"]}, limit=10)
    assert len(by_filter) == 2


def test_recurring_jobs_can_be_set_listed_and_deleted(client: Client, unique: str) -> None:
    job: semantica.JobSpec = {"job_type": "exec", "queue": unique, "subject_key": unique, "exec": ECHO_HI}
    created = client.recurring_set(unique, cron="0 3 * * *", timezone="Europe/Berlin", job=job)
    assert created.name == unique and created.next_at is not None and created.next_at > time.time() * 1000
    (listed,) = [r for r in client.recurring_list() if r.name == unique]
    assert (listed.cron, listed.timezone, listed.next_at) == ("0 3 * * *", "Europe/Berlin", created.next_at)
    assert listed.job["exec"]["command"] == "echo" and listed.last_enqueued_job_id is None
    with pytest.raises(ValidationError):
        client.recurring_set(unique, cron="not a cron", job=job)
    with pytest.raises(ValidationError):
        client.recurring_set(unique, cron="0 3 * * *", timezone="Mars/Olympus", job=job)
    assert client.recurring_delete(unique) is True
    assert client.recurring_delete(unique) is False
    assert unique not in [r.name for r in client.recurring_list()]


def test_an_event_releases_the_jobs_waiting_for_it(client: Client, unique: str) -> None:
    job_id = client.enqueue("noop", queue=unique, subject_key=unique, conditions={"wait_for_event": unique}).job_id
    with pytest.raises(WaitTimeoutError):
        client.wait(job_id, timeout_ms=100)
    assert client.event(unique) == 1
    assert client.wait(job_id, timeout_ms=WAIT_MS).state == "DONE"
    assert client.event(unique) == 0


def test_stats_and_maintenance(client: Client, unique: str) -> None:
    client.wait(client.enqueue("noop", queue=unique, subject_key=unique).job_id, timeout_ms=WAIT_MS)
    stats = client.stats()
    mine = stats.queue(unique)
    assert mine is not None and (mine.done, mine.queued, mine.paused) == (1, 0, False)
    assert stats.system.uptime_ms is not None and stats.system.db_size
    result = client.maintenance(force_vacuum=True)
    assert result.vacuumed is True and result.deleted_jobs == 0 and result.db_size_after > 0
    assert client.maintenance().vacuumed is False


def test_reload_reads_the_config_again(client: Client) -> None:
    assert client.reload().reloaded is True


def test_an_unknown_method_is_method_not_found(client: Client) -> None:
    with pytest.raises(MethodNotFoundError) as raised:
        client.call("no.such.method.v1")
    assert raised.value.code == -32601
    assert client.call("dev.event.v1", {"name": "nobody-waits"}) == {"released_count": 0}


def test_discover_answers_the_daemons_openrpc_document(client: Client) -> None:
    document = client.discover()
    assert document["openrpc"].startswith("1.3")
    assert document["info"]["version"] == client.health().version
    names = {method["name"] for method in document["methods"]}
    assert "dev.enqueue.v1" in names
    missing = names - set(semantica.METHODS)
    assert not missing, f"methods the daemon serves without a client method: {missing}"


def test_the_client_retries_a_throttled_call_on_a_real_daemon(tmp_path: Path) -> None:
    # 20 calls a second per connection, bursts of 40; beyond that 4003 with retry_after_ms.
    daemon = start_daemon(tmp_path / "home", config_toml="rate_limit_per_second = 20\n")
    try:
        with Client(home=daemon.home, max_throttle_retries=5) as client:
            for _ in range(60):
                client.stats()
        with Client(home=daemon.home, max_throttle_retries=0) as client:
            with pytest.raises(ThrottledError) as raised:
                for _ in range(1_000):
                    client.stats()
        assert raised.value.code == 4003
        assert raised.value.retry_after_ms is not None and raised.value.retry_after_ms > 0
    finally:
        daemon.stop()
