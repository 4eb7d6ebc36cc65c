"""Python client for Cloudburst in Rust.

The connection classes arrive with the websocket gateway; this module already holds the
pieces every part of the client shares: consistency constants, references to KVS keys,
and the environment check the executors need (a function pickled on another Python
minor version or cloudpickle version is refused at registration).
"""

from .shared import (
    CAUSAL,
    CONSISTENCY_MODES,
    LWW,
    NORMAL,
    REPEATABLE_READ,
    CloudburstError,
    CloudburstReference,
    client_environment,
)

__all__ = [
    "CAUSAL",
    "CONSISTENCY_MODES",
    "LWW",
    "NORMAL",
    "REPEATABLE_READ",
    "CloudburstError",
    "CloudburstReference",
    "client_environment",
]
