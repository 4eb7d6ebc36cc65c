"""Fixtures: a real `cloudburst local` (the binary named by $CLOUDBURST_BIN, default
target/debug/cloudburst) on free loopback ports, started once per test session and
waited for through its readiness line."""

import os
import pathlib
import queue
import subprocess
import sys
import threading
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Test the package in this tree, not a copy installed earlier.
sys.path.insert(0, str(ROOT / "python"))

import cloudburst  # noqa: E402

READY_TIMEOUT = 60.0  # a loaded CI machine starts the Python workers slowly
READY_PREFIX = "cloudburst local ready: client "


def binary():
    return os.environ.get("CLOUDBURST_BIN") or str(ROOT / "target" / "debug" / "cloudburst")


class LocalCluster:
    """One `cloudburst local` process; `url` once ready."""

    def __init__(self, *args, config=None, tmp=None):
        # --ephemeral: tests assert exact listings, so no state of an earlier run may leak in.
        cmd = [binary(), "local", "--ephemeral", "--listen", "127.0.0.1:0",
               "--dashboard-listen", "127.0.0.1:0"]
        if "--client-listen" not in args:
            cmd += ["--client-listen", "127.0.0.1:0"]
        if config is not None:
            path = pathlib.Path(tmp) / "cloudburst.toml"
            path.write_text(config)
            cmd += ["--config", str(path)]
        env = dict(os.environ, NO_COLOR="1", RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        self.proc = subprocess.Popen(
            cmd + list(args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.url = None
        self.stderr = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _drain_stderr(self):
        for line in self.proc.stderr:
            self.stderr.append(line)

    def wait_ready(self):
        """Wait for the readiness line (bounded); returns False if the process exited."""
        found = {}

        def read():
            for line in self.proc.stdout:
                if line.startswith(READY_PREFIX):
                    found["url"] = line[len(READY_PREFIX):].strip()
                    return

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(READY_TIMEOUT)
        self.url = found.get("url")
        return self.url is not None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                return self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait()
        return self.proc.returncode


class Proc:
    """A `cloudburst` child process (any mode) whose stdout lines are read by a thread and
    whose stderr goes to the file `log`; `env` adds environment variables."""

    def __init__(self, args, log, env=None):
        self.log = log
        self.proc = subprocess.Popen(
            [binary(), *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=open(log, "w"), text=True,
            env={**os.environ, "NO_COLOR": "1", **(env or {})})
        self.lines = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, patterns, seconds=READY_TIMEOUT):
        """First match of every pattern among stdout lines; `None` entries if it exited."""
        found = {name: None for name in patterns}
        deadline = time.monotonic() + seconds
        while any(v is None for v in found.values()):
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"not ready in {seconds}s; log:\n{self.log_text()}")
            if line is None:
                return found
            for name, pat in patterns.items():
                m = pat.search(line)
                if m and found[name] is None:
                    found[name] = m.group(1)
        return found

    def log_text(self):
        return pathlib.Path(self.log).read_text(errors="replace")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_cluster(*args, config=None, tmp=None):
    c = LocalCluster(*args, config=config, tmp=tmp)
    if not c.wait_ready():
        code = c.stop()
        raise RuntimeError(f"cloudburst local did not start (exit {code}): {''.join(c.stderr)}")
    return c


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    c = start_cluster(tmp=tmp_path_factory.mktemp("local"))
    yield c
    assert c.stop() == 0, "cloudburst local must exit 0 on SIGTERM"


@pytest.fixture(scope="session")
def url(cluster):
    return cluster.url


@pytest.fixture
def cloud(url):
    conn = cloudburst.CloudburstConnection(url)
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def functions(url):
    """Skips function-plane tests when this build has no scheduler to answer them."""
    conn = cloudburst.CloudburstConnection(url)
    try:
        conn.register(lambda cb, x: x, "probe")
    except cloudburst.CloudburstError as e:
        if e.code == "unavailable":
            pytest.skip(f"no scheduler in this build: {e.message}")
        raise
    finally:
        conn.close()
    return True
