"""The asyncio client: the same API as :class:`cloudburst.CloudburstConnection`, with
coroutines. Use it from one event loop (the one it was opened on)::

    cloud = await AsyncCloudburstConnection.connect("ws://127.0.0.1:6200")
    square = await cloud.register(lambda cb, x: x * x, "square")
    print(await (await square(3)).get())

Its methods are the method layer's (``_api.Methods``); this module adds how a request
runs (through the event loop), the handles it gives out and the way to open a connection.
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any, TypeVar

from ._api import Awaiting, Handle, Methods, Outcome, Request
from ._core import Core
from .errors import CloudburstError

T = TypeVar("T")


class AsyncCloudburstFuture(Outcome["AsyncCloudburstConnection"], Awaiting):
    """The eventual result of a call; ``await future.get(timeout=None)``."""

    __slots__ = ()

    async def _run(self, request: Request[T]) -> T:
        return await self._conn._run(request)


class AsyncCloudburstFunction(Handle["AsyncCloudburstConnection"]):
    """A registered function: ``await fn(*args)`` returns an :class:`AsyncCloudburstFuture`."""

    async def __call__(self, *args: Any) -> AsyncCloudburstFuture:
        future: AsyncCloudburstFuture = await self._conn.exec_func(self.name, list(args))
        return future


class AsyncCloudburstConnection(Methods[AsyncCloudburstFunction, AsyncCloudburstFuture], Awaiting):
    """Open with ``await AsyncCloudburstConnection.connect(url, token=None, ca_file=None)``;
    without a token (or CA file, for ``wss://``) the client finds one as
    :class:`cloudburst.CloudburstConnection` does."""

    def __init__(self, core: Core, url: str) -> None:
        super().__init__(url, core)
        self._core = core

    @classmethod
    async def connect(
        cls,
        url: str = "ws://127.0.0.1:6200",
        token: str | None = None,
        *,
        ca_file: str | os.PathLike[str] | None = None,
    ) -> AsyncCloudburstConnection:
        return cls(await Core.open(url, token, ca_file), url)

    async def _run(self, request: Request[T]) -> T:
        """Send the request through the event loop and wait for its answer."""
        if request.op is None:
            return request.finish(None)
        try:
            body = await self._core.request(request.op, request.fields, request.timeout)
        except CloudburstError as e:
            return request.fail(e)
        return request.finish(body)

    def _function(self, name: str) -> AsyncCloudburstFunction:
        return AsyncCloudburstFunction(name, self)

    def _future(self, call: int, key: str) -> AsyncCloudburstFuture:
        return AsyncCloudburstFuture(self, call, key)

    async def close(self) -> None:
        """Close the connection; calls still waiting fail with ``connection_closed``."""
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
