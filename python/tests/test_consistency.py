"""Consistency modes on a real two-node cluster (two `cloudburst node` processes, one
executor each with its own cache): a randomized workload whose functions record what they
read and wrote, checked for the anomalies each mode forbids (repeatable read: two reads of
one key in one call return one version; causal: no read returns a version older than one
the reading function's causal past read or wrote), plus targeted tests. The same workload
under LWW must show anomalies — proof that the checker sees them."""

import collections
import os
import random
import re
import socket
import threading
import urllib.request

import pytest

import cloudburst
from cloudburst import CAUSAL, NORMAL, REPEATABLE_READ, CloudburstConnection, Concurrent

from conftest import Proc, auth_headers
from nodes import bootstrap_unless_joining
from waiting import NotYet, wait_until

NODE_READY = re.compile(r"^cloudburst node \S+ listening on (\S+) generation \d+$")
SECRET = "consistency-test-secret"
KEYS = ("k0", "k1", "k2")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(log, *args):
    """One `cloudburst node` process, once it listens; its peer address is `.addr`."""
    node = Proc(["node", *args, *bootstrap_unless_joining(args)], log, env={"CLOUDBURST_CLUSTER_SECRET": SECRET})
    node.addr = node.wait_for({"addr": NODE_READY})["addr"]
    if node.addr is None:
        node.stop()
        raise AssertionError("node did not start: " + node.log_text())
    return node


def retry(fn, limit=30.0):
    """Call `fn` until it stops raising a retryable error (the cluster is still forming)."""
    return wait_until(fn, "the cluster forming", limit,
                      retry_on=(cloudburst.UnavailableError, cloudburst.CloudburstTimeout))


# ---- the workload's functions (pickled by value by the client) -------------------------

def _ids(v):
    """Version ids of a stored value: [id, parents] lists; a Concurrent tuple of them."""
    if v is None:
        return []
    if isinstance(v, tuple):
        return sorted(x[0] for x in v)
    return [v[0]]


def make_step(name):
    """A DAG function that reads 1-2 random keys, and half the time reads then writes one,
    recording every read (the version ids it saw) and write (the new id and its parents:
    what it read of that key just before). Returns everything its upstreams recorded, plus
    its own events."""

    def step(cb, *inputs):
        import random as rnd
        import time as tm
        if isinstance(inputs[0], dict):
            seed, prefix = inputs[0]["seed"], inputs[0]["prefix"]
            past, seen = [], set()
            for up in inputs:
                for e in up["events"]:
                    if (e[0], e[1]) not in seen:
                        seen.add((e[0], e[1]))
                        past.append(e)
        else:
            seed, prefix = inputs
            past = []
        rng = rnd.Random("%s/%s" % (seed, name))
        node = cb.getid().split("/")[0]
        events = []
        for _ in range(rng.randint(1, 2)):
            k = prefix + rng.choice(KEYS)
            events.append((name, len(events), "r", k, _ids(cb.get(k)), node))
            tm.sleep(0.001)
        if rng.random() < 0.5:
            k = prefix + rng.choice(KEYS)
            got = _ids(cb.get(k))
            events.append((name, len(events), "r", k, got, node))
            tm.sleep(0.001)
            new = "%s/%s" % (seed, name)
            cb.put(k, [new, got])
            events.append((name, len(events), "w", k, [new], got))
        return {"seed": seed, "prefix": prefix, "events": past + events}

    return step


def writer(cb, seed, prefix, key):
    """A concurrent writer: read-modify-write of one key."""
    k = prefix + key
    got = _ids(cb.get(k))
    new = "%s/w" % seed
    cb.put(k, [new, got])
    return [("w", 0, "w", k, [new], got)]


def whoami(cb):
    return cb.getid().split("/")[0]


DAGS = {
    "cc_chain2": (["s0", "s1"], [("s0", "s1")]),
    "cc_chain3": (["s0", "s1", "s2"], [("s0", "s1"), ("s1", "s2")]),
    "cc_diamond": (["s0", "s1", "s2", "s3"], [("s0", "s1"), ("s0", "s2"), ("s1", "s3"), ("s2", "s3")]),
    "cc_chain5": (["s0", "s1", "s2", "s3", "s4"],
                  [("s0", "s1"), ("s1", "s2"), ("s2", "s3"), ("s3", "s4")]),
}


def ancestors(dag):
    functions, edges = DAGS[dag]
    up = collections.defaultdict(set)
    for a, b in edges:
        up[b].add(a)
    out = {}
    for f in functions:
        todo, seen = list(up[f]), set()
        while todo:
            x = todo.pop()
            if x not in seen:
                seen.add(x)
                todo.extend(up[x])
        out[f] = seen
    return out


# ---- the checker ---------------------------------------------------------------------

def repeatable_read_anomalies(histories):
    """Sessions in which two reads of one key returned different versions."""
    bad = []
    for dag, events in histories:
        reads = collections.defaultdict(set)
        for fn, _, kind, key, ids, _ in events:
            if kind == "r":
                reads[key].add(tuple(ids))
        bad.extend((dag, key, sorted(v)) for key, v in reads.items() if len(v) > 1)
    return bad


def causal_anomalies(histories, writes):
    """Reads that returned versions not at least as new as a version of the key that the
    reading function's causal past (its upstream functions, its own earlier events) read or
    wrote: u is covered by a read returning R if u is in R or an ancestor (through the
    writes' parents) of a version in R."""
    parents = {}
    for _, _, kind, _, ids, got in writes:
        if kind == "w":
            parents[ids[0]] = got

    def descends(x, u):
        todo, seen = [x], set()
        while todo:
            y = todo.pop()
            if y == u:
                return True
            if y not in seen:
                seen.add(y)
                todo.extend(parents.get(y, ()))
        return False

    bad = []
    for dag, events in histories:
        anc = ancestors(dag)
        for fn, n, kind, key, ids, _ in events:
            if kind != "r":
                continue
            observed = {
                u
                for f2, n2, _, k2, ids2, _ in events
                if k2 == key and (f2 in anc[fn] or (f2 == fn and n2 < n))
                for u in ids2
            }
            for u in observed:
                if not any(descends(x, u) for x in ids):
                    bad.append((dag, fn, key, u, ids))
    return bad


# ---- fixtures ------------------------------------------------------------------------

#: The nodes' failure detector is slow to suspect: these tests kill no node, and a node
#: starved of the CPU for a second on a loaded 2-core machine would otherwise be suspected
#: and a session's reads from its cache fail as unavailable (seen at load average 18).
PATIENT_MEMBERSHIP = "[membership]\nsuspect_after_ms = 5000\ndead_after_ms = 10000\n"


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    logs = tmp_path_factory.mktemp("consistency")
    config = logs / "cloudburst.toml"
    config.write_text(PATIENT_MEMBERSHIP)
    client_port, dash_port = free_port(), free_port()
    a = start_node(logs / "a.log", "--roles", "kvs,scheduler,executor,gateway",
                   "--listen", "127.0.0.1:0", "--client-listen", "127.0.0.1:%d" % client_port,
                   "--dashboard-listen", "127.0.0.1:%d" % dash_port, "--workers", "2",
                   "--config", str(config))
    b = None
    try:
        b = start_node(logs / "b.log", "--roles", "executor", "--listen", "127.0.0.1:0",
                       "--join", a.addr, "--workers", "2", "--config", str(config))
        url = "ws://127.0.0.1:%d" % client_port
        cloud = retry(lambda: CloudburstConnection(url))
        retry(lambda: cloud.register(whoami, "cc_whoami"))
        nodes = set()

        def both_executors_answer():
            nodes.add(retry(lambda: cloud.exec_func("cc_whoami", [], direct_response=True)))
            if len(nodes) < 2:
                raise NotYet(f"only {nodes} took calls")

        wait_until(both_executors_answer, "the second executor taking calls", 60)
        for name in ("s0", "s1", "s2", "s3", "s4"):
            cloud.register(make_step(name), name)
        cloud.register(writer, "cc_writer")
        for dag, (functions, edges) in DAGS.items():
            cloud.register_dag(dag, functions, edges)
        yield {"url": url, "cloud": cloud, "dashboard": "http://127.0.0.1:%d" % dash_port}
        cloud.close()
    finally:
        if b is not None:
            b.stop()
        a.stop()


def run_workload(url, mode, prefix, calls, clients=4, writers=2):
    """`calls` DAG calls from `clients` threads while `writers` threads update the keys;
    returns the DAG histories and every write."""
    histories, writes, errors = [], [], []
    lock = threading.Lock()
    stop = threading.Event()

    def client(i):
        cloud = CloudburstConnection(url)
        rng = random.Random(i)
        try:
            for j in range(i, calls, clients):
                dag = rng.choice(sorted(DAGS))
                seed = "%s-%d" % (prefix, j)
                out = cloud.call_dag(dag, {"s0": [seed, prefix]}, consistency=mode,
                                     direct_response=True)
                with lock:
                    histories.append((dag, out["events"]))
                    writes.extend(e for e in out["events"] if e[2] == "w")
        except Exception as e:  # reported below
            errors.append(repr(e))
        finally:
            cloud.close()

    def write_loop(i):
        cloud = CloudburstConnection(url)
        rng = random.Random(100 + i)
        n = 0
        try:
            while not stop.is_set():
                n += 1
                seed = "%s-w%d-%d" % (prefix, i, n)
                out = cloud.exec_func("cc_writer", [seed, prefix, rng.choice(KEYS)],
                                      direct_response=True, consistency=mode)
                with lock:
                    writes.extend(out)
        except Exception as e:
            errors.append(repr(e))
        finally:
            cloud.close()

    workers = [threading.Thread(target=write_loop, args=(i,)) for i in range(writers)]
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in workers + threads:
        t.start()
    for t in threads:
        t.join(600)
    stop.set()
    for t in workers:
        t.join(60)
    assert not errors, errors[:3]
    assert len(histories) == calls
    with lock:
        all_writes = writes + [e for _, ev in histories for e in ev if e[2] == "w"]
    return histories, all_writes


def spread(histories):
    """Sessions whose functions ran on more than one node."""
    return sum(1 for _, ev in histories if len({e[5] for e in ev if e[2] == "r"}) > 1)


# ---- the checker's runs --------------------------------------------------------------

#: DAG calls per mode. 500 keep the checker far from blind: under LWW they show hundreds of
#: repeatable-read and causal anomalies (789 and 178 in one run), so a mode that lost its
#: guarantee would show many too; a longer run: CLOUDBURST_CONSISTENCY_CALLS=2000.
CALLS = int(os.environ.get("CLOUDBURST_CONSISTENCY_CALLS", "500"))


def test_lww_shows_both_anomalies(two_nodes):
    """The checker is not blind: under LWW, reads in one session disagree and sessions
    read versions older than what they already saw."""
    histories, writes = run_workload(two_nodes["url"], NORMAL, "lww/", CALLS)
    assert spread(histories) > 0, "no session ran on both nodes"
    rr = repeatable_read_anomalies(histories)
    causal = causal_anomalies(histories, writes)
    print("LWW: %d calls, %d writes, %d repeatable-read and %d causal anomalies"
          % (len(histories), len(writes), len(rr), len(causal)))
    assert rr, "LWW showed no repeatable-read anomaly"
    assert causal, "LWW showed no causal anomaly"


def test_repeatable_read_has_no_anomaly(two_nodes):
    histories, writes = run_workload(two_nodes["url"], REPEATABLE_READ, "rr/", CALLS)
    assert spread(histories) > 0, "no session ran on both nodes"
    assert repeatable_read_anomalies(histories) == []
    print("repeatable read: %d calls (%d across nodes), %d writes, 0 anomalies"
          % (len(histories), spread(histories), len(writes)))


def test_causal_has_no_anomaly(two_nodes):
    histories, writes = run_workload(two_nodes["url"], CAUSAL, "causal/", CALLS)
    assert spread(histories) > 0, "no session ran on both nodes"
    assert causal_anomalies(histories, writes) == []
    concurrent = sum(1 for _, ev in histories for e in ev if e[2] == "r" and len(e[4]) > 1)
    print("causal: %d calls (%d across nodes), %d writes, %d reads of concurrent versions, "
          "0 anomalies" % (len(histories), spread(histories), len(writes), concurrent))


# ---- targeted tests --------------------------------------------------------------------

def read_twice(cb, key):
    """Read `key`, wait, report the node and what was read."""
    import time as tm
    v = cb.get(key)
    tm.sleep(0.003)
    return [cb.getid().split("/")[0], v, cb.get(key)]


def read_again(cb, key, first):
    return first + [cb.getid().split("/")[0], cb.get(key)]


def test_two_nodes_read_one_version_under_repeatable_read(two_nodes):
    """rr_a -> rr_b on different nodes read `hot` while a writer updates it: one version
    under repeatable read; under LWW they can differ (and do, here)."""
    cloud = two_nodes["cloud"]
    cloud.register(read_twice, "rr_a")
    cloud.register(read_again, "rr_b")
    cloud.register_dag("rr_pair", ["rr_a", "rr_b"], [("rr_a", "rr_b")])
    cloud.put_object("hot", -1)
    stop = threading.Event()

    def bump():
        with CloudburstConnection(two_nodes["url"]) as writer_conn:
            i = 0
            while not stop.is_set():
                i += 1
                writer_conn.put_object("hot", i)

    bumper = threading.Thread(target=bump)
    bumper.start()
    differ = {}
    try:
        for mode in (REPEATABLE_READ, NORMAL):
            seen = [cloud.call_dag("rr_pair", {"rr_a": ["hot"], "rr_b": ["hot"]},
                                   consistency=mode, direct_response=True)
                    for _ in range(300)]
            assert any(o[0] != o[3] for o in seen), "the two functions never ran apart"
            differ[mode] = sum(1 for o in seen if not (o[1] == o[2] == o[4]))
    finally:
        stop.set()
        bumper.join(30)
    assert differ[REPEATABLE_READ] == 0
    assert differ[NORMAL] > 0, "LWW never saw the writer between two reads"


def causal_write_a(cb, tag):
    cb.get("ca")  # read first: the write then supersedes what it read
    cb.put("ca", tag)
    return tag


def causal_write_b(cb, tag, _upstream):
    a = cb.get("ca")
    cb.get("cb")
    cb.put("cb", [tag, a])
    return tag


def causal_read_b_then_a(cb, _):
    b = cb.get("cb")
    return [cb.getid().split("/")[0], b, cb.get("ca")]


def test_causal_chain_is_seen_in_order_on_another_node(two_nodes):
    """write(a) -> read(a), write(b) in one session; a later session reading b then a (on
    any node, including the other one) sees a at least as new as b's dependency."""
    cloud = two_nodes["cloud"]
    cloud.register(causal_write_a, "c_wa")
    cloud.register(causal_write_b, "c_wb")
    cloud.register(causal_read_b_then_a, "c_rba")
    cloud.register_dag("c_chain", ["c_wa", "c_wb"], [("c_wa", "c_wb")])
    nodes = set()
    for i in range(200):
        cloud.call_dag("c_chain", {"c_wa": [i], "c_wb": [i]}, consistency=CAUSAL,
                       direct_response=True)
        node, b, a = cloud.exec_func("c_rba", [i], consistency=CAUSAL, direct_response=True)
        nodes.add(node)
        assert b == [i, i], (i, b)  # b carries the a it read: the same session's write
        assert a == i, "read b (which depends on a=%d) then a=%r" % (i, a)
    assert len(nodes) == 2, nodes


def blind_put(cb, key, value):
    cb.put(key, value)


def resolve(cb, key):
    vals = cb.get(key)
    cb.put(key, sorted(vals) if isinstance(vals, Concurrent) else vals)
    return vals


def test_concurrent_causal_writes_are_kept_and_visible(two_nodes):
    """Two blind writes (neither session read the key) are concurrent: both are kept and a
    read returns both; a write by a session that read them supersedes them."""
    cloud = two_nodes["cloud"]
    cloud.register(blind_put, "c_blind")
    cloud.register(resolve, "c_resolve")
    for v in ("x", "y"):
        cloud.exec_func("c_blind", ["conc", v], consistency=CAUSAL, direct_response=True)
    both = cloud.get_object("conc")
    assert isinstance(both, Concurrent) and sorted(both) == ["x", "y"], both
    seen = cloud.exec_func("c_resolve", ["conc"], consistency=CAUSAL, direct_response=True)
    assert isinstance(seen, Concurrent) and sorted(seen) == ["x", "y"]
    assert cloud.get_object("conc") == ["x", "y"], "the write that read both supersedes them"
    # A causal write to a key holding a plain (LWW) value is refused with a clear error.
    cloud.put_object("plain", 1)
    with pytest.raises(cloudburst.FunctionError) as e:
        cloud.exec_func("c_blind", ["plain", 2], consistency=CAUSAL, direct_response=True)
    assert e.value.code == "function_error" and "non-causal" in str(e.value)
    # The refusal reached the function as the client package's class, with its code.
    assert e.value.exception_type == "InvalidRequestError", e.value


def pinned_keys(dashboard):
    req = urllib.request.Request(dashboard + "/metrics", headers=auth_headers())
    text = urllib.request.urlopen(req, timeout=10).read().decode()
    return {m.group(1): int(float(m.group(2))) for m in re.finditer(
        r'^cloudburst_cache_pinned_keys\{node="([^"]+)"\} (\S+)$', text, re.M)}


def test_pins_are_released_when_calls_complete(two_nodes):
    cloud = two_nodes["cloud"]
    run_workload(two_nodes["url"], REPEATABLE_READ, "rr2/", 100, clients=2, writers=1)

    def released():
        pins = pinned_keys(two_nodes["dashboard"])
        if len(pins) != 2 or any(pins.values()):
            raise NotYet("pins left behind: %r" % pins)

    wait_until(released, "pins released", 30, interval=0.5)
    assert cloud.get_object("rr2/k0") is not None or cloud.get_object("rr2/k1") is not None
