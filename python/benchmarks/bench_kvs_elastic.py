"""KVS elasticity benchmark: a skewed read load on 3 KVS nodes, with and without selective
replication of hot keys, and the time from a fill past the storage mark to a new KVS node
serving.

    .venv/bin/python3 python/benchmarks/bench_kvs_elastic.py     # target/release/cloudburst
    cloudburst bench kvs-elastic --json

Each run starts a cluster of real `cloudburst node` processes on loopback: one playing
scheduler, gateway and monitor (the local provider launches KVS nodes), and three playing
only kvs (`kvs.replication = 2`, `kvs.memory_budget_bytes` = 2 MiB each). It loads 10 000
keys, then reads them from several threads through the client API (one connection each),
key ranks drawn from a Zipf law (s = 1.1: the hottest handful of keys take about a third
of the reads), for a warm-up and a measured window. Two runs in one invocation, the same
seeds: `[kvs_autoscale] hot_key_replication = false`, then `true`.

- ``imbalance_without``/``imbalance_with``: per-node request share over the measured
  window, max / mean of the KVS nodes' own get counts (the shards' ``gets`` counters, as
  the gateway's `/metrics` shows them);
- ``hot_p50_ms_*``/``hot_p99_ms_*``: client-side latency of the gets of the hottest keys;
- ``max_hot_key_replicas``: the largest replication factor any hot-key entry of the
  monitor's state (`/api/snapshot`) carried during the run with replication (its
  ``replicas`` field); without that field, the default ``kvs.replication``;
- ``time_to_new_node_s`` (first run): the readers go on while a writer fills the store to
  52 % of the three nodes' budget, waits until the monitor sees it, then puts a short
  burst up to 66 %; from the burst's last acknowledged put to the launched fourth node
  answering gets (its shards' get counter moving; the gateway samples it once a second,
  so the figure is up to a second late); ``time_to_decision_s``: to the monitor's launch
  decision (``burst_s`` is the burst's length: the mark is passed within it);
- ``missing_reads``: reads answered `None` for a key that exists (every key was loaded
  before the readers start and none is deleted), over both runs; ``read_errors_*``: reads
  answered with an error, by phase (``reads``, ``grow``: the fill and the hand-off) and
  code;
- ``keys_lost``: keys whose final read, at the end of each run, is not the acknowledged
  value.

A binary whose `[kvs_autoscale]` section does not know ``hot_key_replication`` (before
selective replication is merged) is not given the key: its `--dump-config` shows whether it
does, the run says ``hot_key_replication_supported: false``, and both runs are the same
workload on the same build. `--json` makes the last line one JSON object.
"""

import argparse
import asyncio
import bisect
import json
import os
import pathlib
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

import cloudburst  # noqa: E402
from cloudburst.aio import AsyncCloudburstConnection  # noqa: E402

SECRET, TOKEN = "bench-kvs-elastic-secret", "bench-kvs-elastic-token"
KEYS = 10_000
ZIPF_S = 1.1
#: The hottest keys (by rank) whose gets are timed apart.
HOT = 8
READERS = 4
#: The warm-up outlasts one hot-key window plus the settle time (HOT_KEY_CONFIG), so in
#: the run with selective replication the hot keys' reads are spread before the measured
#: window starts.
WARMUP_S, MEASURE_S = 6.0, 8.0
#: Short hot-key windows (the defaults, 10 s and 5 s, are for long-lived clusters): the
#: monitor decides after 2 s of reports and nodes read new replicas 1.5 s later.
HOT_KEY_CONFIG = "hot_key_window_ms = 2000\nhot_key_settle_ms = 1500\n"
REPLICATION = 2
BUDGET = 2 * 1024 * 1024
PAD = "x" * 4096
#: How full the fill makes the three nodes (the monitor adds a node past 60 %): first
#: below the mark, then past it in a short burst.
BELOW_MARK, FILL_TO = 0.52, 0.66
#: Puts in flight while loading and filling.
IN_FLIGHT = 64
#: Bounds: a node's start, a launched node's start and hand-off, the whole run.
START_S, NEW_NODE_S = 30.0, 60.0
POLL_S = 0.2
CONFIG = """
[kvs]
replication = {k}
memory_budget_bytes = {budget}
[autoscale]
min_executors = 0
tick_ms = 200
panic_window_ms = 200
stable_window_ms = 1000
[kvs_autoscale]
max_kvs = 4
stable_window_ms = 1000
cooldown_ms = 1000
downscale_delay_ms = 600000
{extra}"""
NODE = re.compile(r"^cloudburst node (\S+) listening on (\S+)")
DASHBOARD = re.compile(r"^cloudburst dashboard listening on (http://\S+?)/?$")
SHARD_GETS = re.compile(r'^cloudburst_kvs_gets_total\{node="([^"]+)",shard="\d+"\} (\d+)$')


def zipf_sampler(n, s, rng):
    """Ranks 0..n-1 drawn with weight 1 / (rank + 1)^s."""
    cdf, total = [], 0.0
    for r in range(n):
        total += 1.0 / (r + 1) ** s
        cdf.append(total)
    return lambda: min(n - 1, bisect.bisect_left(cdf, rng.random() * total))


def supports_hot_key_replication(binary):
    """Whether the binary's `[kvs_autoscale]` knows `hot_key_replication`."""
    out = subprocess.run([binary, "node", "--dump-config"], capture_output=True, text=True,
                         timeout=30, env={**os.environ, "CLOUDBURST_CLUSTER_SECRET": SECRET})
    return re.search(r"^hot_key_replication\s*=", out.stdout, re.M) is not None


class Node:
    """One `cloudburst node` process; `.id` and `.addr` once it listens."""

    def __init__(self, binary, tmp, name, args):
        self.log = open(tmp / f"{name}.log", "w")
        env = {**os.environ, "NO_COLOR": "1", "RUST_LOG": "warn,cloudburst::actors::monitor=info",
               "CLOUDBURST_CLUSTER_SECRET": SECRET, "CLOUDBURST_TOKEN": TOKEN}
        self.proc = subprocess.Popen([binary, "node", "--ephemeral", *args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, env=env)
        self.found = {}
        deadline = time.monotonic() + START_S
        for line in self.proc.stdout:
            for key, pat in (("node", NODE), ("dashboard", DASHBOARD)):
                m = pat.match(line.strip())
                if m:
                    self.found[key] = m.groups()
            if "node" in self.found and ("--dashboard-listen" not in args
                                         or "dashboard" in self.found):
                break
            if time.monotonic() > deadline:
                break
        if "node" not in self.found:
            self.stop()
            raise RuntimeError(f"{name} did not start; see {self.log.name}")
        self.id, self.addr = self.found["node"]
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Cluster:
    """The gateway/monitor node and three KVS nodes."""

    def __init__(self, binary, tmp, replication_key):
        extra = f"hot_key_replication = {str(replication_key).lower()}\n{HOT_KEY_CONFIG}" \
            if replication_key is not None else ""
        cfg = tmp / "cluster.toml"
        cfg.write_text(CONFIG.format(k=REPLICATION, budget=BUDGET, extra=extra))
        self.nodes = []
        client = f"127.0.0.1:{free_port()}"
        first = self.add(Node(binary, tmp, "first", [
            "--bootstrap", "--roles", "scheduler,gateway,monitor", "--listen", "127.0.0.1:0",
            "--client-listen", client, "--dashboard-listen", "127.0.0.1:0",
            "--config", str(cfg)]))
        self.url, self.dashboard = f"ws://{client}", first.found["dashboard"][0]
        # Fixed names: the hash ring, so where each key lives, is the same in both runs.
        self.kvs = [self.add(Node(binary, tmp, f"kvs{i}", [
            "--roles", "kvs", "--node-id", f"bench-kvs-{i}", "--listen", "127.0.0.1:0",
            "--join", first.addr, "--config", str(cfg)])) for i in range(3)]
        wait_for("three KVS nodes routed", START_S, lambda: len(self.gets()) == 3)

    def add(self, node):
        self.nodes.append(node)
        return node

    def stop(self):
        for n in reversed(self.nodes):
            n.stop()

    def http(self, path):
        req = urllib.request.Request(self.dashboard + path,
                                     headers={"Authorization": f"Bearer {TOKEN}"})
        return urllib.request.urlopen(req, timeout=10).read().decode()

    def gets(self):
        """Per KVS node, its shards' get counters added up (the gateway's last sample)."""
        out = {}
        for line in self.http("/metrics").splitlines():
            m = SHARD_GETS.match(line)
            if m:
                out[m.group(1)] = out.get(m.group(1), 0) + int(m.group(2))
        return out

    def kvs_state(self):
        snapshot = json.loads(self.http("/api/snapshot"))
        return (snapshot.get("autoscale") or {}).get("kvs") or {}


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, bound, check):
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        try:
            if check():
                return time.monotonic()
        except OSError:
            pass
        time.sleep(POLL_S)
    raise RuntimeError(f"timed out after {bound} s waiting for {what}")


async def put_all(url, items):
    """Put every (key, value), `IN_FLIGHT` at a time; retried while the cluster settles."""
    conn = await AsyncCloudburstConnection.connect(url, token=TOKEN)
    try:
        queue = list(items)

        async def worker():
            while queue:
                key, value = queue.pop()
                for attempt in range(50):
                    try:
                        await conn.put_object(key, value)
                        break
                    except cloudburst.CloudburstError:
                        if attempt == 49:
                            raise
                        await asyncio.sleep(0.1)

        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    finally:
        await conn.close()


async def lost_keys(url, expected):
    """Keys whose read is not their acknowledged value."""
    conn = await AsyncCloudburstConnection.connect(url, token=TOKEN)
    try:
        items, lost = list(expected.items()), []

        async def worker():
            while items:
                key, want = items.pop()
                if await conn.get_object(key) != want:
                    lost.append(key)

        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
        return lost
    finally:
        await conn.close()


class Readers:
    """`READERS` threads reading Zipf-drawn keys; counts Nones and wrong values and times
    the gets of the `HOT` hottest keys (while `timing` is set)."""

    def __init__(self, url, seed):
        self.url, self.seed = url, seed
        self.stop, self.timing = threading.Event(), threading.Event()
        #: `reads` or `grow` (the fill and the new node's hand-off): labels the errors.
        self.phase = "reads"
        self.lock = threading.Lock()
        self.hot_ms, self.reads, self.missing, self.wrong, self.errors = [], 0, 0, 0, {}
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(READERS)]
        for t in self.threads:
            t.start()

    def run(self, i):
        draw = zipf_sampler(KEYS, ZIPF_S, random.Random(self.seed + i))
        hot, reads, missing, wrong, errors = [], 0, 0, 0, {}
        with cloudburst.CloudburstConnection(self.url, token=TOKEN) as conn:
            while not self.stop.is_set():
                rank = draw()
                start = time.perf_counter()
                try:
                    got = conn.get_object(f"k{rank}")
                except cloudburst.CloudburstError as e:
                    what = f"{self.phase}:{e.code}"
                    errors[what] = errors.get(what, 0) + 1
                    continue
                took = (time.perf_counter() - start) * 1000
                reads += 1
                if got is None:
                    missing += 1
                elif got != rank:
                    wrong += 1
                if rank < HOT and self.timing.is_set():
                    hot.append(took)
        with self.lock:
            self.hot_ms += hot
            self.reads += reads
            self.missing += missing
            self.wrong += wrong
            for code, n in errors.items():
                self.errors[code] = self.errors.get(code, 0) + n

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)


def pct(xs, q):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))], 3) if xs else None


def hot_replicas(kvs):
    """The largest `replicas` of any hot-key entry in the monitor's KVS state, or None."""
    entries = list(kvs.get("hot_keys") or [])
    for n in kvs.get("nodes") or []:
        entries += n.get("hot_keys") or []
    seen = [e["replicas"] for e in entries if isinstance(e, dict) and "replicas" in e]
    return max(seen) if seen else None


def skewed_reads(cluster, seed, label):
    """The read phase: per-node shares and hot-key latencies over the measured window."""
    readers = Readers(cluster.url, seed)
    replicas, stop = [], threading.Event()

    def watch():
        while not stop.wait(0.5):
            try:
                r = hot_replicas(cluster.kvs_state())
            except (OSError, ValueError):
                continue
            if r is not None:
                replicas.append(r)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    time.sleep(WARMUP_S)
    before = cluster.gets()
    readers.timing.set()
    time.sleep(MEASURE_S)
    readers.timing.clear()
    after = cluster.gets()
    stop.set()
    watcher.join(10)
    share = {n: after.get(n, 0) - before.get(n, 0) for n in (k.id for k in cluster.kvs)}
    mean = sum(share.values()) / len(share)
    print(f"{label}: gets per node {share}", flush=True)
    return readers, {
        "imbalance": round(max(share.values()) / mean, 3) if mean else None,
        "reads_per_s": round(sum(share.values()) / MEASURE_S),
        "max_replicas": max(replicas) if replicas else None,
    }


def storage(cluster):
    return cluster.kvs_state().get("last", {}).get("storage", 0.0)


def fill_past_the_mark(cluster):
    """While the readers go on: fill to `BELOW_MARK` of the budget and wait until the
    monitor sees it, then put the rest up to `FILL_TO` (a short burst, so the mark is
    passed at its end). The times to the launch decision and to the new node's first
    gets, from the burst's end."""
    per_key = REPLICATION * (len(PAD) + 64)

    def keys_up_to(fraction, first):
        stored = cluster.kvs_state().get("last", {}).get("bytes", 0)
        count = max(1, int((fraction * 3 * BUDGET - stored) / per_key) + 1)
        return {f"f{i}": [i, PAD] for i in range(first, first + count)}

    fill = keys_up_to(BELOW_MARK, 0)
    asyncio.run(put_all(cluster.url, fill.items()))
    wait_for("the monitor seeing the fill", START_S, lambda: storage(cluster) > BELOW_MARK - 0.05)
    burst = keys_up_to(FILL_TO, len(fill))
    started = time.monotonic()
    asyncio.run(put_all(cluster.url, burst.items()))
    filled, filled_ms = time.monotonic(), time.time() * 1000
    fill.update(burst)
    old = {k.id for k in cluster.kvs}
    served = wait_for("a new KVS node answering gets", NEW_NODE_S,
                      lambda: any(n not in old and g > 0 for n, g in cluster.gets().items()))
    decisions = [d for d in cluster.kvs_state().get("decisions", [])
                 if d["action"] == "launch" and d["reason"] == "storage"]
    decided = (decisions[0]["at_ms"] - filled_ms) / 1000 if decisions else None
    return fill, {"fill_keys": len(fill), "burst_s": round(filled - started, 2),
                  "time_to_new_node_s": round(served - filled, 2),
                  "time_to_decision_s": round(decided, 2) if decided is not None else None}


def run(binary, replication, seed, grow):
    """One cluster: load, skewed reads, (`grow`) the fill; then every key read back."""
    with tempfile.TemporaryDirectory(prefix="cloudburst-bench-kvs-") as tmp:
        cluster = Cluster(binary, pathlib.Path(tmp), replication)
        try:
            keys = {f"k{i}": i for i in range(KEYS)}
            asyncio.run(put_all(cluster.url, keys.items()))
            label = "with" if replication else "without"
            readers, out = skewed_reads(cluster, seed, label)
            if grow:
                readers.phase = "grow"
                fill, grown = fill_past_the_mark(cluster)
                keys.update(fill)
                out.update(grown)
                time.sleep(2.0)  # reads go on through the hand-off
            readers.finish()
            out.update({"hot_p50_ms": pct(readers.hot_ms, 0.5),
                        "hot_p99_ms": pct(readers.hot_ms, 0.99), "hot_gets": len(readers.hot_ms)})
            lost = asyncio.run(lost_keys(cluster.url, keys))
            launches = [d for d in cluster.kvs_state().get("decisions", [])
                        if d["action"] == "launch"]
            out.update({"missing_reads": readers.missing, "wrong_reads": readers.wrong,
                        "read_errors": readers.errors, "reads": readers.reads,
                        "keys_lost": len(lost), "kvs_launches": len(launches)})
            return out
        finally:
            cluster.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--binary", default=str(ROOT / "target/release/cloudburst"))
    p.add_argument("--json", action="store_true")
    p.add_argument("--seed", type=int, default=21)
    a = p.parse_args()
    started = time.monotonic()
    supported = supports_hot_key_replication(a.binary)
    without = run(a.binary, False if supported else None, a.seed, grow=True)
    print(f"without: {without}", flush=True)
    with_ = run(a.binary, True if supported else None, a.seed, grow=False)
    print(f"with: {with_}", flush=True)
    default = REPLICATION
    result = {
        "keys_lost": without["keys_lost"] + with_["keys_lost"],
        "missing_reads": without["missing_reads"] + with_["missing_reads"],
        "wrong_reads": without["wrong_reads"] + with_["wrong_reads"],
        "imbalance_without": without["imbalance"],
        "imbalance_with": with_["imbalance"],
        "max_hot_key_replicas": with_["max_replicas"] or default,
        "time_to_new_node_s": without["time_to_new_node_s"],
        "time_to_decision_s": without["time_to_decision_s"],
        "hot_p50_ms_without": without["hot_p50_ms"], "hot_p99_ms_without": without["hot_p99_ms"],
        "hot_p50_ms_with": with_["hot_p50_ms"], "hot_p99_ms_with": with_["hot_p99_ms"],
        "reads_per_s_without": without["reads_per_s"], "reads_per_s_with": with_["reads_per_s"],
        "reads": without["reads"] + with_["reads"],
        "hot_gets_without": without["hot_gets"], "hot_gets_with": with_["hot_gets"],
        "read_errors_without": without["read_errors"], "read_errors_with": with_["read_errors"],
        "fill_keys": without["fill_keys"], "burst_s": without["burst_s"],
        "kvs_launches_without": without["kvs_launches"], "kvs_launches_with": with_["kvs_launches"],
        "hot_key_replication_supported": supported,
        "keys": KEYS, "zipf_s": ZIPF_S, "readers": READERS, "replication": REPLICATION,
        "memory_budget_bytes": BUDGET, "seconds": round(time.monotonic() - started, 1),
    }
    if a.json:
        print(json.dumps(result), flush=True)
    else:
        for k, v in result.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
