"""Which certificates a ``wss://`` connection trusts (both transports ask here).

In order: the ``ca_file=`` argument, the ``CLOUDBURST_CA_FILE`` environment variable (a
PEM file of the authorities that sign the gateway's certificate: a test cluster's
``ca.pem`` from ``cloudburst cert``), else the system's trusted authorities (a gateway
with a certificate from a real CA needs nothing more).
"""

from __future__ import annotations

import os
import ssl
from urllib.parse import urlsplit

from .errors import CloudburstError, error_for

#: Environment variable naming the CA file.
CA_FILE_ENV = "CLOUDBURST_CA_FILE"


def context(url: str, ca_file: str | os.PathLike[str] | None) -> ssl.SSLContext | None:
    """The TLS context for ``url``: ``None`` for ``ws://``. A ``ca_file=`` given with a
    ``ws://`` URL is refused (it would protect nothing)."""
    try:
        secure = urlsplit(url).scheme == "wss"
    except ValueError:
        return None  # the connection reports the bad URL
    if not secure:
        if ca_file is not None:
            raise error_for("invalid_request",
                            f"ca_file= is for wss:// URLs; {url} is not encrypted")
        return None
    path = os.fspath(ca_file) if ca_file is not None else os.environ.get(CA_FILE_ENV) or None
    if path is not None:
        path = os.path.expanduser(path)
    try:
        return ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as e:
        raise error_for("invalid_request", f"CA file {path}: {_reason(e)}") from None


def _reason(e: BaseException) -> str:
    if isinstance(e, FileNotFoundError):
        return "no such file"
    if isinstance(e, ssl.SSLError):
        return "not a PEM certificate file"
    return str(e)


def certificate_error(url: str, exc: BaseException) -> CloudburstError | None:
    """The error for a server certificate this client does not trust, or ``None``."""
    if not isinstance(exc, ssl.SSLCertVerificationError):
        return None
    why = exc.verify_message or str(exc)
    return error_for(
        "connection_failed",
        f"{url}: the server's certificate is not trusted ({why}); name the authority that "
        f"signed it with ca_file= or {CA_FILE_ENV}",
    )
