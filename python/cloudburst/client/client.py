"""The original Cloudburst client's import path: ``from cloudburst.client.client import
CloudburstConnection``. The same classes as ``cloudburst``'s (nothing here differs); see
docs/porting.md for the one line a ported program changes."""

from . import CloudburstConnection, CloudburstFunction, CloudburstFuture

__all__ = ["CloudburstConnection", "CloudburstFunction", "CloudburstFuture"]
