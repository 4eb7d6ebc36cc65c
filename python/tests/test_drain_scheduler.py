"""A draining scheduler waits for the calls it placed. Three `cloudburst node` processes:
A plays kvs, executor and gateway (no scheduler, so its gateway spreads calls over the
others' schedulers); B and C play kvs and scheduler. Futures whose functions block on a
lock the test holds are placed by B (its debug log names each call it places) and C; B
gets its SIGTERM while they are held. Then:

- B must keep running while calls it placed are unfinished (it keeps each to run it
  again if an executor dies; stopped, it would fail them with `scheduler_lost`);
- once the test lets the calls go, every one must succeed, and B must exit 0 on its own.

Run against a binary whose drain does not wait for the scheduler's calls
(`CLOUDBURST_BIN=...`), B stops at once and the calls it placed fail with
`scheduler_lost`."""

import fcntl
import re

import cloudburst
from cloudburst import CloudburstConnection

from nodes import free_port, start_node
from waiting import NotYet, wait_until

SECRET = "drain-scheduler-test-secret"
#: Held calls: the gateway alternates between B's and C's schedulers, so B places half.
CALLS = 6
#: A call that takes longer than this has hung (the functions' own timeout is 30 s).
CALL_LIMIT = 60.0
RETRYABLE = (cloudburst.UnavailableError, cloudburst.CloudburstTimeout)
#: B's debug line for each function it places.
PLACED = re.compile(r"placed call=(call-[0-9a-f]+)")
#: B's line when its drain starts waiting for the calls its scheduler placed; and when
#: its drain is over.
WAITING = re.compile(r"drain waits for the calls this scheduler placed")
DRAINED = re.compile(r"drained: nothing held|drain deadline passed")
#: B's scheduler, and nothing else of it, logs at debug level.
SCHEDULER_DEBUG = {"RUST_LOG": "info,cloudburst::actors::scheduler=debug"}


def held(cb, x, gate):
    """Returns 2x once the test releases the lock on `gate`."""
    import fcntl as f

    with open(gate) as g:
        f.flock(g, f.LOCK_SH)
    return 2 * x


def test_a_draining_scheduler_waits_for_the_calls_it_placed(tmp_path, shared_dir):
    client_port, dash_port = free_port(), free_port()
    gate = shared_dir / "gate"
    gate_file = open(gate, "w")
    gate.chmod(0o644)  # the functions (maybe another user) read it
    a = start_node(tmp_path / "a.log", SECRET, "--roles", "kvs,executor,gateway",
                   "--listen", "127.0.0.1:0", "--client-listen", f"127.0.0.1:{client_port}",
                   "--dashboard-listen", f"127.0.0.1:{dash_port}", "--workers", "2")
    b = c = None
    try:
        b = start_node(tmp_path / "b.log", SECRET, "--roles", "kvs,scheduler",
                       "--listen", "127.0.0.1:0", "--join", a.addr, env=SCHEDULER_DEBUG)
        c = start_node(tmp_path / "c.log", SECRET, "--roles", "kvs,scheduler",
                       "--listen", "127.0.0.1:0", "--join", a.addr)
        url = f"ws://127.0.0.1:{client_port}"
        conn = wait_until(lambda: CloudburstConnection(url), "a connection", 30, RETRYABLE)
        wait_until(lambda: conn.register(held, "held"), "registration", 30, RETRYABLE)

        def placed_by_b():
            # Unblocked calls until both schedulers place (the gateway may not know B yet).
            conn.exec_func("held", [0, str(shared_dir / "open")]).get(timeout=CALL_LIMIT)
            if not PLACED.search(b.log_text()):
                raise NotYet("B placed no call yet")

        (shared_dir / "open").touch(mode=0o644)
        # A scheduler that has not yet seen the registration answers not_found: registration
        # reaches every replica of the function's record by gossip, not at once.
        wait_until(placed_by_b, "B placing calls", 60, RETRYABLE + (cloudburst.NotFoundError,))
        before = set(PLACED.findall(b.log_text()))

        fcntl.flock(gate_file, fcntl.LOCK_EX)
        futures = {x: conn.exec_func("held", [x, str(gate)]) for x in range(1, CALLS + 1)}
        ours = {f"call-{f.call_id:016x}" for f in futures.values()}

        def b_holds_one():
            mine = (set(PLACED.findall(b.log_text())) - before) & ours
            if not mine:
                raise NotYet("B placed none of the held calls yet")
            return mine

        on_b = wait_until(b_holds_one, "a held call placed by B", 30)
        b.proc.terminate()

        def b_waits_or_is_done():
            log = b.log_text()
            if WAITING.search(log) or DRAINED.search(log) or b.proc.poll() is not None:
                return log
            raise NotYet("B neither waits for its calls nor finished its drain")

        log = wait_until(b_waits_or_is_done, "B's drain waiting or done", 30)
        assert not DRAINED.search(log) and b.proc.poll() is None, (
            f"B ended its drain with {len(on_b)} of its calls unfinished:\n{log}")
        fcntl.flock(gate_file, fcntl.LOCK_UN)
        results = {x: f.get(timeout=CALL_LIMIT) for x, f in futures.items()}
        assert results == {x: 2 * x for x in futures}
        code = b.proc.wait(timeout=60)
        assert code == 0, f"the drained scheduler exited {code}:\n{b.log_text()}"
        conn.close()
    finally:
        gate_file.close()
        for node in (c, b, a):
            if node is not None:
                node.stop()
