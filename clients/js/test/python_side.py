"""The Python side of the JavaScript client's tests, run by test/cluster.js with the
repository's venv: `register URL` registers the functions and DAG the tests call;
`check URL` reads every value the JavaScript side put under `js/<name>`, compares it with
MATRIX[name] exactly (types included), puts MATRIX[name] under `py/<name>` for the
JavaScript side to read, and prints the verdicts and each value's repr as JSON."""

import json
import math
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3] / "python"))

import cloudburst  # noqa: E402

#: The round-trip matrix: plain values, as test/matrix.test.js writes them in JavaScript.
MATRIX = {
    "none": None,
    "true": True,
    "false": False,
    "zero": 0,
    "int": 7,
    "neg": -3,
    "int32": -40000,
    "max_safe": 2**53 - 1,
    "i64_min": -(2**63),
    "u64_max": 2**64 - 1,
    "float": 1.5,
    "tiny": 5e-324,
    "inf": math.inf,
    "str": "héllo ✓ 🚀",
    "empty_str": "",
    "bytes": b"\x00\xff\x80",
    "empty_bytes": b"",
    "list": [1, "a", None, 2.5],
    "empty_list": [],
    "dict": {"a": 1, "b": [True, None]},
    "empty_dict": {},
    "nested": {"x": {"y": [b"z", {"w": []}]}},
    "unicode_keys": {"ключ": "значение"},
}
#: Put by JavaScript as a Set, read by Python as a set (and the reverse).
JS_SET = {1, "a"}
PY_SET = {3, "b"}


def same(a, b):
    """Equal with the same types all the way down (1 == 1.0 == True are not the same)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def echo(cb, x):
    return x


def pyrepr(cb, x):
    return repr(x)


def raises(cb, x):
    raise ValueError(f"bad {x}")


def sleepy(cb, seconds):
    import time

    time.sleep(seconds)
    return seconds


def incr(cb, x):
    return x + 1


def square(cb, x):
    return x * x


def make_tuple(cb, a, b):
    return (a, b)


def first_fails(cb, x):
    """Raises on the first attempt of its call; then returns [x, call id, attempt]."""
    if cb.attempt == 0:
        raise RuntimeError("first attempt")
    return [x, cb.call_id, cb.attempt]


def register(cloud):
    for f in (echo, pyrepr, raises, sleepy, incr, square, make_tuple, first_fails):
        cloud.register(f, f.__name__)
    cloud.register_dag("pipeline", ["incr", "square"], [("incr", "square")])
    return {"registered": True}


def check(cloud):
    verdicts, reprs = {}, {}
    for name, want in MATRIX.items():
        got = cloud.get_object(f"js/{name}")
        verdicts[name] = "ok" if same(got, want) else f"got {got!r}"
        reprs[name] = repr(want)
        cloud.put_object(f"py/{name}", want)
    got = cloud.get_object("js/set")
    verdicts["set"] = "ok" if got == JS_SET else f"got {got!r}"
    cloud.put_object("py/set", PY_SET)
    cloud.put_object("py/tuple", (1, "two"))
    return {"verdicts": verdicts, "reprs": reprs}


def main():
    command, url = sys.argv[1], sys.argv[2]
    cloud = cloudburst.CloudburstConnection(url)
    try:
        out = {"register": register, "check": check}[command](cloud)
    finally:
        cloud.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
