"""The client's methods, written once for both clients over a small transport interface.

:class:`Methods` holds every public operation as a coroutine that builds the request
fields (``protocol``), sends them through a :class:`Transport` and turns the answer into
Python values, function handles and futures. The asyncio client *is* a ``Methods`` with
an event-loop transport. The synchronous client runs the same coroutines with
:func:`run_blocking` over a transport whose ``request`` never suspends: it does its
blocking round trip on the calling thread and returns, so the coroutine finishes in one
step and no event loop is involved.

What differs between the clients is only what they hand out: the function handle and the
future classes (``_function`` and ``_future``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, Generic, Protocol, TypeVar

from . import protocol
from .errors import CloudburstError, CloudburstTimeout, ConnectionClosedError
from .protocol import Fields
from .shared import NORMAL

T = TypeVar("T")
FunctionT = TypeVar("FunctionT")
FutureT = TypeVar("FutureT")
ConnT = TypeVar("ConnT")

#: Extra seconds a future waits beyond the timeout it gave the server, so the server's own
#: ``timeout`` answer normally arrives first.
TIMEOUT_GRACE = 1.0

#: Names of functions or DAGs (spelt out here: inside ``Methods``, ``list`` is a method).
Names = list[str]

#: What ``register`` takes: a function ``f(cb, *args)``, or a class function as
#: ``(Class, init_args)``.
Registrable = Callable[..., Any] | tuple[type, Any]


class Transport(Protocol):
    """One open connection to a gateway, as the methods use it."""

    #: The largest request the server accepts (from its ``hello``).
    max_message_bytes: int

    async def request(self, op: str, fields: Fields, timeout: float | None = None) -> Any:
        """Send one request and return its ``ok`` result. Raises the error it answered
        (:func:`protocol.error`), :class:`CloudburstTimeout` after ``timeout`` seconds
        (``None``: no limit) and :class:`ConnectionClosedError` once closed."""
        ...

    async def close(self) -> None:
        """Close the connection; requests still waiting fail with ``connection_closed``."""
        ...


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never suspends (one over a blocking transport)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("a blocking client method awaited something that suspends")


class Methods(Generic[FunctionT, FutureT]):
    """Every operation of a connection. ``FunctionT`` is the client's function handle and
    ``FutureT`` its future."""

    def __init__(self, transport: Transport, url: str) -> None:
        self._transport = transport
        #: The gateway's websocket URL.
        self.url = url

    def _function(self, name: str) -> FunctionT:
        """The handle to the registered function ``name``."""
        raise NotImplementedError

    def _future(self, call: int, key: str) -> FutureT:
        """The future of a call whose result will be stored under ``key``."""
        raise NotImplementedError

    @property
    def max_message_bytes(self) -> int:
        """The largest request the server accepts; a larger one is refused with
        ``message_too_large`` before it is sent."""
        return self._transport.max_message_bytes

    async def _call(self, op: str, fields: Fields, direct: bool) -> Any:
        reply = await self._transport.request(op, fields)
        if direct:
            return protocol.unpack_value(reply)
        return self._future(reply["call"], reply["key"])

    async def register(
        self, function: Registrable, name: str, timeout: float | None = None
    ) -> FunctionT:
        """Register a function, or a class function as ``(Class, init_args)`` (``__init__``
        runs once per executor, ``run`` per call). ``timeout`` (seconds) overrides the
        executors' default function timeout. Returns a callable handle."""
        fields = protocol.register_fields(function, name, timeout)
        await self._transport.request("register_function", fields)
        return self._function(name)

    async def register_dag(
        self, name: str, functions: Iterable[str], connections: Iterable[Iterable[str]]
    ) -> bool:
        """Register a DAG of registered functions with edges ``(from, to)``."""
        await self._transport.request(
            "register_dag", protocol.dag_fields(name, functions, connections)
        )
        return True

    async def call_dag(
        self,
        name: str,
        arg_map: Mapping[str, Any],
        direct_response: bool = False,
        consistency: str = NORMAL,
        output_key: str | None = None,
    ) -> Any | FutureT:
        """Call a DAG; ``arg_map`` maps source functions to their argument lists. Returns
        the result when ``direct_response`` is true, else a future. ``output_key`` also
        stores the result under that key."""
        fields = {"dag": name, "args": protocol.dag_args(arg_map)}
        fields.update(protocol.call_fields(direct_response, consistency, output_key))
        return await self._call("call_dag", fields, direct_response)

    async def exec_func(
        self,
        name: str,
        args: Any,
        direct_response: bool = False,
        consistency: str = NORMAL,
        output_key: str | None = None,
    ) -> Any | FutureT:
        """Call one function with ``args`` (a list; anything else is one argument).
        Returns the result when ``direct_response`` is true, else a future.
        ``output_key`` also stores the result under that key."""
        fields = {"function": name, "args": protocol.pack_args(args)}
        fields.update(protocol.call_fields(direct_response, consistency, output_key))
        return await self._call("call_function", fields, direct_response)

    async def get_function(self, name: str) -> FunctionT | None:
        """A handle to a registered function, or ``None``."""
        names = await self.list(name)
        return self._function(name) if name in names else None

    async def delete_dag(self, name: str) -> bool:
        """Delete a DAG (``unknown_dag`` if there is none)."""
        await self._transport.request("delete_dag", {"name": name})
        return True

    async def list(self, prefix: str | None = None) -> Names:
        """Names of registered functions (starting with ``prefix``)."""
        fields = {"what": "functions", "prefix": prefix or ""}
        return list(await self._transport.request("list", fields))

    async def list_dags(self, prefix: str | None = None) -> Names:
        """Names of registered DAGs (starting with ``prefix``)."""
        fields = {"what": "dags", "prefix": prefix or ""}
        return list(await self._transport.request("list", fields))

    async def put_object(self, key: str, value: Any) -> bool:
        """Store ``value`` under ``key`` (a set is stored as a set lattice: concurrent
        puts merge by union; anything else last-writer-wins)."""
        fields = {"key": key, "value": protocol.pack_value(value)}
        await self._transport.request("put_object", fields)
        return True

    async def get_object(self, key: str) -> Any:
        """The value stored under ``key``, or ``None``."""
        return protocol.unpack_value(await self._transport.request("get_object", {"key": key}))

    async def ping(self) -> None:
        """One round trip to the gateway."""
        await self._transport.request("ping", {})

    async def close(self) -> None:
        """Close the connection; calls still waiting fail with ``connection_closed``."""
        await self._transport.close()


class Outcome:
    """The eventual result of one call, for both clients' futures: ``result`` asks the
    gateway once and waits for its answer (the gateway replies when the result exists); it
    never polls. A failure of the call is remembered (the server hands it out once); a
    timeout or a closed connection is not (a later wait may still succeed)."""

    __slots__ = ("call_id", "obj_id", "_transport", "_done", "_value", "_error")

    def __init__(self, transport: Transport, call: int, key: str) -> None:
        self._transport = transport
        self.call_id = call
        #: The KVS key the result is stored under.
        self.obj_id = key
        self._done = False
        self._value: Any = None
        self._error: CloudburstError | None = None

    async def result(self, timeout: float | None) -> Any:
        """The call's result; raises the function's error, or :class:`CloudburstTimeout`
        after ``timeout`` seconds (``None``: wait as long as it takes)."""
        if not self._done:
            fields = protocol.await_fields(self.call_id, self.obj_id, timeout)
            wait = None if timeout is None else timeout + TIMEOUT_GRACE
            try:
                body = await self._transport.request("await", fields, wait)
                self._value = protocol.unpack_value(body)
            except (CloudburstTimeout, ConnectionClosedError):
                raise  # not an outcome of the call: a later get() may still succeed
            except CloudburstError as e:
                self._error = e
            self._done = True
        if self._error is not None:
            raise self._error
        return self._value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.obj_id!r})"


class Handle(Generic[ConnT]):
    """A registered function of the connection ``ConnT``: calling the handle calls it."""

    def __init__(self, name: str, conn: ConnT) -> None:
        self.name = name
        self._conn = conn

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
