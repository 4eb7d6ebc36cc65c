"""Two functions talking directly with send/recv while both run.

A DAG `listener, talker -> report`: the two sources run at the same time on different
workers. The listener publishes its id (`cb.getid()`, unique to this running function)
under a key named after the run; the talker reads it from the KVS and sends a message
straight to the running listener (any picklable object: here a str); the listener picks it
up with `cb.recv()`. The sink reports what happened. While the listener waits, it does not
hold the node's only worker: the pool starts another for the talker.
"""

import uuid

from _connect import connect


def listener(cb, run):
    import time

    cb.put(f"chat/{run}", cb.getid())
    deadline = time.time() + 10
    while time.time() < deadline:
        for sender, message in cb.recv():
            return message
        time.sleep(0.001)
    return None


def talker(cb, run, text):
    import time

    deadline = time.time() + 10
    while time.time() < deadline:
        dest = cb.get(f"chat/{run}")
        if dest:
            cb.send(dest, text)
            return "sent"
        time.sleep(0.001)
    return "no listener"


def report(cb, heard, talked):
    return {"heard": heard, "talker": talked}


cloud = connect()
cloud.register(listener, "listener")
cloud.register(talker, "talker")
cloud.register(report, "report")
cloud.register_dag(
    "chat", ["listener", "talker", "report"], [("listener", "report"), ("talker", "report")]
)
run = uuid.uuid4().hex
got = cloud.call_dag("chat", {"listener": [run], "talker": [run, "hello from talker"]}).get()
print("chat:", got)
assert got == {"heard": "hello from talker", "talker": "sent"}, got
cloud.close()
