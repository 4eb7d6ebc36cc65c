"""A rolling restart of a whole cluster under load fails no call.

Three `cloudburst node` processes, each kvs (two replicas of every key), scheduler,
gateway and executor, each with a data directory. One `CloudburstConnection` given the
three gateways' URLs is shared by 4 threads calling without pause (direct calls and
futures). Each node in turn gets SIGTERM (it drains: its calls end, its keys are handed
off, it leaves), must exit 0, and is started again with the same data directory and
client port; the next node goes once the restarted one serves calls. No call may fail,
and every result must be right; the connection moves between gateways as they go.

Run with a client given one URL, the calls waiting on its gateway when it stops fail with
`connection_closed`."""

import threading

import cloudburst
from cloudburst import CloudburstConnection

from nodes import free_port, start_node
from waiting import wait_until

SECRET = "rolling-restart-test-secret"
NODES, THREADS = 3, 4
ROLES = "kvs,scheduler,gateway,executor"
#: Two replicas: a key stays readable and writable while one node is away.
CONFIG = "[kvs]\nreplication = 2\n"
RETRYABLE = (cloudburst.UnavailableError, cloudburst.CloudburstTimeout)
CALL_LIMIT = 60.0
#: Calls that must end between two restarts (the load really runs meanwhile).
CALLS_BETWEEN = 20


def double(cb, x):
    return 2 * x


class Node:
    """One node's fixed parts (name, client port, data directory) and its process now."""

    def __init__(self, tmp_path, name):
        self.tmp_path, self.name = tmp_path, name
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self.data = tmp_path / f"{name}-data"
        self.config = tmp_path / "cluster.toml"
        self.runs = 0
        self.proc = None

    def start(self, *join):
        self.runs += 1
        self.proc = start_node(
            self.tmp_path / f"{self.name}-{self.runs}.log", SECRET, "--config",
            str(self.config), "--roles", ROLES, "--workers", "1", "--listen", "127.0.0.1:0",
            "--client-listen", f"127.0.0.1:{self.port}", "--dashboard-listen",
            f"127.0.0.1:{free_port()}", "--data-dir", str(self.data), *join)

    def serves_calls(self):
        """Wait until a call through this node's gateway succeeds."""
        def call():
            with CloudburstConnection(self.url) as c:
                return c.exec_func("double", [21]).get(timeout=CALL_LIMIT)
        assert wait_until(call, f"{self.name} serving calls", 90, RETRYABLE) == 42


def test_a_rolling_restart_under_load_fails_no_call(tmp_path):
    (tmp_path / "cluster.toml").write_text(CONFIG)
    nodes = [Node(tmp_path, n) for n in "abc"]
    try:
        nodes[0].start()
        for n in nodes[1:]:
            n.start("--join", nodes[0].proc.addr)
        conn = wait_until(lambda: CloudburstConnection([n.url for n in nodes]),
                          "a connection", 30, RETRYABLE)
        wait_until(lambda: conn.register(double, "double"), "the registration", 30, RETRYABLE)
        for n in nodes:
            n.serves_calls()

        stop, lock = threading.Event(), threading.Lock()
        ended, errors = [0], []

        def caller(t):
            x = t
            while not stop.is_set():
                try:
                    if x % 2:
                        got = conn.exec_func("double", [x], direct_response=True,
                                             timeout=CALL_LIMIT)
                    else:
                        got = conn.exec_func("double", [x]).get(timeout=CALL_LIMIT)
                    ok = got == 2 * x
                except cloudburst.CloudburstError as e:
                    ok, got = False, e
                with lock:
                    ended[0] += 1
                    if not ok:
                        errors.append((x, got))
                x += THREADS

        def calls_ended(n):
            def check():
                with lock:
                    if ended[0] < n:
                        raise AssertionError(f"{ended[0]} calls ended, waiting for {n}")
            wait_until(check, f"{n} calls ended", 60, (AssertionError,))

        threads = [threading.Thread(target=caller, args=(t,)) for t in range(THREADS)]
        for t in threads:
            t.start()
        try:
            for i, node in enumerate(nodes):
                calls_ended(ended[0] + CALLS_BETWEEN)
                node.proc.proc.terminate()
                code = node.proc.proc.wait(timeout=120)
                assert code == 0, f"{node.name} exited {code}:\n{node.proc.log_text()}"
                other = nodes[(i + 1) % NODES]
                node.start("--join", other.proc.addr)
                node.serves_calls()
            calls_ended(ended[0] + CALLS_BETWEEN)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "a caller still waits"
        assert not errors, f"{len(errors)} of {ended[0]} calls failed, e.g. {errors[:3]}"
        conn.close()
    finally:
        for n in reversed(nodes):
            if n.proc is not None:
                n.proc.stop()
