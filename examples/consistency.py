"""Consistency modes, per call.

- REPEATABLE_READ: every function of one DAG call that reads a key sees the same version,
  even if the key changes meanwhile and the functions run on different executors.
- CAUSAL: writes carry what their call had read; concurrent writes (neither saw the
  other) are both kept, and a read returns them as a `cloudburst.Concurrent` tuple until a
  call that read them writes a resolved value.
"""

from _connect import connect

from cloudburst import CAUSAL, REPEATABLE_READ, Concurrent


def snapshot(cb, key):
    first = cb.get(key)
    cb.put(key, first + 1)  # visible to other calls at once, not to this call's reads
    return first


def check(cb, key, first):
    return (first, cb.get(key))  # the version `snapshot` read, not its write


def add_tag(cb, key, tag):
    cb.put(key, tag)  # a blind write: concurrent with versions it did not read


def merge_tags(cb, key):
    seen = cb.get(key)
    tags = sorted(seen) if isinstance(seen, Concurrent) else [seen]
    cb.put(key, "+".join(tags))  # read first, so this write supersedes what it read
    return tags


cloud = connect()

cloud.put_object("balance", 100)
cloud.register(snapshot, "snapshot")
cloud.register(check, "check")
cloud.register_dag("audit", ["snapshot", "check"], [("snapshot", "check")])
first, again = cloud.call_dag(
    "audit", {"snapshot": ["balance"], "check": ["balance"]},
    consistency=REPEATABLE_READ, direct_response=True)
print("repeatable read:", first, again, "- stored now:", cloud.get_object("balance"))
assert first == again == 100 and cloud.get_object("balance") == 101

cloud.register(add_tag, "add_tag")
cloud.register(merge_tags, "merge_tags")
for tag in ("red", "blue"):
    cloud.exec_func("add_tag", ["colour", tag], consistency=CAUSAL, direct_response=True)
both = cloud.get_object("colour")
print("causal, two blind writes:", both)
assert isinstance(both, Concurrent) and sorted(both) == ["blue", "red"]
cloud.exec_func("merge_tags", ["colour"], consistency=CAUSAL, direct_response=True)
print("after a call that read them:", cloud.get_object("colour"))
assert cloud.get_object("colour") == "blue+red"
cloud.close()
