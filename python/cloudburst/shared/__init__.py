"""Types shared by the synchronous and asyncio clients: consistency constants, references
to KVS keys, concurrent versions, what ``register_dag`` returns, and the environment check
executors need. (A package so that the original client's import paths, such as
``cloudburst.shared.reference``, exist: see its modules.)"""

from __future__ import annotations

import sys
from typing import Any

import cloudpickle

#: Last-writer-wins (the default). ``NORMAL`` is the original client's name for it.
NORMAL = "lww"
LWW = NORMAL
#: Distributed-session repeatable read.
REPEATABLE_READ = "repeatable_read"
#: Distributed-session causal consistency. ``MULTI`` is the original client's name for it
#: (multi-key causal).
CAUSAL = "causal"
MULTI = CAUSAL

CONSISTENCY_MODES = (NORMAL, REPEATABLE_READ, CAUSAL)


class Concurrent(tuple[Any, ...]):
    """Concurrent versions of one key written by causal calls (neither saw the other):
    what ``get_object`` and ``cb.get`` return for such a key instead of a single value.
    Resolve them as the application sees fit and write the result back from a causal call
    that read them (the new version then supersedes them)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Concurrent(%s)" % tuple.__repr__(self)


#: The ``error`` of a success in the original client's ``(success, error)`` pairs
#: (``NO_CLOUDBURST_ERROR`` in ``cloudburst.shared.proto.cloudburst_pb2``).
NO_ERROR = 0


class Registered(tuple[bool, int]):
    """What ``register_dag`` and ``delete_dag`` return on success: true as a bool (``if
    cloud.register_dag(...)``) and the original client's ``(success, error)`` pair when
    unpacked (``success, error = cloud.register_dag(...)`` gives ``True, 0``). A failure
    raises (:mod:`cloudburst.errors`) instead of returning ``(False, error)``."""

    __slots__ = ()

    def __new__(cls) -> Registered:
        return super().__new__(cls, (True, NO_ERROR))

    def __bool__(self) -> bool:
        return self[0]


class CloudburstReference:
    """An argument that names a KVS key; the server resolves it before the call.
    ``deserialize`` is the original client's second argument: the function gets the value
    (``True``, the default). ``False`` (the stored bytes) is refused here: read them inside
    the function with ``cb.get(key, deserialize=False)``."""

    __slots__ = ("key",)

    def __getstate__(self) -> str:
        return self.key

    def __setstate__(self, key: str) -> None:
        self.key = key

    def __init__(self, key: str, deserialize: bool = True) -> None:
        if not isinstance(key, str) or not key:
            raise TypeError("a CloudburstReference needs a non-empty str key")
        if not deserialize:
            raise ValueError(
                "CloudburstReference(key, deserialize=False) is not supported: pass "
                "CloudburstReference(key) and read the stored bytes inside the function "
                "with cb.get(key, deserialize=False)"
            )
        self.key = key

    @property
    def deserialize(self) -> bool:
        """Always true: the function gets the value (see the class doc)."""
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CloudburstReference) and other.key == self.key

    def __hash__(self) -> int:
        return hash(("CloudburstReference", self.key))

    def __repr__(self) -> str:
        return f"CloudburstReference({self.key!r})"


def client_environment() -> dict[str, Any]:
    """What the executors compare at registration: Python major.minor and cloudpickle."""
    return {
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "cloudpickle": cloudpickle.__version__,
    }
