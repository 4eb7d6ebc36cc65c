"""The client protocol (docs/protocol.md), with no I/O: building request frames, reading
response frames, and converting Python values, arguments and errors.

Every message is one binary websocket message holding a MessagePack map. Requests:
``{"v": 2, "id": <uint>, "op": <str>, ...fields}``; responses: ``{"v": 2, "id": <uint>,
"ok": <result>}`` or ``{"v": 2, "id": <uint|nil>, "err": {"code", "message",
"exception_type", "traceback"}}``. Values are native MessagePack (None, bool, int, float,
str, bytes, list, dict of exactly those types), anything else a pickle inside extension
type ``PICKLE_EXT``.
"""

from __future__ import annotations

import os
import pickle
import sys
import sysconfig
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import cloudpickle
import msgpack

from .errors import CloudburstError, InvalidRequestError, error_for
from .shared import CONSISTENCY_MODES, CloudburstReference, Concurrent, client_environment

#: The fields of a request (besides ``v``, ``id`` and ``op``), or the map of a response.
Fields = dict[str, Any]

PROTOCOL_VERSION = 2

#: The MessagePack extension type of a pickled value.
PICKLE_EXT = 1

#: How deep lists and dicts may nest in a value the server accepts; a value nested deeper
#: is pickled whole.
MAX_DEPTH = 512

#: Largest message the client accepts from the server (a 64 MB value plus framing fits).
#: The server's own limit comes back from ``hello`` and is checked before sending.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024

#: Limit assumed until the server's ``hello`` answer says otherwise (the server default).
DEFAULT_SERVER_MAX_BYTES = 80 * 1024 * 1024


def encode(request_id: int, op: str, fields: Fields, max_bytes: int | None = None) -> bytes:
    """One request frame; ``message_too_large`` if it is over ``max_bytes`` (the server's
    limit), so the request is refused before it is sent."""
    frame = {"v": PROTOCOL_VERSION, "id": request_id, "op": op}
    frame.update(fields)
    try:
        # Only values hold types other than the plain ones (the frame's own fields are
        # str, int, bool, bytes, list and dict), so `default` pickles parts of values only.
        packed: bytes = msgpack.packb(
            frame, use_bin_type=True, strict_types=True, default=_pickle_ext
        )
        # A value needs at least one byte per level, so only a long frame can nest too deep.
        if len(packed) > MAX_DEPTH and any(_deeper(v, MAX_DEPTH) for v in _values(frame)):
            raise ValueError("nested too deep")
    except ValueError:
        # A value nested deeper than the server takes, or a str that is not UTF-8: pickle
        # every value whole.
        packed = msgpack.packb(_values_pickled(frame), use_bin_type=True)
    if max_bytes is not None and len(packed) > max_bytes:
        raise InvalidRequestError(
            "message_too_large",
            f"{op} request of {len(packed)} bytes is over the server's limit of "
            f"{max_bytes} bytes",
        )
    return packed


def decode(frame: bytes) -> tuple[int | None, bool, Any]:
    """``(id, ok, result_or_error_body)`` of one response frame. A pickle in it that
    cannot be unpickled here (e.g. of a class this client cannot import) makes the
    response a ``pickle_error``."""
    failed: list[str] = []

    def ext(code: int, data: bytes) -> Any:
        if code != PICKLE_EXT:
            return msgpack.ExtType(code, data)
        try:
            return pickle.loads(data)
        except Exception as e:
            failed.append(f"{type(e).__name__}: {e}")
            return None

    msg = msgpack.unpackb(frame, raw=False, strict_map_key=False, ext_hook=ext)
    if not isinstance(msg, dict):
        raise InvalidRequestError(
            "malformed_frame", "the server sent a message that is not a map"
        )
    if "err" in msg:
        return msg.get("id"), False, msg["err"]
    if failed:
        message = f"cannot unpickle the value the server sent: {failed[0]}"
        return msg.get("id"), False, {"code": "pickle_error", "message": message}
    return msg.get("id"), True, msg.get("ok")


def error(body: Any) -> CloudburstError:
    """The exception for an ``err`` body (its class follows the code: see ``errors``)."""
    if not isinstance(body, dict):
        return InvalidRequestError("malformed_frame", repr(body))
    return error_for(
        str(body.get("code") or "error"),
        str(body.get("message") or ""),
        body.get("exception_type"),
        body.get("traceback"),
    )


def error_body(err: CloudburstError) -> Fields:
    """The ``err`` body of ``err``: what a request that failed on the client side answers."""
    return {"code": err.code, "message": err.message}


#: Types whose pickle is the same from ``pickle`` as from ``cloudpickle`` (cloudpickle only
#: changes how code, classes and modules are pickled), and much cheaper to make: a
#: cloudpickle ``Pickler`` costs more to set up than a small argument costs to pickle.
_PLAIN = (int, float, str, bytes, bool, type(None))


def dumps(value: Any) -> bytes:
    if type(value) in _PLAIN:
        return pickle.dumps(value, protocol=cloudpickle.DEFAULT_PROTOCOL)
    return cloudpickle.dumps(value)  # type: ignore[no-any-return]


def _installed(module: Any) -> bool:
    """Whether a module comes from the standard library or an installed package (then the
    executors can import it too) rather than from the user's own files."""
    path = getattr(module, "__file__", None)
    if path is None:
        return True  # builtin or namespace: nothing of the user's to ship
    path = os.path.realpath(path)
    roots = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return any(path.startswith(os.path.realpath(r) + os.sep) for r in roots)


def dumps_code(obj: Any, module_name: str | None) -> bytes:
    """Pickle a function (or a (Class, init_args) pair) for the executors. cloudpickle ships
    functions of ``__main__`` by value but pickles functions of an importable module by
    reference, which fails on executors that do not have the user's module (a test file, a
    script's helper module): such user modules are shipped by value too."""
    module = sys.modules.get(module_name or "")
    by_value = module is not None and module_name != "__main__" and not _installed(module)
    if by_value:
        cloudpickle.register_pickle_by_value(module)
    try:
        return cloudpickle.dumps(obj)  # type: ignore[no-any-return]
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)


def _pickle_ext(obj: Any) -> msgpack.ExtType:
    """msgpack's ``default``: what is not a plain value travels as a pickle."""
    return msgpack.ExtType(PICKLE_EXT, dumps(obj))


def _whole(wire: Any) -> Any:
    """A value or argument (``{"value": v}``, ``{"set": [...]}``, ``{"ref": k}``) with its
    value pickled whole."""
    if "value" in wire:
        return {"value": _pickle_ext(wire["value"])}
    if "set" in wire:
        return {"set": [_pickle_ext(v) for v in wire["set"]]}
    return wire


def _deeper(value: Any, limit: int) -> bool:
    """Whether ``value`` nests more than ``limit`` lists and dicts (exactly those types:
    others are pickled anyway). A loop, not ``any()``, to stay within Python's recursion
    limit."""
    if type(value) is list:
        items: Iterable[Any] = value
    elif type(value) is dict:
        items = value.values()
    else:
        return False
    if limit == 0:
        return True
    for item in items:
        if _deeper(item, limit - 1):
            return True
    return False


def _values(frame: Fields) -> Iterable[Any]:
    """The values in a request frame."""
    wires: list[Any] = []
    if frame["op"] == "put_object":
        wires = [frame["value"]]
    elif frame["op"] == "call_function":
        wires = frame["args"]
    elif frame["op"] == "call_dag":
        wires = [a for args in frame["args"].values() for a in args]
    for wire in wires:
        if "value" in wire:
            yield wire["value"]
        yield from wire.get("set", ())


def _values_pickled(frame: Fields) -> Fields:
    """``frame`` with every value in it pickled whole."""
    frame = dict(frame)
    if frame["op"] == "put_object":
        frame["value"] = _whole(frame["value"])
    elif frame["op"] == "call_function":
        frame["args"] = [_whole(a) for a in frame["args"]]
    elif frame["op"] == "call_dag":
        frame["args"] = {f: [_whole(a) for a in args] for f, args in frame["args"].items()}
    return frame


def pack_value(value: Any) -> Fields:
    """A Python value as stored: a set element by element (a SetUnion lattice), anything
    else whole (a last-writer-wins value). Plain values are encoded as themselves when the
    request frame is packed, anything else as a pickle (``encode``)."""
    if isinstance(value, (set, frozenset)):
        return {"set": list(value)}
    return {"value": value}


def unpack_value(wire: Mapping[str, Any] | None) -> Any:
    """The Python value of a stored or returned value (``None`` stays ``None``); pickles
    were already unpickled when the frame was decoded."""
    if wire is None:
        return None
    if "set" in wire:
        return set(wire["set"])
    if "concurrent" in wire:
        return Concurrent(wire["concurrent"])
    return wire["value"]


def pack_args(args: Any) -> list[Fields]:
    """Call arguments: references by key, anything else as a value. A single argument that
    is not a list or tuple counts as a list of one."""
    if not isinstance(args, (list, tuple)):
        args = [args]
    return [{"ref": a.key} if isinstance(a, CloudburstReference) else {"value": a} for a in args]


def register_fields(
    function: Callable[..., Any] | tuple[type, Any],
    name: str,
    timeout: float | None = None,
    retries: int | None = None,
    retry_errors: bool = False,
) -> Fields:
    """Fields of ``register_function`` for a callable or a ``(Class, init_args)`` pair."""
    if not isinstance(name, str) or not name:
        raise TypeError("a function needs a non-empty str name")
    if isinstance(function, tuple):
        if len(function) != 2 or not isinstance(function[0], type):
            raise TypeError("a class function is registered as (Class, init_args)")
        cls, init_args = function
        if not callable(getattr(cls, "run", None)):
            raise TypeError(f"{cls.__name__} needs a run(self, cloudburst, *args) method")
        init_args = tuple(init_args) if isinstance(init_args, (list, tuple)) else (init_args,)
        body, kind = dumps_code((cls, init_args), cls.__module__), "class"
    elif callable(function):
        body, kind = dumps_code(function, getattr(function, "__module__", None)), "plain"
    else:
        raise TypeError("register() takes a function or a (Class, init_args) pair")
    fields = {"name": name, "body": body, "kind": kind, **client_environment()}
    if timeout is not None:
        fields["timeout_ms"] = timeout_ms(timeout)
    if retries is not None:
        fields["retries"] = _retries(retries)
    if retry_errors:
        fields["retry_errors"] = True
    return fields


def dag_fields(name: str, functions: Iterable[str], connections: Iterable[Iterable[str]]) -> Fields:
    """Fields of ``register_dag``: the functions and the ``(from, to)`` edges."""
    return {
        "name": name,
        "functions": list(functions),
        "connections": [list(c) for c in connections],
    }


def call_fields(
    direct: bool,
    consistency: str,
    output_key: str | None,
    timeout: float | None = None,
    retries: int | None = None,
    retry_errors: bool | None = None,
) -> Fields:
    """Fields every call request shares. ``timeout`` (seconds) bounds the whole call on
    the server (it then fails with ``timeout``); ``retries`` and ``retry_errors`` override
    what its functions registered (re-runs after an executor or worker died, and whether
    an exception re-runs it too)."""
    if consistency not in CONSISTENCY_MODES:
        raise ValueError(f"consistency must be one of {CONSISTENCY_MODES}, got {consistency!r}")
    fields: Fields = {"consistency": consistency, "direct": bool(direct)}
    if output_key is not None:
        fields["output_key"] = output_key
    ms = timeout_ms(timeout)
    if ms is not None:
        if ms == 0:
            raise ValueError("a call timeout must be at least 1 ms")
        fields["timeout_ms"] = ms
    if retries is not None:
        fields["retries"] = _retries(retries)
    if retry_errors is not None:
        fields["retry_errors"] = bool(retry_errors)
    return fields


def _retries(retries: int) -> int:
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ValueError(f"retries must be an int >= 0, got {retries!r}")
    return retries


def dag_args(arg_map: Mapping[str, Any]) -> Fields:
    if not isinstance(arg_map, dict):
        raise TypeError("call_dag's arg_map maps function names to argument lists")
    return {name: pack_args(args) for name, args in arg_map.items()}


def await_fields(call: int, key: str, timeout: float | None, delete: bool = False) -> Fields:
    """Fields of ``await`` for the result of ``call`` stored under ``key``; ``delete``: the
    server deletes the stored result once it has been read."""
    fields: Fields = {"call": call, "key": key}
    ms = timeout_ms(timeout)
    if ms is not None:
        fields["timeout_ms"] = ms
    if delete:
        fields["delete"] = True
    return fields


def timeout_ms(timeout: float | None) -> int | None:
    if timeout is None:
        return None
    if timeout < 0:
        raise ValueError("timeout must be >= 0")
    return int(timeout * 1000)


#: The requests that make a call (they carry the client's call id).
CALL_OPS = ("call_function", "call_dag")


def sent_again(op: str, fields: Fields) -> Fields:
    """The fields of a request sent again after the client lost the gateway that had it: a
    call is marked ``resent``, so a gateway that does not know its id asks the cluster
    whether it ran or runs before running it."""
    if op in CALL_OPS and "call" in fields:
        return {**fields, "resent": True}
    return fields
