"""The two clients share one method layer (`cloudburst._api.Methods`): checked without a
server."""

import asyncio
import inspect

import pytest

import cloudburst
from cloudburst import _api


def operations(cls):
    return {n: op for n, op in vars(cls).items() if isinstance(op, _api.operation)}


class Recorder(_api.Blocking):
    """A blocking client that answers every request with `answer` and keeps it."""

    def __init__(self, answer):
        self.answer, self.sent = answer, []

    def _run(self, request):
        self.sent.append((request.op, request.fields, request.timeout))
        return request.finish(self.answer)


class AsyncRecorder(_api.Awaiting):
    """The same, as an asyncio client."""

    def __init__(self, answer):
        self.answer, self.sent = answer, []

    async def _run(self, request):
        self.sent.append((request.op, request.fields, request.timeout))
        return request.finish(self.answer)


class Methods(_api.Methods):
    def _function(self, name):
        return ("handle", name)

    def _future(self, call, key):
        return ("future", call, key)


class SyncMethods(Methods, Recorder):
    def __init__(self, answer):
        Methods.__init__(self, "ws://x", None)
        Recorder.__init__(self, answer)


class AsyncMethods(Methods, AsyncRecorder):
    def __init__(self, answer):
        Methods.__init__(self, "ws://x", None)
        AsyncRecorder.__init__(self, answer)


def test_both_clients_have_every_operation_of_the_one_layer():
    ops = operations(_api.Methods)
    assert {"register", "register_dag", "call_dag", "exec_func", "get_function", "list",
            "list_dags", "delete_dag", "put_object", "get_object", "ping"} <= set(ops)
    for name, op in ops.items():
        assert getattr(cloudburst.CloudburstConnection, name) is op.blocking, name
        assert getattr(cloudburst.AsyncCloudburstConnection, name) is op.awaiting, name
    get = operations(_api.Outcome)["get"]
    assert cloudburst.CloudburstFuture.get is get.blocking
    assert cloudburst.AsyncCloudburstFuture.get is get.awaiting


def test_a_client_is_blocking_or_awaiting_not_both():
    with pytest.raises(TypeError):
        type("Both", (_api.Blocking, _api.Awaiting), {})


def test_a_blocking_client_returns_results_and_an_awaiting_one_coroutines():
    sync = SyncMethods({"call": 7, "key": "k"})
    assert sync.exec_func("f", [1], output_key="out") == ("future", 7, "k")
    op, fields, _ = sync.sent[-1]
    assert op == "call_function" and fields["output_key"] == "out"
    assert list(inspect.signature(sync.exec_func).parameters)[:2] == ["name", "args"]
    assert sync.exec_func.__doc__ == _api.Methods.exec_func.__doc__
    aio = AsyncMethods(["f", "g"])
    pending = aio.get_function("g")
    assert inspect.iscoroutine(pending)
    assert asyncio.run(pending) == ("handle", "g")
    assert aio.sent == [("list", {"what": "functions", "prefix": "g"}, None)]


def test_asyncio_operations_check_their_arguments_when_awaited():
    aio = AsyncMethods(None)
    pending = aio.call_dag("d", {"f": [1]}, consistency="strong")
    with pytest.raises(ValueError):
        asyncio.run(pending)


def test_a_future_asks_once_and_remembers_a_failure_but_not_a_timeout():
    failures = [cloudburst.CloudburstTimeout("timeout", "slow"),
                cloudburst.FunctionError("function_error", "boom", "ValueError", "tb")]

    class Conn(_api.Blocking):
        def __init__(self):
            self.asked = 0

        def _run(self, request):
            if request.op is None:
                return request.finish(None)
            self.asked += 1
            return request.fail(failures.pop(0))

    class Future(_api.Outcome, _api.Blocking):
        def _run(self, request):
            return self._conn._run(request)

    conn = Conn()
    future = Future(conn, 5, "k")
    with pytest.raises(cloudburst.CloudburstTimeout) as e:
        future.get(timeout=0.5)
    assert e.value.code == "timeout"
    for _ in range(2):
        with pytest.raises(cloudburst.FunctionError) as e:
            future.get()
        assert e.value.code == "function_error"
    assert conn.asked == 2, "the failure is remembered, not asked for again"
