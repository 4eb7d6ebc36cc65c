"""Programs written for the original Cloudburst (hydro-project/cloudburst) run here with only
their connection line changed: each test uses the original client's import paths and the
shapes its client and user library documented (docs/porting.md lists them side by side)."""

import os
import pathlib
import pickle
import subprocess
import sys
import uuid
import warnings

import pytest

from conftest import ROOT, start_cluster

# The original's import paths, as its programs write them.
from cloudburst.client.client import CloudburstConnection
from cloudburst.shared.future import CloudburstFuture
from cloudburst.shared.proto.cloudburst_pb2 import (
    DAG_ALREADY_EXISTS,
    MULTI,
    NORMAL,
    CloudburstError,
)
from cloudburst.shared.reference import CloudburstReference

from original import composition

#: Seconds a test waits for a result (functions that wait on each other included).
RESULT_TIMEOUT = 60


@pytest.fixture
def conn(url):
    c = CloudburstConnection(url)
    yield c
    c.close()


def incr(cloudburst, x):
    return x + 1


def square(cloudburst, x):
    return x * x


def test_original_import_paths_name_the_real_classes():
    import cloudburst

    assert CloudburstConnection is cloudburst.CloudburstConnection
    assert CloudburstReference is cloudburst.CloudburstReference
    assert CloudburstFuture is cloudburst.CloudburstFuture
    assert (NORMAL, MULTI) == (cloudburst.NORMAL, cloudburst.CAUSAL)
    assert CloudburstError.Name(DAG_ALREADY_EXISTS) == "DAG_ALREADY_EXISTS"


def test_original_address_form_connects_with_a_warning(cluster):
    host_port = cluster.url.removeprefix("ws://")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        c = CloudburstConnection(host_port, "127.0.0.1", local=True)
    try:
        assert c.url == cluster.url
        text = str(caught[0].message)
        assert cluster.url in text and "ip, local not needed" in text, text
        assert c.register(square, "square")(3).get(timeout=RESULT_TIMEOUT) == 9
    finally:
        c.close()


def test_original_composition_benchmark_runs_unchanged(conn):
    total, scheduler, kvs, retries = composition.run(conn, 20, None)
    assert len(total) == 20 and retries == 0


def test_register_dag_unpacks_and_is_true(conn):
    conn.register(incr, "incr")
    conn.register(square, "square")
    result = conn.register_dag("porting_pipeline", ["incr", "square"], [("incr", "square")])
    assert result
    success, error = result
    assert success is True and error == 0 and error != DAG_ALREADY_EXISTS
    success, error = conn.register_dag("porting_pipeline", ["incr", "square"],
                                       [("incr", "square")])
    assert success, "registering the same DAG again succeeds, as a replacement"
    assert conn.call_dag("porting_pipeline", {"incr": 1}, consistency=NORMAL).get() == 4
    success, error = conn.delete_dag("porting_pipeline")
    assert (success, error) == (True, 0)


def test_tuple_result_spreads_into_downstream_arguments(conn):
    def pair(cloudburst, x):
        return x, x * 10

    def combine(cloudburst, a, b):
        return [a, b]

    conn.register(pair, "pair")
    conn.register(combine, "combine")
    conn.register_dag("porting_spread", ["pair", "combine"], [("pair", "combine")])
    assert conn.call_dag("porting_spread", {"pair": [2]}).get(timeout=RESULT_TIMEOUT) == [2, 20]
    # The sink's tuple reaches the client as it was returned.
    conn.register_dag("porting_pair", ["pair"], [])
    assert conn.call_dag("porting_pair", {"pair": [3]}).get(timeout=RESULT_TIMEOUT) == (3, 30)


def test_future_as_argument(conn):
    cloud_incr = conn.register(incr, "incr")
    cloud_square = conn.register(square, "square")
    assert cloud_square(cloud_incr(1)).get(timeout=RESULT_TIMEOUT) == 4
    # exec_func returned a key in the original, read with get_object: a future reads so too.
    rid = conn.exec_func("incr", [41])
    assert conn.get_object(rid) == 42


def test_reference_with_deserialize(conn):
    key = f"porting/{uuid.uuid4().hex}"
    conn.put_object(key, 7)
    cloud_square = conn.register(square, "square")
    assert cloud_square(CloudburstReference(key, True)).get(timeout=RESULT_TIMEOUT) == 49
    with pytest.raises(ValueError, match="deserialize=False"):
        CloudburstReference(key, False)


def test_user_library_get_of_a_list_is_a_dict(conn):
    run = uuid.uuid4().hex
    k1, k2, missing = f"{run}/1", f"{run}/2", f"{run}/missing"
    conn.put_object(k1, "one")
    conn.put_object(k2, [2])

    def read(cloudburst, keys):
        return cloudburst.get(keys)

    got = conn.register(read, "porting_read")([k1, k2, missing]).get(timeout=RESULT_TIMEOUT)
    assert got == {k1: "one", k2: [2], missing: None}


def test_user_library_get_without_deserialize_gives_the_stored_bytes(conn):
    key = f"porting/{uuid.uuid4().hex}"
    conn.put_object(key, {"a": 1})

    def raw(cloudburst, k):
        return cloudburst.get(k, deserialize=False)

    got = conn.register(raw, "porting_raw")(key).get(timeout=RESULT_TIMEOUT)
    assert isinstance(got, bytes) and pickle.loads(got) == {"a": 1}


MESSAGES = ["text", 5, {"k": [1, 2]}, b"\x00\x01raw"]


def receiver(cloudburst, run, expected):
    me = cloudburst.getid()
    cloudburst.put(f"{run}/receiver", me)
    got = []
    while len(got) < expected:
        got.extend(cloudburst.recv())
    return me, got


def sender(cloudburst, run, messages):
    dest = cloudburst.get(f"{run}/receiver")
    while dest is None:
        dest = cloudburst.get(f"{run}/receiver")
    for m in messages:
        cloudburst.send(dest, m)
    return cloudburst.getid()


def test_send_delivers_any_picklable_object_as_sent(conn):
    conn.register(receiver, "porting_receiver")
    conn.register(sender, "porting_sender")
    run = uuid.uuid4().hex
    got = conn.get_function("porting_receiver")(run, len(MESSAGES))
    sent_by = conn.get_function("porting_sender")(run, MESSAGES).get(timeout=RESULT_TIMEOUT)
    receiver_id, messages = got.get(timeout=RESULT_TIMEOUT)
    assert isinstance(receiver_id, str) and receiver_id != sent_by
    assert messages == [(sent_by, m) for m in MESSAGES]
    assert [type(m) for _, m in messages] == [str, int, dict, bytes]


def test_missing_module_error_names_the_module_and_the_fix(conn):
    def needs(cloudburst):
        import cloudburst_port_no_such_module  # noqa: F401

    import cloudburst

    with pytest.raises(cloudburst.FunctionError) as e:
        conn.register(needs, "porting_needs")().get(timeout=RESULT_TIMEOUT)
    msg = str(e.value)
    assert e.value.exception_type == "ModuleNotFoundError"
    for part in ("'cloudburst_port_no_such_module'", "pip install", "--python",
                 "executor.python"):
        assert part in msg, msg


# -- functions that wait for each other, on small pools ---------------------------------


def block(cloudburst, run, me, n):
    """Summa's pattern: publish this function's id, wait for every peer's, send each a
    block, then receive one block from each (busy loops on the platform, as summa does)."""
    cloudburst.put(f"{run}/{me}", cloudburst.getid())
    keys = [f"{run}/{i}" for i in range(n) if i != me]
    ids = cloudburst.get(keys)
    while None in ids.values():
        ids = cloudburst.get(keys)
    for dest in ids.values():
        cloudburst.send(dest, (me, [me] * 100))
    got = {}
    while len(got) < n - 1:
        for _, (peer, data) in cloudburst.recv():
            got[peer] = sum(data)
    return sorted(got.items())


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    c = start_cluster("--workers", "2", tmp=tmp_path_factory.mktemp("two_workers"))
    yield c
    assert c.stop() == 0


def test_four_functions_exchanging_blocks_on_two_workers(two_workers):
    n = 4
    with CloudburstConnection(two_workers.url) as c:
        cloud_block = c.register(block, "block")
        run = uuid.uuid4().hex
        futures = [cloud_block(run, i, n) for i in range(n)]
        results = [f.get(timeout=RESULT_TIMEOUT) for f in futures]
    for me, got in enumerate(results):
        assert got == [(p, 100 * p) for p in range(n) if p != me]


def test_messaging_example_with_one_worker(tmp_path):
    c = start_cluster("--workers", "1", tmp=tmp_path)
    try:
        # The example finds the cluster's token as a user's program does (see conftest).
        env = {"PYTHONPATH": str(ROOT / "python"), "PATH": "/usr/bin:/bin",
               "XDG_CONFIG_HOME": os.environ["XDG_CONFIG_HOME"]}
        r = subprocess.run([sys.executable, str(ROOT / "examples" / "messaging.py"), c.url],
                           capture_output=True, text=True, timeout=RESULT_TIMEOUT, env=env,
                           cwd=pathlib.Path(ROOT / "examples"))
        assert r.returncode == 0, f"messaging.py failed:\n{r.stdout}\n{r.stderr}"
    finally:
        assert c.stop() == 0
