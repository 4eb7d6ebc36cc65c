"""Client benchmark: latency through the Python client against a local cluster.

    .venv/bin/python3 python/benchmarks/bench_client.py            # starts target/release/cloudburst local
    .venv/bin/python3 python/benchmarks/bench_client.py --url ws://127.0.0.1:6200

For each workload: 50 warm-up calls, then 1000 sequential ones; prints median, p99 and
mean in ms. Then throughput: calls/s of a one-function DAG (direct response) from 8
concurrent client processes. Workloads that need functions are skipped (and say so) when
the cluster has no scheduler. `--json` makes the last line one JSON object.
"""

import argparse
import json
import multiprocessing
import os
import pathlib
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

import cloudburst  # noqa: E402

WARMUP = 50
ITERATIONS = 1000
CLIENTS = 8
THROUGHPUT_SECONDS = 5.0


def incr(cb, x):
    return x + 1


def square(cb, x):
    return x * x


def start_local(binary):
    proc = subprocess.Popen(
        [binary, "local", "--ephemeral", "--listen", "127.0.0.1:0", "--client-listen", "127.0.0.1:0",
         "--dashboard-listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    # Other lines (the dashboard URL) may come first; the readiness line comes last.
    for line in proc.stdout:
        if line.startswith("cloudburst local ready: client "):
            return proc, line.split()[-1]
    proc.kill()
    sys.exit("cloudburst local exited before it was ready")


def measure(fn):
    for _ in range(WARMUP):
        fn()
    times = []
    for _ in range(ITERATIONS):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {
        "median_ms": statistics.median(times),
        "p99_ms": times[int(len(times) * 0.99) - 1],
        "mean_ms": statistics.fmean(times),
    }


def setup_functions(cloud):
    try:
        cloud.register(incr, "bench_incr")
    except cloudburst.CloudburstError as e:
        if e.code == "unavailable":
            return False
        raise
    cloud.register(square, "bench_square")
    cloud.register_dag("bench_pipeline", ["bench_incr", "bench_square"],
                       [("bench_incr", "bench_square")])
    cloud.register_dag("bench_one", ["bench_square"], [])
    return True


def workloads(cloud, functions):
    small, big = b"x" * 8, os.urandom(1024 * 1024)
    cloud.put_object("bench-8", small)
    cloud.put_object("bench-1m", big)
    w = {}
    if functions:
        w["dag incr->square, direct response"] = lambda: cloud.call_dag(
            "bench_pipeline", {"bench_incr": [1]}, direct_response=True)
        w["dag incr->square, future"] = lambda: cloud.call_dag(
            "bench_pipeline", {"bench_incr": [1]}).get()
        w["one-function dag, direct response"] = lambda: cloud.call_dag(
            "bench_one", {"bench_square": [3]}, direct_response=True)
        w["function call (future)"] = lambda: cloud.exec_func("bench_square", [3]).get()
    w["get_object 8 B"] = lambda: cloud.get_object("bench-8")
    w["put_object 8 B"] = lambda: cloud.put_object("bench-8", small)
    w["get_object 1 MB"] = lambda: cloud.get_object("bench-1m")
    w["put_object 1 MB"] = lambda: cloud.put_object("bench-1m", big)
    w["ping (websocket round trip)"] = cloud.ping
    return w


def _client(url, functions, start, deadline, out):
    cloud = cloudburst.CloudburstConnection(url)

    def call():
        if functions:
            cloud.call_dag("bench_one", {"bench_square": [3]}, direct_response=True)
        else:
            cloud.get_object("bench-8")

    call()  # connected and warm before the window opens
    time.sleep(max(0.0, start - time.time()))
    n = 0
    while time.time() < deadline:
        call()
        n += 1
    cloud.close()
    out.put(n)


def throughput(url, functions):
    out = multiprocessing.Queue()
    start = time.time() + 2.0  # every client started and connected before counting
    deadline = start + THROUGHPUT_SECONDS
    procs = [multiprocessing.Process(target=_client, args=(url, functions, start, deadline, out))
             for _ in range(CLIENTS)]
    for p in procs:
        p.start()
    total = sum(out.get(timeout=THROUGHPUT_SECONDS + 30) for _ in procs)
    for p in procs:
        p.join()
    # Calls completed inside the window (a call in flight at the deadline counts too: at
    # most one per client, 8 of some 50,000).
    return total / (deadline - start)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url")
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "cloudburst"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    proc = None
    url = args.url
    if url is None:
        proc, url = start_local(args.binary)
    try:
        cloud = cloudburst.CloudburstConnection(url)
        functions = setup_functions(cloud)
        if not functions:
            print("no scheduler in this cluster: function workloads skipped")
        results = {}
        for name, fn in workloads(cloud, functions).items():
            r = measure(fn)
            results[name] = r
            print(f"{name:38s} median {r['median_ms']:7.3f} ms  p99 {r['p99_ms']:7.3f} ms"
                  f"  mean {r['mean_ms']:7.3f} ms")
        cloud.close()
        what = "one-function dag calls" if functions else "get_object 8 B"
        rate = throughput(url, functions)
        results[f"throughput {what}, {CLIENTS} clients, per s"] = rate
        print(f"throughput: {rate:,.0f} {what}/s with {CLIENTS} concurrent clients")
        if args.json:
            print(json.dumps(results))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
