"""Fixtures: a real `cloudburst local` (the binary named by $CLOUDBURST_BIN, default
target/debug/cloudburst) on free loopback ports, started once per test session and
waited for through its readiness line. Every `cloudburst` process of these tests is a
`Proc`, and its Python workers import the client package of this tree.

The tests' config directory (where `cloudburst local` keeps this user's client token and
the client finds it) is a temporary one, set before anything starts: the tests use the
real discovery path without reading or making the developer's own token file."""

import os
import pathlib
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pytest

# Before any server or client of these tests exists (both read these variables).
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="cloudburst-test-config-")
os.environ.pop("CLOUDBURST_TOKEN", None)

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE_DIR = ROOT / "python"
# Test the package in this tree, not a copy installed earlier.
sys.path.insert(0, str(PACKAGE_DIR))

import cloudburst  # noqa: E402

READY_TIMEOUT = 60.0  # a loaded CI machine starts the Python workers slowly
LOCAL_READY = re.compile(r"^cloudburst local ready: client (\S+)$")
DASHBOARD_LINE = re.compile(r"^cloudburst dashboard listening on (\S+)$")


#: How long a test waits for one HTTP answer of a node.
HTTP_SECONDS = 5


def http_get(url, token=None):
    """(status, headers with lower-case names, body) of a GET; HTTP errors are returned."""
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=HTTP_SECONDS) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read().decode()


def local_token():
    """The token loopback gateways of these tests share (the file `cloudburst local` made
    in the tests' config directory), as the client finds it; `None` before one started."""
    return cloudburst._token.resolve("ws://127.0.0.1", None)


def auth_headers():
    """The `Authorization` header for a loopback gateway's HTTP endpoints."""
    token = local_token()
    return {"Authorization": f"Bearer {token}"} if token else {}


def binary():
    return os.environ.get("CLOUDBURST_BIN") or str(ROOT / "target" / "debug" / "cloudburst")


def child_env(extra=None):
    """The environment of a `cloudburst` child: no colours, and this tree's client package
    first on its workers' Python path (functions pickled by the tests refer to it)."""
    path = os.pathsep.join(p for p in (str(PACKAGE_DIR), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "NO_COLOR": "1", "PYTHONPATH": path, **(extra or {})}


class Proc:
    """A `cloudburst` child process (any mode) whose stdout lines are read by a thread and
    whose stderr goes to the file `log`; `env` adds environment variables."""

    def __init__(self, args, log, env=None):
        self.log = log
        with open(log, "w") as err:
            self.proc = subprocess.Popen(
                [binary(), *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=err, text=True, env=child_env(env))
        self.lines = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, patterns, seconds=READY_TIMEOUT):
        """First match (group 1) of every compiled pattern among stdout lines; `None`
        entries if the process exited first. Fails after `seconds`."""
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
        """Stop the process (SIGTERM, then SIGKILL after 10 s); its exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                return self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


#: Appended to a test cluster's config unless it has an `[autoscale]` section of its own:
#: no standby executor node (a process with its own Python workers, kept idle for the
#: autoscaler's next launch), which only the autoscaling tests use and which would
#: otherwise cost every test cluster its start-up and memory.
NO_STANDBY = "\n[autoscale]\nstandby_executors = 0\n"


class LocalCluster(Proc):
    """One `cloudburst local` on free loopback ports; `url` (and `dashboard`) once ready.
    Its log is a new file in the directory `tmp`. Unless `config` has an `[autoscale]`
    section, the cluster keeps no standby executor node (`NO_STANDBY`)."""

    def __init__(self, *args, tmp, config=None, env=None):
        if config is None or "[autoscale]" not in config:
            config = (config or "") + NO_STANDBY
        # --ephemeral: tests assert exact listings, so no state of an earlier run may leak in.
        cmd = ["local", "--ephemeral", "--listen", "127.0.0.1:0", "--dashboard-listen", "127.0.0.1:0"]
        if "--client-listen" not in args:
            cmd += ["--client-listen", "127.0.0.1:0"]
        fd, path = tempfile.mkstemp(dir=tmp, prefix="cloudburst-", suffix=".toml")
        with os.fdopen(fd, "w") as f:
            f.write(config)
        cmd += ["--config", path]
        fd, log = tempfile.mkstemp(dir=tmp, prefix="local-", suffix=".log")
        os.close(fd)
        super().__init__(cmd + list(args), log,
                         env={"RUST_LOG": os.environ.get("RUST_LOG", "warn"), **(env or {})})
        self.url = None
        self.dashboard = None

    def wait_ready(self):
        """Wait for the readiness line (the dashboard's comes before it); False if the
        process exited first."""
        found = self.wait_for({"url": LOCAL_READY, "dashboard": DASHBOARD_LINE})
        self.url, self.dashboard = found["url"], found["dashboard"]
        return self.url is not None


def start_cluster(*args, tmp, config=None, env=None):
    c = LocalCluster(*args, tmp=tmp, config=config, env=env)
    if not c.wait_ready():
        code = c.stop()
        raise RuntimeError(f"cloudburst local did not start (exit {code}): {c.log_text()}")
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
def shared_dir():
    """A directory the test and its functions both use (files a function writes, a lock it
    waits on): functions run as another user (`nobody`) when the tests run as root, who
    cannot enter pytest's private `tmp_path`. Removed after the test."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="cloudburst-shared-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def cloud(url):
    conn = cloudburst.CloudburstConnection(url)
    yield conn
    conn.close()
