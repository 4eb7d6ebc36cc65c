"""Stopping a node drains it. A two-node cluster (`cloudburst node` processes): node A
plays every role, node B only kvs and executor. Client threads make calls; the calls that
land on B block on a lock the test holds, so they are certainly running when B gets its
SIGTERM. Then:

- B must tell the cluster it drains (its log says how many peers acknowledged) and must
  keep running while its calls are held;
- calls submitted after that must all run on A (B takes no new work), and B must still
  be running after them;
- once the test lets B's calls go, they must succeed with their right results, and B must
  exit 0 on its own.

Run against a binary without draining (`CLOUDBURST_BIN=...`) this test fails: there
SIGTERM stops B's Python workers at once, so the calls held on B fail (`shut_down`) or are
never answered, and B never logs a drain."""

import fcntl
import os
import re
import threading

import cloudburst
from cloudburst import CloudburstConnection

from nodes import free_port, start_node
from waiting import NotYet, wait_until

SECRET = "drain-test-secret"
THREADS = 4
#: Calls each thread makes once B is known to drain.
CALLS_AFTER = 4
#: A call that takes longer than this has hung (the test releases B's calls within a few
#: seconds; the functions' own timeout is 30 s).
CALL_LIMIT = 60.0
#: Calls the test makes itself while B's calls are held (numbered from PROBE_FROM).
PROBES, PROBE_FROM = 4, 100_000
RETRYABLE = (cloudburst.UnavailableError, cloudburst.CloudburstTimeout)
#: B's log line once its peers acknowledged that it drains.
DRAINING = re.compile(r"draining told=(\d+)")


def work(cb, x, victim, gate, started):
    """Records where it runs (`started/x` holds the node id); on `victim`, waits until
    the test releases the lock on `gate`; elsewhere takes 0.5 s."""
    import fcntl as f
    import os as o
    import time as t

    node = cb.getid().split("/")[0]
    with open(o.path.join(started, str(x)), "w") as out:
        out.write(node)
    if node == victim:
        with open(gate) as g:
            f.flock(g, f.LOCK_SH)
    else:
        t.sleep(0.5)
    return (x * 2, node)


class Calls:
    """The calls of the client threads: results, failures, which calls were submitted
    after the drain was acknowledged."""

    def __init__(self):
        self.lock = threading.Lock()
        self.results, self.errors, self.after = {}, [], set()
        self.drain_seen = threading.Event()

    def client(self, url, i, args):
        conn = CloudburstConnection(url)
        n, after = 0, 0
        while after < CALLS_AFTER:
            x = i * 1000 + n
            n += 1
            if self.drain_seen.is_set():
                after += 1
                with self.lock:
                    self.after.add(x)
            try:
                r = conn.exec_func("work", [x, *args]).get(timeout=CALL_LIMIT)
                with self.lock:
                    self.results[x] = r
            except Exception as e:  # any failure is what this test looks for
                with self.lock:
                    self.errors.append((x, repr(e)))
        conn.close()


def started_on(started, node):
    """Calls (their x) that started on `node` so far."""
    out = set()
    for name in os.listdir(started):
        with open(os.path.join(started, name)) as f:
            if f.read() == node:
                out.add(int(name))
    return out


def test_sigterm_drains_a_node_and_no_call_fails(tmp_path, shared_dir):
    client_port, dash_port = free_port(), free_port()
    a = start_node(tmp_path / "a.log", SECRET, "--roles", "kvs,scheduler,executor,gateway",
                   "--listen", "127.0.0.1:0", "--client-listen", f"127.0.0.1:{client_port}",
                   "--dashboard-listen", f"127.0.0.1:{dash_port}", "--workers", "2")
    b = None
    gate_file = open(shared_dir / "gate", "w")
    os.chmod(shared_dir / "gate", 0o644)  # the functions (maybe another user) read it
    try:
        b = start_node(tmp_path / "b.log", SECRET, "--roles", "kvs,executor",
                       "--listen", "127.0.0.1:0", "--join", a.addr, "--workers", "2")
        url = f"ws://127.0.0.1:{client_port}"
        started = shared_dir / "started"
        started.mkdir(mode=0o777)
        started.chmod(0o777)  # whatever the umask
        cloud = wait_until(lambda: CloudburstConnection(url), "a connection", 30, RETRYABLE)
        wait_until(lambda: cloud.register(work, "work"), "registration", 30, RETRYABLE)
        # Until B is known to take calls, nothing blocks there.
        seen = set()

        def both_executors_answer():
            seen.add(cloud.exec_func("work", [0, None, "", str(started)]).get(CALL_LIMIT)[1])
            if seen != {a.id, b.id}:
                raise NotYet(f"only {seen} took calls")

        wait_until(both_executors_answer, "both executors taking calls", 60, RETRYABLE)
        cloud.close()
        for name in os.listdir(started):
            os.remove(started / name)

        fcntl.flock(gate_file, fcntl.LOCK_EX)
        calls = Calls()
        args = (b.id, str(shared_dir / "gate"), str(started))
        threads = [threading.Thread(target=calls.client, args=(url, i, args))
                   for i in range(THREADS)]
        for t in threads:
            t.start()

        def held_on_b():
            if not started_on(started, b.id):
                raise NotYet("no call runs on B yet")

        wait_until(held_on_b, "a call held on B", 60)
        b.proc.terminate()

        def drain_told():
            m = DRAINING.search(b.log_text())
            if m:
                return int(m.group(1))
            if b.proc.poll() is not None:
                return None  # exited without draining: the checks below say what failed
            raise NotYet("B did not log its drain")

        told = wait_until(drain_told, "B draining or gone", 30)
        calls.drain_seen.set()
        held = started_on(started, b.id)
        if told is not None:
            # While B's calls are held (the client threads may all wait for them), new
            # calls run on A.
            probe = CloudburstConnection(url)
            for x in range(PROBE_FROM, PROBE_FROM + PROBES):
                value, node = probe.exec_func("work", [x, *args]).get(timeout=CALL_LIMIT)
                assert (value, node) == (2 * x, a.id), f"call {x} was placed on the draining B"
            probe.close()
            assert b.proc.poll() is None, "B exited with calls still running on it"
        fcntl.flock(gate_file, fcntl.LOCK_UN)
        for t in threads:
            t.join(CALL_LIMIT * (CALLS_AFTER + 2))
        assert not any(t.is_alive() for t in threads), "a client thread hung"
        code = b.proc.wait(timeout=60)

        assert not calls.errors, f"{len(calls.errors)} calls failed, e.g. {calls.errors[:3]}"
        assert all(value == 2 * x for x, (value, _) in calls.results.items())
        assert held and held <= calls.results.keys(), "the calls held on B succeeded"
        assert told == 1, f"B drained with {told} peers told (one expected)"
        late = calls.after & started_on(started, b.id)
        assert not late, f"calls {sorted(late)} were placed on B after it drained"
        assert code == 0, f"the drained node exited {code}:\n{b.log_text()}"
    finally:
        gate_file.close()
        if b is not None:
            b.stop()
        a.stop()
