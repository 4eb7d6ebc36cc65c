"""Functions and DAGs through the gateway; every assertion here follows the scheduler's
requests and errors in src/protocol/requests.rs."""

import asyncio
import os
import concurrent.futures
import time

import pytest

import cloudburst
from cloudburst import CloudburstReference

def incr(cb, x):
    return x + 1


def square(cb, x):
    return x * x


@pytest.fixture(scope="module")
def fns(url):
    conn = cloudburst.CloudburstConnection(url)
    conn.register(incr, "incr")
    conn.register(square, "square")
    conn.register_dag("incr_square", ["incr", "square"], [("incr", "square")])
    conn.register_dag("just_square", ["square"], [])
    yield conn
    conn.close()


def test_function_handle_returns_a_future(fns):
    sq = fns.get_function("square")
    assert sq is not None
    fut = sq(3)
    assert isinstance(fut, cloudburst.CloudburstFuture)
    assert fut.get(timeout=10) == 9
    assert fut.get() == 9  # cached


def test_register_returns_a_callable(cloud):
    double = cloud.register(lambda cb, x: 2 * x, "double")
    assert double(21).get(timeout=10) == 42


def test_exec_func_and_direct_response(fns):
    assert fns.exec_func("incr", [1]).get(timeout=10) == 2
    assert fns.exec_func("incr", [1], direct_response=True) == 2


def test_dag_with_future_and_direct_response(fns):
    assert fns.call_dag("incr_square", {"incr": [1]}).get(timeout=10) == 4
    assert fns.call_dag("incr_square", {"incr": [2]}, direct_response=True) == 9
    assert fns.call_dag("just_square", {"square": [5]}, direct_response=True) == 25


def test_consistency_modes(fns):
    assert fns.call_dag("incr_square", {"incr": [0]}, consistency=cloudburst.NORMAL).get(10) == 1
    for mode in (cloudburst.REPEATABLE_READ, cloudburst.CAUSAL):
        assert fns.call_dag("incr_square", {"incr": [2]}, consistency=mode).get(10) == 9
        assert fns.call_dag("incr_square", {"incr": [3]}, consistency=mode, direct_response=True) == 16
    with pytest.raises(ValueError):
        fns.call_dag("incr_square", {"incr": [0]}, consistency="strong")


def test_output_key_stores_the_result(url, fns):
    fns.call_dag("incr_square", {"incr": [3]}, output_key="dag-out").get(timeout=10)
    assert fns.get_object("dag-out") == 16
    assert fns.exec_func("incr", [4], output_key="fn-out").get(timeout=10) == 5
    assert fns.get_object("fn-out") == 5

    async def from_asyncio():
        async with await cloudburst.AsyncCloudburstConnection.connect(url) as cloud:
            await cloud.exec_func("incr", [6], direct_response=True, output_key="fn-out-aio")
            return await cloud.get_object("fn-out-aio")

    assert asyncio.run(from_asyncio()) == 7


def test_references_are_resolved_server_side(fns):
    fns.put_object("seven", 7)
    assert fns.get_function("square")(CloudburstReference("seven")).get(10) == 49


def test_list_and_delete(fns):
    assert {"incr", "square"} <= set(fns.list())
    assert fns.list("inc") == ["incr"]
    assert fns.get_function("nope") is None
    fns.register_dag("to_delete", ["incr"], [])
    assert "to_delete" in fns.list_dags()
    assert fns.delete_dag("to_delete")
    with pytest.raises(cloudburst.NotFoundError) as e:
        fns.delete_dag("to_delete")
    assert e.value.code == "unknown_dag"


def test_unknown_function_and_dag(fns):
    with pytest.raises(cloudburst.NotFoundError) as e:
        fns.exec_func("no_such_function", [1]).get(timeout=10)
    assert e.value.code == "unknown_function"
    with pytest.raises(cloudburst.NotFoundError) as e:
        fns.call_dag("no_such_dag", {"x": [1]}, direct_response=True)
    assert e.value.code == "unknown_dag"


def test_bad_dags_are_refused(fns):
    for functions, connections, error, code in [
        (["incr", "missing"], [("incr", "missing")], cloudburst.NotFoundError,
         "unknown_function"),
        (["incr", "square"], [("incr", "square"), ("square", "incr")],
         cloudburst.InvalidRequestError, "bad_dag"),
        (["incr", "square"], [], cloudburst.InvalidRequestError, "bad_dag"),
    ]:
        with pytest.raises(error) as e:
            fns.register_dag("bad", functions, connections)
        assert e.value.code == code, e.value


def test_exception_carries_type_and_traceback(cloud):
    def boom(cb, x):
        raise ValueError(f"bad input {x}")

    f = cloud.register(boom, "boom")
    future = f(5)
    with pytest.raises(cloudburst.FunctionError) as e:
        future.get(timeout=10)
    # Asking the same failed future again raises the same error (it does not hang).
    with pytest.raises(cloudburst.FunctionError) as again:
        future.get(timeout=10)
    assert again.value is e.value
    assert e.value.code == "function_error"
    assert e.value.exception_type == "ValueError"
    assert "bad input 5" in str(e.value)
    assert "Traceback" in e.value.traceback and "boom" in e.value.traceback
    with pytest.raises(cloudburst.FunctionError) as e:
        cloud.exec_func("boom", [1], direct_response=True)
    assert e.value.code == "function_error"


def library_errors(cb):
    """What `cb.send` to a bad address raises inside a function."""
    try:
        cb.send("not-an-executor-id", b"x")
    except cloudburst.CloudburstError as e:
        return (type(e).__module__, type(e).__name__, e.code,
                isinstance(e, cloudburst.InvalidRequestError), e.retryable)
    return None


def test_library_errors_inside_functions_are_the_client_classes(cloud):
    cloud.register(library_errors, "library_errors")
    got = cloud.exec_func("library_errors", [], direct_response=True)
    assert got == ("cloudburst.errors", "InvalidRequestError", "invalid_request", True, False)
    # Uncaught, it fails the call as the function's error, naming the class.
    cloud.register(lambda cb: cb.send("nowhere", b"x"), "library_error_uncaught")
    with pytest.raises(cloudburst.FunctionError) as e:
        cloud.exec_func("library_error_uncaught", [], direct_response=True)
    assert e.value.code == "function_error"
    assert e.value.exception_type == "InvalidRequestError"


def test_function_timeout_and_future_timeout(cloud):
    def slow(cb, s):
        time.sleep(s)
        return s

    f = cloud.register(slow, "slow", timeout=0.5)
    with pytest.raises(cloudburst.CloudburstTimeout) as e:
        f(5).get(timeout=15)
    assert e.value.code == "timeout"
    fut = f(0.3)
    with pytest.raises(cloudburst.CloudburstTimeout) as e:
        fut.get(timeout=0.01)
    assert e.value.code == "timeout"
    assert fut.get(timeout=10) == 0.3  # still arrives afterwards


def test_class_function_initialises_once(cloud):
    class Model:
        def __init__(self, cb, scale):
            self.scale = scale
            self.loaded = time.time()

        def run(self, cb, x):
            return (x * self.scale, self.loaded)

    predict = cloud.register((Model, [10]), "model")
    results = [predict(i).get(timeout=10) for i in range(5)]
    assert [r[0] for r in results] == [0, 10, 20, 30, 40]
    # __init__ ran once per worker process, not per call.
    assert len({r[1] for r in results}) <= (os.cpu_count() or 1)


def test_large_argument_and_result(cloud):
    echo = cloud.register(lambda cb, b: b, "echo_bytes")
    big = b"\x07" * (32 * 1000 * 1000)
    assert echo(big).get(timeout=60) == big


def test_eight_threads_calling(fns):
    def work(t):
        return [fns.call_dag("incr_square", {"incr": [t + i]}, direct_response=True)
                for i in range(20)]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))
    for t, values in enumerate(results):
        assert values == [(t + i + 1) ** 2 for i in range(20)]


def test_asyncio_calls(url, fns):
    async def main():
        async with await cloudburst.AsyncCloudburstConnection.connect(url) as cloud:
            sq = await cloud.get_function("square")
            futures = await asyncio.gather(*(sq(i) for i in range(10)))
            values = await asyncio.gather(*(f.get(timeout=10) for f in futures))
            assert values == [i * i for i in range(10)]
            direct = await cloud.call_dag("incr_square", {"incr": [4]}, direct_response=True)
            assert direct == 25
            with pytest.raises(cloudburst.NotFoundError) as e:
                await cloud.exec_func("no_such_function", [1], direct_response=True)
            assert e.value.code == "unknown_function"
            nap = await cloud.register(lambda cb, s: time.sleep(s) or s, "aio_nap")
            fut = await nap(0.3)
            with pytest.raises(cloudburst.CloudburstTimeout) as e:
                await fut.get(timeout=0.01)
            assert e.value.code == "timeout"
            assert await fut.get(timeout=10) == 0.3  # still arrives afterwards

    asyncio.run(main())
