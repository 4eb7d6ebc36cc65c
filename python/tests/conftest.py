"""Fixtures: a real `cloudburst local` (the binary named by $CLOUDBURST_BIN, default
target/debug/cloudburst) on free loopback ports, started once per test session and
waited for through its readiness line."""

import os
import pathlib
import subprocess
import sys
import threading

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
        cmd = [binary(), "local", "--listen", "127.0.0.1:0", "--dashboard-listen", "127.0.0.1:0"]
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
