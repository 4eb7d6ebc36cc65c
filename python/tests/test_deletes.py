"""Deletes remove, on a two-node cluster (`cloudburst node` processes with data
directories, every key on both nodes): 1,000 future calls grow every replica's key count
by at least 1,000 (so the check can see growth); once their results expire (a short
`kvs.result_ttl_ms`) and the tombstones are collected, each replica's count is back at
its baseline. A user's delete reads back as missing, and is collected too. After node B
restarts from its data directory and rejoins, nothing deleted comes back."""

import threading

import cloudburst
from cloudburst import CloudburstConnection

from nodes import free_port, shard_gauges, start_node
from waiting import NotYet, wait_until

SECRET = "deletes-test-secret"
CALLS = 1000
THREADS = 4
RETRYABLE = (cloudburst.UnavailableError, cloudburst.CloudburstTimeout)
#: Short enough for a test: results live 2 s, tombstones are held 1.5 s at least (the
#: least the config allows with a 1 s request timeout).
CONFIG = """
[kvs]
replication = 2
result_ttl_ms = 2000
tombstone_grace_ms = 1500
[transport]
request_timeout_ms = 1000
"""
#: Expiry, grace, a sweep and a metrics sample take seconds; a loaded machine more.
SETTLE = 90


def double(cb, x):
    return 2 * x


def keys_per_node(dashboard, name="cloudburst_kvs_keys"):
    """`{node: keys}` summed over its shards."""
    out = {}
    for (node, _), v in shard_gauges(dashboard, name).items():
        out[node] = out.get(node, 0) + v
    return out


def start(tmp_path, name, config, *args):
    return start_node(tmp_path / f"{name}.log", SECRET, "--config", str(config),
                      "--data-dir", str(tmp_path / f"{name}-data"), *args)


def test_results_expire_deletes_are_collected_and_nothing_comes_back(tmp_path):
    config = tmp_path / "cluster.toml"
    config.write_text(CONFIG)
    client_port, dash_port = free_port(), free_port()
    dashboard = f"http://127.0.0.1:{dash_port}"
    a = start(tmp_path, "a", config, "--roles", "kvs,scheduler,executor,gateway",
              "--listen", "127.0.0.1:0", "--client-listen", f"127.0.0.1:{client_port}",
              "--dashboard-listen", f"127.0.0.1:{dash_port}", "--workers", "2")
    b = None
    try:
        b_args = ("--roles", "kvs", "--listen", "127.0.0.1:0", "--join", a.addr)
        b = start(tmp_path, "b", config, *b_args)
        url = f"ws://127.0.0.1:{client_port}"
        cloud = wait_until(lambda: CloudburstConnection(url), "a connection", 30, RETRYABLE)
        wait_until(lambda: cloud.register(double, "double"), "registration", 30, RETRYABLE)

        def both_nodes_counted():
            counts = keys_per_node(dashboard)
            if set(counts) != {a.id, b.id}:
                raise NotYet(f"key counts of {sorted(counts)}")
            return counts

        baseline = wait_until(both_nodes_counted, "both nodes' key counts", SETTLE)

        # A user's delete.
        cloud.put_object("doomed", "v")
        assert cloud.get_object("doomed") == "v"
        cloud.delete_object("doomed")
        assert cloud.get_object("doomed") is None
        cloud.put_object("kept", "k")

        run_future_calls(url)

        def grown():
            counts = keys_per_node(dashboard)
            short = {n: c for n, c in counts.items() if c < baseline[n] + CALLS}
            if short or len(counts) < 2:
                raise NotYet(f"counts {counts}, baseline {baseline}")

        wait_until(grown, "every replica holding the results", SETTLE)
        expected = {n: c + 1 for n, c in baseline.items()}  # `kept`

        def back_to_baseline():
            counts = keys_per_node(dashboard)
            tombs = keys_per_node(dashboard, "cloudburst_kvs_tombstones")
            if counts != expected or any(tombs.values()):
                raise NotYet(f"keys {counts} (want {expected}), tombstones {tombs}")

        wait_until(back_to_baseline, "expiry and collection on every replica", SETTLE)

        # B restarts from its data directory: what was deleted stays deleted.
        assert b.stop() == 0
        b = start(tmp_path, "b", config, *b_args)
        wait_until(back_to_baseline, "the key counts after B rejoined", SETTLE)
        assert cloud.get_object("doomed") is None
        assert cloud.get_object("kept") == "k"
        cloud.close()
    finally:
        if b is not None:
            b.stop()
        a.stop()


def run_future_calls(url):
    """CALLS future calls of `double` from THREADS threads, each result read once."""
    failures = []

    def client(i):
        conn = CloudburstConnection(url)
        try:
            for x in range(i, CALLS, THREADS):
                assert conn.exec_func("double", [x]).get(timeout=60) == 2 * x
        except Exception as e:  # reported below
            failures.append(repr(e))
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not failures and not any(t.is_alive() for t in threads), failures[:3]
