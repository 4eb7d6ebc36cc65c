"""The asyncio client: the same API as :class:`cloudburst.CloudburstConnection`, with
coroutines. Use it from one event loop (the one it was opened on)::

    cloud = await AsyncCloudburstConnection.connect("ws://127.0.0.1:6200")
    square = await cloud.register(lambda cb, x: x * x, "square")
    print(await (await square(3)).get())

Its methods are the method layer's (``_api.Methods``); this module adds how a request
runs (through the event loop), the handles it gives out and the way to open a connection.
Given several gateway URLs it fails over as the synchronous client does (``_failover``):
requests lost with their gateway are sent again through the next one that answers, and
futures made before the switch keep working.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, TypeVar

from . import _failover, protocol
from ._api import Awaiting, Handle, Methods, Outcome, Request
from ._core import Answer, Core
from .errors import CloudburstError
from .protocol import Fields

T = TypeVar("T")


class AsyncCloudburstFuture(Outcome["AsyncCloudburstConnection"], Awaiting):
    """The eventual result of a call; ``await future.get(timeout=None)``."""

    __slots__ = ()

    async def _run(self, request: Request[T]) -> T:
        conn = self._conn
        if request.op != "await" or self._again is None:
            return await conn._run(request)
        answer = await conn._ask(request.op, request.fields, request.timeout)
        if _failover.call_unknown(answer, conn._switches):
            # Its gateway was lost before the call ended: send the call again, await there.
            op, fields = self._again
            made = await conn._ask(op, _failover.sent_again(op, fields), None)
            answer = made
            if made[0]:
                self.call_id, self.obj_id = made[1]["call"], made[1]["key"]
                answer = await conn._ask(
                    request.op, _failover.awaited_again(request.fields, made[1]), request.timeout)
        if not answer[0]:
            return request.fail(protocol.error(answer[1]))
        return request.finish(answer[1])


class AsyncCloudburstFunction(Handle["AsyncCloudburstConnection"]):
    """A registered function: ``await fn(*args)`` returns an :class:`AsyncCloudburstFuture`."""

    async def __call__(self, *args: Any) -> AsyncCloudburstFuture:
        future: AsyncCloudburstFuture = await self._conn.exec_func(self.name, list(args))
        return future


class AsyncCloudburstConnection(Methods[AsyncCloudburstFunction, AsyncCloudburstFuture], Awaiting):
    """Open with ``await AsyncCloudburstConnection.connect(url, token=None, ca_file=None)``;
    without a token (or CA file, for ``wss://``) the client finds one as
    :class:`cloudburst.CloudburstConnection` does, and like it takes a list of gateway URLs
    to fail over between."""

    def __init__(self, core: Core, url: str, gateways: Sequence[_failover.Gateway] = (),
                 at: int = 0, token: str | None = None,
                 ca_file: str | os.PathLike[str] | None = None) -> None:
        super().__init__(url, core)
        self._core = core
        self._gateways = list(gateways) or [(url, None)]
        self._at = at
        self._token = token
        self._ca_file = ca_file
        self._switch = asyncio.Lock()  # held while connecting to another gateway
        self._switches = 0  # gateways lost so far
        self._closing = False

    @classmethod
    async def connect(
        cls,
        url: str | Sequence[str] = "ws://127.0.0.1:6200",
        token: str | None = None,
        *,
        ca_file: str | os.PathLike[str] | None = None,
    ) -> AsyncCloudburstConnection:
        gateways = _failover.gateways(_failover.gateway_urls(url))
        core, first = await _open_any(gateways, 0, token, ca_file, None)
        return cls(core, gateways[first][0], gateways, first, token, ca_file)

    async def _run(self, request: Request[T]) -> T:
        """Send the request through the event loop and wait for its answer."""
        if request.op is None:
            return request.finish(None)
        ok, body = await self._ask(request.op, request.fields, request.timeout)
        if not ok:
            return request.fail(protocol.error(body))
        return request.finish(body)

    async def _ask(self, op: str, fields: Fields, timeout: float | None) -> Answer:
        """One request's answer; one lost with its gateway is sent again through another
        (see ``_failover``)."""
        core = self._core
        answer = await _answer(core, op, fields, timeout)
        while _failover.must_switch(answer, core.closed, self._gateways, self._closing):
            await self._fail_over(core)
            core = self._core
            answer = await _answer(core, op, _failover.sent_again(op, fields), timeout)
        return answer

    async def _fail_over(self, lost: Core) -> None:
        """Replace the lost connection by one to another gateway, unless done already."""
        async with self._switch:
            if self._core is not lost:
                return
            start = self._at + 1
            deadline = time.monotonic() + _failover.FAILOVER_TIMEOUT
            try:
                core, i = await _open_any(
                    self._gateways, start, self._token, self._ca_file, deadline, self)
            except CloudburstError as e:
                raise _failover.no_gateway(self.url, e) from None
            _failover.switched(self, core, i)

    def _function(self, name: str) -> AsyncCloudburstFunction:
        return AsyncCloudburstFunction(name, self)

    def _future(self, call: int, key: str) -> AsyncCloudburstFuture:
        return AsyncCloudburstFuture(self, call, key)

    async def close(self) -> None:
        """Close the connection; calls still waiting fail with ``connection_closed``."""
        self._closing = True
        await self._core.close()

    async def __aenter__(self) -> AsyncCloudburstConnection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def _open_any(
    gateways: Sequence[_failover.Gateway],
    start: int,
    token: str | None,
    ca_file: str | os.PathLike[str] | None,
    deadline: float | None,
    conn: AsyncCloudburstConnection | None = None,
) -> tuple[Core, int]:
    """A connection to the first of ``gateways`` that answers, from index ``start``:
    one round (``deadline`` None), else rounds until the deadline (or ``conn`` closing)."""
    while True:
        error: CloudburstError | None = None
        for i in _failover.try_order(gateways, start):
            url, address = gateways[i]
            try:
                return await Core.open(url, token, ca_file, address), i
            except CloudburstError as e:
                if not _failover.may_try_another(gateways, e.code):
                    raise
                error = e
        assert error is not None
        closing = conn is not None and conn._closing
        if deadline is None or time.monotonic() >= deadline or closing:
            raise error
        await asyncio.sleep(_failover.FAILOVER_PAUSE)


async def _answer(core: Core, op: str, fields: Fields, timeout: float | None) -> Answer:
    """One request's answer on ``core``: ``(ok, result or error body)``."""
    try:
        return True, await core.request(op, fields, timeout)
    except CloudburstError as e:
        return False, protocol.error_body(e)
