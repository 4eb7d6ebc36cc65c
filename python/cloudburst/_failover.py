"""What both clients do when they are given several gateways, without I/O: which URLs they
take, in what order they try them, when a request was lost with its gateway, and how a
request and a future's call are sent again. ``CloudburstConnection`` (threads) and
``AsyncCloudburstConnection`` (asyncio) each add only the waiting and the connecting.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

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


def try_order(urls: Sequence[str], start: int) -> Iterator[int]:
    """The indexes of ``urls`` to try in one round, from ``start`` on (wrapping)."""
    n = len(urls)
    return ((start + step) % n for step in range(n))


def next_after(urls: Sequence[str], lost: str) -> int:
    """Where a connection that lost ``lost`` starts trying: the URL after it (the lost
    one comes last: it may come back)."""
    return urls.index(lost) + 1


def may_try_another(urls: Sequence[str], code: str) -> bool:
    """Whether a failure to open a connection (``code``) lets the next URL be tried."""
    return len(urls) > 1 and code in UNREACHABLE


def must_switch(answer: Answer, closed: bool, urls: Sequence[str], closing: bool) -> bool:
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
    log.warning("cloudburst: lost the gateway %s; now using %s", conn.url, conn._urls[i])
    conn._core, conn._limits, conn.url = core, core, conn._urls[i]
    conn._switches += 1
