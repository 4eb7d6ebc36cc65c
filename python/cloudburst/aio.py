"""The asyncio client: the same API as :class:`cloudburst.CloudburstConnection`, with
coroutines. Use it from one event loop (the one it was opened on)::

    cloud = await AsyncCloudburstConnection.connect("ws://127.0.0.1:6200")
    square = await cloud.register(lambda cb, x: x * x, "square")
    print(await (await square(3)).get())

Its methods are the method layer's (``_api.Methods``) as they are; this module adds only
the handles it gives out and the way to open a connection.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from ._api import Handle, Methods, Outcome
from ._core import Core


class AsyncCloudburstFuture(Outcome):
    """The eventual result of a call; ``await future.get()``."""

    __slots__ = ()

    async def get(self, timeout: float | None = None) -> Any:
        """The call's result; raises the function's error, or :class:`CloudburstTimeout`
        after ``timeout`` seconds (``None``: wait as long as it takes)."""
        return await self.result(timeout)


class AsyncCloudburstFunction(Handle["AsyncCloudburstConnection"]):
    """A registered function: ``await fn(*args)`` returns an :class:`AsyncCloudburstFuture`."""

    async def __call__(self, *args: Any) -> AsyncCloudburstFuture:
        future: AsyncCloudburstFuture = await self._conn.exec_func(self.name, list(args))
        return future


class AsyncCloudburstConnection(Methods[AsyncCloudburstFunction, AsyncCloudburstFuture]):
    """Open with ``await AsyncCloudburstConnection.connect(url, token=None)``."""

    _transport: Core

    @classmethod
    async def connect(
        cls, url: str = "ws://127.0.0.1:6200", token: str | None = None
    ) -> AsyncCloudburstConnection:
        return cls(await Core.open(url, token), url)

    def _function(self, name: str) -> AsyncCloudburstFunction:
        return AsyncCloudburstFunction(name, self)

    def _future(self, call: int, key: str) -> AsyncCloudburstFuture:
        return AsyncCloudburstFuture(self._transport, call, key)

    async def __aenter__(self) -> AsyncCloudburstConnection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
