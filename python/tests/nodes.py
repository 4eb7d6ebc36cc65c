"""Real `cloudburst node` processes for the multi-node tests: start one on free loopback
ports and wait for its readiness line, read the cluster's metrics, parse them."""

import queue
import re
import socket
import urllib.request

from conftest import READY_TIMEOUT, Proc, auth_headers

NODE_READY = re.compile(r"^cloudburst node (\S+) listening on (\S+) generation \d+$")
METRIC = re.compile(r'^(\w+)\{node="([^"]+)",shard="(\d+)"\} (\d+)$')


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bootstrap_unless_joining(args):
    """`--bootstrap` for the first node of a cluster (one given no `--join`)."""
    return [] if "--join" in args or "--bootstrap" in args else ["--bootstrap"]


def start_node(log, secret, *args, env=None):
    """One `cloudburst node` process, once it listens; its node id is `.id`, its peer
    address `.addr`. `env` adds environment variables. A node given no `--join` forms
    the cluster (`--bootstrap`)."""
    node = Proc(["node", *args, *bootstrap_unless_joining(args)], log, env={"CLOUDBURST_CLUSTER_SECRET": secret, **(env or {})})
    try:
        for line in iter(lambda: node.lines.get(timeout=READY_TIMEOUT), None):
            m = NODE_READY.match(line)
            if m:
                node.id, node.addr = m.group(1), m.group(2)
                return node
    except queue.Empty:
        pass
    node.stop()
    raise AssertionError("node did not start: " + node.log_text())


def shard_gauges(dashboard, name):
    """`{(node, shard): value}` of a per-shard gauge in the gateway's `/metrics` (shards
    that did not answer the last poll are left out)."""
    req = urllib.request.Request(dashboard + "/metrics", headers=auth_headers())
    text = urllib.request.urlopen(req, timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        m = METRIC.match(line)
        if m and m.group(1) == name:
            out[(m.group(2), int(m.group(3)))] = int(m.group(4))
    return out


def start_gateway_node(log, secret, roles, *extra, workers=1):
    """A node playing `roles` (a gateway among them) with its client listener on a free
    port: `.url` is the gateway's websocket URL."""
    port = free_port()
    node = start_node(log, secret, "--roles", roles, "--workers", str(workers),
                      "--listen", "127.0.0.1:0", "--client-listen", f"127.0.0.1:{port}",
                      "--dashboard-listen", f"127.0.0.1:{free_port()}", *extra)
    node.url = f"ws://127.0.0.1:{port}"
    return node
