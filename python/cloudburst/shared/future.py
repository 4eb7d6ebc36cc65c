"""The original Cloudburst client's import path for futures:
``from cloudburst.shared.future import CloudburstFuture``."""

from ..client import CloudburstFuture

__all__ = ["CloudburstFuture"]
