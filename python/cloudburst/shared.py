"""Types shared by the synchronous and asyncio clients."""

import sys

import cloudpickle

#: Last-writer-wins (the default). ``NORMAL`` is the original client's name for it.
NORMAL = "lww"
LWW = NORMAL
#: Distributed-session repeatable read.
REPEATABLE_READ = "repeatable_read"
#: Distributed-session causal consistency.
CAUSAL = "causal"

CONSISTENCY_MODES = (NORMAL, REPEATABLE_READ, CAUSAL)


class CloudburstError(Exception):
    """An error reported by the server, with its error code and message."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class CloudburstReference:
    """An argument that names a KVS key; the server resolves it before the call."""

    __slots__ = ("key",)

    def __getstate__(self):
        return self.key

    def __setstate__(self, key):
        self.key = key

    def __init__(self, key):
        if not isinstance(key, str) or not key:
            raise TypeError("a CloudburstReference needs a non-empty str key")
        self.key = key

    def __eq__(self, other):
        return isinstance(other, CloudburstReference) and other.key == self.key

    def __hash__(self):
        return hash(("CloudburstReference", self.key))

    def __repr__(self):
        return f"CloudburstReference({self.key!r})"


def client_environment():
    """What the executors compare at registration: Python major.minor and cloudpickle."""
    return {
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "cloudpickle": cloudpickle.__version__,
    }
