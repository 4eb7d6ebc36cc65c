"""The asyncio client: the same API as :class:`cloudburst.CloudburstConnection`, with
coroutines. Use it from one event loop (the one it was opened on)::

    cloud = await AsyncCloudburstConnection.connect("ws://127.0.0.1:6200")
    square = await cloud.register(lambda cb, x: x * x, "square")
    print(await (await square(3)).get())
"""

import asyncio

from . import protocol
from ._core import Core
from .shared import NORMAL, CloudburstError, CloudburstTimeout, ConnectionClosedError

TIMEOUT_GRACE = 1.0


class AsyncCloudburstFuture:
    """The eventual result of a call; ``await future.get()``."""

    def __init__(self, conn, call, key):
        self._conn = conn
        self.call_id = call
        self.obj_id = key
        self._done = False
        self._value = None
        self._error = None

    async def get(self, timeout=None):
        if not self._done:
            fields = {"call": self.call_id, "key": self.obj_id}
            ms = protocol.timeout_ms(timeout)
            if ms is not None:
                fields["timeout_ms"] = ms
            wait = None if timeout is None else timeout + TIMEOUT_GRACE
            try:
                body = await self._conn._request("await", fields, wait)
                self._value = protocol.unpack_value(body)
            except (CloudburstTimeout, ConnectionClosedError):
                raise  # not an outcome of the call: a later get() may still succeed
            except CloudburstError as e:
                # The call failed: the server hands a failure out once, so remember it.
                self._error = e
            self._done = True
        if self._error is not None:
            raise self._error
        return self._value


class AsyncCloudburstFunction:
    """A registered function: ``await fn(*args)`` returns an :class:`AsyncCloudburstFuture`."""

    def __init__(self, name, conn):
        self.name = name
        self._conn = conn

    async def __call__(self, *args):
        return await self._conn.exec_func(self.name, list(args))


class AsyncCloudburstConnection:
    """Open with ``await AsyncCloudburstConnection.connect(url, token=None)``."""

    def __init__(self, core, url):
        self._core = core
        self.url = url

    @classmethod
    async def connect(cls, url="ws://127.0.0.1:6200", token=None):
        return cls(await Core.open(url, token), url)

    async def _request(self, op, fields, timeout=None):
        fut = asyncio.get_running_loop().create_future()

        def done(ok, body):
            if not fut.done():
                fut.set_result((ok, body))

        request_id = self._core.submit(op, fields, done, threadsafe=False)
        try:
            ok, body = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            self._core.forget(request_id)
            raise CloudburstTimeout("timeout", f"no answer to {op} in {timeout} s") from None
        if not ok:
            raise protocol.error(body)
        return body

    async def _call(self, op, fields, direct):
        reply = await self._request(op, fields)
        if direct:
            return protocol.unpack_value(reply)
        return AsyncCloudburstFuture(self, reply["call"], reply["key"])

    async def register(self, function, name, timeout=None):
        fields = protocol.register_fields(function, name, timeout)
        await self._request("register_function", fields)
        return AsyncCloudburstFunction(name, self)

    async def register_dag(self, name, functions, connections):
        fields = {
            "name": name,
            "functions": list(functions),
            "connections": [list(c) for c in connections],
        }
        await self._request("register_dag", fields)
        return True

    async def call_dag(
        self, name, arg_map, direct_response=False, consistency=NORMAL, output_key=None
    ):
        fields = {"dag": name, "args": protocol.dag_args(arg_map)}
        fields.update(protocol.call_fields(direct_response, consistency, output_key))
        return await self._call("call_dag", fields, direct_response)

    async def exec_func(self, name, args, direct_response=False, consistency=NORMAL):
        fields = {"function": name, "args": protocol.pack_args(args)}
        fields.update(protocol.call_fields(direct_response, consistency, None))
        return await self._call("call_function", fields, direct_response)

    async def get_function(self, name):
        names = await self.list(name)
        return AsyncCloudburstFunction(name, self) if name in names else None

    async def delete_dag(self, name):
        await self._request("delete_dag", {"name": name})
        return True

    async def list(self, prefix=None):
        return await self._request("list", {"what": "functions", "prefix": prefix or ""})

    async def list_dags(self, prefix=None):
        return await self._request("list", {"what": "dags", "prefix": prefix or ""})

    async def put_object(self, key, value):
        await self._request("put_object", {"key": key, "value": protocol.pack_value(value)})
        return True

    async def get_object(self, key):
        return protocol.unpack_value(await self._request("get_object", {"key": key}))

    async def ping(self):
        await self._request("ping", {})

    async def close(self):
        await self._core.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()
