"""Autoscaling benchmark: a step load against `cloudburst local` with its monitor.

    .venv/bin/python3 python/benchmarks/bench_autoscale.py            # target/release/cloudburst
    cloudburst bench autoscale --json

Starts `cloudburst local` with the monitor's test windows (tick 200 ms, panic window 1 s,
stable window 3 s, downscale delay 4 s, cooldown 1 s; `max_executors = 3`, 2 workers per
node) and calls a function that sleeps 0.2 s open-loop: 2 calls/s for a stable window,
then 20 calls/s (10 is what one node's 2 workers carry), then 1 call/s until the cluster
is back to one node. A thread reads the acting monitor's state off the dashboard every
tick. Each call returns where it ran and when it started and ended (the same clock: one
machine).

Writes a per-second timeline (nodes by state, demand, calls/s, p50/p99 latency from
submission to the function's end) to `docs/autoscale-timeline.json` and a picture of nodes
and latency over time to `docs/autoscale-timeline.svg`, and reports:

- ``time_to_decision_s``: from the step to the first launch decision;
- ``time_to_capacity_s``: from that decision to the first call run on a new node;
- ``launch_to_first_call_s``: over the nodes launched in the step, decision to the first
  call served there (median);
- ``cold_start_s``/``cold_start_p99_s``: scale from zero, measured on a second cluster (a
  `cloudburst node` playing kvs, scheduler, gateway and monitor, `min_executors = 0`,
  `idle_to_zero_ms = 1000`): from a call submitted to an idle cluster with no executor to
  its result, median and p99 over ``--cycles`` (20) cycles, each waiting for zero first;
- ``ramp_p99_ms`` (the peak's first stable window) vs ``steady_p99_ms`` (its rest);
- ``calls_lost`` (no answer or a wrong one), ``calls_failed`` (an error);
- ``peak_executors``, ``final_executors`` (active executor nodes).

`--json` makes the last line one JSON object; the exit status is 0 whatever the figures
(``test_autoscale.py`` asserts the behaviour).
"""

import argparse
import json
import os
import pathlib
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="cloudburst-bench-config-")
os.environ.pop("CLOUDBURST_TOKEN", None)

import cloudburst  # noqa: E402

TICK, PANIC, STABLE, DELAY, COOLDOWN = 0.2, 1.0, 3.0, 4.0, 1.0
CONFIG = f"""
[executor]
workers = 2
[autoscale]
min_executors = 1
max_executors = 3
tick_ms = {int(TICK * 1000)}
panic_window_ms = {int(PANIC * 1000)}
stable_window_ms = {int(STABLE * 1000)}
downscale_delay_ms = {int(DELAY * 1000)}
cooldown_ms = {int(COOLDOWN * 1000)}
launch_timeout_ms = 60000
"""
WORK_SECONDS = 0.2
#: (calls per second, seconds): low, the step, low again until back to one node.
PHASES = [(2, STABLE), (20, 8 * STABLE), (1, DELAY + 8 * STABLE)]
CALL_LIMIT = 120.0
READY = re.compile(r"^cloudburst local ready: client (\S+)$")
DASHBOARD = re.compile(r"^cloudburst dashboard listening on (\S+)$")


def nap(cb, x):
    import time as t

    start = t.time()
    t.sleep(0.2)
    return (x * x, cb.getid().split("/")[0], start, t.time())


def start_local(binary, tmp):
    cfg = pathlib.Path(tmp) / "autoscale.toml"
    cfg.write_text(CONFIG)
    log = open(pathlib.Path(tmp) / "local.log", "w")
    env = {**os.environ, "NO_COLOR": "1", "RUST_LOG": "warn",
           "PYTHONPATH": str(ROOT / "python")}
    proc = subprocess.Popen(
        [binary, "local", "--ephemeral", "--listen", "127.0.0.1:0", "--client-listen",
         "127.0.0.1:0", "--dashboard-listen", "127.0.0.1:0", "--config", str(cfg)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    url = dashboard = None
    for line in proc.stdout:
        m, d = READY.match(line.strip()), DASHBOARD.match(line.strip())
        if d:
            dashboard = d.group(1).rstrip("/")
        if m:
            url = m.group(1)
            break
    if url is None:
        raise RuntimeError(f"cloudburst local did not start; see {log.name}")
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, url, dashboard


class Watch:
    """The acting monitor's state, read off the dashboard every tick."""

    def __init__(self, dashboard):
        self.dashboard, self.points, self.state = dashboard, [], None
        self.stop = threading.Event()
        token = cloudburst._token.resolve("ws://127.0.0.1", None)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            req = urllib.request.Request(self.dashboard + "/api/snapshot", headers=self.headers)
            try:
                a = json.loads(urllib.request.urlopen(req, timeout=10).read()).get("autoscale")
            except (OSError, ValueError):
                a = None
            if a and a.get("last"):
                self.state = a
                self.points.append((time.time(), a["last"]))
            self.stop.wait(TICK)


def drive(conn):
    futures, starts, x = [], [], 0
    for rate, seconds in PHASES:
        start = time.time()
        starts.append(start)
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.time()
            if delay > 0:
                time.sleep(delay)
            futures.append((x, time.time(), conn.exec_func("nap", [x])))
            x += 1
    return futures, starts


def collect(futures):
    calls, lost, failed = [], 0, 0
    for x, submitted, f in futures:
        try:
            value, node, start, end = f.get(timeout=CALL_LIMIT)
        except cloudburst.CloudburstTimeout:
            lost += 1
            continue
        except cloudburst.CloudburstError:
            failed += 1
            continue
        if value != x * x:
            lost += 1
            continue
        calls.append({"x": x, "node": node, "submitted": submitted, "start": start, "end": end})
    return calls, lost, failed


def pct(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def timeline(calls, points, t0, t_end):
    out = []
    for s in range(int(t_end - t0) + 1):
        lo, hi = t0 + s, t0 + s + 1
        done = [c for c in calls if lo <= c["end"] < hi]
        lat = [(c["end"] - c["submitted"]) * 1000 for c in done]
        nums = [n for t, n in points if lo <= t < hi]
        n = nums[-1] if nums else {}
        out.append({"t": s, "active": n.get("active"), "starting": n.get("starting"),
                    "draining": n.get("draining"), "pending": n.get("pending"),
                    "demand": n.get("demand_now"), "calls_per_s": len(done),
                    "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99)})
    return out


def svg(rows, path):
    w, h, pad = 720, 300, 40
    n = max(1, len(rows) - 1)
    max_nodes = max([1] + [(r["active"] or 0) + (r["starting"] or 0) + (r["pending"] or 0)
                           for r in rows])
    max_lat = max([1.0] + [r["p99_ms"] or 0 for r in rows])

    def line(key_fn, top, color):
        pts = [(pad + i * (w - 2 * pad) / n, h - pad - (key_fn(r) or 0) * (h - 2 * pad) / top)
               for i, r in enumerate(rows)]
        d = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        return f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{d}"/>'

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{pad}" y="16">executor nodes (active: blue, starting: orange; max {max_nodes}) '
        f'and p99 latency (red; max {max_lat:.0f} ms) per second</text>',
        line(lambda r: r["active"], max_nodes, "#1f77b4"),
        line(lambda r: (r["starting"] or 0) + (r["pending"] or 0), max_nodes, "#ff7f0e"),
        line(lambda r: r["p99_ms"], max_lat, "#d62728"),
        f'<text x="{pad}" y="{h - 10}">0 s</text><text x="{w - pad - 30}" y="{h - 10}">{len(rows) - 1} s</text>',
        "</svg>",
    ]
    path.write_text("\n".join(parts) + "\n")


def figures(calls, lost, failed, watch, starts):
    low, peak, after = starts
    decisions = watch.state["decisions"] if watch.state else []
    launches = [d["at_ms"] / 1000 for d in decisions if d["action"] == "launch"
                and d["at_ms"] / 1000 >= peak]
    decision = launches[0] if launches else None
    local = calls[0]["node"] if calls else None
    new_nodes = {}
    for c in sorted(calls, key=lambda c: c["start"]):
        if c["node"] != local and c["node"] not in new_nodes:
            new_nodes[c["node"]] = c["start"]
    launch_to_call = []
    for node, first in new_nodes.items():
        before = [t for t in launches if t <= first]
        if before:
            launch_to_call.append(first - before[-1])
    first_new = min(new_nodes.values()) if new_nodes else None
    lat = lambda a, b: [(c["end"] - c["submitted"]) * 1000 for c in calls if a <= c["submitted"] < b]
    actives = [n["active"] for t, n in watch.points]
    return {
        "time_to_decision_s": round(decision - peak, 3) if decision else None,
        "time_to_capacity_s": round(first_new - decision, 3) if decision and first_new else None,
        "launch_to_first_call_s": (round(statistics.median(launch_to_call), 3)
                                   if launch_to_call else None),
        "ramp_p99_ms": pct(lat(peak, peak + STABLE), 0.99),
        "steady_p99_ms": pct(lat(peak + STABLE, after), 0.99),
        "calls": len(calls) + lost + failed,
        "calls_lost": lost,
        "calls_failed": failed,
        "peak_executors": max(actives) if actives else None,
        "final_executors": actives[-1] if actives else None,
        "decisions": len(decisions),
    }


ZERO_CONFIG = f"""
[executor]
workers = 2
[autoscale]
min_executors = 0
max_executors = 2
tick_ms = {int(TICK * 1000)}
panic_window_ms = {int(PANIC * 1000)}
stable_window_ms = {int(PANIC * 1000)}
downscale_delay_ms = {int(DELAY * 1000)}
cooldown_ms = {int(COOLDOWN * 1000)}
idle_to_zero_ms = 1000
launch_timeout_ms = 60000
"""
ZERO_TOKEN = "bench-autoscale-zero"
NODE_DASHBOARD = re.compile(r"dashboard\S* .*?(http://\S+?)/?$")


def square(cb, x):
    return x * x


def cold_starts(binary, tmp, cycles):
    """Seconds from a call to an idle cluster (no executor) to its result, per cycle."""
    cfg = pathlib.Path(tmp) / "zero.toml"
    cfg.write_text(ZERO_CONFIG)
    log = open(pathlib.Path(tmp) / "zero.log", "w")
    env = {**os.environ, "NO_COLOR": "1", "RUST_LOG": "warn", "PYTHONPATH": str(ROOT / "python"),
           "CLOUDBURST_CLUSTER_SECRET": "bench-autoscale-zero", "CLOUDBURST_TOKEN": ZERO_TOKEN}
    with socket.socket() as s:  # a `node` does not print its client address: choose it
        s.bind(("127.0.0.1", 0))
        client = f"127.0.0.1:{s.getsockname()[1]}"
    proc = subprocess.Popen(
        [binary, "node", "--bootstrap", "--roles", "kvs,scheduler,gateway,monitor", "--ephemeral",
         "--listen", "127.0.0.1:0", "--client-listen", client,
         "--dashboard-listen", "127.0.0.1:0", "--config", str(cfg)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    url, dashboard = f"ws://{client}", None
    for line in proc.stdout:
        d = NODE_DASHBOARD.search(line.strip())
        dashboard = d.group(1) if d and not dashboard else dashboard
        if line.startswith("cloudburst node "):
            break
    if dashboard is None:
        proc.terminate()
        raise RuntimeError(f"cloudburst node did not start; see {log.name}")
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    headers = {"Authorization": f"Bearer {ZERO_TOKEN}"}

    def state():
        req = urllib.request.Request(dashboard + "/api/snapshot", headers=headers)
        try:
            return json.loads(urllib.request.urlopen(req, timeout=10).read()).get("autoscale") or {}
        except urllib.error.HTTPError as e:  # 503 before the dashboard's first sample
            if e.code != 503:
                raise
            return {}

    def at_zero(since_ms):
        """No executor, and the monitor removed a node after `since_ms` (the snapshot lags
        a tick: "no executor" alone can be read just before a launch shows)."""
        a = state()
        n = a.get("last") or {}
        count = sum(n.get(k, 0) for k in ("active", "starting", "draining", "pending"))
        gone = since_ms is None or any(d["action"] == "terminate" and d["at_ms"] >= since_ms
                                       for d in a.get("decisions", []))
        return bool(n) and count == 0 and gone

    out = []
    try:
        conn = cloudburst.CloudburstConnection(url, token=ZERO_TOKEN)
        conn.register(square, "square")
        served_ms = None
        for i in range(cycles):
            deadline = time.time() + CALL_LIMIT
            while not at_zero(served_ms) and time.time() < deadline:
                time.sleep(TICK / 4)
            start = time.perf_counter()
            assert conn.exec_func("square", [i]).get(timeout=CALL_LIMIT) == i * i
            out.append(time.perf_counter() - start)
            served_ms = time.time() * 1000
        conn.close()
    finally:
        proc.terminate()
        proc.wait(60)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "cloudburst"))
    ap.add_argument("--out", default=str(ROOT / "docs"))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--cycles", type=int, default=20, help="cold starts from zero to time")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="cloudburst-bench-autoscale-")
    proc, url, dashboard = start_local(args.binary, tmp)
    watch = None
    try:
        conn = cloudburst.CloudburstConnection(url)
        conn.register(nap, "nap")
        watch = Watch(dashboard)
        futures, starts = drive(conn)
        calls, lost, failed = collect(futures)
        # Until back to one node (bounded), so the timeline shows the scale-down through.
        deadline = time.time() + DELAY + 8 * STABLE
        while time.time() < deadline:
            n = watch.points[-1][1] if watch.points else {}
            if (n.get("active"), n.get("starting"), n.get("draining"), n.get("pending")) == (1, 0, 0, 0):
                break
            time.sleep(TICK)
        conn.close()
    finally:
        if watch:
            watch.stop.set()
            watch.thread.join()
        proc.terminate()
        proc.wait(60)
    out = pathlib.Path(args.out)
    rows = timeline(calls, watch.points, starts[0], time.time())
    (out / "autoscale-timeline.json").write_text(json.dumps(rows, indent=1) + "\n")
    svg(rows, out / "autoscale-timeline.svg")
    result = figures(calls, lost, failed, watch, starts)
    print(json.dumps(result), flush=True)
    cold = cold_starts(args.binary, tmp, args.cycles) if args.cycles > 0 else []
    result["cold_start_s"] = round(statistics.median(cold), 3) if cold else None
    result["cold_start_p99_s"] = round(pct(cold, 0.99), 3) if cold else None
    result["cold_starts"] = [round(c, 3) for c in cold]
    for k, v in result.items():
        print(f"{k:>20}: {v}")
    print(f"timeline: {out / 'autoscale-timeline.json'}, {out / 'autoscale-timeline.svg'}")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
