"""The synchronous client, shaped like the original Cloudburst client.

Thread-safe: any number of threads may share one :class:`CloudburstConnection`, and
their requests are pipelined over its one websocket. Each thread sends its own request
and, when no other thread is reading, reads the responses itself (see ``_sync.py``): no
hop through a background event loop on the way out or back.

Its methods are the method layer's (``_api.Methods``), each run to completion on the
calling thread by :func:`blocking`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

from ._api import Handle, Methods, Outcome, run_blocking
from ._sync import SyncCore

P = ParamSpec("P")
T = TypeVar("T")


class CloudburstFuture(Outcome):
    """The eventual result of a call. ``get()`` asks the gateway once and waits for its
    answer (the gateway replies when the result exists); it never polls."""

    __slots__ = ()

    def get(self, timeout: float | None = None) -> Any:
        """The call's result; raises the function's error, or :class:`CloudburstTimeout`
        after ``timeout`` seconds (``None``: wait as long as it takes)."""
        return run_blocking(self.result(timeout))


class CloudburstFunction(Handle["CloudburstConnection"]):
    """A registered function: calling it runs it in the cluster and returns a future."""

    def __call__(self, *args: Any) -> CloudburstFuture:
        future: CloudburstFuture = self._conn.exec_func(self.name, list(args))
        return future


class _Methods(Methods[CloudburstFunction, CloudburstFuture]):
    """The method layer over the blocking transport, handing out this module's handles."""

    def __init__(self, core: SyncCore, conn: CloudburstConnection) -> None:
        super().__init__(core, conn.url)
        self._core = core
        self._conn = conn

    def _function(self, name: str) -> CloudburstFunction:
        return CloudburstFunction(name, self._conn)

    def _future(self, call: int, key: str) -> CloudburstFuture:
        return CloudburstFuture(self._core, call, key)


def blocking(
    method: Callable[Concatenate[_Methods, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[CloudburstConnection, P], T]:
    """A method of the method layer as a method of :class:`CloudburstConnection`: the
    same signature and documentation, returning the result instead of a coroutine."""

    def run(self: CloudburstConnection, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return run_blocking(method(self._methods, *args, **kwargs))

    functools.update_wrapper(run, method)
    return run


class CloudburstConnection:
    """A connection to a Cloudburst gateway, e.g. ``CloudburstConnection("ws://127.0.0.1:6200")``.

    ``token`` is the client token when the gateway requires one.
    """

    def __init__(self, url: str = "ws://127.0.0.1:6200", token: str | None = None) -> None:
        #: The gateway's websocket URL.
        self.url = url
        self._methods = _Methods(SyncCore.open(url, token), self)

    @property
    def max_message_bytes(self) -> int:
        """The largest request the server accepts; a larger one is refused with
        ``message_too_large`` before it is sent."""
        return self._methods.max_message_bytes

    register = blocking(_Methods.register)
    register_dag = blocking(_Methods.register_dag)
    call_dag = blocking(_Methods.call_dag)
    exec_func = blocking(_Methods.exec_func)
    get_function = blocking(_Methods.get_function)
    delete_dag = blocking(_Methods.delete_dag)
    list = blocking(_Methods.list)
    list_dags = blocking(_Methods.list_dags)
    put_object = blocking(_Methods.put_object)
    get_object = blocking(_Methods.get_object)
    ping = blocking(_Methods.ping)
    close = blocking(_Methods.close)

    def __enter__(self) -> CloudburstConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
