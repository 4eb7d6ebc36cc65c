"""What both clients do when they are given several gateways, without I/O: which URLs they
take, in what order they try them, when a request was lost with its gateway, and how a
request and a future's call are sent again. ``CloudburstConnection`` (threads) and
``AsyncCloudburstConnection`` (asyncio) each add only the waiting and the connecting.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Optional

from websockets.uri import parse_uri

from . import protocol
from ._core import Answer
from .errors import ConnectionClosedError
from .protocol import Fields

log = logging.getLogger("cloudburst")

#: How long a connection given several gateways keeps trying to reach one after losing its
#: own, before the requests waiting fail with ``connection_closed``: long enough for a
#: restarted gateway to come back (a rolling restart), short enough to report a cluster
#: that is gone.
FAILOVER_TIMEOUT = 60.0
#: Pause between two rounds over every gateway while none answers (a backoff, so a dead
#: cluster is not hammered).
FAILOVER_PAUSE = 0.2

#: The error codes of a gateway that could not be reached (another may be).
UNREACHABLE = ("connection_failed", "connection_closed")


def gateway_urls(url: str | Sequence[str]) -> list[str]:
    """The gateway URLs a connection is given: one, or a list of them (of one cluster)."""
    urls = [url] if isinstance(url, str) else list(url)
    if not urls or not all(isinstance(u, str) for u in urls):
        raise TypeError("a connection takes a gateway URL or a list of them")
    return urls


#: A gateway to try: its URL, and the address to connect to (``None``: the URL's host).
Gateway = tuple[str, Optional[str]]


def resolve(host: str, port: int) -> list[str]:
    """The addresses of ``host``, in the resolver's order, each once."""
    found: list[str] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = str(sockaddr[0])
        if address not in found:
            found.append(address)
    return found


def gateways(urls: Sequence[str], resolver: Callable[[str, int], list[str]] | None = None
             ) -> list[Gateway]:
    """What to try, in order: each URL; one whose host name resolves to several addresses
    (``resolver``, by default ``resolve``) once per address, so a name that stands for
    several gateways is a list of them. A name that does not resolve now is kept as it is
    (it may resolve later)."""
    resolver = resolver or resolve
    out: list[Gateway] = []
    for url in urls:
        uri = parse_uri(url)
        addresses: list[str] = []
        if not _is_address(uri.host):
            try:
                addresses = resolver(uri.host, uri.port)
            except OSError:
                pass
        if len(addresses) > 1:
            out.extend((url, a) for a in addresses)
        else:
            out.append((url, None))
    return out


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def try_order(targets: Sequence[Gateway], start: int) -> Iterator[int]:
    """The indexes of ``targets`` to try in one round, from ``start`` on (wrapping): after
    losing gateway ``i``, start at ``i + 1`` (the lost one comes last: it may come back)."""
    n = len(targets)
    return ((start + step) % n for step in range(n))


def may_try_another(urls: Sequence[Gateway], code: str) -> bool:
    """Whether a failure to open a connection (``code``) lets the next URL be tried."""
    return len(urls) > 1 and code in UNREACHABLE


def must_switch(answer: Answer, closed: bool, urls: Sequence[Gateway], closing: bool) -> bool:
    """Whether a request's answer says it was lost with its connection (which is closed),
    so it goes again through another gateway: one is given, and the client is not closing."""
    ok, body = answer
    lost = not ok and closed and body.get("code") == "connection_closed"
    return lost and len(urls) > 1 and not closing


def sent_again(op: str, fields: Fields) -> Fields:
    """A request sent again through another gateway (see ``protocol.sent_again``)."""
    return protocol.sent_again(op, fields)


def call_unknown(answer: Answer, switches: int) -> bool:
    """Whether a future's ``await`` answer means the gateway that took its call was lost
    before the call ended: after a switch, the new gateway does not know the call."""
    ok, body = answer
    return not ok and switches > 0 and body.get("code") == "unknown_call"


def awaited_again(await_fields: Fields, made: Any) -> Fields:
    """The ``await`` of a call sent again, with the call's id and key as the gateway
    answered them (a server that mints ids itself answers another id)."""
    return {**await_fields, "call": made["call"], "key": made["key"]}


def no_gateway(url: str, error: Exception) -> ConnectionClosedError:
    """What requests fail with once no gateway answered after ``url`` was lost."""
    why = f"lost {url}; no other gateway answered in {FAILOVER_TIMEOUT} s: {error}"
    return ConnectionClosedError("connection_closed", why)


def switched(conn: Any, core: Any, i: int) -> None:
    """``conn`` (either client) now uses ``core``, its connection to gateway ``i``."""
    url, address = conn._gateways[i]
    log.warning("cloudburst: lost the gateway %s; now using %s%s", conn.url, url,
                f" at {address}" if address else "")
    conn._core, conn._limits, conn.url, conn._at = core, core, url, i
    conn._switches += 1
