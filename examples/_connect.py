"""Shared by the examples: the gateway URL from argv[1], $CLOUDBURST_URL, or the default."""

import os
import sys

from cloudburst import CloudburstConnection


def connect():
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
        "CLOUDBURST_URL", "ws://127.0.0.1:6200"
    )
    return CloudburstConnection(url, token=os.environ.get("CLOUDBURST_TOKEN"))
