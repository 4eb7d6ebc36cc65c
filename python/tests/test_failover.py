"""A client given several gateways survives the loss of the one it uses, and the cluster
runs each call once.

Three `cloudburst node` processes: K plays kvs and executor (so no stored state and no
running function dies with a gateway), A scheduler and gateway, B scheduler, gateway and
executor. One `CloudburstConnection` with both gateways' URLs (A first) is shared by 4
threads making 500 calls, half direct and half futures; once a third of them have ended,
A is killed (SIGKILL), or stopped (SIGTERM: it drains, and its gateway sends calls to B's
scheduler meanwhile). Every call must end once, with its own right result: the connection
moves to B and sends again what waited on A (calls keep their client-minted ids, and are
marked as sent again), and futures made through A are sent again and awaited through B.
Once A has exited, calls through the connection go to B. The asyncio client
(`AsyncCloudburstConnection`, 4 tasks) is checked the same way against a killed A.

Every run of the function appends its argument to a log file (`O_APPEND`, one write per
run): every call must have run exactly once. Without the claim (B runs a call sent again
without asking the executors whether A's placement runs or ran it), the SIGKILL run logs
calls twice: `CONTROL=1` in the environment makes the test expect such a call instead, to
run against a build without the claim (`CLOUDBURST_BIN=<that build>`): the checker sees
the double run.

Run with a client that does not fail over (one URL), the calls waiting on A when it dies
fail with `connection_closed`."""

import asyncio
import collections
import os
import shutil
import signal
import tempfile
import threading

import cloudburst
from cloudburst import CloudburstConnection
from cloudburst.aio import AsyncCloudburstConnection

from nodes import start_gateway_node
from waiting import wait_until

SECRET = "failover-test-secret"
THREADS, CALLS = 4, 500
#: Calls ended before A goes.
KILL_AFTER = CALLS // 3
RETRYABLE = (cloudburst.UnavailableError, cloudburst.CloudburstTimeout)
CALL_LIMIT = 60.0


#: `CONTROL=1`: the control run, against a build without the claim (some calls run twice).
CONTROL = os.environ.get("CONTROL") == "1"


def logged_triple(log_path):
    """`3 * x`, each run appending `x` to `log_path`."""

    def triple(cb, x):
        import os
        import time

        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{x}\n".encode())
        finally:
            os.close(fd)
        time.sleep(0.005)  # long enough that calls are in flight when A goes
        return 3 * x

    return triple


def runs(log_path):
    """How many times each argument ran."""
    with open(log_path) as f:
        return collections.Counter(int(line) for line in f if line.strip())


def start(tmp_path, name, roles, *extra):
    return start_gateway_node(tmp_path / f"{name}.log", SECRET, roles, *extra, workers=2)


def threaded_calls(conn, a, sig):
    """The calls from 4 threads through `conn`, A given `sig` once a third ended:
    `(results, errors)`."""
    results, errors, lock = {}, [], threading.Lock()
    ended = threading.Semaphore(0)

    def caller(t):
        for x in range(t, CALLS, THREADS):
            try:
                if x % 2:
                    got = conn.exec_func("triple", [x], direct_response=True,
                                         timeout=CALL_LIMIT)
                else:
                    got = conn.exec_func("triple", [x]).get(timeout=CALL_LIMIT)
            except cloudburst.CloudburstError as e:
                with lock:
                    errors.append((x, e))
            else:
                with lock:
                    assert x not in results, f"call {x} ended twice"
                    results[x] = got
            ended.release()

    threads = [threading.Thread(target=caller, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for _ in range(KILL_AFTER):
        assert ended.acquire(timeout=CALL_LIMIT), "calls stopped ending before A went"
    a.proc.send_signal(sig)
    for t in threads:
        t.join(timeout=180)
    assert not any(t.is_alive() for t in threads), "a caller still waits"
    return results, errors


async def async_calls(urls, a, sig):
    """The same calls from 4 tasks of an asyncio client given `urls` (A first)."""
    conn = await AsyncCloudburstConnection.connect(urls)
    assert conn.url == urls[0]
    results, errors, ended = {}, [], asyncio.Event()

    async def caller(t):
        for x in range(t, CALLS, THREADS):
            try:
                if x % 2:
                    got = await conn.exec_func("triple", [x], direct_response=True,
                                               timeout=CALL_LIMIT)
                else:
                    got = await (await conn.exec_func("triple", [x])).get(timeout=CALL_LIMIT)
            except cloudburst.CloudburstError as e:
                errors.append((x, e))
            else:
                assert x not in results, f"call {x} ended twice"
                results[x] = got
            if len(results) + len(errors) >= KILL_AFTER:
                ended.set()

    tasks = [asyncio.create_task(caller(t)) for t in range(THREADS)]
    await asyncio.wait_for(ended.wait(), CALL_LIMIT)
    a.proc.send_signal(sig)
    await asyncio.wait_for(asyncio.gather(*tasks), 180)
    assert conn.url == urls[1], "the asyncio connection moved to B"
    await conn.close()
    return results, errors


def calls_survive_the_loss_of_a_gateway(tmp_path, sig, asynchronous=False):
    k = start(tmp_path, "k", "kvs,executor")
    nodes = [k]
    # The workers run as another user (`nobody` under root): a directory they can write.
    log_dir = tempfile.mkdtemp(prefix="cloudburst-failover-runs-")
    os.chmod(log_dir, 0o777)
    log_path = os.path.join(log_dir, "runs.log")
    triple = logged_triple(log_path)
    try:
        a = start(tmp_path, "a", "scheduler,gateway", "--join", k.addr)
        nodes.append(a)
        b = start(tmp_path, "b", "scheduler,gateway,executor", "--join", k.addr)
        nodes.append(b)
        conn = wait_until(lambda: CloudburstConnection([a.url, b.url]), "a connection", 30,
                          RETRYABLE)
        assert conn.url == a.url
        wait_until(lambda: conn.register(triple, "triple"), "the registration", 30, RETRYABLE)
        # Both schedulers place calls before the test starts (each hears of an executor).
        with CloudburstConnection(b.url) as via_b:
            wait_until(lambda: via_b.exec_func("triple", [-1]).get(timeout=CALL_LIMIT),
                       "a call through B", 60, RETRYABLE)
        wait_until(lambda: conn.exec_func("triple", [-1]).get(timeout=CALL_LIMIT),
                   "a call through A", 60, RETRYABLE)

        if asynchronous:
            results, errors = asyncio.run(async_calls([a.url, b.url], a, sig))
        else:
            results, errors = threaded_calls(conn, a, sig)
        assert not errors, f"{len(errors)} calls failed, e.g. {errors[:3]}"
        assert results == {x: 3 * x for x in range(CALLS)}
        counts = runs(log_path)
        twice = sorted(x for x in range(CALLS) if counts[x] > 1)
        never = sorted(x for x in range(CALLS) if counts[x] == 0)
        assert not never, f"calls with a result never ran: {never[:10]}"
        if not CONTROL:
            assert not twice, f"{len(twice)} calls ran more than once, e.g. {twice[:10]}"
        elif sig == signal.SIGKILL:
            assert twice, "the control run saw no call run twice"
        print(f"runs: {len(twice)} calls twice of {CALLS}")
        # A drained (SIGTERM) may have served every call; once it is gone, calls go to B.
        assert a.proc.wait(timeout=90) is not None
        assert [conn.exec_func("triple", [x]).get(timeout=CALL_LIMIT) for x in (-3, -2)] == \
            [-9, -6]
        assert conn.url == b.url, "the connection moved to B"
        conn.close()
    finally:
        for node in reversed(nodes):
            node.stop()
        shutil.rmtree(log_dir, ignore_errors=True)


def test_calls_survive_a_killed_gateway(tmp_path):
    calls_survive_the_loss_of_a_gateway(tmp_path, signal.SIGKILL)


def test_calls_survive_a_stopped_gateway(tmp_path):
    calls_survive_the_loss_of_a_gateway(tmp_path, signal.SIGTERM)


def test_asyncio_calls_survive_a_killed_gateway(tmp_path):
    calls_survive_the_loss_of_a_gateway(tmp_path, signal.SIGKILL, asynchronous=True)


def test_a_name_of_several_addresses_is_several_gateways():
    """The pure core: a host name resolving to several addresses is tried address by
    address; addresses and names of one address stay one URL each."""
    from cloudburst import _failover

    names = {"gw.test": ["127.0.0.2", "127.0.0.1"], "one.test": ["127.0.0.1"]}
    got = _failover.gateways(
        ["ws://gw.test:1/", "ws://one.test:2", "ws://127.0.0.3:3"],
        lambda host, port: names[host])
    assert got == [("ws://gw.test:1/", "127.0.0.2"), ("ws://gw.test:1/", "127.0.0.1"),
                   ("ws://one.test:2", None), ("ws://127.0.0.3:3", None)]


def test_both_clients_reach_a_gateway_through_the_second_address_of_its_name(
        url, monkeypatch):
    """`localhost` made to resolve to 127.0.0.2 (where nothing listens: the local gateway
    binds 127.0.0.1) and then 127.0.0.1: both clients connect through the second address
    and call there; the host name stays the URL (its token, its `Host`)."""
    from cloudburst import _failover

    port = url.rsplit(":", 1)[1].strip("/")
    tried = []

    def resolve(host, p):
        tried.append(host)
        return ["127.0.0.2", "127.0.0.1"]

    monkeypatch.setattr(_failover, "resolve", resolve)
    by_name = f"ws://localhost:{port}"
    with CloudburstConnection(by_name) as conn:
        assert conn.url == by_name and conn._at == 1
        conn.put_object("several-addresses", 7)
        assert conn.get_object("several-addresses") == 7

    async def asynchronous():
        conn = await AsyncCloudburstConnection.connect(by_name)
        try:
            assert conn.url == by_name and conn._at == 1
            return await conn.get_object("several-addresses")
        finally:
            await conn.close()

    assert asyncio.run(asynchronous()) == 7
    assert tried == ["localhost", "localhost"]
