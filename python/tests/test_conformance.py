"""Conformance of the server to docs/protocol.md, spoken as another language would: only
`websockets` and `msgpack` (plus cloudpickle for function bodies, and pickle for the pickle
extension), never the `cloudburst` package, except to check that values put raw read
back right through the Python client and the reverse.

Every op and every error code of the document's tables is either exercised here
(`OPS`, `CODES`) or named in `NOT_HERE` with the test that covers it and why a client of
a healthy local cluster cannot cause it; a test keeps the three equal to the document."""

import itertools
import os
import pathlib
import pickle
import re
import sys
import time

import cloudpickle
import msgpack
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

import cloudburst
from conftest import start_cluster

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
PICKLE_EXT = 1
ANSWER_TIMEOUT = 60.0  # a loaded CI machine runs first calls slowly

#: The document's ops, each exercised by the tests named.
OPS = {
    "hello": "test_hello_is_optional_and_reports_limits",
    "ping": "test_hello_is_optional_and_reports_limits",
    "put_object": "test_plain_values_are_native_messagepack",
    "get_object": "test_plain_values_are_native_messagepack",
    "delete_object": "test_deletes",
    "register_function": "test_functions_and_calls",
    "register_dag": "test_dags_and_their_arguments",
    "delete_dag": "test_dags_and_their_arguments",
    "list": "test_functions_and_calls",
    "call_function": "test_functions_and_calls",
    "call_dag": "test_dags_and_their_arguments",
    "await": "test_futures",
    "cancel": "test_cancel_and_unknown_calls",
    "logs": "test_logs_of_a_call",
}

#: Error codes exercised here (by the test named).
CODES = {
    "malformed_frame": "test_frames_that_cannot_be_requests",
    "unsupported_version": "test_frames_that_cannot_be_requests",
    "unknown_op": "test_frames_that_cannot_be_requests",
    "invalid_request": "test_frames_that_cannot_be_requests",
    "kind_mismatch": "test_sets_and_kinds",
    "value_too_large": "test_limits",
    "timeout": "test_futures",
    "unknown_function": "test_functions_and_calls",
    "unknown_dag": "test_dags_and_their_arguments",
    "bad_dag": "test_dags_and_their_arguments",
    "version_mismatch": "test_functions_and_calls",
    "function_error": "test_functions_and_calls",
    "pickle_error": "test_functions_and_calls",
    "forbidden_origin": "test_web_pages_of_other_origins_are_refused",
    "cancelled": "test_cancel_and_unknown_calls",
    "unknown_call": "test_cancel_and_unknown_calls",
    "worker_crashed": "test_call_options",
}

#: Codes a client of a healthy `cloudburst local` cannot cause on demand, with where they
#: are tested.
NOT_HERE = {
    "unsupported_value": "no op writes a non-Python lattice (gateway core_tests)",
    "storage_error": "needs a failing KVS (gateway core_tests: a corrupt stored value)",
    "unavailable": "needs unreachable nodes (test_errors.py, tests/it/functions_*.rs)",
    "no_executors": "needs a cluster without executors (tests/it/functions_dag.rs)",
    "too_large": "an argument over the worker message limit (tests/it/pyrt_limits.rs)",
    "overloaded": "full executor queues (src/actors/executor tests)",
    "shut_down": "an executor pool shutting down (src/pyrt tests)",
    "stale_function": "a re-registration racing a call (src/actors/executor tests)",
    "session_expired": "pinned versions dropped mid-call (tests/it/pyrt_library.rs)",
    "internal_error": "a server bug",
    "executor_lost": "an executor node killed under a call (test_faults.py)",
    "scheduler_lost": "a scheduler node killed under a call (test_faults.py)",
    "memory_limit": "a function over executor.worker_memory_bytes (test_security.py)",
    "missing_token": "dashboard only (test_dashboard.py)",
    "invalid_token": "dashboard only (test_dashboard.py)",
    "not_ready": "dashboard only, before the first sample",
    "too_many_streams": "dashboard only (src/node dashboard tests)",
}


def doc_table(heading, column=0):
    """First-column backquoted names of the table under `heading` in the document."""
    text = DOC.read_text()
    section = text.split(heading, 1)[1]
    names = []
    for line in section.splitlines()[1:]:
        if line.startswith("#"):
            break
        m = re.match(r"^\| `([a-z_]+)` \|", line)
        if m:
            names.append(m.group(1))
    return names


def test_the_document_and_this_test_name_the_same_ops_and_codes():
    assert set(doc_table("## Ops")) == set(OPS)
    codes = doc_table("## Error codes")
    assert len(codes) == len(set(codes))
    assert set(codes) == set(CODES) | set(NOT_HERE)
    assert not set(CODES) & set(NOT_HERE)
    tests = {name for name in dir(sys.modules[__name__]) if name.startswith("test_")}
    assert set(OPS.values()) | set(CODES.values()) <= tests


def _ext(code, data):
    return pickle.loads(data) if code == PICKLE_EXT else msgpack.ExtType(code, data)


def token_headers():
    """The client token as the document says a client finds it for a loopback gateway."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    path = pathlib.Path(base) / "cloudburst" / "token"
    token = os.environ.get("CLOUDBURST_TOKEN") or (path.read_text().strip()
                                                   if path.exists() else None)
    return {"Authorization": f"Bearer {token}"} if token else {}


class Raw:
    """A client written from the document: one websocket, request ids from 1, responses
    matched by id (they may come in any order)."""

    def __init__(self, url, headers=None):
        self.ws = connect(url, max_size=None, compression=None, proxy=None,
                          additional_headers={**token_headers(), **(headers or {})}).__enter__()
        self.ids = itertools.count(1)
        self.early = {}

    def close(self):
        self.ws.close()

    def send(self, frame):
        self.ws.send(frame if isinstance(frame, (bytes, str)) else msgpack.packb(frame))

    def recv(self, timeout=ANSWER_TIMEOUT):
        return msgpack.unpackb(self.ws.recv(timeout=timeout), raw=False,
                               strict_map_key=False, ext_hook=_ext)

    def answer(self, request_id):
        while request_id not in self.early:
            msg = self.recv()
            self.early[msg["id"]] = msg
        return self.early.pop(request_id)

    def request(self, op, **fields):
        request_id = next(self.ids)
        self.send({"v": 2, "id": request_id, "op": op, **fields})
        msg = self.answer(request_id)
        assert msg["v"] == 2 and msg["id"] == request_id
        return msg

    def ok(self, op, **fields):
        msg = self.request(op, **fields)
        assert "err" not in msg, msg
        return msg["ok"]

    def err(self, op, code, **fields):
        msg = self.request(op, **fields)
        assert "ok" not in msg, msg
        assert set(msg["err"]) == {"code", "message", "exception_type", "traceback"}
        assert msg["err"]["code"] == code, msg
        return msg["err"]


@pytest.fixture
def raw(url):
    r = Raw(url)
    yield r
    r.close()


def pickled(obj):
    return msgpack.ExtType(PICKLE_EXT, pickle.dumps(obj, protocol=5))


def test_hello_is_optional_and_reports_limits(raw):
    assert raw.ok("ping") is None  # no hello first
    hello = raw.ok("hello", client="conformance/1")
    assert hello["protocol"] == 2 and hello["server"].startswith("cloudburst ")
    assert hello["max_message_bytes"] >= 1024
    assert hello["heartbeat_ms"] > 0 and hello["client_timeout_ms"] > hello["heartbeat_ms"]
    assert raw.ok("hello") == hello  # `client` is optional, hello may come again


def test_frames_that_cannot_be_requests(raw):
    raw.send(b"\xc1 not msgpack")
    msg = raw.recv()
    assert msg["id"] is None and msg["err"]["code"] == "malformed_frame"
    raw.send("text")
    assert raw.recv()["err"]["code"] == "malformed_frame"
    raw.send({"v": 2, "op": "ping"})  # no id: answered with id nil
    msg = raw.recv()
    assert msg["id"] is None and msg["err"]["code"] == "malformed_frame"
    raw.send({"v": 2, "id": 9})  # no op
    assert raw.answer(9)["err"]["code"] == "malformed_frame"
    raw.send({"v": 1, "id": 10, "op": "ping"})  # a protocol-1 client is told what changed
    old = raw.answer(10)["err"]
    assert old["code"] == "unsupported_version" and "native MessagePack" in old["message"]
    raw.err("launch", "unknown_op")
    raw.err("get_object", "invalid_request")  # no key
    raw.err("put_object", "invalid_request", key="", value={"value": 1})
    raw.err("put_object", "invalid_request", key="__cloudburst/mine", value={"value": 1})
    raw.err("put_object", "invalid_request", key="k", value={"concurrent": [1]})
    raw.err("call_function", "invalid_request", function="f", args=[{"ref": ""}])
    assert raw.ok("ping") is None  # the connection survives all of it


def doc_examples():
    """The document's table of values and their bytes: (Python value, bytes)."""
    section = DOC.read_text().split("Examples (the bytes of", 1)[1].split("## Ops", 1)[0]
    rows = re.findall(r"^\| (?:Python )?`([^`]+)`(?: \(a tuple: pickled\))? \| (.+) \|$",
                      section, re.M)
    out = []
    for literal, cell in rows:
        value = eval(literal, {"__builtins__": {}})  # the document's own literals
        out.append((value, bytes.fromhex("".join(re.findall(r"`([0-9a-f ]+)`", cell)))))
    return out


def test_the_documents_value_examples_are_what_encoders_write():
    examples = doc_examples()
    assert len(examples) >= 12
    for value, encoded in examples:
        if isinstance(value, tuple):
            assert msgpack.packb(pickled(value)) == encoded, value
        else:
            assert msgpack.packb(value) == encoded, value


def test_plain_values_are_native_messagepack(raw, url):
    cloud = cloudburst.CloudburstConnection(url)
    try:
        plain = [v for v, _ in doc_examples() if not isinstance(v, tuple)]
        for i, value in enumerate(plain):
            raw.ok("put_object", key=f"conf/raw{i}", value={"value": value})
            got = cloud.get_object(f"conf/raw{i}")
            assert got == value and type(got) is type(value), (got, value)
            cloud.put_object(f"conf/py{i}", value)
            assert raw.ok("get_object", key=f"conf/py{i}") == {"value": value}
        assert raw.ok("get_object", key="conf/missing") is None
        # Anything else is a pickle inside extension type 1, both ways.
        cloud.put_object("conf/tuple", (1, "two"))
        assert raw.ok("get_object", key="conf/tuple") == {"value": (1, "two")}
        raw.ok("put_object", key="conf/frozen", value={"value": pickled(frozenset({4}))})
        assert cloud.get_object("conf/frozen") == frozenset({4})
        # A list holding a Python-only object stays a list, with just that object pickled.
        cloud.put_object("conf/mixed", [1, (2, 3)])
        assert raw.ok("get_object", key="conf/mixed") == {"value": [1, (2, 3)]}
    finally:
        cloud.close()


def conf_legacy_put(cb, key):
    # What a worker of protocol 1 stored: a bare pickle (the user library's own link).
    import pickle

    cb._link.put(key, pickle.dumps({"old": (1, 2)}, protocol=5))


def test_values_stored_by_protocol_1_still_read(raw, url):
    assert register(raw, "conf_legacy_put", conf_legacy_put)["ok"] is None
    assert register(raw, "conf_pair", conf_pair)["ok"] is None
    raw.ok("call_function", function="conf_legacy_put", args=[{"value": "conf/legacy"}],
           direct=True)
    # To clients as the pickle extension, to functions as the value.
    assert raw.ok("get_object", key="conf/legacy") == {"value": {"old": (1, 2)}}
    out = raw.ok("call_function", function="conf_pair",
                 args=[{"ref": "conf/legacy"}, {"value": 0}], direct=True)
    assert out == {"value": [{"old": (1, 2)}, 0]}
    cloud = cloudburst.CloudburstConnection(url)
    try:
        assert cloud.get_object("conf/legacy") == {"old": (1, 2)}
    finally:
        cloud.close()


def test_sets_and_kinds(raw, url):
    raw.ok("put_object", key="conf/set", value={"set": [1, "a"]})
    raw.ok("put_object", key="conf/set", value={"set": [2]})
    got = raw.ok("get_object", key="conf/set")
    assert set(got) == {"set"} and sorted(map(str, got["set"])) == ["1", "2", "a"]
    cloud = cloudburst.CloudburstConnection(url)
    try:
        assert cloud.get_object("conf/set") == {1, 2, "a"}
    finally:
        cloud.close()
    raw.err("put_object", "kind_mismatch", key="conf/set", value={"value": 1})


def test_limits(tmp_path):
    c = start_cluster(tmp=tmp_path, config="[kvs]\nmax_value_bytes = 4096\n"
                      "[gateway]\nmax_message_bytes = 65536\n")
    r = Raw(c.url)
    try:
        assert r.ok("hello")["max_message_bytes"] == 65536
        r.err("put_object", "value_too_large", key="big", value={"value": b"x" * 5000})
        r.ok("put_object", key="small", value={"value": b"x" * 4000})
        r.send(b"\x00" * 65537)
        with pytest.raises(ConnectionClosed) as e:
            r.recv()
        assert e.value.rcvd is not None and e.value.rcvd.code == 1009
        assert e.value.rcvd.reason.startswith("message_too_large")
    finally:
        r.close()
        assert c.stop() == 0


def body(f):
    # This module is not installed on the executors: ship its functions by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        return cloudpickle.dumps(f)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def register(raw, name, f, **fields):
    env = {"python": "%d.%d" % sys.version_info[:2], "cloudpickle": cloudpickle.__version__}
    return raw.request("register_function", name=name, body=body(f), **{**env, **fields})


def conf_square(cb, x):
    return x * x


def conf_raises(cb, x):
    raise KeyError(x)


def conf_pair(cb, a, b):
    return [a, b]


def conf_sleep(cb, seconds):
    import time

    time.sleep(seconds)
    return "slept"


class ConfCounter:
    def __init__(self, cb, start):
        self.n = start

    def run(self, cb, step):
        self.n += step
        return self.n


def test_functions_and_calls(raw):
    for name, f in [("conf_square", conf_square), ("conf_raises", conf_raises),
                    ("conf_pair", conf_pair), ("conf_sleep", conf_sleep)]:
        assert register(raw, name, f)["ok"] is None
    msg = register(raw, "conf_counter", (ConfCounter, (10,)), kind="class", timeout_ms=30000)
    assert msg["ok"] is None
    assert register(raw, "conf_old", conf_square, python="2.7")["err"]["code"] == \
        "version_mismatch"
    names = raw.ok("list", what="functions", prefix="conf_")
    assert names == sorted(names) and all(n.startswith("conf_") for n in names)
    assert {"conf_square", "conf_raises", "conf_pair", "conf_sleep", "conf_counter"} <= set(names)
    assert "conf_square" in raw.ok("list")  # `what` defaults to functions
    assert raw.ok("call_function", function="conf_square", args=[{"value": 9}],
                  direct=True) == {"value": 81}
    assert raw.ok("call_function", function="conf_counter", args=[{"value": 1}],
                  direct=True)["value"] >= 11
    raw.ok("put_object", key="conf/arg", value={"value": 5})
    out = raw.ok("call_function", function="conf_pair",
                 args=[{"ref": "conf/arg"}, {"value": pickled((1, 2))}], direct=True)
    assert out == {"value": [5, (1, 2)]}
    # A reference to a missing key is None.
    out = raw.ok("call_function", function="conf_pair",
                 args=[{"ref": "conf/none"}, {"value": b"b"}], direct=True)
    assert out == {"value": [None, b"b"]}
    raw.err("call_function", "unknown_function", function="conf_nope", args=[], direct=True)
    err = raw.err("call_function", "function_error", function="conf_raises",
                  args=[{"value": "k"}], direct=True)
    assert err["exception_type"] == "KeyError" and "conf_raises" in err["traceback"]
    err = raw.err("call_function", "pickle_error", function="conf_square",
                  args=[{"value": msgpack.ExtType(PICKLE_EXT, b"not a pickle")}], direct=True)
    assert "argument" in err["message"]
    # Output keys: the result is also stored there.
    out = raw.ok("call_function", function="conf_square", args=[{"value": 3}], direct=True,
                 output_key="conf/out")
    assert out == {"value": 9} and raw.ok("get_object", key="conf/out") == {"value": 9}


def test_futures(raw):
    assert register(raw, "conf_sleep", conf_sleep)["ok"] is None
    assert register(raw, "conf_square", conf_square)["ok"] is None
    fut = raw.ok("call_function", function="conf_square", args=[{"value": 4}])
    assert set(fut) == {"call", "key"} and 0 < fut["call"] < 2**53
    assert fut["key"] == "__cloudburst/results/call-%016x" % fut["call"]
    assert raw.ok("await", timeout_ms=60000, **fut) == {"value": 16}
    assert raw.ok("await", timeout_ms=60000, **fut) == {"value": 16}  # awaited again
    assert raw.ok("get_object", key=fut["key"]) == {"value": 16}
    slow = raw.ok("call_function", function="conf_sleep", args=[{"value": 1.0}])
    err = raw.err("await", "timeout", timeout_ms=10, **slow)
    assert "10 ms" in err["message"]
    assert raw.ok("await", timeout_ms=60000, **slow) == {"value": "slept"}
    named = raw.ok("call_function", function="conf_square", args=[{"value": 5}],
                   output_key="conf/fut")
    assert named["key"] == "conf/fut"
    assert raw.ok("await", timeout_ms=60000, **named) == {"value": 25}


def conf_attempts(cb, crash):
    """Fails on the first attempt of its call (the worker dies, or an exception); returns
    the call's id and the attempt otherwise."""
    import os

    if cb.attempt == 0:
        if crash:
            os._exit(3)
        raise RuntimeError("first attempt")
    return [cb.call_id, cb.attempt]


def test_call_options(raw):
    assert register(raw, "conf_attempts", conf_attempts)["ok"] is None
    assert register(raw, "conf_sleep", conf_sleep)["ok"] is None
    # retries: a worker dying under the call runs it again, as its next attempt.
    fut = raw.ok("call_function", function="conf_attempts", args=[{"value": True}],
                 retries=1)
    assert raw.ok("await", timeout_ms=60000, **fut) == {"value": [fut["call"], 1]}
    raw.err("call_function", "worker_crashed", function="conf_attempts",
            args=[{"value": True}], retries=0, direct=True)
    # retry_errors: the function's own exception re-runs it too; by default it does not.
    out = raw.ok("call_function", function="conf_attempts", args=[{"value": False}],
                 retries=1, retry_errors=True, direct=True)
    assert out["value"][1] == 1
    err = raw.err("call_function", "function_error", function="conf_attempts",
                  args=[{"value": False}], retries=1, direct=True)
    assert err["exception_type"] == "RuntimeError"
    # timeout_ms: the call's deadline, for a direct call and for every await of a future.
    raw.err("call_function", "timeout", function="conf_sleep", args=[{"value": 30.0}],
            timeout_ms=300, direct=True)
    fut = raw.ok("call_function", function="conf_sleep", args=[{"value": 30.0}],
                 timeout_ms=300)
    for _ in range(2):
        raw.err("await", "timeout", timeout_ms=60000, **fut)
    # Bounds: retries at most 10, a call's timeout at most an hour.
    raw.err("call_function", "invalid_request", function="conf_sleep",
            args=[{"value": 0}], retries=11, direct=True)
    raw.err("call_dag", "invalid_request", dag="conf_any", args={}, timeout_ms=3600001)
    raw.err("register_function", "invalid_request", name="conf_many", body=body(conf_sleep),
            python="%d.%d" % sys.version_info[:2], cloudpickle=cloudpickle.__version__,
            retries=11)


def conf_runs(cb, key, seconds):
    """Counts its runs under `key` (one call at a time uses a key), sleeps, returns the count."""
    import time

    runs = (cb.get(key) or 0) + 1
    cb.put(key, runs)
    time.sleep(seconds)
    return runs


def test_client_call_ids(raw, url):
    """A call request sent again with the client's `call` id runs once and answers as the
    first; one no scheduler took runs when sent again."""
    assert register(raw, "conf_runs", conf_runs)["ok"] is None
    base = int.from_bytes(os.urandom(6), "big")  # well below 2**53
    # A direct call, sent twice at once (the second before the first is answered), then
    # once more on another connection to the same gateway after it ended.
    fields = dict(function="conf_runs", args=[{"value": "conf/runs1"}, {"value": 0.5}],
                  direct=True, call=base)
    first, second = next(raw.ids), next(raw.ids)
    for request_id in (first, second):
        raw.send({"v": 2, "id": request_id, "op": "call_function", **fields})
    assert raw.answer(first)["ok"] == raw.answer(second)["ok"] == {"value": 1}
    other = Raw(url)
    try:
        assert other.ok("call_function", **fields) == {"value": 1}
    finally:
        other.close()
    assert raw.ok("get_object", key="conf/runs1") == {"value": 1}, "it ran once"
    # A future: the id is the client's, its result key made from it; sent again, the same
    # future.
    fields = dict(function="conf_runs", args=[{"value": "conf/runs2"}, {"value": 0}],
                  call=base + 1)
    fut = raw.ok("call_function", **fields)
    assert fut == {"call": base + 1, "key": "__cloudburst/results/call-%016x" % (base + 1)}
    assert raw.ok("await", timeout_ms=60000, **fut) == {"value": 1}
    assert raw.ok("call_function", **fields) == fut
    assert raw.ok("get_object", key="conf/runs2") == {"value": 1}
    # Refused (no such function yet): not remembered, so sent again once it exists, it runs.
    fields = dict(function="conf_runs_late", args=[{"value": "conf/runs3"}, {"value": 0}],
                  direct=True, call=base + 2)
    raw.err("call_function", "unknown_function", **fields)
    assert register(raw, "conf_runs_late", conf_runs)["ok"] is None
    assert raw.ok("call_function", **fields) == {"value": 1}
    # Ids are below 2**53, as every call id.
    raw.err("call_function", "invalid_request", function="conf_runs", args=[],
            call=2**53)


def conf_marked(cb, key, seconds):
    import time

    cb.put(key, cb.call_id)
    time.sleep(seconds)
    return "slept"


def test_cancel_and_unknown_calls(raw):
    assert register(raw, "conf_sleep", conf_sleep)["ok"] is None
    fut = raw.ok("call_function", function="conf_sleep", args=[{"value": 30.0}])
    assert raw.ok("cancel", call=fut["call"]) is True
    for _ in range(2):  # a failed future answers the same on every await
        raw.err("await", "cancelled", timeout_ms=60000, **fut)
    assert raw.ok("cancel", call=fut["call"]) is False  # it ended already
    # A direct call is cancelled by a request sent while it runs (requests run
    # concurrently); the function tells its call id through the KVS.
    assert register(raw, "conf_marked", conf_marked)["ok"] is None
    mark = f"conf/mark-{time.time_ns()}"
    request_id = next(raw.ids)
    raw.send({"v": 2, "id": request_id, "op": "call_function", "function": "conf_marked",
              "args": [{"value": mark}, {"value": 30.0}], "direct": True})
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while (running := raw.ok("get_object", key=mark)) is None:
        assert time.monotonic() < deadline, "the function never started"
        time.sleep(0.05)
    assert raw.ok("cancel", call=running["value"]) is True
    assert raw.answer(request_id)["err"]["code"] == "cancelled"
    # Calls this gateway never made.
    unknown = 0x1234
    raw.err("cancel", "unknown_call", call=unknown)
    raw.err("await", "unknown_call", call=unknown, key="__cloudburst/results/call-%016x"
            % unknown)  # answered at once, with no timeout_ms


def conf_prints(cb, x):
    print("conf says", x)
    return x


def test_logs_of_a_call(raw):
    assert register(raw, "conf_prints", conf_prints)["ok"] is None
    fut = raw.ok("call_function", function="conf_prints", args=[{"value": 3}])
    assert raw.ok("await", timeout_ms=60000, **fut) == {"value": 3}
    [log] = raw.ok("logs", call=fut["call"])
    assert set(log) == {"call", "attempt", "function", "node", "stdout", "stderr",
                        "traceback", "truncated", "at_ms"}
    assert (log["call"], log["function"], log["stdout"]) == (fut["call"], "conf_prints",
                                                             "conf says 3\n")
    assert (log["stderr"], log["traceback"], log["truncated"]) == ("", None, False)
    assert raw.ok("logs", call=0x1234) == []


def conf_incr(cb, x):
    return x + 1


def conf_add(cb, x, upstream):
    return [x, upstream]


def test_dags_and_their_arguments(raw):
    for name, f in [("conf_incr", conf_incr), ("conf_add", conf_add),
                    ("conf_square", conf_square)]:
        assert register(raw, name, f)["ok"] is None
    raw.ok("register_dag", name="conf_dag", functions=["conf_incr", "conf_add"],
           connections=[["conf_incr", "conf_add"]])
    assert "conf_dag" in raw.ok("list", what="dags", prefix="conf_")
    # A function's own arguments come first, then its upstream functions' results.
    out = raw.ok("call_dag", dag="conf_dag", args={"conf_incr": [{"value": 1}],
                                                   "conf_add": [{"value": "x"}]}, direct=True)
    assert out == {"value": ["x", 2]}
    fut = raw.ok("call_dag", dag="conf_dag", consistency="causal",
                 args={"conf_incr": [{"value": 2}], "conf_add": [{"value": "y"}]})
    assert raw.ok("await", timeout_ms=60000, **fut) == {"value": ["y", 3]}
    raw.err("register_dag", "bad_dag", name="conf_cycle", functions=["conf_incr", "conf_square"],
            connections=[["conf_incr", "conf_square"], ["conf_square", "conf_incr"]])
    raw.err("call_dag", "unknown_dag", dag="conf_nodag", args={}, direct=True)
    raw.err("call_dag", "invalid_request", dag="conf_dag", args={}, consistency="strong")
    assert raw.ok("delete_dag", name="conf_dag") is None
    raw.err("delete_dag", "unknown_dag", name="conf_dag")


def test_deletes(raw):
    raw.ok("put_object", key="conf/del", value={"value": 1})
    assert raw.ok("delete_object", key="conf/del") is None
    assert raw.ok("get_object", key="conf/del") is None
    raw.ok("put_object", key="conf/del", value={"value": 2})
    assert raw.ok("get_object", key="conf/del") == {"value": 2}  # written again after
    raw.err("delete_object", "invalid_request", key="__cloudburst/x")
    assert register(raw, "conf_square", conf_square)["ok"] is None
    fut = raw.ok("call_function", function="conf_square", args=[{"value": 6}])
    assert raw.ok("await", timeout_ms=60000, delete=True, **fut) == {"value": 36}
    assert raw.ok("get_object", key=fut["key"]) is None  # deleted once read


def test_web_pages_of_other_origins_are_refused(url):
    with pytest.raises(InvalidStatus) as e:
        Raw(url, headers={"Origin": "http://evil.example"})
    assert e.value.response.status_code == 403
    assert e.value.response.body.startswith(b"forbidden_origin")
    Raw(url, headers={"Origin": url.replace("ws://", "http://").rstrip("/")}).close()
