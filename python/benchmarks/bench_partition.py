"""A network partition and its heal, between real `cloudburst node` processes.

    .venv/bin/python3 python/benchmarks/bench_partition.py --binary target/debug/cloudburst

Runs in a network namespace of its own (it re-runs itself under `unshare --net`, so the
rules it adds touch nothing outside): three nodes, each on its own loopback address
(127.0.0.2, .3, .4), each a KVS node and a gateway, replication 2. Writer threads put
LWW values through A's gateway (each key written by one thread, so its last acknowledged
value is known). Then an nftables table (made by this script, deleted at the heal) drops
every packet between C and the others for `--seconds`; the writers go on through A.
After the heal the writers stop, and the script reads every key through **each** of the
three gateways until all of them return its last acknowledged value and every node's
view holds all three alive. A gateway reads its own node's replica first, so C's
gateway answering the right value means C caught up with the writes it missed.

The last line is one JSON object: ``acked_writes`` (keys with an acknowledged value),
``acked_writes_lost`` (keys whose last acknowledged value some gateway does not return
at the end), ``partition_heal_converge_s`` (from the heal until views and reads agree;
``null`` if they never did within ``CONVERGE_LIMIT``), ``writes_failed_during`` (puts
that failed while partitioned: k = 2 with a node unreachable fails some until it is
held dead), ``stale_reads_through_c_before_heal`` (keys C's gateway did not read right
just before the heal: the checker sees the divergence it then waits to see mended). Needs root or CAP_NET_ADMIN + CAP_SYS_ADMIN, `unshare`, `ip` and `nft`;
``isolation_problem()`` says what is missing.
"""

import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "python" / "benchmarks"))

import cloudburst  # noqa: E402
from bench_faults import Node, connect, free_port  # noqa: E402

ADDRS = {"a": "127.0.0.2", "b": "127.0.0.3", "c": "127.0.0.4"}
#: Keys written, per writer thread.
KEYS_PER_WRITER = 20
WRITERS = 2
#: Seconds writes run before the partition.
BEFORE = 2.0
#: How long after the heal views and reads may take to agree before we give up.
CONVERGE_LIMIT = 60.0
#: The nftables table this script adds (in its own network namespace) and deletes.
TABLE = "cloudburst_partition"
VIEW = re.compile(r"view changed.*view=(\S+)")


def isolation_problem():
    """Why a partition cannot be staged here (None: it can)."""
    for tool in ("unshare", "ip", "nft"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (scripts/setup.sh installs nftables)"
    probe = subprocess.run(["unshare", "--net", "sh", "-c", "ip link set lo up && nft list tables"],
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return ("cannot make a network namespace with nftables here (needs root, or "
                f"CAP_SYS_ADMIN and CAP_NET_ADMIN): {probe.stderr.strip()}")
    return None


def run_isolated(binary, logs, seconds):
    """Run the scenario in a new network namespace; its JSON result."""
    out = subprocess.run(["unshare", "--net", sys.executable, __file__, "--inside",
                          "--binary", str(binary), "--logs", str(logs),
                          "--seconds", str(seconds)],
                         capture_output=True, text=True, timeout=300)
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"partition scenario failed ({out.returncode}): {out.stderr[-3000:]}")
    return json.loads(lines[-1])


def nft(script):
    subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True, timeout=30)


def partition(victim, others):
    peers = ", ".join(others)
    nft(f"""table inet {TABLE} {{
  chain out {{
    type filter hook output priority 0; policy accept;
    ip saddr {victim} ip daddr {{ {peers} }} drop
    ip saddr {{ {peers} }} ip daddr {victim} drop
  }}
}}
""")


def heal():
    nft(f"delete table inet {TABLE}\n")


def views_agree(logs, nodes):
    """Every node's last view holds every node alive."""
    for name in nodes:
        views = VIEW.findall((logs / f"{name}.log").read_text(errors="replace"))
        if not views:
            return False
        last = views[-1]
        if any(not re.search(re.escape(n.addr) + r"[^,]*:alive", last) for n in nodes.values()):
            return False
    return True


def start(binary, logs):
    os.environ["RUST_LOG"] = "info"  # the view lines say who is alive
    bootstrap = "--bootstrap" in subprocess.run([binary, "node", "--help"], capture_output=True,
                                                text=True).stdout
    nodes, urls = {}, {}
    for name, ip in ADDRS.items():
        port = free_port()
        args = ["--roles", "kvs,gateway", "--ephemeral", "--replication", "2",
                "--listen", f"{ip}:0", "--client-listen", f"{ip}:{port}",
                "--dashboard-listen", f"{ip}:0"]
        if nodes:
            args += ["--join", nodes["a"].addr]
        elif bootstrap:
            args += ["--bootstrap"]
        nodes[name] = Node(binary, args, logs / f"{name}.log")
        urls[name] = f"ws://{ip}:{port}"
    return nodes, urls


def writer(url, index, acked, maybe, failed, stop, partitioned):
    cloud = connect(url)
    seq = 0
    try:
        while not stop.is_set():
            seq += 1
            key = f"part-{index}-{seq % KEYS_PER_WRITER}"
            value = f"{index}:{seq}"
            try:
                cloud.put_object(key, value)
                acked[key] = value
                maybe[key] = set()
            except cloudburst.CloudburstError:
                # "May have been written": until a later put of the key is acknowledged,
                # reading this value is right too.
                maybe.setdefault(key, set()).add(value)
                if partitioned.is_set():
                    failed.append(key)
    finally:
        cloud.close()


def read_all(urls, acked, maybe):
    """Keys some gateway does not read with their last acknowledged value (or a value
    put after it whose put failed: it may have been written)."""
    wrong = set()
    for url in urls.values():
        try:
            cloud = cloudburst.CloudburstConnection(url)
        except cloudburst.CloudburstError:
            return set(acked)
        try:
            for key, value in acked.items():
                try:
                    got = cloud.get_object(key)
                    if got != value and got not in maybe.get(key, ()):
                        wrong.add(key)
                except cloudburst.CloudburstError:
                    wrong.add(key)
        finally:
            cloud.close()
    return wrong


def scenario(binary, logs, seconds):
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=30)
    nodes, urls = start(binary, logs)
    try:
        deadline = time.monotonic() + 60
        while not views_agree(logs, nodes) and time.monotonic() < deadline:
            time.sleep(0.1)
        acked, maybe, failed = {}, {}, []
        stop, partitioned = threading.Event(), threading.Event()
        threads = [threading.Thread(target=writer, args=(urls["a"], i, acked, maybe, failed,
                                                         stop, partitioned))
                   for i in range(WRITERS)]
        for t in threads:
            t.start()
        time.sleep(BEFORE)  # writes under way before the partition
        partition(ADDRS["c"], [ADDRS["a"], ADDRS["b"]])
        partitioned.set()
        try:
            time.sleep(seconds)  # the partition's duration
            # The checker sees a divergence: C, cut off, answers from its stale replica
            # (or not at all) for keys written meanwhile.
            stale = len(read_all({"c": urls["c"]}, dict(acked), dict(maybe)))
        finally:
            heal()
        healed = time.monotonic()
        stop.set()
        for t in threads:
            t.join()
        converged, wrong = None, set(acked)
        while time.monotonic() - healed < CONVERGE_LIMIT:
            if views_agree(logs, nodes):
                wrong = read_all(urls, acked, maybe)
                if not wrong:
                    converged = round(time.monotonic() - healed, 3)
                    break
            time.sleep(0.2)
        return {"acked_writes": len(acked), "acked_writes_lost": len(wrong),
                "partition_heal_converge_s": converged,
                "writes_failed_during": len(failed), "partition_s": seconds,
                "stale_reads_through_c_before_heal": stale}
    finally:
        for n in nodes.values():
            n.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "cloudburst"))
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--logs")
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inside:
        print(json.dumps(scenario(args.binary, pathlib.Path(args.logs), args.seconds)))
        return
    problem = isolation_problem()
    if problem:
        sys.exit(f"cannot stage a partition: {problem}")
    with tempfile.TemporaryDirectory(prefix="cloudburst-partition-") as logs:
        print(json.dumps(run_isolated(args.binary, args.logs or logs, args.seconds)))


if __name__ == "__main__":
    main()
