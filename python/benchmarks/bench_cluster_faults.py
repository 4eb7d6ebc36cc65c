"""Cluster-fault figures of `bench_faults.py` (`cloudburst bench faults`): a frozen node, a
killed KVS node, acknowledged writes.

Three `cloudburst node` processes on 127.0.0.1 with replication 2: A plays every role
(the gateway the client uses), B and C play kvs and executor. Then:

1. `--threads` client threads call a 20 ms function through A while B is frozen with
   SIGSTOP for `--freeze-seconds` (then SIGCONT). ``freeze_success_rate`` and
   ``freeze_p99_s`` are over the calls started during the freeze.
2. `KEYS` keys are written (each acknowledged), C is SIGKILLed, and once A holds it dead
   `READS` sequential reads of those keys are timed: ``kill_read_p99_s``. Every key must
   read back with its value: ``acked_writes_lost`` counts those that do not.

3. `bench_partition.py` stages a 10 s partition of one node of three (in a network
   namespace of its own, with nftables) and reports ``partition_heal_converge_s``: from
   the heal until every view and every gateway's reads agree. ``None`` when this machine
   cannot make a network namespace (``partition_skipped`` says why); its lost acknowledged
   writes are added to ``acked_writes_lost``.
"""

import os
import pathlib
import re
import signal
import statistics
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "python" / "benchmarks"))

import cloudburst  # noqa: E402
from bench_faults import Node, connect, free_port  # noqa: E402

#: Keys written before the KVS node is killed.
KEYS = 300
#: Sequential reads timed after the kill.
READS = 1000
#: The function's work (seconds).
WORK_SECONDS = 0.02
#: Membership's `view changed` line, with the node states.
VIEW = re.compile(r"view changed.*view=(\S+)")


def work(cb, x):
    time.sleep(WORK_SECONDS)
    return x * x


def p99(values):
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * 0.99))], 4)


def holds_dead(log, node_addr):
    views = VIEW.findall(pathlib.Path(log).read_text(errors="replace"))
    return bool(views) and re.search(re.escape(node_addr) + r"[^,]*:dead", views[-1])


def start(binary, logs):
    port = free_port()
    env_info = os.environ.get("RUST_LOG")
    os.environ["RUST_LOG"] = "info"  # the view lines say when a node is held dead
    try:
        a = Node(binary, ["--roles", "kvs,scheduler,executor,gateway", "--ephemeral",
                          "--replication", "2", "--workers", "2", "--listen", "127.0.0.1:0",
                          "--client-listen", f"127.0.0.1:{port}",
                          "--dashboard-listen", "127.0.0.1:0"], logs / "a.log")
        others = [Node(binary, ["--roles", "kvs,executor", "--ephemeral", "--replication", "2",
                                "--workers", "1", "--listen", "127.0.0.1:0", "--join", a.addr],
                       logs / f"{name}.log") for name in ("b", "c")]
    finally:
        if env_info is None:
            os.environ.pop("RUST_LOG", None)
        else:
            os.environ["RUST_LOG"] = env_info
    return a, others, f"ws://127.0.0.1:{port}"


def freeze(cloud, victim, threads, seconds):
    outcomes = []  # (start, seconds, ok)
    stop = threading.Event()

    def caller(offset):
        i = offset
        while not stop.is_set():
            i += 1
            t0 = time.monotonic()
            try:
                ok = cloud.exec_func("cluster_work", [i], direct_response=True,
                                     timeout=30) == i * i
            except cloudburst.CloudburstError:
                ok = False
            outcomes.append((t0, time.monotonic() - t0, ok))

    workers = [threading.Thread(target=caller, args=(k * 100000,)) for k in range(threads)]
    for w in workers:
        w.start()
    time.sleep(1.0)  # calls under way before the freeze
    frozen_at = time.monotonic()
    os.kill(victim.proc.pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)  # the fault's duration
    finally:
        os.kill(victim.proc.pid, signal.SIGCONT)
    thawed_at = time.monotonic()
    stop.set()
    for w in workers:
        w.join()
    during = [o for o in outcomes if frozen_at <= o[0] < thawed_at]
    ok = [o for o in during if o[2]]
    return {
        "freeze_calls": len(during),
        "freeze_success_rate": round(len(ok) / len(during), 4) if during else None,
        "freeze_p99_s": p99([o[1] for o in ok]),
    }


def kill_and_read(cloud, a_log, victim):
    keys = [f"cluster-faults-{i}" for i in range(KEYS)]
    acked = {}
    for k in keys:
        try:
            cloud.put_object(k, k.upper())
            acked[k] = k.upper()
        except cloudburst.CloudburstError:
            pass
    victim.kill()
    deadline = time.monotonic() + 30
    while not holds_dead(a_log, victim.addr) and time.monotonic() < deadline:
        time.sleep(0.05)
    lost, times = 0, []
    for i in range(READS):
        k = keys[i % len(keys)]
        t0 = time.monotonic()
        try:
            got = cloud.get_object(k)
        except cloudburst.CloudburstError:
            got = None
        times.append(time.monotonic() - t0)
        if i < len(keys) and k in acked and got != acked[k]:
            lost += 1
    return {"kill_read_p99_s": p99(times), "acked_writes_lost": lost,
            "acked_writes": len(acked)}


def run_cluster_faults(binary, logs, freeze_seconds=20.0, threads=4):
    logs = pathlib.Path(logs)
    a, others, url = start(binary, logs)
    try:
        cloud = connect(url)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    cloud.register(work, "cluster_work")
                    if cloud.exec_func("cluster_work", [3], direct_response=True,
                                       timeout=5) == 9:
                        break
                except cloudburst.CloudburstError:
                    if time.monotonic() > deadline:
                        raise
                time.sleep(0.1)
            out = freeze(cloud, others[0], threads, freeze_seconds)
            out.update(kill_and_read(cloud, logs / "a.log", others[1]))
            return out
        finally:
            cloud.close()
    finally:
        for n in [*others, a]:
            n.stop()


def run_partition(binary, logs, seconds=10.0):
    """The partition figures (after the cluster above has stopped: own nodes)."""
    from bench_partition import isolation_problem, run_isolated
    problem = isolation_problem()
    if problem:
        return {"partition_heal_converge_s": None, "partition_skipped": problem}
    logs = pathlib.Path(logs) / "partition"
    logs.mkdir(exist_ok=True)
    got = run_isolated(binary, logs, seconds)
    return {"partition_heal_converge_s": got["partition_heal_converge_s"],
            "partition_acked_writes": got["acked_writes"],
            "partition_acked_writes_lost": got["acked_writes_lost"]}
