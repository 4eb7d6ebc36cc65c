"""The asyncio client's transport: one websocket owned by one asyncio event loop, a reader
task that hands each response to the future waiting under its request id, and a writer
task that sends queued frames in order. (The synchronous client has its own loop-free
transport, ``_sync.py``.) Use it from the loop it was opened on.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from . import _tls, _token, protocol
from .errors import CloudburstError, CloudburstTimeout, ConnectionClosedError, error_for
from .protocol import Fields

log = logging.getLogger("cloudburst")

#: Seconds to open the websocket and get the server's hello.
CONNECT_TIMEOUT = 10.0

CLIENT_NAME = "cloudburst-python/0.1.0"

#: A response as the reader hands it over: ``(ok, result or error body)``.
Answer = tuple[bool, Any]


class Core:
    """One open connection. Create it with :meth:`open` on the loop that will own it."""

    def __init__(self, ws: ClientConnection, loop: asyncio.AbstractEventLoop) -> None:
        self._ws = ws
        self._loop = loop
        self._pending: dict[int, asyncio.Future[Answer]] = {}
        self._ids = itertools.count(1)
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._closed: CloudburstError | None = None
        self.max_message_bytes = protocol.DEFAULT_SERVER_MAX_BYTES
        self.server: str | None = None
        self._reader = loop.create_task(self._read())
        self._writer = loop.create_task(self._write())

    @classmethod
    async def open(
        cls, url: str, token: str | None = None, ca_file: str | os.PathLike[str] | None = None,
        address: str | None = None,
    ) -> Core:
        """A connection to ``url`` (through ``address``, as ``SyncCore.open``)."""
        token = _token.resolve(url, token)
        to: dict[str, Any] = {"host": address} if address else {}
        headers = {"Authorization": f"Bearer {token}"} if token else None
        tls = _tls.context(url, ca_file)
        try:
            ws = await connect(
                url,
                ssl=tls,
                additional_headers=headers,
                max_size=protocol.MAX_MESSAGE_BYTES,
                compression=None,
                open_timeout=CONNECT_TIMEOUT,
                proxy=None,
                **to,
            )
        except (InvalidHandshake, InvalidURI, OSError, asyncio.TimeoutError) as e:
            raise connect_error(url, e) or e from None
        core = cls(ws, asyncio.get_running_loop())
        try:
            hello = await core.request("hello", {"client": CLIENT_NAME}, CONNECT_TIMEOUT)
        except CloudburstTimeout:
            await core.close()
            raise error_for("connection_failed", f"{url} did not answer hello") from None
        except CloudburstError:
            await core.close()
            raise
        core.max_message_bytes = hello["max_message_bytes"]
        core.server = hello.get("server")
        return core

    async def request(self, op: str, fields: Fields, timeout: float | None = None) -> Any:
        """Send one request and return its ``ok`` result (the ``Transport`` interface)."""
        if self._closed is not None:
            raise self._closed
        request_id = next(self._ids)
        frame = protocol.encode(request_id, op, fields, self.max_message_bytes)
        answer = self._loop.create_future()
        self._pending[request_id] = answer
        self._queue.put_nowait(frame)
        try:
            ok, body = await asyncio.wait_for(answer, timeout)
        except asyncio.TimeoutError:
            raise CloudburstTimeout("timeout", f"no answer to {op} in {timeout} s") from None
        finally:
            self._pending.pop(request_id, None)
        if not ok:
            raise protocol.error(body)
        return body

    @property
    def closed(self) -> bool:
        return self._closed is not None

    async def close(self) -> None:
        """Close the websocket; requests still waiting fail with ``connection_closed``."""
        if self._closed is None:
            self._fail_all(ConnectionClosedError("connection_closed", "closed by the client"))
        self._queue.put_nowait(None)
        try:
            await self._ws.close()
        finally:
            self._reader.cancel()
            self._writer.cancel()

    async def _read(self) -> None:
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
                answer = self._pending.pop(request_id, None) if request_id is not None else None
                if answer is not None and not answer.done():
                    answer.set_result((ok, body))
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

    async def _write(self) -> None:
        while True:
            frame = await self._queue.get()
            if frame is None:
                return
            try:
                await self._ws.send(frame)
            except ConnectionClosed:
                return

    def _fail_all(self, err: CloudburstError) -> None:
        if self._closed is None:
            self._closed = err
        pending, self._pending = self._pending, {}
        for answer in pending.values():
            if not answer.done():
                answer.set_result((False, protocol.error_body(err)))


def connect_error(url: str, exc: BaseException) -> CloudburstError | None:
    """The error for a failure to open a websocket to ``url`` (both clients), or ``None``
    if ``exc`` is not such a failure."""
    untrusted = _tls.certificate_error(url, exc)
    if untrusted is not None:
        return untrusted
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        if status == 401:
            return error_for("unauthorized", f"{url} refused the client token")
        return error_for("connection_failed", f"{url} answered HTTP {status}")
    if isinstance(exc, InvalidURI):
        return error_for("invalid_request", f"bad URL {url!r}: {exc}")
    if isinstance(exc, (OSError, TimeoutError, InvalidHandshake)):
        return error_for("connection_failed", f"cannot connect to {url}: {exc}")
    return None
