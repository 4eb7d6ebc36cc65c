"""The KVS tier grows with its data and shrinks when the data goes, losing nothing.

Two `cloudburst node`s play kvs at replication 2 with a small memory budget (the first also
scheduler, gateway and monitor, with the local provider; no executor is needed). A writer
fills the store past 60 % of the budget: the monitor launches a third KVS node and keys
move to it. The writer then deletes the filler: after the downscale delay the monitor asks
the launched node to leave; it hands its keys off, leaves, and is terminated. Through it all
a checker reads every acknowledged key and compares it with its last acknowledged value
(kept keys carry a counter the writer only raises): 0 lost (an older value, or nothing, read
back) and 0 missing (`None` for a key that exists).

Every time bound is a multiple of the configured windows plus what a node takes to start
and to leave. Run against a binary without KVS elasticity (`CLOUDBURST_BIN=...` of main)
the test fails: that binary refuses the `[kvs_autoscale]` section, and without it no node is
ever launched."""

import json
import pathlib
import re
import threading
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

import dashboard_browser
import waiting
from cloudburst import CloudburstConnection
from conftest import Proc, http_get
from nodes import METRIC, free_port, start_node

SECRET = "kvs-elastic-secret"
TOKEN = "kvs-elastic-token"
TICK_MS, STABLE_MS, DELAY_MS, COOLDOWN_MS = 200, 1000, 3000, 1000
BUDGET = 256 * 1024
CONFIG = f"""
[kvs]
replication = 2
memory_budget_bytes = {BUDGET}
[autoscale]
min_executors = 0
tick_ms = {TICK_MS}
panic_window_ms = {TICK_MS}
stable_window_ms = {STABLE_MS}
[kvs_autoscale]
stable_window_ms = {STABLE_MS}
downscale_delay_ms = {DELAY_MS}
cooldown_ms = {COOLDOWN_MS}
idle_occupancy = 0.3
busy_occupancy = 0.95
# Storage elasticity alone: the decision list below is exact, and selective replication of
# hot keys has its own test (test_kvs_hot_keys.py).
hot_key_replication = false
"""
STABLE, DELAY, COOLDOWN = STABLE_MS / 1000, DELAY_MS / 1000, COOLDOWN_MS / 1000
#: What a launched KVS node takes to start and join, and a leaving one to hand off and
#: exit, on a loaded 2-core machine.
LAUNCH = 30.0
FILLER = 160  # keys of 1 KiB, stored twice: 320 KiB of 512 KiB is 62 %
KEPT = 20
PAD = "x" * 1024
DASHBOARD = re.compile(r"dashboard\S* .*?(http://\S+?)/?$")
ADMIN = re.compile(r"^cloudburst admin listening on (http://\S+?)/?$")
ARTIFACTS = pathlib.Path(__file__).resolve().parents[2] / "test-artifacts"
#: The decisions of the test, in order.
DECIDED = [("launch", "storage"), ("drain", "underused"), ("terminate", "drained")]


def decision(log, action, reason):
    """Whether the monitor's log holds a KVS decision `action` for `reason`."""
    pat = re.compile(rf'kvs autoscale decision.*action="?{action}"?.*reason="?{reason}')
    return any(pat.search(line) for line in log.read_text(errors="replace").splitlines())


def wait_until(what, bound, check):
    """Wait (one tick between checks) until `check()` is true, at most `bound` seconds."""
    def holds():
        if not check():
            raise waiting.NotYet(what)

    waiting.wait_until(holds, what, bound, interval=TICK_MS / 1000)


def verdict(want, got, now):
    """What a read `got` of a key whose last acknowledged value was `want` when the read
    was sent (and `now` when it came back) says: "missing" (None for a key that exists),
    "lost" (a value older than the acknowledged one), or None (fine)."""
    if want is None:
        return None
    if got is None:
        return "missing" if now is not None else None
    return "lost" if got[0] < want[0] else None


def test_the_checker_sees_a_lost_write_and_a_missing_key():
    assert verdict((5, ""), (4, ""), (5, "")) == "lost"
    assert verdict((5, ""), None, (5, "")) == "missing"
    assert verdict((5, ""), None, None) is None  # deleted meanwhile
    assert verdict((5, ""), (6, ""), (6, "")) is None
    assert verdict(None, None, None) is None


class Checker:
    """Reads every acknowledged key in a loop: a kept key must hold at least its last
    acknowledged counter, a filler key its value until its delete was acknowledged."""

    def __init__(self, client):
        self.client = client
        self.acked = {}  # key -> last acknowledged value (None: acknowledged delete)
        self.lock = threading.Lock()
        self.lost, self.missing, self.reads = [], [], 0
        self.phase = "fill"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def ack(self, key, value):
        with self.lock:
            self.acked[key] = value

    def check(self, cloud, key):
        with self.lock:
            want = self.acked.get(key)
        got = cloud.get_object(key)
        self.reads += 1
        with self.lock:
            # A delete acknowledged after the read was sent explains a None.
            now = self.acked.get(key)
        wrong = verdict(want, got, now)
        if wrong == "missing":
            self.missing.append((key, self.phase))
        elif wrong == "lost":
            self.lost.append((key, got, want[0]))

    def run(self):
        with CloudburstConnection(self.client, token=TOKEN) as cloud:
            while not self.stop.is_set():
                with self.lock:
                    keys = list(self.acked)
                for key in keys:
                    self.check(cloud, key)

    def finish(self):
        self.stop.set()
        self.thread.join(60)
        with CloudburstConnection(self.client, token=TOKEN) as cloud:
            for key in list(self.acked):
                self.check(cloud, key)


def kvs_nodes(dashboard):
    """KVS nodes holding keys, from the gateway's per-shard gauges."""
    req = urllib.request.Request(dashboard + "/metrics",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    text = urllib.request.urlopen(req, timeout=10).read().decode()
    found = (METRIC.match(line) for line in text.splitlines())
    return {m.group(2) for m in found
            if m and m.group(1) == "cloudburst_kvs_keys" and int(m.group(4)) > 0}


def kvs_state(dashboard):
    """The KVS part of the dashboard's autoscaling state (the acting monitor's)."""
    req = urllib.request.Request(dashboard + "/api/snapshot",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    snapshot = json.loads(urllib.request.urlopen(req, timeout=10).read())
    return (snapshot.get("autoscale") or {}).get("kvs") or {}


def kvs_panels(state):
    """What the page's KVS panels do not show yet of the end of the test: the two nodes
    left, with their budget, one holding data and serving the checker's reads; hot keys of
    the test with a replication factor of at least k = 2; the decisions (newest first);
    the node count chart at 2 now and 3 at its peak."""
    missing = []
    nodes = state["kvsNodes"]
    if len(nodes) != 2 or any(n["budget"] != BUDGET for n in nodes):
        missing.append(f"two KVS nodes with a budget of {BUDGET} (shows {nodes})")
    # The gateway's node holds a replica of every key: it serves the checker's reads.
    if not any(n["bytes"] > 0 and n["requests"] > 0 for n in nodes):
        missing.append(f"bytes held and requests served (shows {nodes})")
    hot = state["hotKeys"]
    ours = re.compile(r"^(kept|fill)/\d+$|^probe$")
    if not hot or not all(ours.match(h["key"]) and h["replicas"] >= 2 for h in hot):
        missing.append(f"hot keys of the test with replicas >= 2 (shows {hot})")
    if [tuple(d) for d in reversed(state["kvsDecisions"])] != DECIDED:
        missing.append(f"decisions {DECIDED} (shows {state['kvsDecisions']})")
    legend = state["kvsLegend"]
    if "live 2" not in legend or "max 3" not in legend:
        missing.append(f"2 KVS nodes now, 3 at the peak (legend {legend!r})")
    return missing


def admin_metrics(admin, node):
    """What the first node's admin `/metrics` says of its KVS shards and its monitor."""
    status, _, text = http_get(admin + "/metrics", TOKEN)
    assert status == 200, text
    fams = {f.name: f for f in text_string_to_metric_families(text)}

    def value(name, **labels):
        return [s.value for s in fams[name].samples if s.labels == labels
                and not s.name.endswith("_created")]

    return {
        "budget": int(value("cloudburst_kvs_node_budget_bytes", node=node)[0]),
        "gets": value("cloudburst_kvs_node_gets", node=node)[0] > 0,
        "active": int(value("cloudburst_kvs_autoscale_nodes", state="active")[0]),
        "decisions": {(s.labels["action"], s.labels["reason"]): int(s.value)
                      for s in fams["cloudburst_kvs_autoscale_decisions"].samples},
    }


def writable(cloud):
    """Whether a put is accepted (k = 2 refuses writes until both KVS nodes are routed)."""
    try:
        cloud.put_object("probe", (0, ""))
        return True
    except Exception:
        return False


def test_the_kvs_grows_past_the_storage_mark_and_shrinks_after_deletes_losing_nothing(tmp_path):
    config = tmp_path / "cluster.toml"
    config.write_text(CONFIG)
    client = f"127.0.0.1:{free_port()}"
    env = {"CLOUDBURST_TOKEN": TOKEN, "RUST_LOG": "warn,cloudburst::actors::monitor=info"}
    log = tmp_path / "first.log"
    first = Proc(["node", "--bootstrap", "--roles", "kvs,scheduler,gateway,monitor",
                  "--ephemeral", "--listen", "127.0.0.1:0", "--client-listen", client,
                  "--dashboard-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
                  "--config", str(config)],
                 log, env={"CLOUDBURST_CLUSTER_SECRET": SECRET, **env})
    second = None
    try:
        found = first.wait_for({"dashboard": DASHBOARD, "admin": ADMIN,
                                "id": re.compile(r"^cloudburst node (\S+) listening on "),
                                "addr": re.compile(r"^cloudburst node \S+ listening on (\S+)")})
        assert all(found.values()), first.log_text()
        dashboard = found["dashboard"]
        second = start_node(tmp_path / "second.log", SECRET, "--roles", "kvs", "--ephemeral",
                            "--listen", "127.0.0.1:0", "--join", found["addr"],
                            "--config", str(config))
        checker = Checker(f"ws://{client}")
        with CloudburstConnection(f"ws://{client}", token=TOKEN) as cloud:
            # Both KVS nodes in the routing before the first write (k = 2 needs both).
            wait_until("two kvs nodes", LAUNCH, lambda: writable(cloud))
            checker.thread.start()
            counter = 0
            for i in range(FILLER):
                counter += 1
                cloud.put_object(f"fill/{i}", (counter, PAD))
                checker.ack(f"fill/{i}", (counter, PAD))
                cloud.put_object(f"kept/{i % KEPT}", (counter, ""))
                checker.ack(f"kept/{i % KEPT}", (counter, ""))
            # Past 60 %: a third node is launched and keys move to it.
            wait_until("a kvs launch", 4 * STABLE + LAUNCH,
                       lambda: decision(log, "launch", "storage"))
            checker.phase = "grow"
            wait_until("keys on a third node", 4 * STABLE + LAUNCH,
                       lambda: len(kvs_nodes(dashboard)) == 3)
            checker.phase = "delete"
            for i in range(FILLER):
                counter += 1
                # Expected gone from the moment the delete is sent.
                checker.ack(f"fill/{i}", None)
                cloud.delete_object(f"fill/{i}")
                cloud.put_object(f"kept/{i % KEPT}", (counter, ""))
                checker.ack(f"kept/{i % KEPT}", (counter, ""))
            # Under the low marks for the delay: the launched node leaves and goes.
            checker.phase = "shrink"
            wait_until("a kvs node drained", DELAY + 4 * STABLE + 2 * COOLDOWN + LAUNCH,
                       lambda: decision(log, "drain", "underused"))
            wait_until("the drained node terminated", LAUNCH,
                       lambda: decision(log, "terminate", "drained"))
            for key in [f"kept/{k}" for k in range(KEPT)]:
                counter += 1
                cloud.put_object(key, (counter, ""))
                checker.ack(key, (counter, ""))
            # The dashboard shows the decisions with their reasons (its snapshot lags its
            # sampling period), and each node's bytes against its budget and its hot keys.
            wait_until(f"the dashboard showing {DECIDED}", 4 * STABLE,
                       lambda: [(d["action"], d["reason"])
                                for d in kvs_state(dashboard).get("decisions", [])] == DECIDED)
            wait_until("two nodes reporting", 4 * STABLE,
                       lambda: len(kvs_state(dashboard).get("nodes", [])) == 2)
            nodes = kvs_state(dashboard)["nodes"]
            assert all(n["budget_bytes"] == BUDGET for n in nodes), nodes
            assert any(n["hot_keys"] for n in nodes), nodes
            # The page shows the same, live; the first node's admin port counts it.
            dashboard_browser.check_dashboard(
                dashboard + "/", TOKEN, texts=["storage", "underused", "256.0 KiB"],
                check=kvs_panels, timeout=8 * STABLE,
                screenshot=str(ARTIFACTS / "dashboard-kvs-elastic.png"))
            assert admin_metrics(found["admin"], found["id"]) == {
                "budget": BUDGET, "gets": True, "active": 2,
                "decisions": {d: 1 for d in DECIDED}}
        checker.finish()
    finally:
        if second is not None:
            second.stop()
        code = first.stop()
    text = log.read_text(errors="replace")
    assert code == 0, text
    assert checker.reads > FILLER, checker.reads
    assert checker.lost == [], checker.lost[:10]
    assert checker.missing == [], checker.missing[:10]
    launches = re.findall(r"kvs autoscale decision.*action=\"?launch", text)
    assert len(launches) == 1, launches
