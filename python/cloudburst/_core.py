"""The connection core both clients share: one websocket owned by one asyncio event loop,
a reader task that hands each response to the callback registered under its request id,
and a writer task that sends queued frames in order.

The asyncio client uses it; the synchronous client has its own loop-free connection
(``_sync.py``). Requests may be submitted from any thread (``threadsafe=True`` hops onto
the loop); the callback always runs on the loop thread.
"""

import asyncio
import itertools
import logging

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

from . import protocol
from .shared import CloudburstError, ConnectionClosedError

log = logging.getLogger("cloudburst")

#: Seconds to open the websocket and get the server's hello.
CONNECT_TIMEOUT = 10.0

CLIENT_NAME = "cloudburst-python/0.1.0"


class Core:
    """One open connection. Create it with :meth:`open` on the loop that will own it."""

    def __init__(self, ws, loop):
        self._ws = ws
        self._loop = loop
        self._pending = {}
        self._ids = itertools.count(1)
        self._queue = asyncio.Queue()
        self._closed = None
        self.max_message_bytes = protocol.DEFAULT_SERVER_MAX_BYTES
        self.server = None
        self._reader = loop.create_task(self._read())
        self._writer = loop.create_task(self._write())

    @classmethod
    async def open(cls, url, token=None):
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            ws = await connect(
                url,
                additional_headers=headers,
                max_size=protocol.MAX_MESSAGE_BYTES,
                compression=None,
                open_timeout=CONNECT_TIMEOUT,
                proxy=None,
            )
        except (InvalidStatus, InvalidURI, OSError, asyncio.TimeoutError) as e:
            raise connect_error(url, e) from None
        core = cls(ws, asyncio.get_running_loop())
        fut = core._loop.create_future()
        core.submit("hello", {"client": CLIENT_NAME}, _setter(fut), threadsafe=False)
        try:
            ok, body = await asyncio.wait_for(fut, CONNECT_TIMEOUT)
        except asyncio.TimeoutError:
            await core.close()
            raise CloudburstError("connection_failed", f"{url} did not answer hello") from None
        if not ok:
            await core.close()
            raise protocol.error(body)
        core.max_message_bytes = body["max_message_bytes"]
        core.server = body.get("server")
        return core

    def submit(self, op, fields, callback, threadsafe):
        """Send one request; ``callback(ok, body)`` runs on the loop with its response.
        Returns the request id (for :meth:`forget`). Raises if the connection is closed or
        the request is larger than the server accepts."""
        if self._closed is not None:
            raise self._closed
        request_id = next(self._ids)
        frame = protocol.encode(request_id, op, fields, self.max_message_bytes)
        self._pending[request_id] = callback
        if self._closed is not None:
            self._pending.pop(request_id, None)
            raise self._closed
        if threadsafe:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, frame)
        else:
            self._queue.put_nowait(frame)
        return request_id

    def forget(self, request_id):
        """Drop the callback of a request the caller stopped waiting for."""
        self._pending.pop(request_id, None)

    @property
    def closed(self):
        return self._closed is not None

    async def close(self):
        """Close the websocket; requests still waiting fail with ``connection_closed``."""
        if self._closed is None:
            self._fail_all(ConnectionClosedError("connection_closed", "closed by the client"))
        self._queue.put_nowait(None)
        try:
            await self._ws.close()
        finally:
            self._reader.cancel()
            self._writer.cancel()

    async def _read(self):
        reason = "the server closed the connection"
        try:
            async for frame in self._ws:
                if isinstance(frame, str):
                    continue
                try:
                    request_id, ok, body = protocol.decode(frame)
                except Exception as e:  # a bad frame must not stop the reader
                    log.warning("cloudburst: undecodable frame from the server: %s", e)
                    continue
                callback = self._pending.pop(request_id, None)
                if callback is not None:
                    callback(ok, body)
                elif request_id is None and not ok:
                    log.warning("cloudburst: server error without request id: %s", body)
        except ConnectionClosed as e:
            if e.rcvd is not None and e.rcvd.reason:
                reason = f"the server closed the connection: {e.rcvd.reason}"
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the socket failed under us
            reason = f"connection failed: {e}"
        rcvd = getattr(self._ws.protocol, "close_rcvd", None)
        if rcvd is not None and rcvd.reason and rcvd.reason not in reason:
            reason = f"the server closed the connection: {rcvd.reason}"
        self._fail_all(ConnectionClosedError("connection_closed", reason))

    async def _write(self):
        while True:
            frame = await self._queue.get()
            if frame is None:
                return
            try:
                await self._ws.send(frame)
            except ConnectionClosed:
                return

    def _fail_all(self, err):
        if self._closed is None:
            self._closed = err
        pending, self._pending = self._pending, {}
        for callback in pending.values():
            callback(False, {"code": err.code, "message": err.message})


def connect_error(url, exc):
    """The :class:`CloudburstError` for a failure to open a websocket to ``url`` (both
    clients), or ``None`` if ``exc`` is not such a failure."""
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        if status == 401:
            return CloudburstError("unauthorized", f"{url} refused the client token")
        return CloudburstError("connection_failed", f"{url} answered HTTP {status}")
    if isinstance(exc, InvalidURI):
        return CloudburstError("connection_failed", f"bad URL {url!r}: {exc}")
    if isinstance(exc, (OSError, TimeoutError)):
        return CloudburstError("connection_failed", f"cannot connect to {url}: {exc}")
    return None


def _setter(fut):
    def done(ok, body):
        if not fut.done():
            fut.set_result((ok, body))

    return done
