"""The client's methods, written once for both clients over a small transport interface.

Each public method is an :class:`operation`: a plain function that builds one
:class:`Request` (the op, its fields, and how to turn the answer into the result) and does
no I/O. A client runs requests with its ``_run`` (the transport interface):

- the synchronous client (a :class:`Blocking`) sends the request and reads the answer on
  the calling thread, so ``cloud.get_object(k)`` returns the value, with no coroutine or
  event loop on the way (that thread reads its own socket: what makes it fast);
- the asyncio client (an :class:`Awaiting`) sends it through its event loop, so
  ``cloud.get_object(k)`` returns a coroutine.

The same attribute of :class:`Methods` is thus a function in one client and a coroutine
function in the other (typed so by :meth:`operation.__get__`; each client class gets its
kind as a plain method when it is created). What else differs between the clients is only
what they hand out: the function handle and the future classes (``_function`` and
``_future``).

(The methods were coroutines once, run by the synchronous client without an event loop;
driving a coroutine cost that client some 5 µs a call, 5 % of a ping.)
"""

from __future__ import annotations

import functools
import inspect
import itertools
import secrets
from collections.abc import Callable, Coroutine, Iterable, Mapping
from types import MethodType
from typing import Any, Concatenate, Generic, NoReturn, ParamSpec, Protocol, TypeVar, overload

from . import protocol
from .errors import CloudburstError, CloudburstTimeout, ConnectionClosedError
from .protocol import Fields
from .shared import NORMAL, Registered

P = ParamSpec("P")
T = TypeVar("T")
FunctionT = TypeVar("FunctionT")
FutureT = TypeVar("FutureT")
ConnT = TypeVar("ConnT")

#: Extra seconds a future waits beyond the timeout it gave the server, so the server's own
#: ``timeout`` answer normally arrives first.
TIMEOUT_GRACE = 1.0

#: Call ids are below 2**CALL_ID_BITS (docs/protocol.md: every language holds them exactly).
CALL_ID_BITS = 53

#: Names of functions or DAGs (spelt out here: inside ``Methods``, ``list`` is a method).
Names = list[str]

#: What ``register`` takes: a function ``f(cb, *args)``, or a class function as
#: ``(Class, init_args)``.
Registrable = Callable[..., Any] | tuple[type, Any]


class Limits(Protocol):
    """What the methods read of a client's connection."""

    #: The largest request the server accepts (from its ``hello``).
    max_message_bytes: int


def _raise(error: CloudburstError) -> NoReturn:
    raise error


class Request(Generic[T]):
    """One request to send, and what its answer becomes: ``finish(ok_result)``, or
    ``fail(error)`` when the server answers an error (the default raises it). A request
    whose ``op`` is ``None`` is answered already: ``finish(None)`` without asking."""

    __slots__ = ("op", "fields", "finish", "fail", "timeout")

    def __init__(
        self,
        op: str | None,
        fields: Fields,
        finish: Callable[[Any], T],
        fail: Callable[[CloudburstError], T] = _raise,
        timeout: float | None = None,
    ) -> None:
        self.op = op
        self.fields = fields
        self.finish = finish
        self.fail = fail
        #: Seconds the client waits for the answer (``None``: as long as it takes).
        self.timeout = timeout


def _install(cls: type, kind: str) -> None:
    """Give ``cls`` its kind of every operation it inherits, as a plain function, so that
    calling one costs what calling a method costs (the :class:`operation` descriptor is
    for the type checker, ``help`` and classes not yet set up)."""
    if issubclass(cls, Blocking) and issubclass(cls, Awaiting):
        raise TypeError(f"{cls.__name__} cannot be both Blocking and Awaiting")
    for klass in cls.__mro__:
        for name, op in vars(klass).items():
            if isinstance(op, operation) and inspect.getattr_static(cls, name) is op:
                setattr(cls, name, getattr(op, kind))


class Blocking:
    """A client whose operations run on the calling thread and return their result."""

    __slots__ = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _install(cls, "blocking")

    def _run(self, request: Request[T]) -> T:
        raise NotImplementedError


class Awaiting:
    """A client whose operations are coroutines run on an event loop."""

    __slots__ = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _install(cls, "awaiting")

    async def _run(self, request: Request[T]) -> T:
        raise NotImplementedError


class operation(Generic[P, T]):
    """A public method written once, as a function building its :class:`Request`: in a
    :class:`Blocking` client it runs the request and returns the result, in an
    :class:`Awaiting` one it returns a coroutine that does (arguments are checked when it
    is awaited). Called on the class, it takes the client first, as a method does."""

    def __init__(self, plan: Callable[Concatenate[Any, P], Request[T]]) -> None:
        def blocking(client: Any, /, *args: Any, **kwargs: Any) -> Any:
            return client._run(plan(client, *args, **kwargs))

        async def awaiting(client: Any, /, *args: Any, **kwargs: Any) -> Any:
            return await client._run(plan(client, *args, **kwargs))

        signature = inspect.signature(plan).replace(return_annotation=inspect.Signature.empty)
        #: What a :class:`Blocking` and an :class:`Awaiting` client call.
        self.blocking = _like(blocking, plan, signature)
        self.awaiting = _like(awaiting, plan, signature)
        self.__doc__ = plan.__doc__
        self.__name__ = plan.__name__
        self.__signature__ = signature
        #: The function building the request (what ``get_object(future)`` reuses).
        self.plan = plan

    @overload
    def __get__(self, obj: None, owner: type) -> operation[P, T]: ...
    @overload
    def __get__(self, obj: Blocking, owner: type) -> Callable[P, T]: ...
    @overload
    def __get__(self, obj: Awaiting, owner: type) -> Callable[P, Coroutine[Any, Any, T]]: ...

    def __get__(self, obj: Any, owner: type) -> Any:
        if obj is None:
            return self
        return MethodType(self.awaiting if isinstance(obj, Awaiting) else self.blocking, obj)

    def __call__(self, obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Called on the class, as ``CloudburstConnection.get_object(cloud, key)``."""
        return self.__get__(obj, type(obj))(*args, **kwargs)


def _like(method: Callable[..., Any], plan: Callable[..., Any], signature: Any) -> Any:
    """``method`` with the name, documentation and signature (not the return) of ``plan``."""
    functools.update_wrapper(method, plan)
    del method.__wrapped__  # type: ignore[attr-defined]  # inspect would show the plan's
    method.__signature__ = signature  # type: ignore[attr-defined]
    return method


class Methods(Generic[FunctionT, FutureT]):
    """Every operation of a connection. ``FunctionT`` is the client's function handle and
    ``FutureT`` its future."""

    def __init__(self, url: str, core: Limits) -> None:
        #: The gateway's websocket URL.
        self.url = url
        self._limits = core
        # This client's call ids: consecutive from a random start, so unique among its
        # calls (and unlikely to meet another client's). A call request carries its id,
        # so the gateway recognises it when it is sent again.
        self._calls = itertools.count(secrets.randbits(CALL_ID_BITS))

    @property
    def max_message_bytes(self) -> int:
        """The largest request the server accepts; a larger one is refused with
        ``message_too_large`` before it is sent."""
        return self._limits.max_message_bytes

    def _function(self, name: str) -> FunctionT:
        """The handle to the registered function ``name``."""
        raise NotImplementedError

    def _future(self, call: int, key: str) -> FutureT:
        """The future of a call whose result will be stored under ``key``."""
        raise NotImplementedError

    def _future_argument(self, future: Any) -> Any:
        """What a future passed as an argument becomes: its result (the synchronous client
        waits for it here; the asyncio client refuses, its futures are awaited)."""
        raise TypeError(
            f"{type(self).__name__} cannot take a future as an argument: pass "
            "`await future.get()` instead"
        )

    def _arguments(self, args: Any) -> list[Any]:
        """Call arguments as a list (one that is not a list or tuple is a list of one),
        futures of this client replaced by their results, as the original client turned
        them into references to their results."""
        if not isinstance(args, (list, tuple)):
            args = [args]
        return [self._future_argument(a) if isinstance(a, Outcome) else a for a in args]

    def _call(
        self, op: str, fields: Fields, direct: bool, timeout: float | None
    ) -> Request[Any | FutureT]:
        fields["call"] = next(self._calls) & ((1 << CALL_ID_BITS) - 1)
        if direct:
            # The server answers `timeout` at the call's deadline; the client waits a
            # little longer so that answer normally arrives first.
            wait = None if timeout is None else timeout + TIMEOUT_GRACE
            return Request(op, fields, protocol.unpack_value, timeout=wait)
        return Request(op, fields, lambda reply: self._made(reply, op, fields))

    def _made(self, reply: Any, op: str, fields: Fields) -> FutureT:
        """The future a call request was answered with; it keeps the request, to send it
        again should the gateway that took it be lost before it ended."""
        future = self._future(reply["call"], reply["key"])
        if isinstance(future, Outcome):
            future._again = (op, fields)
        return future

    @operation
    def register(
        self,
        function: Registrable,
        name: str,
        timeout: float | None = None,
        retries: int | None = None,
        retry_errors: bool = False,
    ) -> Request[FunctionT]:
        """Register a function, or a class function as ``(Class, init_args)`` (``__init__``
        runs once per executor, ``run`` per call). ``timeout`` (seconds) overrides the
        executors' default function timeout. A call runs again (every function of it)
        when an executor or worker dies under it, up to ``retries`` times (default 2);
        ``retry_errors`` re-runs it also when this function raises or times out. Functions
        thus run *at least once*: ``cb.call_id`` and ``cb.attempt`` let one with side
        effects make them idempotent. Returns a callable handle."""
        fields = protocol.register_fields(function, name, timeout, retries, retry_errors)
        return Request("register_function", fields, lambda _: self._function(name))

    @operation
    def register_dag(
        self, name: str, functions: Iterable[str], connections: Iterable[Iterable[str]]
    ) -> Request[Registered]:
        """Register a DAG of registered functions with edges ``(from, to)`` (registering a
        name again replaces its DAG). Returns a true value that also unpacks as the
        original client's ``(success, error)``: ``(True, 0)``; a failure raises."""
        fields = protocol.dag_fields(name, functions, connections)
        return Request("register_dag", fields, _registered)

    @operation
    def call_dag(
        self,
        name: str,
        arg_map: Mapping[str, Any],
        direct_response: bool = False,
        consistency: str = NORMAL,
        output_key: str | None = None,
        client_id: str | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        retry_errors: bool | None = None,
    ) -> Request[Any | FutureT]:
        """Call a DAG; ``arg_map`` maps source functions to their argument lists (futures
        among them count as their results). Returns the result when ``direct_response`` is
        true, else a future. ``output_key`` also stores the result under that key.
        ``client_id`` (the original client's id for causal metadata) is accepted and not
        needed: a causal call's session is kept by the cluster. ``timeout`` (seconds) ends
        the call with :class:`CloudburstTimeout` if it has not finished by then (default:
        its functions' timeouts for every re-run, plus slack); ``retries`` and
        ``retry_errors`` override what the functions registered (see ``register``)."""
        del client_id
        if not isinstance(arg_map, dict):
            raise TypeError("call_dag's arg_map maps function names to argument lists")
        arguments = {f: self._arguments(a) for f, a in arg_map.items()}
        fields = {"dag": name, "args": protocol.dag_args(arguments)}
        fields.update(
            protocol.call_fields(
                direct_response, consistency, output_key, timeout, retries, retry_errors
            )
        )
        return self._call("call_dag", fields, direct_response, timeout)

    @operation
    def exec_func(
        self,
        name: str,
        args: Any,
        direct_response: bool = False,
        consistency: str = NORMAL,
        output_key: str | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        retry_errors: bool | None = None,
    ) -> Request[Any | FutureT]:
        """Call one function with ``args`` (a list or tuple; anything else is one argument;
        futures among them count as their results). Returns the result when
        ``direct_response`` is true, else a future (the original returned the result's key:
        ``get_object`` takes the future in its place). ``output_key`` also stores the
        result under that key. ``timeout``, ``retries`` and ``retry_errors`` as for
        ``call_dag``."""
        fields = {"function": name, "args": protocol.pack_args(self._arguments(args))}
        fields.update(
            protocol.call_fields(
                direct_response, consistency, output_key, timeout, retries, retry_errors
            )
        )
        return self._call("call_function", fields, direct_response, timeout)

    @operation
    def get_function(self, name: str) -> Request[FunctionT | None]:
        """A handle to a registered function, or ``None``."""

        def handle(names: Names) -> FunctionT | None:
            return self._function(name) if name in names else None

        return Request("list", {"what": "functions", "prefix": name}, handle)

    @operation
    def delete_dag(self, name: str) -> Request[Registered]:
        """Delete a DAG (``unknown_dag`` if there is none). Returns a true value that also
        unpacks as the original client's ``(success, error)``."""
        return Request("delete_dag", {"name": name}, _registered)

    @operation
    def logs(self, call_id: int) -> Request[list[dict[str, Any]]]:
        """What call ``call_id``'s functions printed and raised (see ``Future.logs``)."""
        return Request("logs", {"call": call_id}, _logs)

    @operation
    def list(self, prefix: str | None = None) -> Request[Names]:
        """Names of registered functions (starting with ``prefix``)."""
        return Request("list", {"what": "functions", "prefix": prefix or ""}, _names)

    @operation
    def list_dags(self, prefix: str | None = None) -> Request[Names]:
        """Names of registered DAGs (starting with ``prefix``)."""
        return Request("list", {"what": "dags", "prefix": prefix or ""}, _names)

    @operation
    def put_object(self, key: str, value: Any) -> Request[bool]:
        """Store ``value`` under ``key`` (a set is stored as a set lattice: concurrent
        puts merge by union; anything else last-writer-wins)."""
        return Request("put_object", {"key": key, "value": protocol.pack_value(value)}, _true)

    @operation
    def get_object(self, key: str | Outcome[Any]) -> Request[Any]:
        """The value stored under ``key``, or ``None``. A future in place of the key (what
        the original client's ``exec_func`` returned was the result's key) gives its
        result, as ``future.get()`` does."""
        if isinstance(key, Outcome):
            get: operation[[float | None], Any] = Outcome.__dict__["get"]
            return get.plan(key, None)
        return Request("get_object", {"key": key}, protocol.unpack_value)

    @operation
    def delete_object(self, key: str) -> Request[bool]:
        """Delete ``key``: ``get_object`` answers ``None`` until it is written again."""
        return Request("delete_object", {"key": key}, _true)

    @operation
    def ping(self) -> Request[None]:
        """One round trip to the gateway."""
        return Request("ping", {}, _none)


def _true(_: Any) -> bool:
    return True


def _false(_: Any) -> bool:
    return False


def _registered(_: Any) -> Registered:
    return Registered()


def _none(_: Any) -> None:
    return None


def _names(body: Any) -> Names:
    return [str(n) for n in body]


def _logs(body: Any) -> list[dict[str, Any]]:
    return [dict(entry) for entry in body or []]


class Outcome(Generic[ConnT]):
    """The eventual result of one call, for both clients' futures: ``get`` asks the
    gateway once and waits for its answer (the gateway replies when the result exists); it
    never polls. A result or failure of the call is remembered here too (the server
    answers every ``get`` of an ended call the same, while it remembers the call); a
    timeout of ``get`` or a closed connection is not (a later ``get`` may still succeed).
    ``cancel`` stops the call."""

    __slots__ = ("call_id", "obj_id", "_conn", "_done", "_value", "_error", "_again")

    def __init__(self, conn: ConnT, call: int, key: str) -> None:
        self._conn = conn
        self.call_id = call
        #: The KVS key the result is stored under.
        self.obj_id = key
        self._done = False
        self._value: Any = None
        self._error: CloudburstError | None = None
        #: The call request (op and fields) that made this future, while it may have to be
        #: sent again (a client with several gateways, see ``CloudburstConnection``).
        self._again: tuple[str, Fields] | None = None

    @operation
    def get(self, timeout: float | None = None, delete: bool = False) -> Request[Any]:
        """The call's result; raises the function's error, or :class:`CloudburstTimeout`
        after ``timeout`` seconds (``None``: wait as long as it takes). ``delete``: the
        server deletes the stored result once it has been read (this future still answers
        it; others awaiting the same call may not). Results expire on their own after the
        server's ``kvs.result_ttl_ms`` anyway."""
        if self._done:
            return Request(None, {}, self._settled)
        fields = protocol.await_fields(self.call_id, self.obj_id, timeout, delete)
        wait = None if timeout is None else timeout + TIMEOUT_GRACE
        return Request("await", fields, self._succeeded, self._failed, wait)

    @operation
    def cancel(self) -> Request[bool]:
        """Stop the call: its functions still running are stopped, the rest never start,
        and ``get`` raises :class:`CancelledError`. True if it was stopped, False if it had
        ended already (``get`` answers how)."""
        if self._done:
            return Request(None, {}, _false)
        return Request("cancel", {"call": self.call_id}, bool)

    @operation
    def logs(self) -> Request[list[dict[str, Any]]]:
        """What the call's functions printed and raised, one dict per function run, in the
        order they finished: ``function``, ``node`` (the node that ran it), ``attempt``,
        ``stdout``, ``stderr``, ``traceback`` (``None`` unless it raised) and
        ``truncated`` (output beyond the server's bound per run was cut). Each node keeps
        the logs of its newest calls (bounded in bytes): an old call's may be gone."""
        return Request("logs", {"call": self.call_id}, _logs)

    def _succeeded(self, body: Any) -> Any:
        self._value = protocol.unpack_value(body)
        self._done = True
        self._again = None
        return self._value

    def _failed(self, error: CloudburstError) -> NoReturn:
        if not isinstance(error, (CloudburstTimeout, ConnectionClosedError)):
            self._error = error  # the call failed: every later get answers the same
            self._done = True
        raise error

    def _settled(self, _: Any) -> Any:
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
