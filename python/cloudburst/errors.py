"""The errors Cloudburst raises: one hierarchy, in the client and inside functions.

Every error is a :class:`CloudburstError` with the stable ``code`` the server sent (the
table in docs/protocol.md) or the client chose, and a ``message``. Catch a family by its
class, or look at ``code`` for the exact reason::

    CloudburstError                    any code; a code this client does not know
    ├── InvalidRequestError            the request cannot succeed as sent
    ├── NotFoundError                  unknown_function, unknown_dag, unknown_call
    ├── UnavailableError       retry   the cluster cannot serve it now
    │   ├── ConnectionClosedError      connection_closed
    │   └── CallLostError      retry   executor_lost, scheduler_lost
    ├── CloudburstTimeout      retry   timeout (also a builtin TimeoutError)
    ├── CancelledError                 cancelled: the call was cancelled
    ├── FunctionError                  function_error (type and traceback), worker_crashed,
    │                                  memory_limit
    ├── AuthError                      unauthorized, missing_token, invalid_token,
    │                                  forbidden_origin
    ├── SessionError           retry   session_expired
    └── InternalError                  internal_error: a server bug, worth a report

``retryable`` says whether sending the same request again later can succeed.

Inside a function, ``cb.get``/``cb.put``/``cb.send`` raise these same classes. The worker
imports this module from the installed ``cloudburst`` package when there is one, so user
code catches ``cloudburst.SessionError`` there as in the client; without the package it
loads this file under the name ``cloudburst_errors``. So this module imports nothing but
the standard library.
"""

from __future__ import annotations

from typing import Any, ClassVar


class CloudburstError(Exception):
    """An error reported by the server (or found by the client), with its stable error
    ``code`` and ``message``."""

    #: Whether the same request, sent again later, can succeed.
    retryable: ClassVar[bool] = False

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.code, self.message))


class InvalidRequestError(CloudburstError):
    """The request cannot succeed as sent: a malformed or refused field, a value too large
    or of the wrong kind, a bad DAG, an unpicklable function or argument, a client whose
    Python or cloudpickle differs from the executors'."""


class NotFoundError(CloudburstError):
    """The function, DAG or call named does not exist (a call: not made through this
    gateway, or its result expired)."""


class UnavailableError(CloudburstError):
    """The cluster cannot serve the request right now (no scheduler, executor or KVS
    replica reachable, every worker busy, shutting down, the connection failed): retry
    later."""

    retryable = True


class ConnectionClosedError(UnavailableError):
    """The connection to the gateway is closed (code ``connection_closed``); the message
    carries the server's close reason when it gave one. Open a new connection to retry."""


class CallLostError(UnavailableError):
    """The call was lost with a node of the cluster: an executor running it died and its
    re-runs were used up (``executor_lost``), or the scheduler that placed it died
    (``scheduler_lost``). Its functions may have run (each at least once is the rule):
    calling again runs them again."""


class CancelledError(CloudburstError):
    """The call was cancelled (code ``cancelled``): its running functions were stopped
    and the rest never started."""


class CloudburstTimeout(CloudburstError, TimeoutError):
    """A call or a future did not finish in time (code ``timeout``)."""

    retryable = True


class FunctionError(CloudburstError):
    """The function ran and failed. For ``function_error`` (it raised), ``exception_type``
    names the Python exception and ``traceback`` is the traceback from the executor (also
    part of ``str(error)``); for ``worker_crashed`` the worker process died under it; for
    ``memory_limit`` it needed more memory than a worker may use."""

    def __init__(
        self,
        code: str,
        message: str,
        exception_type: str | None = None,
        traceback: str | None = None,
    ) -> None:
        super().__init__(code, message)
        self.exception_type = exception_type
        self.traceback = traceback
        if traceback:
            self.args = (f"{code}: {message}\n\nRemote traceback:\n{traceback}",)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.code, self.message, self.exception_type, self.traceback))


class AuthError(CloudburstError):
    """The gateway refused the client token (or needs one)."""


class SessionError(CloudburstError):
    """A consistency session cannot go on: its pinned versions expired. Calling again
    starts a new session."""

    retryable = True


class InternalError(CloudburstError):
    """The server found itself in a state it should never be in: a bug worth reporting."""


#: The class of every code known to this client. A code not listed here raises the base
#: class, with its ``code`` kept.
CLASSES: dict[str, type[CloudburstError]] = {
    **dict.fromkeys(
        (
            "invalid_request",
            "malformed_frame",
            "unsupported_version",
            "unknown_op",
            "unsupported_value",
            "kind_mismatch",
            "value_too_large",
            "message_too_large",
            "too_large",
            "bad_dag",
            "version_mismatch",
            "pickle_error",
        ),
        InvalidRequestError,
    ),
    "unknown_function": NotFoundError,
    "unknown_dag": NotFoundError,
    "unknown_call": NotFoundError,
    "executor_lost": CallLostError,
    "scheduler_lost": CallLostError,
    "cancelled": CancelledError,
    **dict.fromkeys(
        (
            "unavailable",
            "no_executors",
            "overloaded",
            "shut_down",
            "not_ready",
            "too_many_streams",
            # Transient KVS failures inside a function or the scheduler come as this code.
            "storage_error",
            # The function was registered again after the call was scheduled: calling
            # again runs the new one.
            "stale_function",
            "connection_failed",
        ),
        UnavailableError,
    ),
    "connection_closed": ConnectionClosedError,
    "timeout": CloudburstTimeout,
    "function_error": FunctionError,
    "worker_crashed": FunctionError,
    "memory_limit": FunctionError,
    "unauthorized": AuthError,
    "missing_token": AuthError,
    "invalid_token": AuthError,
    "forbidden_origin": AuthError,
    "session_expired": SessionError,
    "internal_error": InternalError,
}


def error_for(
    code: str,
    message: str,
    exception_type: str | None = None,
    traceback: str | None = None,
) -> CloudburstError:
    """The exception for ``code``: its family's class, or :class:`CloudburstError` for a
    code this client does not know."""
    cls = CLASSES.get(code, CloudburstError)
    if issubclass(cls, FunctionError):
        return cls(code, message, exception_type, traceback)
    return cls(code, message)
