"""The original Cloudburst client's import path for function handles:
``from cloudburst.shared.function import CloudburstFunction``."""

from ..client import CloudburstFunction

__all__ = ["CloudburstFunction"]
