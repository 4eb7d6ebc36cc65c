"""Python client for Cloudburst in Rust: stateful Functions-as-a-Service.

Shaped like the original Cloudburst client, so existing programs port by changing the
connection line::

    from cloudburst import CloudburstConnection
    cloud = CloudburstConnection("ws://127.0.0.1:6200")
    square = cloud.register(lambda cb, x: x * x, "square")
    square(3).get()   # 9

:class:`CloudburstConnection` is thread-safe; :class:`AsyncCloudburstConnection` is the
asyncio variant. Both raise the errors of :mod:`cloudburst.errors` (one class per family,
the exact reason in ``.code``), as do ``cb.get``/``cb.put`` inside functions. The wire
protocol is documented in docs/protocol.md.

Programs written for the original Cloudburst import from its paths
(``cloudburst.client.client``, ``cloudburst.shared.reference``,
``cloudburst.shared.proto.cloudburst_pb2``): those modules re-export these same classes and
constants. What differs and why: docs/porting.md.
"""

from .aio import AsyncCloudburstConnection, AsyncCloudburstFunction, AsyncCloudburstFuture
from .client import CloudburstConnection, CloudburstFunction, CloudburstFuture
from .errors import (
    AuthError,
    CallLostError,
    CancelledError,
    CloudburstError,
    CloudburstTimeout,
    ConnectionClosedError,
    FunctionError,
    InternalError,
    InvalidRequestError,
    NotFoundError,
    SessionError,
    UnavailableError,
)
from .shared import (
    CAUSAL,
    CONSISTENCY_MODES,
    LWW,
    MULTI,
    NORMAL,
    REPEATABLE_READ,
    CloudburstReference,
    Concurrent,
    Registered,
    client_environment,
)

__all__ = [
    "AsyncCloudburstConnection",
    "AsyncCloudburstFunction",
    "AsyncCloudburstFuture",
    "AuthError",
    "CAUSAL",
    "CONSISTENCY_MODES",
    "CallLostError",
    "CancelledError",
    "CloudburstConnection",
    "CloudburstError",
    "CloudburstFunction",
    "CloudburstFuture",
    "CloudburstReference",
    "CloudburstTimeout",
    "Concurrent",
    "ConnectionClosedError",
    "FunctionError",
    "InternalError",
    "InvalidRequestError",
    "LWW",
    "MULTI",
    "NORMAL",
    "NotFoundError",
    "REPEATABLE_READ",
    "Registered",
    "SessionError",
    "UnavailableError",
    "client_environment",
]
