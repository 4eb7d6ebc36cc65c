"""Calls that heal: executor nodes SIGKILLed under running calls (real `cloudburst node`
processes), worker crashes re-run, deadlines, cancel, and failures answered the same on
every `get`.

The kill checker is `python/benchmarks/bench_faults.py` (also `cloudburst bench faults`).
Its classifier is shown first to see each failure it counts (a call with no answer, a
wrong value, a lost result, a duplicate); run against a binary that does not re-run calls
(`--binary`), it counts hung calls after the first SIGKILL."""

import importlib.util
import os
import time

import pytest
from conftest import ROOT, binary
from waiting import NotYet, wait_until

import cloudburst

_spec = importlib.util.spec_from_file_location(
    "bench_faults", ROOT / "python" / "benchmarks" / "bench_faults.py")
bench_faults = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_faults)

#: The membership's default dead-after time: a re-run result must come within twice it.
DEAD_AFTER_S = bench_faults.DEAD_AFTER


def test_the_checker_counts_hung_lost_failed_and_duplicate_calls():
    c = bench_faults.classify
    assert c(3, ("value", (9, 0))) == "ok"
    assert c(3, ("value", (9, 2))) == "ok"
    assert c(3, ("value", (10, 0))) == "lost"
    assert c(3, ("none",)) == "hung"
    assert c(3, ("error", "timeout", "the call did not finish by its deadline")) == "lost"
    assert c(3, ("error", "internal_error", "bug")) == "lost"
    assert c(3, ("error", "executor_lost", "used up")) == "failed"
    run = bench_faults.Run(4)
    run.kills = [10.0, 20.0]
    run.done = [
        (11.5, 1, "direct", ("value", (1, 1)), False),  # the first re-run after kill 1
        (12.0, 2, "future", ("value", (4, 1)), True),
        (25.0, 3, "direct", ("none",), False),
        (26.0, 4, "future", ("error", "executor_lost", "x"), False),
    ]
    f = bench_faults.figures(run, 30.0)
    assert (f["calls"], f["calls_ok"], f["calls_hung"], f["calls_failed"]) == (4, 2, 1, 1)
    assert (f["duplicate_results"], f["kills_with_rerun"]) == (1, 1)
    assert f["kill_to_first_rerun_s"] == 1.5


def test_no_call_hangs_or_is_lost_when_executors_are_killed(tmp_path):
    # Four executors: the second kill need not wait for the first victim's restart (two
    # must stay up), which a slow start could push past the last call.
    f = bench_faults.run_faults(binary(), calls=240, threads=4, kills=2, executors=4,
                                logs=tmp_path)
    assert f["calls"] == 240 and f["kills"] == 2, f
    # The kills hit running calls (else nothing was checked) ...
    assert f["kills_with_rerun"] >= 1, f
    # ... and every call ended once, with its result or a documented code, in time.
    assert (f["calls_hung"], f["calls_lost"], f["duplicate_results"]) == (0, 0, 0), f
    assert f["calls_ok"] + f["calls_failed"] == 240, f
    assert f["kill_to_first_rerun_max_s"] <= 2 * DEAD_AFTER_S, f


def crash_first(cb, x):
    if cb.attempt == 0:
        os._exit(3)  # the worker process dies under the call
    return (x, cb.call_id, cb.attempt)


def test_a_worker_crash_reruns_the_call_and_the_function_sees_its_attempt(cloud):
    f = cloud.register(crash_first, "crash_first")
    future = f(7)
    value, call_id, attempt = future.get(timeout=60)
    assert (value, call_id, attempt) == (7, future.call_id, 1)
    refused = cloud.register(crash_first, "crash_first_once", retries=0)
    with pytest.raises(cloudburst.FunctionError) as e:
        refused(7).get(timeout=60)
    assert e.value.code == "worker_crashed"


def boom(cb, x):
    raise ValueError(f"no {x}")


def test_a_failed_future_answers_the_same_on_every_get(cloud):
    future = cloud.register(boom, "faults_boom")(1)
    with pytest.raises(cloudburst.FunctionError) as first:
        future.get(timeout=30)
    # A new handle of the same call asks the gateway again: same failure, at once.
    again = cloud._future(future.call_id, future.obj_id)
    for _ in range(2):
        with pytest.raises(cloudburst.FunctionError) as e:
            again.get(timeout=5)
        assert (e.value.code, e.value.exception_type) == ("function_error", "ValueError")
        assert e.value.message == first.value.message


def test_await_of_an_unknown_call_answers_at_once(cloud):
    unknown = cloud._future(0x1234, "__cloudburst/results/call-0000000000001234")
    with pytest.raises(cloudburst.NotFoundError) as e:
        unknown.get()  # no timeout: the gateway answers anyway
    assert e.value.code == "unknown_call"


def sleepy(cb, s):
    time.sleep(s)
    return s


def test_a_direct_call_ends_at_its_deadline(cloud):
    cloud.register(sleepy, "faults_sleepy")
    start = time.monotonic()
    with pytest.raises(cloudburst.CloudburstTimeout) as e:
        cloud.exec_func("faults_sleepy", [20], direct_response=True, timeout=0.5)
    assert not e.value.message.startswith("no answer"), "the server must answer, not the client"
    assert time.monotonic() - start < 10
    # The future of a call with a deadline ends the same way, for every get.
    future = cloud.exec_func("faults_sleepy", [20], timeout=0.5)
    for _ in range(2):
        with pytest.raises(cloudburst.CloudburstTimeout):
            future.get(timeout=10)


def ticker(cb, key):
    for i in range(600):
        cb.put(key, i)
        time.sleep(0.05)
    return "finished"


def after(cb, key, _upstream):
    cb.put(key, "ran")
    return "ran"


def test_cancel_stops_the_running_function_and_its_downstream(cloud):
    cloud.register(ticker, "faults_ticker")
    cloud.register(after, "faults_after")
    cloud.register_dag("faults_cancel", ["faults_ticker", "faults_after"],
                       [("faults_ticker", "faults_after")])
    tick, downstream = f"faults-tick-{time.time_ns()}", f"faults-after-{time.time_ns()}"
    future = cloud.call_dag("faults_cancel", {"faults_ticker": [tick],
                                              "faults_after": [downstream]})

    def ticking():
        if cloud.get_object(tick) is None:
            raise NotYet("the function has not started")

    wait_until(ticking, "the ticker running", 30)
    assert future.cancel() is True
    for _ in range(2):
        with pytest.raises(cloudburst.CancelledError) as e:
            future.get(timeout=10)
        assert e.value.code == "cancelled"
    assert future.cancel() is False, "it ended already"
    # The function was stopped: its ticks stop (a running one ticks every 50 ms).
    stopped = cloud.get_object(tick)
    time.sleep(1.0)  # an absence over time: nothing signals it
    assert cloud.get_object(tick) == stopped
    assert cloud.get_object(downstream) is None


def marked_sleep(cb, key, s):
    cb.put(key, "running")
    time.sleep(s)
    return s


def test_calls_fail_fast_when_their_executor_or_scheduler_is_lost(tmp_path):
    """Gateway, scheduler and executor on three nodes: a call whose executor dies with no
    re-run left fails with `executor_lost`, one whose scheduler dies with
    `scheduler_lost`, both within twice the dead-after time rather than at a timeout."""
    port = bench_faults.free_port()
    Node = bench_faults.Node
    gateway = Node(binary(), ["--roles", "kvs,gateway", "--ephemeral", "--listen", "127.0.0.1:0",
                              "--client-listen", f"127.0.0.1:{port}",
                              "--dashboard-listen", "127.0.0.1:0"], tmp_path / "gateway.log")
    nodes = [gateway]
    try:
        def join(name, roles):
            node = Node(binary(), ["--roles", roles, "--ephemeral", "--node-id", name,
                                   "--listen", "127.0.0.1:0", "--join", gateway.addr,
                                   "--workers", "1"], tmp_path / f"{name}.log")
            nodes.append(node)
            return node

        scheduler = join("sched", "scheduler")
        executor = join("exec", "executor")
        cloud = bench_faults.connect(f"ws://127.0.0.1:{port}")

        def serving():
            try:
                cloud.register(marked_sleep, "faults_marked", retries=0)
                cloud.exec_func("faults_marked", ["faults-warm", 0], direct_response=True,
                                timeout=5)
            except (cloudburst.UnavailableError, cloudburst.CloudburstTimeout) as e:
                raise NotYet(str(e)) from e

        def started(key):
            def check():
                if cloud.get_object(key) is None:
                    raise NotYet(f"{key} not written yet")
            wait_until(check, "the function running", 30)

        wait_until(serving, "the three nodes serving calls", 60)
        lost = cloud.exec_func("faults_marked", ["faults-exec", 60])
        started("faults-exec")
        executor.kill()
        killed = time.monotonic()
        with pytest.raises(cloudburst.CallLostError) as e:
            lost.get(timeout=30)
        assert e.value.code == "executor_lost"
        assert time.monotonic() - killed <= 2 * DEAD_AFTER_S

        join("exec", "executor")
        wait_until(serving, "the restarted executor serving calls", 60)
        orphan = cloud.exec_func("faults_marked", ["faults-sched", 60])
        started("faults-sched")
        scheduler.kill()
        killed = time.monotonic()
        with pytest.raises(cloudburst.CallLostError) as e:
            orphan.get(timeout=30)
        assert e.value.code == "scheduler_lost"
        assert time.monotonic() - killed <= 2 * DEAD_AFTER_S
        cloud.close()
    finally:
        for n in nodes:
            n.stop()


def test_the_asyncio_client_has_call_deadlines_and_cancel(url, cloud):
    import asyncio

    cloud.register(sleepy, "faults_sleepy")

    async def main():
        async with await cloudburst.AsyncCloudburstConnection.connect(url) as acloud:
            with pytest.raises(cloudburst.CloudburstTimeout):
                await acloud.exec_func("faults_sleepy", [20], direct_response=True, timeout=0.5)
            future = await acloud.exec_func("faults_sleepy", [20])
            assert await future.cancel() is True
            with pytest.raises(cloudburst.CancelledError):
                await future.get(timeout=10)

    asyncio.run(main())
