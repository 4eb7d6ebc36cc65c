"""The synchronous client, shaped like the original Cloudburst client.

Thread-safe: any number of threads may share one :class:`CloudburstConnection`, and
their requests are pipelined over its one websocket. Each thread sends its own request
and, when no other thread is reading, reads the responses itself (see ``_sync.py``): no
hop through a background event loop on the way out or back.

Its methods are the method layer's (``_api.Methods``); this module adds how a request
runs (on the calling thread) and the handles it gives out.
"""

from __future__ import annotations

import os
import warnings
from types import TracebackType
from typing import Any, TypeVar

from .. import protocol
from .._api import Blocking, Handle, Methods, Outcome, Request
from .._sync import SyncCore

T = TypeVar("T")


class CloudburstFuture(Outcome["CloudburstConnection"], Blocking):
    """The eventual result of a call: ``get(timeout=None)`` asks the gateway once and
    waits for its answer (the gateway replies when the result exists); it never polls."""

    __slots__ = ()

    def _run(self, request: Request[T]) -> T:
        return self._conn._run(request)


class CloudburstFunction(Handle["CloudburstConnection"]):
    """A registered function: calling it runs it in the cluster and returns a future."""

    def __call__(self, *args: Any) -> CloudburstFuture:
        future: CloudburstFuture = self._conn.exec_func(self.name, list(args))
        return future


#: The gateway's default port, where the original client's address form connects.
DEFAULT_PORT = 6200


class CloudburstConnection(Methods[CloudburstFunction, CloudburstFuture], Blocking):
    """A connection to a Cloudburst gateway, e.g. ``CloudburstConnection("ws://127.0.0.1:6200")``.

    ``token`` is the client token; without it the client uses ``CLOUDBURST_TOKEN``, or
    for a gateway on this machine the token file ``cloudburst local`` made
    (``~/.config/cloudburst/token``).

    A ``wss://`` URL is encrypted; ``ca_file`` (else ``CLOUDBURST_CA_FILE``) names the PEM
    file of the authority that signed the gateway's certificate (a test cluster's
    ``ca.pem``); without either, the system's trusted authorities are used.

    The original client's form ``CloudburstConnection(func_addr, ip, tid=0, local=False)``
    (an address without ``ws://``) connects to ``ws://func_addr:6200``, with a warning
    saying so: ``ip``, ``tid`` and ``local`` are not needed (results come back on the
    connection itself).
    """

    def __init__(
        self,
        url: str = f"ws://127.0.0.1:{DEFAULT_PORT}",
        token: str | None = None,
        *,
        ca_file: str | os.PathLike[str] | None = None,
        tid: int | None = None,
        local: bool | None = None,
    ) -> None:
        if "://" not in url:
            url = _from_original_address(url, token, tid, local)
            token = None
        elif tid is not None or local is not None:
            raise TypeError("tid= and local= belong to the original client's form "
                            "CloudburstConnection(func_addr, ip): with a URL, drop them")
        self._core = SyncCore.open(url, token, ca_file)
        super().__init__(url, self._core)

    def _future_argument(self, future: Any) -> Any:
        """A future passed as an argument: its result (waited for here)."""
        return future.get()

    def _run(self, request: Request[T]) -> T:
        """Send the request and wait for its answer on this thread."""
        if request.op is None:
            return request.finish(None)
        ok, body = self._core.request(request.op, request.fields, request.timeout)
        if not ok:
            return request.fail(protocol.error(body))
        return request.finish(body)

    def _function(self, name: str) -> CloudburstFunction:
        return CloudburstFunction(name, self)

    def _future(self, call: int, key: str) -> CloudburstFuture:
        return CloudburstFuture(self, call, key)

    def close(self) -> None:
        """Close the connection; calls still waiting fail with ``connection_closed``."""
        self._core.close()

    def __enter__(self) -> CloudburstConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _from_original_address(
    func_addr: str, ip: str | None, tid: int | None, local: bool | None
) -> str:
    """The URL for the original client's ``(func_addr, ip, tid, local)``, with a warning
    naming what it maps to."""
    host = func_addr.strip()
    url = f"ws://{host}:{DEFAULT_PORT}" if ":" not in host else f"ws://{host}"
    ignored = ", ".join(
        n for n, v in (("ip", ip), ("tid", tid), ("local", local)) if v is not None
    )
    warnings.warn(
        f"CloudburstConnection({func_addr!r}, ...) is the original client's form: "
        f"connecting to {url}" + (f"; {ignored} not needed" if ignored else "")
        + f". Write CloudburstConnection({url!r}) to say so.",
        stacklevel=3,
    )
    return url
