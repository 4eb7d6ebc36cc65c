"""A DAG: incr -> square, called with a future and with a direct response."""

from _connect import connect


def incr(cb, x):
    return x + 1


def square(cb, x):
    return x * x


cloud = connect()
cloud.register(incr, "incr")
cloud.register(square, "square")
cloud.register_dag("pipeline", ["incr", "square"], [("incr", "square")])

future = cloud.call_dag("pipeline", {"incr": [1]})
print("pipeline(1) via a future:", future.get())
direct = cloud.call_dag("pipeline", {"incr": [2]}, direct_response=True)
print("pipeline(2) pushed back directly:", direct)

assert future.get() == 4 and direct == 9
cloud.delete_dag("pipeline")
cloud.close()
