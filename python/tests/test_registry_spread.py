"""A registration made through one gateway is seen at once by calls through any gateway,
whichever scheduler they reach, even by a scheduler that joined a moment ago.

Three `cloudburst node` processes: A plays kvs, executor and gateway (no scheduler: its
gateway spreads requests over the others' schedulers); B plays kvs, scheduler and gateway;
C, started last, kvs and scheduler. For a few tens of milliseconds after C joins (through
A), B has not heard of it: a registration B's scheduler stores then is not announced to C,
and B writes its record through a KVS ring without C while C reads through one with C. So
right after C is up, functions are registered through A (reaching B or C) by several
threads at once, and each is called at once through B's gateway and twice through A's
(so both schedulers get calls). A call may wait for a scheduler to hear of an executor
(`no_executors`, retryable); none may answer `unknown_function`.

Run against a binary whose schedulers answer `unknown_function` from their own KVS read
alone, and empty their whole plan cache at every function registration (main before
this test, `CLOUDBURST_BIN=...`), 2 runs of 3 saw `unknown_function`."""

import threading

import cloudburst
from cloudburst import CloudburstConnection

from nodes import start_gateway_node
from waiting import wait_until

SECRET = "registry-spread-test-secret"
#: Threads registering and calling at once, and functions each registers.
THREADS, NAMES = 4, 3
RETRYABLE = (cloudburst.UnavailableError, cloudburst.CloudburstTimeout)
CALL_LIMIT = 30.0


def start(tmp_path, name, roles, *extra):
    return start_gateway_node(tmp_path / f"{name}.log", SECRET, roles, *extra, workers=1)


def connect(node):
    return wait_until(lambda: CloudburstConnection(node.url), f"a connection to {node.url}",
                      30, RETRYABLE)


def call(conn, name, x):
    """`name(x)`, retried while the cluster is not ready; `unknown_function` is raised."""
    return wait_until(lambda: conn.exec_func(name, [x]).get(timeout=CALL_LIMIT),
                      f"a call of {name}", 60, RETRYABLE)


def test_a_registration_is_called_through_another_gateway_and_scheduler_at_once(tmp_path):
    nodes = []
    try:
        a = start(tmp_path, "a", "kvs,executor,gateway")
        nodes.append(a)
        b = start(tmp_path, "b", "kvs,scheduler,gateway", "--join", a.addr)
        nodes.append(b)
        via_a, via_b = connect(a), connect(b)
        wait_until(lambda: via_a.register(lambda cb, x: x, "warm"), "a registration", 30,
                   RETRYABLE)
        assert call(via_a, "warm", 1) == 1 and call(via_b, "warm", 2) == 2
        nodes.append(start(tmp_path, "c", "kvs,scheduler", "--join", a.addr))
        unknown, wrong = [], []

        def register_and_call(t):
            for i in range(NAMES):
                name, k = f"spread{t}_{i}", t * NAMES + i
                wait_until(lambda: via_a.register(lambda cb, x, k=k: x + k, name),
                           f"the registration of {name}", 30, RETRYABLE)
                try:
                    got = [call(via_b, name, 100), call(via_a, name, 100),
                           call(via_a, name, 100)]
                except cloudburst.NotFoundError as e:
                    unknown.append(f"{name}: {e}")
                    continue
                if got != [100 + k] * 3:
                    wrong.append((name, got))

        threads = [threading.Thread(target=register_and_call, args=(t,)) for t in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "a thread still calls"
        assert not unknown, f"calls right after their registration: {unknown}"
        assert not wrong
        via_a.close()
        via_b.close()
    finally:
        for node in reversed(nodes):
            node.stop()
