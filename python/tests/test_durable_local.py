"""`cloudburst local` keeps its state across restarts by default (interval mode, in a data
directory under the user's data dir), and `--ephemeral` keeps nothing.

Each test points XDG_DATA_HOME at a temporary directory, so the default location is used
without touching the real one."""

import re
import time

import cloudburst
from conftest import Proc

CLIENT_URL = re.compile(r"^cloudburst local ready: client (\S+)")
# kvs.flush_interval_ms by default: an `interval` node has synced what it acknowledged
# this long ago (the guarantee under test is about time, so the test waits that long).
FLUSH_INTERVAL_S = 1.0


def start(tmp_path, name, *extra):
    args = ["local", "--listen", "127.0.0.1:0", "--client-listen", "127.0.0.1:0",
            "--dashboard-listen", "127.0.0.1:0", *extra]
    p = Proc(args, tmp_path / f"{name}.log", env={"XDG_DATA_HOME": str(tmp_path / "xdg")})
    url = p.wait_for({"url": CLIENT_URL})["url"]
    assert url, f"cloudburst local did not start; log:\n{p.log_text()}"
    return p, cloudburst.CloudburstConnection(url)


def square(cb, x):
    return x * x


def incr(cb, x):
    return x + 1


def fill(cloud):
    cloud.put_object("kept", {"answer": 42})
    cloud.register(square, "square")
    cloud.register(incr, "incr")
    cloud.register_dag("pipeline", ["incr", "square"], [("incr", "square")])
    assert cloud.call_dag("pipeline", {"incr": [2]}).get() == 9


def assert_kept(cloud):
    assert cloud.get_object("kept") == {"answer": 42}
    assert sorted(cloud.list()) == ["incr", "square"]
    assert cloud.list_dags() == ["pipeline"]
    assert cloud.call_dag("pipeline", {"incr": [3]}).get() == 16
    assert cloud.get_function("square")(5).get() == 25


def test_state_survives_sigterm_and_sigkill_after_the_flush_interval(tmp_path):
    p, cloud = start(tmp_path, "first")
    assert "state is kept in" in p.log_text() and str(tmp_path / "xdg") in p.log_text()
    fill(cloud)
    cloud.close()
    p.stop()
    assert p.proc.returncode == 0, p.log_text()
    assert (tmp_path / "xdg" / "cloudburst" / "local" / "node.json").exists()

    p, cloud = start(tmp_path, "second")
    assert_kept(cloud)
    cloud.put_object("later", [1, 2, 3])
    time.sleep(FLUSH_INTERVAL_S * 1.5)
    cloud.close()
    p.proc.kill()
    p.proc.wait()

    p, cloud = start(tmp_path, "third")
    assert_kept(cloud)
    assert cloud.get_object("later") == [1, 2, 3]
    cloud.close()
    p.stop()


def test_ephemeral_keeps_nothing(tmp_path):
    p, cloud = start(tmp_path, "first", "--ephemeral")
    assert "ephemeral" in p.log_text()
    fill(cloud)
    cloud.close()
    p.stop()
    assert not (tmp_path / "xdg").exists()

    p, cloud = start(tmp_path, "second", "--ephemeral")
    assert cloud.get_object("kept") is None
    assert cloud.list() == []
    cloud.close()
    p.stop()


def test_a_second_local_on_the_same_directory_is_refused(tmp_path):
    p, cloud = start(tmp_path, "first")
    args = ["local", "--listen", "127.0.0.1:0", "--client-listen", "127.0.0.1:0",
            "--dashboard-listen", "127.0.0.1:0"]
    second = Proc(args, tmp_path / "second.log", env={"XDG_DATA_HOME": str(tmp_path / "xdg")})
    assert second.proc.wait(timeout=30) != 0
    assert "in use by another process" in second.log_text(), second.log_text()
    cloud.close()
    p.stop()
