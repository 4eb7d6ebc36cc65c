"""Model serving with a class function: __init__ (loading the model) runs once per executor
process, run() once per call."""

import time

from _connect import connect


class Model:
    def __init__(self, cb, weights):
        # Stands in for an expensive load (reading weights, building a network, ...).
        self.weights = weights
        self.loaded_at = time.time()

    def run(self, cb, features):
        score = sum(w * f for w, f in zip(self.weights, features))
        return {"score": score, "loaded_at": self.loaded_at}


cloud = connect()
predict = cloud.register((Model, [[0.5, 2.0, -1.0]]), "model")
results = [predict([1.0, 1.0, 1.0]).get() for _ in range(20)]
print("score:", results[0]["score"])
print("model loads for 20 calls:", len({r["loaded_at"] for r in results}))
assert all(r["score"] == 1.5 for r in results)
cloud.close()
