"""A shared counter: every call reads and writes state in the KVS through its executor's
cache, so calls on any executor see the same counter."""

from _connect import connect


def bump(cb, key):
    n = (cb.get(key) or 0) + 1
    cb.put(key, n)
    return n


cloud = connect()
cloud.put_object("counter", 0)
bump_fn = cloud.register(bump, "bump")
for _ in range(10):
    bump_fn("counter").get()  # one after the other: each sees the previous write
print("counter =", cloud.get_object("counter"))
assert cloud.get_object("counter") == 10
cloud.close()
