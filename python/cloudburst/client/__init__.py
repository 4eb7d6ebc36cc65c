"""The synchronous client, shaped like the original Cloudburst client.

Thread-safe: any number of threads may share one :class:`CloudburstConnection`, and
their requests are pipelined over its one websocket. Each thread sends its own request
and, when no other thread is reading, reads the responses itself (see ``_sync.py``): no
hop through a background event loop on the way out or back.

Its methods are the method layer's (``_api.Methods``); this module adds how a request
runs (on the calling thread), the switch to another gateway when one is lost, and the
handles it gives out.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Sequence
from types import TracebackType
from typing import Any, TypeVar

from .. import _failover, protocol
from .._api import Blocking, Handle, Methods, Outcome, Request
from .._core import Answer
from .._sync import SyncCore
from ..errors import CloudburstError, ConnectionClosedError
from ..protocol import Fields

T = TypeVar("T")

FAILOVER_TIMEOUT = _failover.FAILOVER_TIMEOUT


class CloudburstFuture(Outcome["CloudburstConnection"], Blocking):
    """The eventual result of a call: ``get(timeout=None)`` asks the gateway once and
    waits for its answer (the gateway replies when the result exists); it never polls."""

    __slots__ = ()

    def _run(self, request: Request[T]) -> T:
        conn = self._conn
        if request.op != "await" or self._again is None:
            return conn._run(request)
        answer = conn._ask(request.op, request.fields, request.timeout)
        if _failover.call_unknown(answer, conn._switches):
            # The gateway that took the call was lost before it ended (its successor does
            # not know it): send the call again, with its id, then wait for it there.
            op, fields = self._again
            answer = conn._ask(op, _failover.sent_again(op, fields), None)
            if answer[0]:
                self.call_id, self.obj_id = answer[1]["call"], answer[1]["key"]
                awaited = _failover.awaited_again(request.fields, answer[1])
                answer = conn._ask(request.op, awaited, request.timeout)
        ok, body = answer
        if not ok:
            return request.fail(protocol.error(body))
        return request.finish(body)


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

    Given a list of gateway URLs (of one cluster), or a URL whose host name resolves to
    several addresses (each is then a gateway, tried in the resolver's order), the
    connection uses the first that answers and, when its gateway is lost (the connection closes: the node died, or it
    drains and restarts), moves to the next that answers and sends again every request
    that was waiting for an answer; a call keeps its id (the client mints it), so a gateway
    that took it already answers it rather than running it twice. A future made before the
    switch still works: if the new gateway does not know its call, the call is sent again
    and awaited there. A call may thus run more than once across a switch (functions run
    at least once in any case); each call still has one result. Requests fail with
    ``connection_closed`` only when no gateway answers for ``FAILOVER_TIMEOUT`` seconds.

    The original client's form ``CloudburstConnection(func_addr, ip, tid=0, local=False)``
    (an address without ``ws://``) connects to ``ws://func_addr:6200``, with a warning
    saying so: ``ip``, ``tid`` and ``local`` are not needed (results come back on the
    connection itself).
    """

    def __init__(
        self,
        url: str | Sequence[str] = f"ws://127.0.0.1:{DEFAULT_PORT}",
        token: str | None = None,
        *,
        ca_file: str | os.PathLike[str] | None = None,
        tid: int | None = None,
        local: bool | None = None,
    ) -> None:
        urls = _failover.gateway_urls(url)
        if "://" not in urls[0] and len(urls) == 1:
            urls = [_from_original_address(urls[0], token, tid, local)]
            token = None
        elif tid is not None or local is not None:
            raise TypeError("tid= and local= belong to the original client's form "
                            "CloudburstConnection(func_addr, ip): with a URL, drop them")
        self._gateways = _failover.gateways(urls)
        self._token = token
        self._ca_file = ca_file
        self._switch = threading.Lock()  # held while a thread connects to another gateway
        self._switches = 0  # gateways lost so far
        self._closing = False
        self._core, self._at = self._open_any(0, deadline=None)
        super().__init__(self._gateways[self._at][0], self._core)

    def _open_any(self, start: int, deadline: float | None) -> tuple[SyncCore, int]:
        """A connection to the first gateway that answers, trying ``self._gateways`` in turn
        from index ``start``: once (``deadline`` None), else in rounds until the deadline.
        Raises the last error when none answered."""
        while True:
            error: CloudburstError | None = None
            for i in _failover.try_order(self._gateways, start):
                url, address = self._gateways[i]
                try:
                    return SyncCore.open(url, self._token, self._ca_file, address), i
                except CloudburstError as e:
                    if not _failover.may_try_another(self._gateways, e.code):
                        raise
                    error = e
            assert error is not None
            if deadline is None or time.monotonic() >= deadline or self._closing:
                raise error
            time.sleep(_failover.FAILOVER_PAUSE)

    def _future_argument(self, future: Any) -> Any:
        """A future passed as an argument: its result (waited for here)."""
        return future.get()

    def _run(self, request: Request[T]) -> T:
        """Send the request and wait for its answer on this thread."""
        if request.op is None:
            return request.finish(None)
        ok, body = self._ask(request.op, request.fields, request.timeout)
        if not ok:
            return request.fail(protocol.error(body))
        return request.finish(body)

    def _ask(self, op: str, fields: Fields, timeout: float | None) -> Answer:
        """One request's answer. Given several gateways, a request whose connection was
        lost is sent again (the same request: a call keeps its id, so a gateway that took
        it already answers it rather than running it again) on a connection to another."""
        while True:
            core = self._core
            try:
                answer = core.request(op, fields, timeout)
            except ConnectionClosedError as e:  # closed before it was sent
                answer = (False, protocol.error_body(e))
            if not _failover.must_switch(answer, core.closed, self._gateways, self._closing):
                return answer
            fields = self._fail_over(core, op, fields)

    def _fail_over(self, lost: SyncCore, op: str, fields: Fields) -> Fields:
        """Replace the lost connection by one to another gateway (the next that answers;
        the lost one's URL last, it may come back), unless another thread did already;
        the request's fields to send there. Raises ``connection_closed`` when none answers
        within ``FAILOVER_TIMEOUT``."""
        again = _failover.sent_again(op, fields)
        with self._switch:
            if self._core is not lost:
                return again
            try:
                core, i = self._open_any(self._at + 1, time.monotonic() + FAILOVER_TIMEOUT)
            except CloudburstError as e:
                raise _failover.no_gateway(self.url, e) from None
            _failover.switched(self, core, i)
        return again

    def _function(self, name: str) -> CloudburstFunction:
        return CloudburstFunction(name, self)

    def _future(self, call: int, key: str) -> CloudburstFuture:
        return CloudburstFuture(self, call, key)

    def close(self) -> None:
        """Close the connection; calls still waiting fail with ``connection_closed``."""
        self._closing = True
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
