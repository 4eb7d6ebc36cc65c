"""Types shared by the synchronous and asyncio clients: consistency constants, references
to KVS keys, the errors the server reports, and the environment check executors need."""

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


class Concurrent(tuple):
    """Concurrent versions of one key written by causal calls (neither saw the other):
    what ``get_object`` and ``cb.get`` return for such a key instead of a single value.
    Resolve them as the application sees fit and write the result back from a causal call
    that read them (the new version then supersedes them)."""

    __slots__ = ()

    def __repr__(self):
        return "Concurrent(%s)" % tuple.__repr__(self)


class CloudburstError(Exception):
    """An error reported by the server (or found by the client), with its stable error
    ``code`` (see docs/protocol.md) and ``message``."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class FunctionError(CloudburstError):
    """A registered function raised. ``exception_type`` names the Python exception and
    ``traceback`` is the traceback from the executor (also part of ``str(error)``)."""

    def __init__(self, code, message, exception_type=None, traceback=None):
        super().__init__(code, message)
        self.exception_type = exception_type
        self.traceback = traceback
        if traceback:
            self.args = (f"{code}: {message}\n\nRemote traceback:\n{traceback}",)


class CloudburstTimeout(CloudburstError, TimeoutError):
    """A call or a future did not finish in time (code ``timeout``)."""


class ConnectionClosedError(CloudburstError):
    """The connection to the gateway is closed (code ``connection_closed``); the message
    carries the server's close reason when it gave one."""


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
