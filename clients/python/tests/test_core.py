"""The shared core without a daemon: throttle retries (against an httpx MockTransport,
the one fake of this suite), error mapping, forward-compatible types, discovery rules,
and the sync and async clients staying twins."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import semantica
from semantica import AsyncClient, Client, ThrottledError, _core
from semantica._errors import error_from_wire


def throttling(
    times: int, retry_after_ms: int = 250
) -> tuple[list[dict[str, Any]], Callable[[httpx.Request], httpx.Response]]:
    """A transport handler that answers 4003 `times` times, then a result."""
    seen: list[dict[str, Any]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        if len(seen) <= times:
            error = {
                "code": 4003,
                "message": "slow down",
                "data": {"kind": "throttled", "retry_after_ms": retry_after_ms},
            }
            return httpx.Response(429, json={"jsonrpc": "2.0", "id": None, "error": error})
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": {"released_count": 7}})

    return seen, handle


def test_a_throttled_call_sleeps_retry_after_ms_then_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("semantica._client.time.sleep", slept.append)
    seen, handle = throttling(times=2)
    with Client("http://127.0.0.1:9", token="t", transport=httpx.MockTransport(handle)) as client:
        assert client.event("e") == 7
    assert slept == [0.25, 0.25]
    assert len(seen) == 3 and len({body["id"] for body in seen}) == 3


def test_a_throttled_call_gives_up_after_max_throttle_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("semantica._client.time.sleep", slept.append)
    seen, handle = throttling(times=100, retry_after_ms=40)
    with Client("http://127.0.0.1:9", token="t", transport=httpx.MockTransport(handle)) as client:
        with pytest.raises(ThrottledError) as raised:
            client.event("e")
    assert raised.value.retry_after_ms == 40
    assert slept == [0.04, 0.04, 0.04] and len(seen) == 4
    seen.clear()
    with Client("http://127.0.0.1:9", token="t", transport=httpx.MockTransport(handle), max_throttle_retries=0) as c:
        with pytest.raises(ThrottledError):
            c.event("e")
    assert len(seen) == 1


async def test_the_async_client_retries_throttled_calls_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr("semantica._client.asyncio.sleep", sleep)
    seen, handle = throttling(times=100)
    async with AsyncClient(
        "http://127.0.0.1:9", token="t", transport=httpx.MockTransport(handle), max_throttle_retries=2
    ) as client:
        with pytest.raises(ThrottledError):
            await client.event("e")
    assert slept == [0.25, 0.25] and len(seen) == 3


def test_the_bearer_token_goes_over_tcp_only() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": json.loads(request.content)["id"], "result": {}})

    with Client("http://127.0.0.1:9", token="s3cret", transport=httpx.MockTransport(handle)) as client:
        client.call("x.v1")
    assert seen[0].headers["authorization"] == "Bearer s3cret"
    assert json.loads(seen[0].content) == {"jsonrpc": "2.0", "id": 1, "method": "x.v1", "params": {}}
    assert "authorization" not in _core.Endpoint(socket_path="/s", token="s3cret").headers()


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (4000, semantica.ValidationError),
        (4001, semantica.NotFoundError),
        (4002, semantica.ConflictError),
        (4003, semantica.ThrottledError),
        (4010, semantica.UnauthorizedError),
        (5000, semantica.InternalError),
        (5001, semantica.DatabaseError),
        (5002, semantica.SystemResourceError),
        (5999, semantica.ServerError),
        (-32700, semantica.ParseError),
        (-32600, semantica.InvalidRequestError),
        (-32601, semantica.MethodNotFoundError),
        (-32602, semantica.InvalidParamsError),
        (-32099, semantica.ProtocolError),
        (4999, semantica.SemanticaError),
    ],
)
def test_every_contract_code_maps_to_its_error_class(code: int, cls: type[semantica.SemanticaError]) -> None:
    data = {"kind": "k", "details": "d", "field": "exec.command", "trace_id": "t"}
    error = error_from_wire({"code": code, "message": "m", "data": data})
    assert type(error) is cls
    assert (error.code, error.kind, error.message, error.field, error.data) == (code, "k", "m", "exec.command", data)
    assert isinstance(error, semantica.SemanticaError)


def test_server_errors_share_a_base() -> None:
    for code in (5000, 5001, 5002):
        assert isinstance(error_from_wire({"code": code, "message": "m"}), semantica.ServerError)


def test_results_keep_fields_they_do_not_know() -> None:
    view = {
        "id": "j",
        "queue": "q",
        "job_type": "noop",
        "subject_key": "s",
        "generation": 1,
        "state": "DONE",
        "error": {"kind": "exit_code", "message": "exit 1", "hint": "new"},
        "artifacts": [{"name": "a.txt", "bytes": 3}],
        "node": "host-a",
        "shiny_new_field": [1],
    }
    job = semantica.Job.from_wire(view)
    assert job.extra == {"shiny_new_field": [1]}
    assert job.node == "host-a" and job.is_terminal
    assert job.error is not None and job.error.extra == {"hint": "new"}
    assert job.artifacts == [semantica.Artifact(name="a.txt", bytes=3)]
    stats = semantica.Stats.from_wire(
        {
            "queues": [{"name": "q", "paused": True, "lag": 1}],
            "system": {"version": "9"},
            "nodes": [{"id": "a", "lease_expires_at": 5, "running": 1}],
            "later": 2,
        }
    )
    assert stats.extra == {"later": 2} and stats.queues[0].extra == {"lag": 1}
    assert stats.nodes == [semantica.NodeStats(id="a", lease_expires_at=5, running=1)]
    assert semantica.Stats.from_wire({"queues": [], "system": {}}).nodes == []


def test_a_malformed_answer_is_a_transport_error() -> None:
    with pytest.raises(semantica.TransportError):
        semantica.Job.from_wire({"id": "only an id"})
    core = _core.Core(_core.Endpoint(url="http://x"), timeout_s=1, max_throttle_retries=0)
    with pytest.raises(semantica.TransportError):
        core.decode(_core.stats(), 1, 502, b"<html>bad gateway</html>")
    with pytest.raises(semantica.TransportError):
        core.decode(_core.stats(), 1, 200, b'{"jsonrpc": "2.0", "id": 2, "result": {}}')


def test_a_cursor_that_does_not_advance_is_refused() -> None:
    page = semantica.JobPage(items=[], next_cursor="c1")
    with pytest.raises(semantica.TransportError):
        _core.next_cursor("c1", page)
    assert _core.next_cursor(None, semantica.JobPage(items=[], next_cursor=None)) is None


def test_discovery_prefers_an_explicit_url_then_the_environment(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file\n")
    environ = {"SEMANTICA_HOME": str(tmp_path)}
    assert _core.find_daemon("http://h:1/", environ=environ) == _core.Endpoint(url="http://h:1", token="from-file")
    environ["SEMANTICA_TOKEN"] = "from-env"
    assert _core.find_daemon("http://h:1", environ=environ).token == "from-env"
    assert _core.find_daemon("http://h:1", token="given", environ=environ).token == "given"
    environ["SEMANTICA_URL"] = "http://h:2"
    assert _core.find_daemon(environ=environ).url == "http://h:2"
    assert _core.find_daemon("unix:///run/s.sock", environ=environ).socket_path == "/run/s.sock"
    with pytest.raises(ValueError):
        _core.find_daemon("ftp://h", environ=environ)
    (tmp_path / "daemon.json").write_text('{"socket": "/x/semantica.sock"}')
    assert _core.find_daemon(environ={"SEMANTICA_HOME": str(tmp_path)}).socket_path == "/x/semantica.sock"
    assert _core.Endpoint(url="http://h:1").ws_uri == "ws://h:1/"


def test_follow_session_reads_chunks_until_eof_and_surfaces_a_refusal() -> None:
    session = _core.FollowSession("j", 0)
    assert json.loads(session.subscribe_frame())["params"] == {"job_id": "j", "offset": 0}
    assert session.handle_frame('{"jsonrpc":"2.0","id":1,"result":42}') == ""
    assert json.loads(session.unsubscribe_frame() or "")["params"] == [42]
    note = '{"jsonrpc":"2.0","method":"logs.chunk","params":{"subscription":%d,"result":%s}}'
    assert session.handle_frame(note % (7, '{"chunk":"other","next_offset":5}')) == ""
    assert session.handle_frame(note % (42, '{"chunk":"hi\\n","next_offset":3}')) == "hi\n"
    assert not session.ended and session.next_offset == 3
    assert session.handle_frame(note % (42, '{"chunk":"","next_offset":3,"eof":true}')) == ""
    assert session.ended and session.unsubscribe_frame() is None
    refused = _core.FollowSession("j", 0)
    with pytest.raises(semantica.NotFoundError):
        refused.handle_frame('{"jsonrpc":"2.0","id":1,"error":{"code":4001,"message":"no job j"}}')


def public_methods(cls: type) -> dict[str, Any]:
    return {name: member for name, member in inspect.getmembers(cls) if not name.startswith("_") and callable(member)}


def test_every_contract_method_has_a_client_method_in_both_flavours() -> None:
    for rpc_name, python_name in _core.METHODS.items():
        assert callable(getattr(Client, python_name, None)), f"Client has no {python_name} for {rpc_name}"
        method = getattr(AsyncClient, python_name, None)
        assert inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method), (
            f"AsyncClient.{python_name} ({rpc_name}) is not async"
        )


def test_the_two_clients_are_twins() -> None:
    sync, asynchronous = public_methods(Client), public_methods(AsyncClient)
    assert set(sync) - {"close"} == set(asynchronous) - {"aclose"}
    for name in set(sync) & set(asynchronous):
        # The same parameters; only the return type differs (awaitable, async iterator).
        sync_parameters = inspect.signature(sync[name]).parameters
        assert sync_parameters == inspect.signature(asynchronous[name]).parameters, name
