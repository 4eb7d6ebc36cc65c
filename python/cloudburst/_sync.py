"""The connection the synchronous client uses: a ``websockets.sync`` websocket shared by
any number of threads, with no event loop and no thread of its own in the request path.

Each calling thread sends its request itself. Responses are read leader/follower style:
at most one waiting thread (the *reader*) calls ``recv`` at a time; every other waiter
sleeps on its own signal. The reader hands each response it receives for another request
to that request's waiter and keeps reading until its own response arrives; then it passes
the reader role to some other waiter (or leaves it free) and returns.

``websockets.sync`` reads the socket in a background thread of its own and answers the
server's pings there, so pongs go out even while no thread is waiting for a response. Its
receive buffer is unbounded (``max_queue=None``): a buffer that filled up while nobody
reads (answers to requests that timed out) would stop that thread, and with it the pongs.
"""

import itertools
import logging
import threading
import time

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from . import protocol
from ._core import CLIENT_NAME, CONNECT_TIMEOUT, connect_error
from .shared import CloudburstError, CloudburstTimeout, ConnectionClosedError

log = logging.getLogger("cloudburst")

# What a waiter is doing, or has been told.
_WAITING = 0  # asleep until its response arrives or it is made the reader
_READER = 1  # holds the reader role
_DONE = 2  # its response is in ``result``


class _Waiter:
    """One request waiting for its response. ``wake`` is a lock held while the waiter
    sleeps; releasing it wakes the waiter (cheaper than a ``threading.Event``)."""

    __slots__ = ("request_id", "state", "result", "wake")

    def __init__(self, request_id):
        self.request_id = request_id
        self.state = _WAITING
        self.result = None
        self.wake = threading.Lock()
        self.wake.acquire()

    def finish(self, ok, body):
        """Record the response, waking the waiter if it sleeps. The caller holds the
        connection's mutex."""
        self.result = (ok, body)
        self.promote(_DONE)

    def promote(self, state):
        """Move on to ``state``; a sleeping waiter is woken (only it sleeps, and only
        once: the reader is awake and reads ``state`` itself after each frame)."""
        if self.state == _WAITING:
            self.wake.release()
        self.state = state


class SyncCore:
    """One open connection; create it with :meth:`open`. Thread-safe."""

    def __init__(self, ws):
        self._ws = ws
        self._mutex = threading.Lock()  # guards everything below
        self._pending = {}  # request id -> _Waiter
        self._reading = False  # whether some waiter holds the reader role
        self._closed = None  # the error requests fail with once closed
        self._ids = itertools.count(1)
        self.max_message_bytes = protocol.DEFAULT_SERVER_MAX_BYTES
        self.server = None

    @classmethod
    def open(cls, url, token=None):
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            ws = connect(
                url,
                additional_headers=headers,
                max_size=protocol.MAX_MESSAGE_BYTES,
                max_queue=None,
                compression=None,
                open_timeout=CONNECT_TIMEOUT,
                proxy=None,
                legacy=True,
            )
        except Exception as e:
            err = connect_error(url, e)
            if err is None:
                raise
            raise err from None
        core = cls(ws)
        core._hello(url)
        return core

    def _hello(self, url):
        try:
            ok, body = self.request("hello", {"client": CLIENT_NAME}, CONNECT_TIMEOUT)
        except CloudburstTimeout:
            self.close()
            raise CloudburstError("connection_failed", f"{url} did not answer hello") from None
        if not ok:
            self.close()
            raise protocol.error(body)
        self.max_message_bytes = body["max_message_bytes"]
        self.server = body.get("server")

    @property
    def closed(self):
        return self._closed is not None

    # -- requests ---------------------------------------------------------------------

    def request(self, op, fields, timeout=None):
        """Send one request and wait for its response: ``(ok, body)``. Raises
        :class:`CloudburstTimeout` after ``timeout`` seconds (``None``: no limit), and
        :class:`ConnectionClosedError` if the connection is closed before sending."""
        deadline = None if timeout is None else time.monotonic() + timeout
        request_id = next(self._ids)
        frame = protocol.encode(request_id, op, fields)
        if len(frame) > self.max_message_bytes:
            raise CloudburstError(
                "message_too_large",
                f"{op} request of {len(frame)} bytes is over the server's limit of "
                f"{self.max_message_bytes} bytes",
            )
        waiter = self._register(request_id)
        try:
            self._ws.send(frame)
            done = self._await(waiter, deadline)
        except ConnectionClosed as e:  # from send
            self._connection_lost(e)  # fails every waiter, this one included
            done = True
        except BaseException:
            self._give_up(waiter)
            raise
        if done:
            return waiter.result
        raise CloudburstTimeout("timeout", f"no answer to {op} in {timeout} s")

    def _register(self, request_id):
        waiter = _Waiter(request_id)
        with self._mutex:
            if self._closed is not None:
                raise self._closed
            self._pending[request_id] = waiter
        return waiter

    def _await(self, waiter, deadline):
        """Wait for ``waiter``'s response, reading the socket whenever no other thread
        does. True once it arrived; False at the deadline (the request is forgotten)."""
        while True:
            with self._mutex:
                if waiter.state == _DONE:
                    return True
                if waiter.state == _WAITING and not self._reading:
                    self._reading = True
                    waiter.state = _READER  # awake: its wake lock stays held
            if waiter.state == _READER:
                return self._read_until_done(waiter, deadline)
            remaining = _remaining(deadline)
            if not waiter.wake.acquire(timeout=-1 if remaining is None else remaining):
                return self._give_up(waiter)

    def _read_until_done(self, waiter, deadline):
        """As the reader: hand out responses until ``waiter``'s own arrives, then pass the
        reader role on. False at the deadline."""
        while waiter.state != _DONE:
            remaining = _remaining(deadline)
            if remaining == 0:
                return self._give_up(waiter)
            try:
                frame = self._ws.recv(timeout=None if deadline is None else remaining)
            except TimeoutError:
                continue
            except ConnectionClosed as e:
                self._connection_lost(e)
            else:
                self._dispatch(frame)
        with self._mutex:
            self._pass_reader_role()
        return True

    def _dispatch(self, frame):
        """Hand one received frame to its waiter."""
        if isinstance(frame, str):
            return
        try:
            request_id, ok, body = protocol.decode(frame)
        except Exception as e:  # a bad frame must not stop the reader
            log.warning("cloudburst: undecodable frame from the server: %s", e)
            return
        with self._mutex:
            waiter = self._pending.pop(request_id, None)
            if waiter is not None:
                waiter.finish(ok, body)
        if waiter is None and request_id is None and not ok:
            log.warning("cloudburst: server error without request id: %s", body)

    def _give_up(self, waiter):
        """At the deadline: forget the request, passing the reader role on if held. True
        if the response arrived after all."""
        with self._mutex:
            self._pending.pop(waiter.request_id, None)
            if waiter.state == _READER:
                self._pass_reader_role()
            return waiter.state == _DONE

    def _pass_reader_role(self):
        """Make some sleeping waiter the reader, or leave the role free. Holds the mutex."""
        for other in self._pending.values():
            if other.state == _WAITING:
                other.promote(_READER)
                return
        self._reading = False

    # -- closing ----------------------------------------------------------------------

    def _connection_lost(self, exc):
        """The websocket closed: fail every waiting request with the reason."""
        reason = "the server closed the connection"
        if exc.rcvd is not None and exc.rcvd.reason:
            reason = f"the server closed the connection: {exc.rcvd.reason}"
        self._fail_all(ConnectionClosedError("connection_closed", reason))

    def _fail_all(self, err):
        with self._mutex:
            if self._closed is None:
                self._closed = err
            err = self._closed
            pending, self._pending = self._pending, {}
            self._reading = False
            for waiter in pending.values():
                waiter.finish(False, {"code": err.code, "message": err.message})

    def close(self):
        """Close the websocket; requests still waiting fail with ``connection_closed``."""
        self._fail_all(ConnectionClosedError("connection_closed", "closed by the client"))
        try:
            self._ws.close()
        except Exception:
            pass


def _remaining(deadline):
    """Seconds left until ``deadline`` (``None``: no deadline, wait as long as needed)."""
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())
