"""Every node observable, one cluster-wide dashboard, per-call logs, addresses across
machines: real `cloudburst node` processes on loopback.

The cluster (one per module): A plays kvs, scheduler, executor and gateway (the only
gateway); B and C play only executor, bind the wildcard address with `--advertise` set to
loopback, and join through a seed given by name (`localhost:PORT`); D plays only kvs.
B, C and D serve an admin port. The last two tests drain C and kill B and D.
"""

import json
import os
import pathlib
import re
import subprocess

import pytest

import cloudburst
import dashboard_browser
from cloudburst import CloudburstConnection
import conftest
from conftest import Proc, binary, child_env
from nodes import bootstrap_unless_joining, free_port
from waiting import NotYet, wait_until

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
SECRET = "observe-secret"
TOKEN = "observe-token"
NODE_ID = re.compile(r"^cloudburst node (\S+) listening on ")
NODE_ADDR = re.compile(r"^cloudburst node \S+ listening on (\S+) ")
ADMIN = re.compile(r"^cloudburst admin listening on (http://\S+?)/?$")
DASHBOARD = re.compile(r"^cloudburst dashboard listening on (http://\S+?)/?$")
#: Seconds to wait for something the cluster does within a few ticks (a join, a sample).
SETTLE_SECONDS = 30
#: Calls made and counted across the cluster.
CALLS = 60
RETRYABLE = (cloudburst.UnavailableError, cloudburst.CloudburstTimeout)


def http_get(url, token=None):
    """(status, body) of a GET; HTTP errors are returned."""
    status, _, body = conftest.http_get(url, token)
    return status, body


def start(log, *args, gateway=False):
    """A node with an admin port; `.id`, `.addr`, `.admin` (and `.dashboard`) once up."""
    p = Proc(["node", "--replication", "1", "--workers", "1",
              "--admin-listen", "127.0.0.1:0", *args, *bootstrap_unless_joining(args)], log,
             env={"CLOUDBURST_CLUSTER_SECRET": SECRET, "CLOUDBURST_TOKEN": TOKEN})
    patterns = {"id": NODE_ID, "addr": NODE_ADDR, "admin": ADMIN}
    if gateway:
        patterns["dashboard"] = DASHBOARD
    found = p.wait_for(patterns)
    if not all(found.values()):
        p.stop()
        raise AssertionError(f"node did not start: {found}; log:\n{p.log_text()}")
    for k, v in found.items():
        setattr(p, k, v)
    return p


class Cluster:
    def __init__(self, tmp):
        self.procs = []
        port = free_port()
        self.client = f"ws://127.0.0.1:{free_port()}"
        self.a = self.add(start(tmp / "a.log", "--roles", "kvs,scheduler,executor,gateway",
                                "--listen", f"127.0.0.1:{port}",
                                "--client-listen", self.client[len("ws://"):],
                                "--dashboard-listen", "127.0.0.1:0", gateway=True))
        wildcard = ("--listen", "0.0.0.0:0", "--advertise", "127.0.0.1:0",
                    "--allow-non-loopback")
        self.b = self.add(start(tmp / "b.log", "--roles", "executor", *wildcard,
                                "--join", f"localhost:{port}"))
        self.c = self.add(start(tmp / "c.log", "--roles", "executor", *wildcard,
                                "--join", f"127.0.0.1:1,localhost:{port}"))
        self.d = self.add(start(tmp / "d.log", "--roles", "kvs", "--listen", "127.0.0.1:0",
                                "--join", f"localhost:{port}"))
        self.executors = sorted([self.a.id, self.b.id, self.c.id])

    def add(self, p):
        self.procs.append(p)
        return p

    def snapshot(self):
        status, body = http_get(self.a.dashboard + "/api/snapshot", TOKEN)
        if status != 200:
            raise NotYet(f"snapshot answered {status}")
        return json.loads(body)

    def stop(self):
        for p in reversed(self.procs):
            p.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("observe"))
    try:
        def all_executors_reported():
            s = c.snapshot()
            shown = sorted(e["node"] for e in s["executors"] if not e["down"])
            alive = sorted(n["id"] for n in s["nodes"] if n["state"] == "alive")
            if shown != c.executors or len(alive) != 4:
                raise NotYet(f"executors {shown}, alive {alive}")

        wait_until(all_executors_reported, "every node in the dashboard", SETTLE_SECONDS)
        yield c
    finally:
        c.stop()


def test_a_wildcard_bind_without_advertise_is_refused(tmp_path):
    r = subprocess.run([binary(), "node", "--bootstrap", "--listen", "0.0.0.0:0",
                        "--allow-non-loopback"],
                       capture_output=True, text=True, timeout=30,
                       env=child_env({"CLOUDBURST_CLUSTER_SECRET": SECRET}))
    assert r.returncode != 0
    assert "wildcard" in r.stderr and "node.advertise" in r.stderr, r.stderr


def test_wildcard_nodes_advertise_loopback_and_named_seeds_resolve(cluster):
    for n in (cluster.b, cluster.c):
        assert n.addr.startswith("127.0.0.1:") and n.id == n.addr, (n.id, n.addr)
    nodes = {n["id"]: n for n in cluster.snapshot()["nodes"]}
    assert set(nodes) == {cluster.a.id, cluster.b.id, cluster.c.id, cluster.d.id}
    assert nodes[cluster.b.id]["addr"] == cluster.b.addr


def test_every_node_answers_health_readiness_and_metrics(cluster):
    for n in (cluster.a, cluster.b, cluster.c, cluster.d):
        assert http_get(n.admin + "/healthz") == (200, "ok")
        wait_until(lambda: http_get(n.admin + "/readyz") == (200, "ready") or _not(n),
                   f"{n.id} ready", SETTLE_SECONDS)
        status, body = http_get(n.admin + "/metrics")
        assert status == 401 and "missing_token" in body
        status, body = http_get(n.admin + "/metrics", TOKEN)
        assert status == 200 and f'cloudburst_transport_frames_in_total{{node="{n.id}"}}' in body


def _not(n):
    raise NotYet(f"/readyz of {n.id}: {http_get(n.admin + '/readyz')}")


def node_calls(text, function):
    """{node: calls} of `function` in a Prometheus text."""
    out = {}
    pat = re.compile(r'^cloudburst_function_calls_total\{node="([^"]+)",function="'
                     + re.escape(function) + r'",status="(ok|error)"\} (\d+)$')
    for line in text.splitlines():
        m = pat.match(line)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0) + int(m.group(3))
    return out


def test_the_dashboard_counts_the_calls_of_every_node(cluster):
    cloud = wait_until(lambda: CloudburstConnection(cluster.client, token=TOKEN),
                       "a connection", SETTLE_SECONDS, RETRYABLE)
    inc = wait_until(lambda: cloud.register(lambda cb, x: x + 1, "obs_inc"), "registration",
                     SETTLE_SECONDS, RETRYABLE)
    futures = [inc(i) for i in range(CALLS)]
    assert [f.get(timeout=60) for f in futures] == [i + 1 for i in range(CALLS)]

    def counted():
        s = cluster.snapshot()
        row = [r for r in s["functions"] if r["name"] == "obs_inc"]
        if not row or row[0]["calls"] != CALLS:
            raise NotYet(f"obs_inc row {row}")
        return s

    s = wait_until(counted, "every call counted", SETTLE_SECONDS)
    ran = {r["node"] for r in s["recent"] if r["name"] == "obs_inc"}
    assert ran and ran <= set(cluster.executors), ran
    # Each node's own /metrics counts its calls under its own name; together, every call.
    _, cluster_text = http_get(cluster.a.dashboard + "/metrics", TOKEN)
    per_node = node_calls(cluster_text, "obs_inc")
    assert sum(per_node.values()) == CALLS, per_node
    for n in (cluster.a, cluster.b, cluster.c):
        own = node_calls(http_get(n.admin + "/metrics", TOKEN)[1], "obs_inc")
        assert set(own) <= {n.id}, own
        assert own.get(n.id, 0) == per_node.get(n.id, 0), (n.id, own, per_node)
    cloud.close()


def shout(cb, x):
    import sys

    print("shout", x)
    print("to stderr", x, file=sys.stderr)
    return x


def boom(cb, x):
    print("about to fail", x)
    return x / 0


def test_what_a_function_prints_is_kept_by_call_id(cluster):
    cloud = wait_until(lambda: CloudburstConnection(cluster.client, token=TOKEN),
                       "a connection", SETTLE_SECONDS, RETRYABLE)
    cloud.register(shout, "obs_shout")
    cloud.register(boom, "obs_boom")
    fut = cloud.exec_func("obs_shout", [7])
    assert fut.get(timeout=60) == 7
    logs = fut.logs()
    assert len(logs) == 1, logs
    log = logs[0]
    assert (log["function"], log["stdout"], log["traceback"]) == ("obs_shout", "shout 7\n", None)
    assert log["stderr"] == "to stderr 7\n" and log["node"] in cluster.executors
    assert cloud.logs(fut.call_id) == logs
    failed = cloud.exec_func("obs_boom", [1])
    with pytest.raises(cloudburst.CloudburstError):
        failed.get(timeout=60)
    [blog] = failed.logs()
    assert blog["stdout"] == "about to fail 1\n" and "ZeroDivisionError" in blog["traceback"]
    assert cloud.logs(123) == []

    def shown():
        s = cluster.snapshot()
        rows = [r for r in s["recent"] if r["call"] == f"call-{fut.call_id:016x}"]
        if not rows or "shout 7" not in (rows[0]["log"] or ""):
            raise NotYet(f"recent rows {rows}")
        return rows[0]

    assert wait_until(shown, "the output in recent calls", SETTLE_SECONDS)["node"] == log["node"]
    cloud.close()


def test_chromium_shows_the_three_executors(cluster):
    dashboard_browser.check_dashboard(
        cluster.a.dashboard + "/", TOKEN, executors=cluster.executors,
        texts=[cluster.b.id, cluster.c.id, cluster.d.id],
        screenshot=str(ARTIFACTS / "dashboard-cluster.png"), timeout=30)


def hold(cb, victim, gate, started):
    """On `victim`, waits until the test releases `gate`; says where it ran."""
    import fcntl
    import os

    node = cb.getid().split("/")[0]
    if node == victim:
        open(os.path.join(started, node), "w").close()
        with open(gate) as g:
            fcntl.flock(g, fcntl.LOCK_SH)
    return node


def test_readyz_is_false_while_a_node_drains(cluster, shared_dir):
    import fcntl

    c = cluster.c
    gate = shared_dir / "gate"
    gate_file = open(gate, "w")
    os.chmod(gate, 0o644)
    fcntl.flock(gate_file, fcntl.LOCK_EX)
    cloud = CloudburstConnection(cluster.client, token=TOKEN)
    cloud.register(hold, "obs_hold")
    futures = []
    try:
        def held_on_c():
            futures.extend(cloud.exec_func("obs_hold", [c.id, str(gate), str(shared_dir)])
                           for _ in range(3))
            if not (shared_dir / c.id).exists():
                raise NotYet("no call holds on C yet")

        wait_until(held_on_c, "a call held on C", SETTLE_SECONDS, interval=0.5)
        c.proc.terminate()
        wait_until(lambda: http_get(c.admin + "/readyz") == (503, "not ready: draining")
                   or _not(c), "C not ready while it drains", SETTLE_SECONDS)
        assert c.proc.poll() is None, "C waits for the call it holds"
    finally:
        fcntl.flock(gate_file, fcntl.LOCK_UN)
        gate_file.close()
    assert all(f.get(timeout=60) in cluster.executors for f in futures)
    assert c.proc.wait(60) == 0
    cloud.close()


def test_dead_nodes_stay_in_the_tables_shown_down(cluster):
    for n in (cluster.b, cluster.d):
        n.proc.kill()
        n.proc.wait(10)

    def down():
        s = cluster.snapshot()
        states = {n["id"]: n["state"] for n in s["nodes"]}
        ex = {e["node"]: e["down"] for e in s["executors"]}
        shards = [x for x in s["shards"] if x["node"] == cluster.d.id]
        if (states.get(cluster.b.id), states.get(cluster.d.id)) != ("dead", "dead"):
            raise NotYet(f"states {states}")
        if ex.get(cluster.b.id) is not True or ex.get(cluster.a.id) is not False:
            raise NotYet(f"executors {ex}")
        if not shards or any(x["keys"] is not None or not x["error"] for x in shards):
            raise NotYet(f"shards of D {shards}")
        return s

    s = wait_until(down, "dead nodes shown down", SETTLE_SECONDS)
    assert any(c["node"] == cluster.b.id and c["down"] for c in s["caches"])
