"""Hot keys get more replicas while they are hot, their reads spread over them, and they
return to the default when the load stops, losing nothing.

Three `cloudburst node`s play kvs at replication 1 (the first also scheduler, gateway and
monitor; no executor is needed). Several threads read a Zipf-skewed workload over 2000
keys straight through the client API while a writer raises counters on the hottest keys:
the monitor replicates the hottest keys to more nodes, their reads show up on every node
holding them (each node's reported hot keys, with their replica counts, in the dashboard's
snapshot), and once the load stops they return to one replica and the extra copies go.
Through it all every read of a written key is checked against its last acknowledged value
(the writer only raises a counter): 0 lost (an older value read back) and 0 missing
(`None` for a key that exists).

Every time bound is a multiple of the configured windows plus what nodes take to start.
Run against a binary without selective replication (`CLOUDBURST_BIN=...` of main) the test
fails: that binary refuses the `hot_key_*` keys of `[kvs_autoscale]`, and without them no
key ever gets a second replica."""

import json
import random
import re
import threading
import urllib.request

import waiting
from cloudburst import CloudburstConnection
from conftest import Proc
from nodes import METRIC, free_port, start_node

SECRET = "kvs-hot-secret"
TOKEN = "kvs-hot-token"
TICK_MS, WINDOW_MS, COOL_MS, SETTLE_MS = 200, 2000, 2000, 1000
CONFIG = f"""
[kvs]
replication = 1
[autoscale]
min_executors = 0
tick_ms = {TICK_MS}
[kvs_autoscale]
enabled = false
hot_key_replication = true
hot_key_window_ms = {WINDOW_MS}
hot_key_cool_delay_ms = {COOL_MS}
hot_key_settle_ms = {SETTLE_MS}
hot_key_min_rate = 30
"""
WINDOW, COOL, SETTLE = WINDOW_MS / 1000, COOL_MS / 1000, SETTLE_MS / 1000
#: What a node takes to start and join on a loaded 2-core machine.
START = 30.0
#: Reports reach the monitor once a second; the dashboard samples the monitor.
REPORT = 2.0
KEYS = 2000
READERS = 4
WRITTEN = 5  # the hottest keys, also written while they are hot
DASHBOARD = re.compile(r"dashboard\S* .*?(http://\S+?)/?$")


def key(i):
    return f"z/{i}"


def zipf_weights(n, s=1.2):
    return [1.0 / (i + 1) ** s for i in range(n)]


def wait_until(what, bound, check):
    """Wait (one tick between checks) until `check()` is true, at most `bound` seconds."""
    def holds():
        if not check():
            raise waiting.NotYet(what)

    waiting.wait_until(holds, what, bound, interval=TICK_MS / 1000)


def verdict(want, got):
    """What a read `got` of a key whose last acknowledged value was `want` when the read
    was sent says: "missing" (None for a key that exists), "lost" (a value older than the
    acknowledged one), or None (fine)."""
    if got is None:
        return "missing"
    return "lost" if got[0] < want[0] else None


def test_the_checker_sees_a_lost_write_and_a_missing_key():
    assert verdict((5, ""), (4, "")) == "lost"
    assert verdict((5, ""), None) == "missing"
    assert verdict((5, ""), (5, "")) is None
    assert verdict((5, ""), (6, "")) is None


class Workload:
    """Readers of a Zipf-skewed key mix that check every read, and a writer raising the
    counters of the hottest keys."""

    def __init__(self, client):
        self.client = client
        self.acked = {key(i): (0, "") for i in range(KEYS)}
        self.lock = threading.Lock()
        self.lost, self.missing, self.reads, self.writes = [], [], 0, 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.read, args=(seed,), daemon=True)
                        for seed in range(READERS)]
        self.threads.append(threading.Thread(target=self.write, daemon=True))
        self.errors = []

    def check(self, cloud, k):
        with self.lock:
            want = self.acked[k]
        got = cloud.get_object(k)
        wrong = verdict(want, got)
        with self.lock:
            self.reads += 1
            if wrong == "missing":
                self.missing.append(k)
            elif wrong == "lost":
                self.lost.append((k, got[0], want[0]))

    def read(self, seed):
        rng = random.Random(seed)
        weights = zipf_weights(KEYS)
        try:
            with CloudburstConnection(self.client, token=TOKEN) as cloud:
                while not self.stop.is_set():
                    for i in rng.choices(range(KEYS), weights, k=100):
                        self.check(cloud, key(i))
        except Exception as e:  # the test fails on it below
            self.errors.append(repr(e))

    def write(self):
        counter = 0
        try:
            with CloudburstConnection(self.client, token=TOKEN) as cloud:
                while not self.stop.is_set():
                    counter += 1
                    k = key(counter % WRITTEN)
                    cloud.put_object(k, (counter, "w"))
                    with self.lock:
                        self.acked[k] = (counter, "w")
                        self.writes += 1
        except Exception as e:
            self.errors.append(repr(e))

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def check_all(self):
        with CloudburstConnection(self.client, token=TOKEN) as cloud:
            for i in range(KEYS):
                self.check(cloud, key(i))


def snapshot_kvs(dashboard):
    """The KVS part of the dashboard's autoscaling state (the acting monitor's)."""
    req = urllib.request.Request(dashboard + "/api/snapshot",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    snapshot = json.loads(urllib.request.urlopen(req, timeout=10).read())
    return (snapshot.get("autoscale") or {}).get("kvs") or {}


def stored_keys(dashboard):
    """Keys stored over every shard (each copy counted), from the per-shard gauges."""
    req = urllib.request.Request(dashboard + "/metrics",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    text = urllib.request.urlopen(req, timeout=10).read().decode()
    found = (METRIC.match(line) for line in text.splitlines())
    return sum(int(m.group(4)) for m in found if m and m.group(1) == "cloudburst_kvs_keys")


def decisions(dashboard, action):
    return [d for d in snapshot_kvs(dashboard).get("decisions", []) if d["action"] == action]


def spread(dashboard, k):
    """`{node: (reads in its last window, replicas)}` of key `k` in the nodes' reports."""
    out = {}
    for n in snapshot_kvs(dashboard).get("nodes", []):
        for h in n["hot_keys"]:
            if h["key"] == k and h["count"] > 0:
                out[n["node"]["id"]] = (h["count"], h["replicas"])
    return out


def test_hot_keys_are_replicated_read_everywhere_and_dropped_when_cool(tmp_path):
    config = tmp_path / "cluster.toml"
    config.write_text(CONFIG)
    client = f"127.0.0.1:{free_port()}"
    log = tmp_path / "first.log"
    env = {"CLOUDBURST_TOKEN": TOKEN, "RUST_LOG": "warn,cloudburst::actors::monitor=info"}
    first = Proc(["node", "--bootstrap", "--roles", "kvs,scheduler,gateway,monitor",
                  "--ephemeral", "--listen", "127.0.0.1:0", "--client-listen", client,
                  "--dashboard-listen", "127.0.0.1:0", "--config", str(config)],
                 log, env={"CLOUDBURST_CLUSTER_SECRET": SECRET, **env})
    others = []
    try:
        found = first.wait_for({"dashboard": DASHBOARD,
                                "addr": re.compile(r"^cloudburst node \S+ listening on (\S+)")})
        assert all(found.values()), first.log_text()
        dashboard = found["dashboard"]
        for name in ("second", "third"):
            others.append(start_node(tmp_path / f"{name}.log", SECRET, "--roles", "kvs",
                                     "--ephemeral", "--listen", "127.0.0.1:0",
                                     "--join", found["addr"], "--config", str(config)))
        work = Workload(f"ws://{client}")
        with CloudburstConnection(f"ws://{client}", token=TOKEN) as cloud:
            wait_until("three kvs nodes reporting", START,
                       lambda: len(snapshot_kvs(dashboard).get("nodes", [])) == 3)
            for i in range(KEYS):
                cloud.put_object(key(i), (0, ""))
        wait_until("every key stored", REPORT + WINDOW, lambda: stored_keys(dashboard) >= KEYS)
        base = stored_keys(dashboard)
        work.start()
        hottest = key(0)
        # Hot: more replicas within a window (and the reports that feed it).
        wait_until("the hottest key replicated", 2 * WINDOW + 2 * REPORT,
                   lambda: any(d["key"] == hottest and d["reason"] == "hot"
                               for d in decisions(dashboard, "replicate")))
        factors = {}
        for d in decisions(dashboard, "replicate"):
            assert d["replicas"] > 1 and d["detail"].startswith("rate "), d
            factors[d["key"]] = max(factors.get(d["key"], 0), d["replicas"])
        # Reads land on its other replicas once they are filled (at k = 1 one node would
        # serve them all), and every node reading it counts more than one replica (the
        # snapshot holds each node's last report: one may lag by a report).
        def spread_out():
            nodes = spread(dashboard, hottest)
            return len(nodes) >= 2 and all(r > 1 for _, r in nodes.values())

        wait_until("reads of the hottest key on several nodes", SETTLE + 3 * REPORT,
                   spread_out)
        extra = stored_keys(dashboard) - base
        assert extra >= sum(f - 1 for f in factors.values()), (extra, factors)
        work.finish()
        # Cool: back to one replica, and the extra copies go after the settle time.
        wait_until("the hottest key back to one replica", WINDOW + COOL + 2 * REPORT,
                   lambda: any(d["key"] == hottest and d["reason"] == "cooled"
                               for d in decisions(dashboard, "dereplicate")))
        wait_until("every replicated key back to one replica", WINDOW + COOL + 2 * REPORT,
                   lambda: {d["key"] for d in decisions(dashboard, "dereplicate")}
                   == {d["key"] for d in decisions(dashboard, "replicate")})
        wait_until("the extra copies dropped", SETTLE + 2 * REPORT,
                   lambda: stored_keys(dashboard) == base)
        work.check_all()
    finally:
        for n in others:
            n.stop()
        code = first.stop()
    text = log.read_text(errors="replace")
    assert code == 0, text
    assert work.errors == [], work.errors
    assert work.reads > 1000 and work.writes > 50, (work.reads, work.writes)
    assert work.lost == [], work.lost[:10]
    assert work.missing == [], work.missing[:10]
