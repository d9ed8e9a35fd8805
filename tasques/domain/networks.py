"""Where a token may be used from: a list of CIDR networks, IPv4 and IPv6. Pure: no I/O.

Parsing is strict (`10.0.0.1/8` with host bits set is refused, as are zone ids, whitespace and anything but
an address with an optional prefix; a bare address is a single host) and bounded, so a stored list is cheap
to check on every request. A peer that connects over IPv6 with an IPv4-mapped address (`::ffff:10.1.2.3`, what
a dual-stack listener reports for IPv4 clients) is judged as the IPv4 address too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

Network = IPv4Network | IPv6Network
MAX_NETWORKS = 64
MAX_NETWORK_LENGTH = 64  # the longest IPv6 CIDR is 43 characters
_SHAPE = re.compile(r"[0-9A-Fa-f:.]+(/[0-9]{1,3})?")


class NetworkError(ValueError):
    """A network list that is not valid; the message names the bad entry."""


def parse_network(text: str) -> Network:
    if len(text) > MAX_NETWORK_LENGTH or not _SHAPE.fullmatch(text):
        raise NetworkError(f"{text[:MAX_NETWORK_LENGTH]!r} is not a network in CIDR notation (e.g. 10.0.0.0/8)")
    try:
        return ip_network(text, strict=True)
    except ValueError as e:
        raise NetworkError(f"{text!r} is not a network in CIDR notation: {e}") from None


def parse_networks(texts: Sequence[str]) -> tuple[Network, ...]:
    """The networks of a token's `allowed_networks`; empty means anywhere."""
    if len(texts) > MAX_NETWORKS:
        raise NetworkError(f"at most {MAX_NETWORKS} networks, not {len(texts)}")
    return tuple(parse_network(t) for t in texts)


def parse_peer(text: str | None) -> IPv4Address | IPv6Address | None:
    """The peer's address as the server saw it (an IPv6 zone such as `%eth0` dropped); None if not an IP."""
    if not text:
        return None
    try:
        return ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def allowed(networks: Sequence[Network], peer: str | None) -> bool:
    """Whether `peer` may use a token restricted to `networks` (no networks: anywhere; no IP peer: nowhere)."""
    if not networks:
        return True
    ip = parse_peer(peer)
    if ip is None:
        return False
    candidates: list[IPv4Address | IPv6Address] = [ip]
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        candidates.append(ip.ipv4_mapped)
    return any(c.version == n.version and c in n for c in candidates for n in networks)
