"""The outbound policy of HTTP targets: which addresses the dispatcher may connect to. Pure: no I/O.

Every address that is not plainly public (loopback, private, link-local, multicast, unspecified, shared,
documentation, reserved, ...) is refused unless an allowed network contains it or the URL's host name is
an allowed host. IPv6 forms that embed an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64, 6to4) are
judged by the embedded address as well.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

IPAddress = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

# (network, what it is). Written out rather than taken from `ipaddress.is_global`, whose answers differ
# between Python versions (IPv4-mapped and 6to4 addresses above all).
REFUSED_NETWORKS: tuple[tuple[Network, str], ...] = tuple(
    (ip_network(net), name)
    for net, name in (
        ("0.0.0.0/8", "unspecified ('this network')"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared address space (CGNAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local (cloud metadata services live here)"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay anycast"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved (and broadcast)"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/96", "IPv4-compatible (deprecated)"),
        ("::ffff:0:0:0/96", "IPv4-translated"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
        ("2001::/23", "IETF protocol assignments (Teredo included)"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("fc00::/7", "unique local (private)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    )
)

_NAT64 = IPv6Network("64:ff9b::/96")


class PolicyError(ValueError):
    """An allowed network or host in the configuration is not valid."""


def embedded_ipv4(ip: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 address stands for or routes to, if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    packed = int(ip)
    if ip in _NAT64 or packed >> 32 == 0:  # the NAT64 well-known prefix, or IPv4-compatible ::a.b.c.d
        return IPv4Address(packed & 0xFFFFFFFF)
    return None


def special_kind(ip: IPAddress) -> str | None:
    """What kind of non-public address `ip` is, or None for a public one."""
    for net, name in REFUSED_NETWORKS:
        if ip.version == net.version and ip in net:
            return name
    return None


def normalize_host(host: str) -> str:
    """A URL host as the policy compares it: lower case, no trailing dot, no IPv6 brackets."""
    return host.strip().strip("[]").rstrip(".").lower()


def parse_address(text: str) -> IPAddress | None:
    """An IP address from a socket address or URL host (an IPv6 zone such as `%eth0` is dropped)."""
    try:
        return ip_address(normalize_host(text).split("%", 1)[0])
    except ValueError:
        return None


@dataclass(frozen=True)
class OutboundPolicy:
    allowed_networks: tuple[Network, ...] = ()
    allowed_hosts: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, networks: Iterable[str], hosts: Iterable[str]) -> OutboundPolicy:
        return cls(tuple(parse_network(n) for n in networks), frozenset(parse_host(h) for h in hosts))

    def refusal(self, host: str, address: str) -> str | None:
        """Why connecting to `address` for the URL host `host` is refused, or None when it is allowed."""
        if normalize_host(host) in self.allowed_hosts:
            return None
        ip = parse_address(address)
        if ip is None:
            return f"{address} is not an IP address"
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, IPv6Address) and (v4 := embedded_ipv4(ip)) is not None:
            candidates.append(v4)
        if any(c in net for c in candidates for net in self.allowed_networks if c.version == net.version):
            return None
        for candidate in candidates:
            kind = special_kind(candidate)
            if kind is not None:
                shown = address if candidate is ip else f"{address} (IPv4 {candidate})"
                via = "" if parse_address(host) is not None else f"{host} resolves to "
                return (
                    f"destination refused: {via}{shown}, a {kind} address; allow it with "
                    f"dispatch.allowed_networks or dispatch.allowed_hosts"
                )
        return None


def parse_network(text: str) -> Network:
    try:
        return ip_network(text.strip(), strict=True)
    except ValueError as e:
        raise PolicyError(f"{text!r} is not a network in CIDR notation: {e}") from None


_HOST_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


def parse_host(text: str) -> str:
    host = normalize_host(text)
    if parse_address(host) is not None:
        raise PolicyError(f"{text!r} is an IP address: list it in dispatch.allowed_networks instead")
    labels = host.split(".")
    if not host or len(host) > 253 or not all(0 < len(x) <= 63 and set(x) <= _HOST_LABEL_CHARS for x in labels):
        raise PolicyError(f"{text!r} is not a host name")
    return host
