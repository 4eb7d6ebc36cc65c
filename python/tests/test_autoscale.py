"""The monitor scales executor nodes with load and drains before it removes one.

A `cloudburst local` with the monitor and the local provider (`max_executors = 3`, short
windows) runs a sleep-bound function (`time.sleep(0.2)`: its capacity grows with nodes even
on 2 cores). An open-loop client calls it at a low rate, then a peak rate the local node's
workers cannot carry, then a low rate again, while a thread reads the acting monitor's
state off the dashboard. Every time bound is a multiple of the configured windows.

Asserted: the node count rises within one panic window plus the launch time of the step;
every call returns its own right answer exactly once (none lost, none failed); at most one
scale event during the steady part of the peak; the first scale-down comes no earlier than
the downscale delay after the load fell; the cluster gets back to the minimum; the drained
nodes were terminated after they left (not cut off) and exited 0.

Run against a binary without a monitor (`CLOUDBURST_BIN=...` of main) this test fails: no
executor node is ever added."""

import json
import threading
import time
import urllib.request

import pytest

from cloudburst import CloudburstConnection
from conftest import auth_headers, start_cluster

TICK_MS, PANIC_MS, STABLE_MS, DELAY_MS, COOLDOWN_MS = 200, 1000, 3000, 4000, 1000
CONFIG = f"""
[executor]
workers = 2
[autoscale]
min_executors = 1
max_executors = 3
tick_ms = {TICK_MS}
panic_window_ms = {PANIC_MS}
stable_window_ms = {STABLE_MS}
downscale_delay_ms = {DELAY_MS}
cooldown_ms = {COOLDOWN_MS}
launch_timeout_ms = 60000
"""
PANIC, STABLE, DELAY, COOLDOWN = (x / 1000 for x in (PANIC_MS, STABLE_MS, DELAY_MS, COOLDOWN_MS))
#: What a new executor node takes to start its Python workers and join (a loaded 2-core
#: machine; the monitor's launch timeout is far longer).
LAUNCH = 20.0
#: (calls per second, seconds) of the load: low, peak, low.
PHASES = [(2, STABLE), (20, 4 * STABLE + LAUNCH), (1, DELAY + 6 * STABLE)]
#: A call that takes longer than this has hung.
CALL_LIMIT = 120.0


def nap(cb, x):
    import time as t

    t.sleep(0.2)
    return x * x


class Watch:
    """Reads the acting monitor's state off the dashboard every tick."""

    def __init__(self, dashboard):
        self.dashboard, self.points, self.state = dashboard.rstrip("/"), [], None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            req = urllib.request.Request(self.dashboard + "/api/snapshot", headers=auth_headers())
            try:
                snap = json.loads(urllib.request.urlopen(req, timeout=10).read())
            except (OSError, ValueError):
                snap = {}
            a = snap.get("autoscale")
            if a and a.get("last"):
                self.state = a
                self.points.append((time.time(), a["last"]))
            self.stop.wait(TICK_MS / 1000)

    def counted(self, since=0.0):
        """(time, active + starting + pending) since `since`."""
        return [(t, n["counted"]) for t, n in self.points if t >= since]


def drive(conn):
    """The open-loop load; returns {x: future} and when each phase began."""
    futures, starts, x = {}, [], 0
    for rate, seconds in PHASES:
        start = time.time()
        starts.append(start)
        n = int(rate * seconds)
        for i in range(n):
            delay = start + i / rate - time.time()
            if delay > 0:
                time.sleep(delay)
            futures[x] = conn.exec_func("nap", [x])
            x += 1
    return futures, starts


def test_executor_nodes_follow_the_load_and_drain_before_removal(tmp_path):
    env = {"RUST_LOG": "warn,cloudburst::actors::monitor=info"}
    c = start_cluster(tmp=tmp_path, config=CONFIG, env=env)
    watch = None
    try:
        conn = CloudburstConnection(c.url)
        conn.register(nap, "nap")
        watch = Watch(c.dashboard)
        futures, (low, peak, after) = drive(conn)
        results = {x: f.get(timeout=CALL_LIMIT) for x, f in futures.items()}
        assert results == {x: x * x for x in futures}, "every call answers its own result"
        # Back to the minimum, every drained node gone.
        deadline = time.time() + DELAY + 6 * STABLE + LAUNCH
        while time.time() < deadline:
            n = watch.points[-1][1] if watch.points else None
            if n and (n["active"], n["starting"], n["draining"], n["pending"]) == (1, 0, 0, 0):
                break
            time.sleep(TICK_MS / 1000)
        conn.close()
    finally:
        if watch:
            watch.stop.set()
            watch.thread.join()
        code = c.stop()
    log = c.log_text()
    assert code == 0, log
    state = watch.state
    assert state, "the dashboard never showed the monitor's state"
    decisions = state["decisions"]
    assert not any(d["action"] in ("launch_failed", "give_up") for d in decisions), decisions
    # Up within one panic window plus the launch (the decision itself comes at a tick).
    ups = [t for t, n in watch.counted(peak) if n > 1]
    assert ups, f"no executor node was added: {decisions}"
    assert ups[0] - peak <= PANIC + 2 * TICK_MS / 1000 + COOLDOWN, (ups[0] - peak, decisions)
    peak_count = max(n for _, n in watch.counted(peak))
    assert peak_count >= 2
    # The steady part of the peak (after one stable window plus a launch): at most one event.
    steady = [d for d in decisions if peak + STABLE + LAUNCH <= d["at_ms"] / 1000 < after]
    assert len([d for d in steady if d["action"] in ("launch", "drain")]) <= 1, steady
    drains = [d for d in decisions if d["action"] == "drain"]
    assert drains, f"nothing was scaled down: {decisions}"
    assert drains[0]["at_ms"] / 1000 >= after + DELAY - 2 * TICK_MS / 1000, (drains[0], after)
    assert drains[0]["reason"] == "idle"
    final = watch.points[-1][1]
    assert (final["active"], final["starting"], final["draining"]) == (1, 0, 0), final
    terminated = [d for d in decisions if d["action"] == "terminate"]
    assert {d["node"] for d in terminated} >= {d["node"] for d in drains}, decisions
    assert all(d["reason"] == "drained" for d in terminated), terminated
    assert "executor node exited with a failure" not in log, log
