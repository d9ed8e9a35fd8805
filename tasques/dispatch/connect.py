"""The aiohttp side of the outbound policy: the dispatcher's session checks every socket before it connects.

The check sits in the connector's socket factory, which sees the very address the socket connects to, after
DNS (so a name re-resolving between a check and the connect cannot slip through) and for IP literals too
(which aiohttp never passes to a resolver). The URL host of the request being sent travels in a context
variable, so `allowed_hosts` can be honoured; a refusal is recorded there, whatever error aiohttp then
wraps it in.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import aiohttp
from aiohappyeyeballs import AddrInfoType, SocketFactoryType

from tasques.dispatch.policy import OutboundPolicy


@dataclass
class Destination:
    """The host one request (one redirect hop) is for, and the refusals its connection attempts met."""

    host: str
    refusals: list[str] = field(default_factory=list)


_DESTINATION: ContextVar[Destination | None] = ContextVar("tasques_destination", default=None)


class DestinationRefused(OSError):
    """The outbound policy refused an address: no socket was created for it."""


@contextmanager
def destination(host: str) -> Iterator[Destination]:
    """Send one request to `host` within this block; its connections are checked against that host."""
    current = Destination(host)
    token = _DESTINATION.set(current)
    try:
        yield current
    finally:
        _DESTINATION.reset(token)


def guarded_socket_factory(policy: OutboundPolicy) -> SocketFactoryType:
    def create(addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        current = _DESTINATION.get()
        address = str(sockaddr[0])
        if current is None:
            reason: str | None = f"destination refused: {address} is not being dispatched"
        else:
            reason = policy.refusal(current.host, address)
        if reason is not None:
            if current is not None:
                current.refusals.append(reason)
            raise DestinationRefused(reason)
        return socket.socket(family=family, type=type_, proto=proto)

    return create


def new_session(policy: OutboundPolicy) -> aiohttp.ClientSession:
    """The dispatcher's one session: guarded connections, no cookie jar (nothing is carried between tasks),
    no proxies from the environment, and no session-wide timeout (each request brings its own)."""
    connector = aiohttp.TCPConnector(socket_factory=guarded_socket_factory(policy))
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        timeout=aiohttp.ClientTimeout(total=None),
    )
