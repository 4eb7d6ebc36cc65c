"""Two functions talking directly with send/recv: a DAG `sender -> receiver` where the
sender tells the receiver's executor a message before its result flows downstream.

The sender learns where to send from the KVS: the receiver's executor publishes its id
(cb.getid()) under a key first.
"""

from _connect import connect


def announce(cb, _):
    cb.put("receiver-id", cb.getid())
    return cb.getid()


def sender(cb, text):
    dest = cb.get("receiver-id")
    cb.send(dest, text.encode())
    return dest


def receiver(cb, dest):
    # The message was sent before sender's result reached us; wait for it (bounded).
    import time

    deadline = time.time() + 5
    while time.time() < deadline:
        msgs = cb.recv()
        if msgs:
            return [(src, payload.decode()) for src, payload in msgs]
        time.sleep(0.001)
    return []


cloud = connect()
cloud.register(announce, "announce")
cloud.register(sender, "sender")
cloud.register(receiver, "receiver")
# Announce on the executor that will run `receiver`: with a single executor node (as in
# `cloudburst local`) every function runs there.
where = cloud.exec_func("announce", [None]).get()
cloud.register_dag("chat", ["sender", "receiver"], [("sender", "receiver")])
got = cloud.call_dag("chat", {"sender": ["hello from sender"]}).get()
print("receiver", where, "got:", got)
assert [payload for _, payload in got] == ["hello from sender"]
cloud.close()
