"""An idle cluster holds no executor; a call to it waits while the monitor launches one.

A `cloudburst node` playing kvs, scheduler, gateway and monitor (no executor) with the
local provider and `min_executors = 0`: a function registers with no executor alive, a
call to it returns its right answer once the launched executor node is ready, and the
cluster goes back to no executor after the idle delay; then the same again (a second cold
start). The launched node loads the function the waiting call needs before it reports
ready (a warm start): the class function's `__init__` runs in that load (call id 0), not in
the first call, and once per node. Every time bound is a multiple of the configured windows plus the time a node takes
to start.

Run against a binary without scale from zero (`CLOUDBURST_BIN=...` of main) this test
fails: that binary refuses the `idle_to_zero_ms` key (and without it, it refuses the
registration with `no_executors`)."""

import json
import re
import time
import urllib.error
import urllib.request

from cloudburst import CloudburstConnection
from conftest import Proc
from nodes import free_port

SECRET = "scale-from-zero-secret"
TOKEN = "scale-from-zero-token"
TICK_MS, PANIC_MS, STABLE_MS, DELAY_MS, IDLE_MS = 200, 1000, 2000, 3000, 2000
CONFIG = f"""
[executor]
workers = 1
[autoscale]
min_executors = 0
max_executors = 2
tick_ms = {TICK_MS}
panic_window_ms = {PANIC_MS}
stable_window_ms = {STABLE_MS}
downscale_delay_ms = {DELAY_MS}
cooldown_ms = 500
idle_to_zero_ms = {IDLE_MS}
launch_timeout_ms = 60000
"""
TICK, STABLE, IDLE = TICK_MS / 1000, STABLE_MS / 1000, IDLE_MS / 1000
#: What a new executor node takes to start its Python worker and join, and a drained one
#: to leave (a loaded 2-core machine; the launch timeout is far longer).
LAUNCH = 30.0
DASHBOARD = re.compile(r"dashboard\S* .*?(http://\S+?)/?$")
NODE = re.compile(r"^cloudburst node (\S+) listening on ")


class Model:
    """A class function: `__init__` loads "the model" (and says so in a file, with the call
    it ran in: 0 when the executor loaded it before any call), `run` uses it."""

    def __init__(self, cb, path):
        import os

        self.path, self.weights = path, 10
        with open(path, "a") as f:
            f.write(f"init {os.getpid()} {cb.call_id}\n")

    def run(self, cb, x):
        return x * self.weights


def autoscale(dashboard):
    """The snapshot's autoscale part; waits (a few ticks at most) for the dashboard's first
    sample, which it answers 503 "not ready" before."""
    req = urllib.request.Request(dashboard + "/api/snapshot",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    deadline = time.monotonic() + 25 * TICK
    while True:
        try:
            return json.loads(urllib.request.urlopen(req, timeout=10).read()).get("autoscale") or {}
        except urllib.error.HTTPError as e:
            if e.code != 503 or time.monotonic() > deadline:
                raise
            time.sleep(TICK)


def executors(state):
    n = state.get("last") or {}
    return sum(n.get(k, 0) for k in ("active", "starting", "draining", "pending"))


def wait_for_zero(dashboard, bound, removed):
    """No executor, and the monitor has removed `removed` nodes in all: the dashboard's
    snapshot lags a tick, so "no executor" alone can be the moment before a launch shows."""
    deadline = time.monotonic() + bound
    state = {}
    while time.monotonic() < deadline:
        state = autoscale(dashboard)
        done = [d for d in state.get("decisions", []) if d["action"] == "terminate"]
        if state.get("last") and executors(state) == 0 and len(done) >= removed:
            return state
        time.sleep(TICK)
    raise AssertionError(f"still executors after {bound}s: {state}")


def test_a_call_to_an_idle_cluster_starts_an_executor_and_the_cluster_returns_to_zero(
        tmp_path, shared_dir):
    config = tmp_path / "cluster.toml"
    config.write_text(CONFIG)
    inits = str(shared_dir / "inits")
    client = f"127.0.0.1:{free_port()}"
    node = Proc(["node", "--bootstrap", "--roles", "kvs,scheduler,gateway,monitor", "--ephemeral",
                 "--listen", "127.0.0.1:0", "--client-listen", client,
                 "--dashboard-listen", "127.0.0.1:0", "--config", str(config)],
                tmp_path / "node.log",
                env={"CLOUDBURST_CLUSTER_SECRET": SECRET, "CLOUDBURST_TOKEN": TOKEN,
                     "RUST_LOG": "warn,cloudburst::actors::monitor=info"})
    try:
        found = node.wait_for({"dashboard": DASHBOARD, "node": NODE})
        assert all(found.values()), node.log_text()
        dashboard = found["dashboard"]
        with CloudburstConnection(f"ws://{client}", token=TOKEN) as cloud:
            # No executor: the registration is checked against the embedded Python.
            assert executors(autoscale(dashboard)) == 0
            model = cloud.register((Model, (inits,)), "model")
            for cycle in range(2):
                assert model(cycle + 1).get(timeout=LAUNCH + STABLE) == (cycle + 1) * 10
                # Idle: back to no executor after the grace period (the drain and exit
                # of the node take up to a launch's time).
                wait_for_zero(dashboard, IDLE + STABLE + 4 * TICK + LAUNCH, cycle + 1)
        state = autoscale(dashboard)
    finally:
        code = node.stop()
    log = node.log_text()
    assert code == 0, log
    decisions = state["decisions"]
    from_zero = [d for d in decisions if d["reason"] == "from_zero"]
    assert len(from_zero) == 2, decisions
    assert all(d["action"] == "launch" and d["count"] == 1 for d in from_zero), from_zero
    drains = [d for d in decisions if d["action"] == "drain"]
    assert len(drains) == 2 and all(d["reason"] == "idle" for d in drains), decisions
    assert state["cold_starts"] == 2 and len(state["cold_start_ms"]) == 2, state
    # Each executor node loaded the model once (one worker each), before any call reached
    # it: in its warm load (call id 0), not in the first call.
    lines = [line.split() for line in open(inits).read().splitlines()]
    assert len(lines) == 2 and all(line[0] == "init" for line in lines), lines
    assert [line[2] for line in lines] == ["0", "0"], lines
