"""Quickstart: register a function, call it, share state through the KVS.

Run `cloudburst local` in another terminal, then: python examples/quickstart.py
"""

from _connect import connect

from cloudburst import CloudburstReference

cloud = connect()

square = cloud.register(lambda cb, x: x * x, "square")
print("square(3) =", square(3).get())  # a future: .get() waits for the pushed result

cloud.put_object("k", 7)
print("get_object('k') =", cloud.get_object("k"))
print("square(ref 'k') =", square(CloudburstReference("k")).get())  # resolved server-side

assert square(3).get() == 9 and square(CloudburstReference("k")).get() == 49
cloud.close()
