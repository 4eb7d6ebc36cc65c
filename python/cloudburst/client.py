"""The synchronous client, shaped like the original Cloudburst client.

Thread-safe: any number of threads may share one :class:`CloudburstConnection`, and
their requests are pipelined over its one websocket. Each thread sends its own request
and, when no other thread is reading, reads the responses itself (see ``_sync.py``): no
hop through a background event loop on the way out or back.
"""

from . import protocol
from ._sync import SyncCore
from .shared import NORMAL, CloudburstError, CloudburstTimeout, ConnectionClosedError

#: Extra seconds the client waits beyond a timeout it gave the server, so the server's
#: own timeout answer normally arrives first.
TIMEOUT_GRACE = 1.0


class CloudburstFuture:
    """The eventual result of a call. ``get()`` asks the gateway once and waits for its
    answer (the gateway replies when the result exists); it never polls."""

    def __init__(self, conn, call, key):
        self._conn = conn
        self.call_id = call
        #: The KVS key the result is stored under.
        self.obj_id = key
        self._done = False
        self._value = None
        self._error = None

    def get(self, timeout=None):
        """The call's result; raises the function's error, or :class:`CloudburstTimeout`
        after ``timeout`` seconds (``None``: wait as long as it takes)."""
        if not self._done:
            fields = {"call": self.call_id, "key": self.obj_id}
            ms = protocol.timeout_ms(timeout)
            if ms is not None:
                fields["timeout_ms"] = ms
            wait = None if timeout is None else timeout + TIMEOUT_GRACE
            try:
                self._value = protocol.unpack_value(self._conn._request("await", fields, wait))
            except (CloudburstTimeout, ConnectionClosedError):
                raise  # not an outcome of the call: a later get() may still succeed
            except CloudburstError as e:
                # The call failed: the server hands a failure out once, so remember it.
                self._error = e
            self._done = True
        if self._error is not None:
            raise self._error
        return self._value

    def __repr__(self):
        return f"CloudburstFuture({self.obj_id!r})"


class CloudburstFunction:
    """A registered function: calling it runs it in the cluster and returns a future."""

    def __init__(self, name, conn):
        self.name = name
        self._conn = conn

    def __call__(self, *args):
        return self._conn.exec_func(self.name, list(args))

    def __repr__(self):
        return f"CloudburstFunction({self.name!r})"


class CloudburstConnection:
    """A connection to a Cloudburst gateway, e.g. ``CloudburstConnection("ws://127.0.0.1:6200")``.

    ``token`` is the client token when the gateway requires one.
    """

    def __init__(self, url="ws://127.0.0.1:6200", token=None):
        self.url = url
        self._core = SyncCore.open(url, token)

    # -- plumbing -------------------------------------------------------------------------

    def _request(self, op, fields, timeout=None):
        ok, body = self._core.request(op, fields, timeout)
        if not ok:
            raise protocol.error(body)
        return body

    def _call(self, op, fields, direct):
        reply = self._request(op, fields)
        if direct:
            return protocol.unpack_value(reply)
        return CloudburstFuture(self, reply["call"], reply["key"])

    # -- the API --------------------------------------------------------------------------

    def register(self, function, name, timeout=None):
        """Register a function, or a class function as ``(Class, init_args)`` (``__init__``
        runs once per executor, ``run`` per call). ``timeout`` (seconds) overrides the
        executors' default function timeout. Returns a callable handle."""
        self._request("register_function", protocol.register_fields(function, name, timeout))
        return CloudburstFunction(name, self)

    def register_dag(self, name, functions, connections):
        """Register a DAG of registered functions with edges ``(from, to)``."""
        fields = {
            "name": name,
            "functions": list(functions),
            "connections": [list(c) for c in connections],
        }
        self._request("register_dag", fields)
        return True

    def call_dag(self, name, arg_map, direct_response=False, consistency=NORMAL, output_key=None):
        """Call a DAG; ``arg_map`` maps source functions to their argument lists. Returns
        the result when ``direct_response`` is true, else a :class:`CloudburstFuture`."""
        fields = {"dag": name, "args": protocol.dag_args(arg_map)}
        fields.update(protocol.call_fields(direct_response, consistency, output_key))
        return self._call("call_dag", fields, direct_response)

    def exec_func(self, name, args, direct_response=False, consistency=NORMAL):
        """Call one function with ``args``; a :class:`CloudburstFuture` (or the result
        when ``direct_response`` is true)."""
        fields = {"function": name, "args": protocol.pack_args(args)}
        fields.update(protocol.call_fields(direct_response, consistency, None))
        return self._call("call_function", fields, direct_response)

    def get_function(self, name):
        """A handle to a registered function, or ``None``."""
        return CloudburstFunction(name, self) if name in self.list(name) else None

    def delete_dag(self, name):
        self._request("delete_dag", {"name": name})
        return True

    def list(self, prefix=None):
        """Names of registered functions (starting with ``prefix``)."""
        return self._request("list", {"what": "functions", "prefix": prefix or ""})

    def list_dags(self, prefix=None):
        """Names of registered DAGs (starting with ``prefix``)."""
        return self._request("list", {"what": "dags", "prefix": prefix or ""})

    def put_object(self, key, value):
        """Store ``value`` under ``key`` (a set is stored as a set lattice: concurrent
        puts merge by union; anything else last-writer-wins)."""
        self._request("put_object", {"key": key, "value": protocol.pack_value(value)})
        return True

    def get_object(self, key):
        """The value stored under ``key``, or ``None``."""
        return protocol.unpack_value(self._request("get_object", {"key": key}))

    def ping(self):
        """One round trip to the gateway."""
        self._request("ping", {})

    def close(self):
        """Close the connection; calls still waiting fail with ``connection_closed``."""
        self._core.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
