"""Python client for Cloudburst in Rust: stateful Functions-as-a-Service.

Shaped like the original Cloudburst client, so existing programs port by changing the
connection line::

    from cloudburst import CloudburstConnection
    cloud = CloudburstConnection("ws://127.0.0.1:6200")
    square = cloud.register(lambda cb, x: x * x, "square")
    square(3).get()   # 9

:class:`CloudburstConnection` is thread-safe; :class:`AsyncCloudburstConnection` is the
asyncio variant. The wire protocol is documented in docs/protocol.md.
"""

from .aio import AsyncCloudburstConnection, AsyncCloudburstFunction, AsyncCloudburstFuture
from .client import CloudburstConnection, CloudburstFunction, CloudburstFuture
from .shared import (
    CAUSAL,
    CONSISTENCY_MODES,
    LWW,
    NORMAL,
    REPEATABLE_READ,
    CloudburstError,
    Concurrent,
    CloudburstReference,
    CloudburstTimeout,
    ConnectionClosedError,
    FunctionError,
    client_environment,
)

__all__ = [
    "AsyncCloudburstConnection",
    "AsyncCloudburstFunction",
    "AsyncCloudburstFuture",
    "CAUSAL",
    "CONSISTENCY_MODES",
    "CloudburstConnection",
    "CloudburstError",
    "Concurrent",
    "CloudburstFunction",
    "CloudburstFuture",
    "CloudburstReference",
    "CloudburstTimeout",
    "ConnectionClosedError",
    "FunctionError",
    "LWW",
    "NORMAL",
    "REPEATABLE_READ",
    "client_environment",
]
