"""The connection the synchronous client uses: one websocket on a plain socket, shared by
any number of threads, with no event loop and no thread of its own in the request path.

Each calling thread sends its request itself. Responses are read leader/follower style:
at most one waiting thread (the *reader*) reads the socket at a time; every other waiter
sleeps on its own signal. The reader hands each response it receives for another request
to that request's waiter and keeps reading until its own response arrives; then it passes
the reader role to some other waiter (or leaves it free) and returns.

The websocket protocol is the sans-I/O one of ``websockets`` (framing, masking, close,
answering pings); the socket I/O is done here, by the thread that needs it. (The
``websockets.sync`` client reads in a background thread and hands every message over to
the waiting thread: that hand-over was about half of a small request's round trip.)

While no request waits, nobody reads; a small keep-alive thread takes the reader role
every half heartbeat, reads what arrived (answering the server's pings) and gives the role
back. It also closes a connection on which nothing at all arrived (not even the server's
pings) for longer than the server's client timeout.
"""

from __future__ import annotations

import itertools
import logging
import os
import selectors
import socket
import ssl
import threading
import time
from typing import Any

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from . import _tls, _token, protocol
from ._core import CLIENT_NAME, CONNECT_TIMEOUT, Answer, connect_error
from .errors import CloudburstError, CloudburstTimeout, ConnectionClosedError, error_for
from .protocol import Fields

log = logging.getLogger("cloudburst")

# What a waiter is doing, or has been told.
_WAITING = 0  # asleep until its response arrives or it is made the reader
_READER = 1  # holds the reader role
_DONE = 2  # its response is in ``result``

#: Bytes asked of the socket per read.
RECV_BYTES = 256 * 1024

#: Until the server's ``hello`` says otherwise: how often the keep-alive thread looks
#: (half the server's default heartbeat) and how long a silent connection lives.
DEFAULT_KEEPALIVE = 2.5
DEFAULT_SILENCE_LIMIT = 30.0


class _Waiter:
    """One request waiting for its response. ``wake`` is a lock held while the waiter
    sleeps; releasing it wakes the waiter (cheaper than a ``threading.Event``)."""

    __slots__ = ("request_id", "state", "result", "wake")

    def __init__(self, request_id: int) -> None:
        self.request_id = request_id
        self.state = _WAITING
        self.result: Answer = (False, None)
        self.wake = threading.Lock()
        self.wake.acquire()

    def finish(self, ok: bool, body: Any) -> None:
        """Record the response, waking the waiter if it sleeps. The caller holds the
        connection's mutex."""
        self.result = (ok, body)
        self.promote(_DONE)

    def promote(self, state: int) -> None:
        """Move on to ``state``; a sleeping waiter is woken (only it sleeps, and only
        once: the reader is awake and reads ``state`` itself after each frame)."""
        if self.state == _WAITING:
            self.wake.release()
        self.state = state


class SyncCore:
    """One open connection; create it with :meth:`open`. Thread-safe."""

    def __init__(self, sock: socket.socket, ws: ClientProtocol) -> None:
        self._sock = sock
        self._ws = ws  # the sans-I/O websocket protocol; guarded by ``_io``
        self._io = threading.Lock()  # protocol state and writes to the socket
        self._selector = selectors.DefaultSelector()  # used by the reader only
        self._selector.register(sock, selectors.EVENT_READ)
        self._message: list[Any] = []  # fragments of a message arriving in pieces (reader only)
        self._mutex = threading.Lock()  # guards everything below
        self._pending: dict[int, _Waiter] = {}
        self._reading = False  # whether some thread holds the reader role
        self._closed: CloudburstError | None = None  # what requests fail with once closed
        self._ids = itertools.count(1)
        self._last_heard = time.monotonic()
        self._silence_limit = DEFAULT_SILENCE_LIMIT
        self._stop = threading.Event()
        self.max_message_bytes = protocol.DEFAULT_SERVER_MAX_BYTES
        self.server: str | None = None

    @classmethod
    def open(
        cls, url: str, token: str | None = None, ca_file: str | os.PathLike[str] | None = None,
        address: str | None = None,
    ) -> SyncCore:
        """A connection to ``url`` (through ``address``, one of its host's addresses, if
        given: the host name still names the server for TLS and ``Host``)."""
        token = _token.resolve(url, token)
        tls = _tls.context(url, ca_file)
        try:
            sock, ws = _connect(url, token, tls, address)
        except Exception as e:
            raise connect_error(url, e) or e from None
        core = cls(sock, ws)
        keepalive = core._hello(url)
        threading.Thread(
            target=core._keep_alive, args=(keepalive,), name="cloudburst-keepalive", daemon=True
        ).start()
        return core

    def _hello(self, url: str) -> float:
        """Say hello; returns how often the keep-alive thread should look."""
        try:
            ok, body = self.request("hello", {"client": CLIENT_NAME}, CONNECT_TIMEOUT)
        except CloudburstTimeout:
            self.close()
            raise error_for("connection_failed", f"{url} did not answer hello") from None
        if not ok:
            self.close()
            raise protocol.error(body)
        self.max_message_bytes = body["max_message_bytes"]
        self.server = body.get("server")
        heartbeat = body.get("heartbeat_ms")
        timeout = body.get("client_timeout_ms")
        if isinstance(timeout, int) and timeout > 0:
            self._silence_limit = timeout / 1000
        if isinstance(heartbeat, int) and heartbeat > 0:
            return heartbeat / 2000
        return DEFAULT_KEEPALIVE

    @property
    def closed(self) -> bool:
        return self._closed is not None

    # -- requests ---------------------------------------------------------------------

    def request(self, op: str, fields: Fields, timeout: float | None = None) -> Answer:
        """Send one request and wait for its response: ``(ok, body)``. Raises
        :class:`CloudburstTimeout` after ``timeout`` seconds (``None``: no limit), and
        :class:`ConnectionClosedError` if the connection is closed before sending."""
        deadline = None if timeout is None else time.monotonic() + timeout
        request_id = next(self._ids)
        frame = protocol.encode(request_id, op, fields, self.max_message_bytes)
        waiter = self._register(request_id)
        try:
            if self._send(frame):
                done = self._await(waiter, deadline)
            else:
                done = True  # the connection closed: every waiter failed, this one included
        except BaseException:
            self._give_up(waiter)
            raise
        if done:
            return waiter.result
        raise CloudburstTimeout("timeout", f"no answer to {op} in {timeout} s")

    def _register(self, request_id: int) -> _Waiter:
        waiter = _Waiter(request_id)
        with self._mutex:
            if self._closed is not None:
                raise self._closed
            self._pending[request_id] = waiter
        return waiter

    def _send(self, frame: bytes) -> bool:
        """Send one binary message; False (after failing every waiter) if the connection
        is closed or breaks."""
        with self._io:
            try:
                self._ws.send_binary(frame)
                for data in self._ws.data_to_send():
                    self._sock.sendall(data)
                return True
            except (InvalidState, OSError) as e:
                failure = e
        self._connection_lost(failure)
        return False

    def _await(self, waiter: _Waiter, deadline: float | None) -> bool:
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

    def _read_until_done(self, waiter: _Waiter, deadline: float | None) -> bool:
        """As the reader: hand out responses until ``waiter``'s own arrives, then pass the
        reader role on. False at the deadline."""
        while waiter.state != _DONE:
            remaining = _remaining(deadline)
            if remaining == 0:
                return self._give_up(waiter)
            self._read_some(remaining)
        with self._mutex:
            self._pass_reader_role()
        return True

    def _read_some(self, timeout: float | None) -> bool:
        """As the reader: wait up to ``timeout`` seconds (``None``: as long as it takes)
        for data, then read once and hand out what arrived. False if nothing arrived."""
        try:
            if timeout is not None and not self._readable(timeout):
                return False
            data = self._sock.recv(RECV_BYTES)
        except (OSError, ValueError) as e:  # ValueError: closed under us by close()
            self._connection_lost(e)
            return True
        with self._io:
            if data:
                self._ws.receive_data(data)
            else:
                self._ws.receive_eof()
            events = self._ws.events_received()
            try:
                for out in self._ws.data_to_send():  # pongs, the answer to a close
                    self._sock.sendall(out)
            except OSError:
                pass  # the read side reports the loss
        self._last_heard = time.monotonic()
        for event in events:
            if isinstance(event, Frame):  # the handshake's Response came before
                self._on_frame(event)
        if self._ws.state is not State.OPEN:
            self._connection_lost(None)
        return True

    def _readable(self, timeout: float) -> bool:
        if isinstance(self._sock, ssl.SSLSocket) and self._sock.pending():
            return True
        return bool(self._selector.select(timeout))

    def _on_frame(self, frame: Frame) -> None:
        """One websocket frame: messages (maybe in fragments) go to their waiters; control
        frames were answered by the protocol already."""
        if frame.opcode in (Opcode.BINARY, Opcode.TEXT):
            self._message = [frame.opcode, frame.data]
        elif frame.opcode == Opcode.CONT and self._message:
            self._message.append(frame.data)
        else:
            return
        if frame.fin:
            opcode, *parts = self._message
            self._message = []
            if opcode == Opcode.BINARY:
                self._dispatch(parts[0] if len(parts) == 1 else b"".join(parts))

    def _dispatch(self, frame: bytes) -> None:
        """Hand one received frame to its waiter."""
        try:
            request_id, ok, body = protocol.decode(frame)
        except Exception as e:  # a bad frame must not stop the reader
            log.warning("cloudburst: undecodable frame from the server: %s", e)
            return
        if request_id is None:
            if not ok:
                log.warning("cloudburst: server error without request id: %s", body)
            return
        with self._mutex:
            waiter = self._pending.pop(request_id, None)
            if waiter is not None:
                waiter.finish(ok, body)

    def _give_up(self, waiter: _Waiter) -> bool:
        """At the deadline: forget the request, passing the reader role on if held. True
        if the response arrived after all."""
        with self._mutex:
            self._pending.pop(waiter.request_id, None)
            if waiter.state == _READER:
                self._pass_reader_role()
            return waiter.state == _DONE

    def _pass_reader_role(self) -> None:
        """Make some sleeping waiter the reader, or leave the role free. Holds the mutex."""
        for other in self._pending.values():
            if other.state == _WAITING:
                other.promote(_READER)
                return
        self._reading = False

    # -- closing ----------------------------------------------------------------------

    def _connection_lost(self, exc: BaseException | None) -> None:
        """The websocket closed or the socket failed: fail every waiting request with the
        reason."""
        reason = "the server closed the connection"
        if self._ws.close_rcvd is not None and self._ws.close_rcvd.reason:
            reason = f"the server closed the connection: {self._ws.close_rcvd.reason}"
        elif isinstance(exc, OSError):
            reason = f"connection failed: {exc}"
        self._fail_all(ConnectionClosedError("connection_closed", reason))

    def _fail_all(self, err: CloudburstError) -> None:
        with self._mutex:
            if self._closed is None:
                self._closed = err
            err = self._closed
            pending, self._pending = self._pending, {}
            self._reading = False
            for waiter in pending.values():
                waiter.finish(False, protocol.error_body(err))
        self._stop.set()

    def _keep_alive(self, interval: float) -> None:
        """While no request reads, read now and then (answering the server's pings); close
        the connection when even the server's pings stopped arriving."""
        while not self._stop.wait(interval):
            if time.monotonic() - self._last_heard > self._silence_limit:
                self._fail_all(ConnectionClosedError("connection_closed", "the server went silent"))
                self._shut_socket()
                return
            with self._mutex:
                if self._reading or self._closed is not None:
                    continue
                self._reading = True
            try:
                while self._closed is None and self._read_some(0):
                    pass
            finally:
                with self._mutex:
                    if self._reading:
                        self._pass_reader_role()

    def close(self) -> None:
        """Close the websocket; requests still waiting fail with ``connection_closed``."""
        self._fail_all(ConnectionClosedError("connection_closed", "closed by the client"))
        with self._io:
            try:
                self._ws.send_close()
                for data in self._ws.data_to_send():
                    self._sock.sendall(data)
            except (InvalidState, OSError):
                pass
        self._shut_socket()

    def _shut_socket(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes a reader blocked in recv
        except OSError:
            pass
        self._sock.close()
        self._selector.close()


def _connect(
    url: str, token: str | None, tls: ssl.SSLContext | None, address: str | None = None
) -> tuple[socket.socket, ClientProtocol]:
    """Open the socket (to ``address``, else the URL's host; over TLS with ``tls``, for
    ``wss://``) and complete the websocket handshake: ``(socket, protocol)``."""
    uri = parse_uri(url)
    deadline = time.monotonic() + CONNECT_TIMEOUT
    sock = socket.create_connection((address or uri.host, uri.port), timeout=CONNECT_TIMEOUT)
    try:
        if uri.secure:
            tls = tls or ssl.create_default_context()
            sock = tls.wrap_socket(sock, server_hostname=uri.host)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ws = ClientProtocol(uri, max_size=protocol.MAX_MESSAGE_BYTES)
        handshake = ws.connect()
        if token:
            handshake.headers["Authorization"] = f"Bearer {token}"
        ws.send_request(handshake)
        for data in ws.data_to_send():
            sock.sendall(data)
        while True:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            data = sock.recv(RECV_BYTES)
            if data:
                ws.receive_data(data)
            else:
                ws.receive_eof()
            if ws.handshake_exc is not None:
                raise ws.handshake_exc
            events = ws.events_received()
            if any(isinstance(e, Response) for e in events):
                break
            if not data:
                raise ConnectionError("the server closed the connection during the handshake")
        sock.settimeout(None)
        return sock, ws
    except BaseException:
        sock.close()
        raise


def _remaining(deadline: float | None) -> float | None:
    """Seconds left until ``deadline`` (``None``: no deadline, wait as long as needed)."""
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())
