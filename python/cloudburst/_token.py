"""Which client token a connection presents (both transports ask here).

In order: the ``token=`` argument, the ``CLOUDBURST_TOKEN`` environment variable, and for
a URL on this machine (a loopback host) the token file every loopback gateway of this
user shares: ``$XDG_CONFIG_HOME/cloudburst/token``, else ``~/.config/cloudburst/token``
(``cloudburst local`` makes it on first start). A gateway on another machine needs the
token given to it: its file is not here.
"""

from __future__ import annotations

import ipaddress
import os
import pathlib
from urllib.parse import urlsplit

#: Environment variable holding the token (as the server reads it).
TOKEN_ENV = "CLOUDBURST_TOKEN"

#: Longest token file read: a token is one line.
MAX_TOKEN_FILE_BYTES = 4096


def token_file() -> pathlib.Path | None:
    """Where loopback gateways of this user keep their token, or ``None`` without a home."""
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    if not base:
        home = os.environ.get("HOME") or ""
        if not home:
            return None
        base = os.path.join(home, ".config")
    return pathlib.Path(base) / "cloudburst" / "token"


def is_local(url: str) -> bool:
    """Whether ``url`` names a gateway on this machine (a loopback address or localhost)."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve(url: str, token: str | None) -> str | None:
    """The token to present to ``url`` (see the module doc), or ``None``."""
    if token:
        return token
    from_env = os.environ.get(TOKEN_ENV)
    if from_env:
        return from_env
    if not is_local(url):
        return None
    path = token_file()
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            text = f.read(MAX_TOKEN_FILE_BYTES).decode("utf-8", "replace").strip()
    except OSError:
        return None  # no file: the gateway may run without a token (--no-auth)
    return text or None
