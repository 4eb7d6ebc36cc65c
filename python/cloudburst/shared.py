"""Types shared by the synchronous and asyncio clients: consistency constants, references
to KVS keys, concurrent versions, and the environment check executors need."""

from __future__ import annotations

import sys
from typing import Any

import cloudpickle

#: Last-writer-wins (the default). ``NORMAL`` is the original client's name for it.
NORMAL = "lww"
LWW = NORMAL
#: Distributed-session repeatable read.
REPEATABLE_READ = "repeatable_read"
#: Distributed-session causal consistency.
CAUSAL = "causal"

CONSISTENCY_MODES = (NORMAL, REPEATABLE_READ, CAUSAL)


class Concurrent(tuple[Any, ...]):
    """Concurrent versions of one key written by causal calls (neither saw the other):
    what ``get_object`` and ``cb.get`` return for such a key instead of a single value.
    Resolve them as the application sees fit and write the result back from a causal call
    that read them (the new version then supersedes them)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Concurrent(%s)" % tuple.__repr__(self)


class CloudburstReference:
    """An argument that names a KVS key; the server resolves it before the call."""

    __slots__ = ("key",)

    def __getstate__(self) -> str:
        return self.key

    def __setstate__(self, key: str) -> None:
        self.key = key

    def __init__(self, key: str) -> None:
        if not isinstance(key, str) or not key:
            raise TypeError("a CloudburstReference needs a non-empty str key")
        self.key = key

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
