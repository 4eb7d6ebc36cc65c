"""The original Cloudburst client's import path for references:
``from cloudburst.shared.reference import CloudburstReference``."""

from . import CloudburstReference

__all__ = ["CloudburstReference"]
