"""Fault benchmark and checker: no call hangs or is lost when executor nodes are SIGKILLed.

    .venv/bin/python3 python/benchmarks/bench_faults.py            # target/release/cloudburst
    .venv/bin/python3 python/benchmarks/bench_faults.py --binary OTHER --calls 200 --kills 2

Starts a cluster of `cloudburst node` processes on 127.0.0.1: one with the KVS, the
scheduler and the gateway, and `--executors` executor-only nodes. `--threads` client
threads make `--calls` calls of a 100 ms function (half direct-response, half futures
whose result is read twice), each with a server-side deadline of `CALL_TIMEOUT` s. While
they run, executor nodes are killed with SIGKILL one after the other, `--kills` times in
all, evenly spread over the calls (never leaving fewer than `MIN_LIVE` executors). A
killed node is restarted (same node name) only `RESTART_AFTER` s later, so the cluster
must notice the death itself (membership's dead-after time) rather than the restart.

Every call is classified by what the client saw (``classify``):

- ``ok``: its right result;
- ``failed``: a documented failure code of a lost executor or scheduler (``FAILURE_CODES``);
- ``lost``: a wrong value, an undocumented code, or ``timeout`` (its function takes
  100 ms, so a call that times out lost its result);
- ``hung``: no answer at all by its deadline plus grace (the client stops waiting).

A future whose second ``get`` answers differently from its first counts a duplicate
result. ``kill_to_first_rerun_s`` is the median over kills of the time from the SIGKILL to
the first result of a re-run (the function returns ``cb.attempt``), to compare with the
membership's dead-after time (3 s by default). Then `bench_cluster_faults.py` adds
``freeze_success_rate``, ``freeze_p99_s``, ``kill_read_p99_s``, ``acked_writes_lost`` and
``partition_heal_converge_s`` (a frozen node, a killed KVS node; `--no-cluster-faults`
skips it). `--json` makes the last line one JSON object; the exit status is 0 whatever
the figures (``test_faults.py`` asserts them).
"""

import argparse
import json
import os
import pathlib
import queue
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

import cloudburst  # noqa: E402

#: Server-side deadline of every call (seconds): far above a 20 ms function and a re-run
#: after a death (dead-after 3 s), short enough that a hung run still ends.
CALL_TIMEOUT = 15.0
#: How much longer than a call's deadline the client waits before it calls the call hung.
GRACE = 3.0
#: Codes a call may fail with when nodes die under it: documented, retryable.
FAILURE_CODES = {"executor_lost", "scheduler_lost", "unavailable", "no_executors",
                 "overloaded", "shut_down", "worker_crashed"}
#: Seconds a node may take to print its readiness line.
READY_TIMEOUT = 60.0
#: The work of one call (seconds): long enough that calls are running when a node dies,
#: and that 2,000 calls from 8 threads last long enough for 10 kills and restarts.
WORK_SECONDS = 0.1
#: The membership's default dead-after time (seconds).
DEAD_AFTER = 3.0
#: A killed executor is restarted this long after its death: once it is declared dead.
RESTART_AFTER = DEAD_AFTER + 1.0
#: Executors left running at any time: a kill waits until this many others run.
MIN_LIVE = 2
NODE_READY = re.compile(r"^cloudburst node \S+ listening on (\S+) generation \d+$")
FUNCTION = "faults_work"


def work(cb, x):
    time.sleep(WORK_SECONDS)
    # `attempt` is 0 on a binary that does not re-run calls (no such attribute there).
    return (x * x, getattr(cb, "attempt", 0))


def classify(x, answer):
    """What a call of ``work(x)`` that answered ``answer`` counts as: ``ok``, ``failed``,
    ``lost`` or ``hung``. ``answer`` is ``("value", v)``, ``("error", code, message)`` or
    ``("none",)`` (the client gave up waiting)."""
    if answer[0] == "none":
        return "hung"
    if answer[0] == "value":
        v = answer[1]
        ok = isinstance(v, tuple) and len(v) == 2 and v[0] == x * x
        return "ok" if ok else "lost"
    return "failed" if answer[1] in FAILURE_CODES else "lost"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """One `cloudburst node` child; stderr goes to `log`."""

    def __init__(self, binary, args, log):
        env = {**os.environ, "NO_COLOR": "1", "RUST_LOG": os.environ.get("RUST_LOG", "warn"),
               "CLOUDBURST_CLUSTER_SECRET": "faults-bench",
               "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "python"),
                                                         os.environ.get("PYTHONPATH")) if p)}
        with open(log, "a") as err:
            seed = [] if "--join" in args or "--bootstrap" in args else ["--bootstrap"]
            self.proc = subprocess.Popen([binary, "node", *args, *seed], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        lines = queue.Queue()
        threading.Thread(target=self._pump, args=(lines,), daemon=True).start()
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                self.proc.kill()
                raise RuntimeError(f"cloudburst node {args} was not ready; see {log}")
            m = NODE_READY.match(line)
            if m:
                self.addr = m.group(1)
                return

    def _pump(self, lines):
        for line in self.proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Cluster:
    """A seed node (kvs, scheduler, gateway) and `executors` executor-only nodes."""

    def __init__(self, binary, executors, logs):
        self.binary, self.logs = binary, pathlib.Path(logs)
        port = free_port()
        self.url = f"ws://127.0.0.1:{port}"
        self.seed = Node(binary, ["--roles", "kvs,scheduler,gateway", "--ephemeral",
                                  "--listen", "127.0.0.1:0", "--client-listen", f"127.0.0.1:{port}",
                                  "--dashboard-listen", "127.0.0.1:0"], self.logs / "seed.log")
        self.executors = []
        try:
            for i in range(executors):
                self.executors.append(self._executor(i))
        except BaseException:
            self.stop()
            raise

    def _executor(self, i):
        return Node(self.binary, ["--roles", "executor", "--ephemeral", "--node-id", f"exec-{i}",
                                  "--listen", "127.0.0.1:0", "--join", self.seed.addr,
                                  "--workers", "2"], self.logs / f"exec-{i}.log")

    def kill(self, i):
        """SIGKILL executor `i`; returns when it is dead (the kill's time)."""
        self.executors[i].kill()
        return time.monotonic()

    def restart(self, i):
        """Start executor `i` again (same node name, a new generation) and wait until ready."""
        self.executors[i] = self._executor(i)

    def stop(self):
        for n in self.executors:
            n.stop()
        self.seed.stop()


def connect(url, seconds=60.0):
    deadline = time.monotonic() + seconds
    while True:
        try:
            return cloudburst.CloudburstConnection(url)
        except cloudburst.UnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def wait_serving(cloud, seconds=60.0):
    """Until the function is registered and a call of it succeeds."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            cloud.register(work, FUNCTION)
            if cloud.exec_func(FUNCTION, [3], direct_response=True, timeout=5)[0] == 9:
                return
        except cloudburst.CloudburstError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def one_call(cloud, x, direct):
    """``(answer, duplicate)`` of one call of ``work(x)`` (see ``classify``)."""
    try:
        if direct:
            v = cloud.exec_func(FUNCTION, [x], direct_response=True, timeout=CALL_TIMEOUT)
            return ("value", v), False
        future = cloud.exec_func(FUNCTION, [x], timeout=CALL_TIMEOUT)
        first = _get(future)
        # Compared by value or code (messages may differ, e.g. in the time waited).
        return first, _get(future, reread=True)[:2] != first[:2]
    except cloudburst.CloudburstError as e:
        return _error(e), False


def _get(future, reread=False):
    """One ``get`` of a future: its answer. A re-read of an ended call answers at once."""
    try:
        # The server ends the call by its deadline; past that plus grace it hung.
        return ("value", future.get(timeout=CALL_TIMEOUT + (1.0 if reread else GRACE)))
    except cloudburst.CloudburstError as e:
        return _error(e)


def _error(e):
    # The client's own timeout (no answer from the server) says "no answer to ...".
    if isinstance(e, cloudburst.CloudburstTimeout) and e.message.startswith("no answer"):
        return ("none",)
    return ("error", e.code, e.message)


class Run:
    """The calls of one run and when the executors were killed."""

    def __init__(self, calls):
        self.calls = calls
        self.issued = 0
        self.done = []  # (end time, x, kind, answer, duplicate)
        self.kills = []  # kill times
        self.lock = threading.Lock()
        self.finished = threading.Event()

    def next_x(self):
        with self.lock:
            if self.issued >= self.calls:
                return None
            self.issued += 1
            return self.issued

    def record(self, x, direct, answer, duplicate):
        with self.lock:
            self.done.append((time.monotonic(), x, "direct" if direct else "future", answer,
                              duplicate))
            if len(self.done) == self.calls:
                self.finished.set()

    def completed(self):
        with self.lock:
            return len(self.done)


def client(url, run, index):
    cloud = connect(url)
    try:
        while (x := run.next_x()) is not None:
            direct = (x + index) % 2 == 0
            answer, duplicate = one_call(cloud, x, direct)
            run.record(x, direct, answer, duplicate)
    finally:
        cloud.close()


def killer(cluster, run, kills):
    """Kill executor nodes one after the other, evenly over the calls, each restarted
    `RESTART_AFTER` s after its death (by a thread of its own)."""
    n = len(cluster.executors)
    down = set()
    lock = threading.Lock()
    restarts = []

    def restart_later(i, at):
        time.sleep(max(0.0, at + RESTART_AFTER - time.monotonic()))
        cluster.restart(i)
        with lock:
            down.discard(i)

    for k in range(kills):
        target = (k + 1) * run.calls // (kills + 1)
        victim = k % n
        while True:
            with lock:
                ready = victim not in down and n - len(down) - 1 >= MIN_LIVE
            if ready and run.completed() >= target:
                break
            if run.finished.wait(0.01):
                break
        if run.finished.is_set():
            break
        at = cluster.kill(victim)
        run.kills.append(at)
        with lock:
            down.add(victim)
        t = threading.Thread(target=restart_later, args=(victim, at), daemon=True)
        t.start()
        restarts.append(t)
    for t in restarts:
        t.join()


def figures(run, seconds):
    counts = {"ok": 0, "failed": 0, "lost": 0, "hung": 0}
    codes = {}
    for _, x, _, answer, _ in run.done:
        kind = classify(x, answer)
        counts[kind] += 1
        if answer[0] == "error":
            codes[answer[1]] = codes.get(answer[1], 0) + 1
    reruns = sorted(t for t, _, _, a, _ in run.done
                    if a[0] == "value" and isinstance(a[1], tuple) and a[1][1] > 0)
    delays = []
    for i, at in enumerate(run.kills):
        until = run.kills[i + 1] if i + 1 < len(run.kills) else float("inf")
        first = next((t for t in reruns if at < t < until), None)
        if first is not None:
            delays.append(first - at)
    return {
        "workload": "faults",
        "calls": len(run.done),
        "calls_ok": counts["ok"],
        "calls_hung": counts["hung"],
        "calls_lost": counts["lost"],
        "duplicate_results": sum(1 for d in run.done if d[4]),
        "calls_failed": counts["failed"],
        "error_codes": codes,
        "kills": len(run.kills),
        "kills_with_rerun": len(delays),
        "calls_rerun": len(reruns),
        "kill_to_first_rerun_s": round(statistics.median(delays), 3) if delays else None,
        "kill_to_first_rerun_max_s": round(max(delays), 3) if delays else None,
        "seconds": round(seconds, 2),
    }


def run_faults(binary, calls, threads, kills, executors, logs):
    """Start the cluster, run the calls with the kills, stop it: the figures."""
    cluster = Cluster(binary, executors, logs)
    try:
        setup = connect(cluster.url)
        try:
            wait_serving(setup)
        finally:
            setup.close()
        run = Run(calls)
        start = time.monotonic()
        workers = [threading.Thread(target=client, args=(cluster.url, run, i), daemon=True)
                   for i in range(threads)]
        kill_thread = threading.Thread(target=killer, args=(cluster, run, kills), daemon=True)
        for t in workers + [kill_thread]:
            t.start()
        for t in workers + [kill_thread]:
            t.join()
        return figures(run, time.monotonic() - start)
    finally:
        cluster.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "cloudburst"))
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--executors", type=int, default=3)
    ap.add_argument("--freeze-seconds", type=float, default=20.0,
                    help="how long a node is frozen in the cluster-fault phase")
    ap.add_argument("--no-cluster-faults", action="store_true",
                    help="skip the frozen-node and killed-KVS-node phase")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cloudburst-faults-") as logs:
        result = run_faults(args.binary, args.calls, args.threads, args.kills, args.executors,
                            logs)
        if not args.no_cluster_faults:
            from bench_cluster_faults import run_cluster_faults, run_partition
            result.update(run_cluster_faults(args.binary, logs, args.freeze_seconds,
                                             args.threads))
            part = run_partition(args.binary, logs)
            result["acked_writes_lost"] += part.pop("partition_acked_writes_lost", 0)
            result.update(part)
    for k, v in result.items():
        print(f"{k:28} {v}")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
