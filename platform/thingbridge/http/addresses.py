"""Which addresses Thingbridge may connect to on an app's behalf, and name resolution.

An app chooses the URLs that webhooks and action callbacks go to, so without a check it could
make the workers reach the operator's network (databases, brokers, cloud metadata). Every
address outside the public internet is refused: loopback, private and unique-local, link-local,
carrier-grade NAT, multicast, reserved, unspecified, and the IPv6 forms that carry an IPv4
address (mapped, compatible, 6to4, NAT64, Teredo) whenever the carried address is refused.
The operator opens exceptions with ``OUTBOUND_ALLOW`` (CIDR list); the embedded mode and the
tests open the loopback range. As in Stripe's Smokescreen and the ``advocate`` package, the
check applies to the address actually connected to: callers resolve once with ``resolve`` and
connect to one of the addresses it returned.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Callable

from thingbridge.http import lookups

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ip_address = ipaddress.ip_address
LOOPBACK = "127.0.0.0/8,::1/128"

# Beyond what ``ipaddress`` flags: CGNAT (not "private" to it), NAT64 local use, and the
# IPv6 site-local range that is deprecated but still routed by some networks.
_EXTRA_REFUSED = [ipaddress.ip_network(n) for n in (
    "100.64.0.0/10", "192.0.0.0/24", "198.18.0.0/15", "240.0.0.0/4", "64:ff9b:1::/48",
    "fec0::/10", "100::/64", "2001:db8::/32")]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# What inet_aton also reads as IPv4: "2130706433", "0x7f000001", "017700000001", "127.1".
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$")


class RefusedAddress(Exception):
    """The destination resolves only to addresses the outbound policy refuses."""


@functools.lru_cache(maxsize=32)
def parse_allow(setting: str | None) -> tuple[Network, ...]:
    """``OUTBOUND_ALLOW``: comma-separated CIDR ranges (or single addresses)."""
    nets = []
    for item in (setting or "").split(","):
        if item.strip():
            try:
                nets.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError as exc:
                raise ValueError(f"THINGBRIDGE_OUTBOUND_ALLOW: {item.strip()!r} is not a "
                                 "CIDR range") from exc
    return tuple(nets)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address.sixtofour:
        return address.sixtofour
    if address.teredo:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if int(address) >> 32 == 0 and int(address) > 1:  # IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(int(address))
    return None


def _refused_by_kind(address: Address) -> bool:
    return (not address.is_global or address.is_private or address.is_loopback
            or address.is_link_local or address.is_multicast or address.is_reserved
            or address.is_unspecified or any(address in net for net in _EXTRA_REFUSED
                                             if net.version == address.version))


def is_allowed(address: Address, allow: tuple[Network, ...]) -> bool:
    """Whether connecting to ``address`` is allowed."""
    carried = _embedded_ipv4(address) if address.version == 6 else None
    if any(address in net for net in allow if net.version == address.version):
        return True
    if carried is not None:
        # The carried IPv4 address decides: "::ffff:127.0.0.1" is loopback whatever the
        # IPv6 range says of it.
        return is_allowed(carried, allow)
    return not _refused_by_kind(address)


def literal(host: str) -> Address | None:
    """The address a URL's host names directly, in any form a resolver would accept."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    if _NUMERIC_HOST.match(host.lower()):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


# Tests replace this to make a name resolve differently between registration and sending.
resolver: Callable[[str, int], list[str]] = _getaddrinfo


def resolve(host: str, port: int, timeout: float | None = None,
            owner: str = "") -> list[Address]:
    """The addresses ``host`` stands for now: socket.gaierror when it does not resolve,
    TimeoutError when that takes longer than ``timeout`` seconds (looked up for ``owner``:
    ``lookups``)."""
    if (address := literal(host)) is not None:
        return [address]
    seen: list[Address] = []
    texts = resolver(host, port) if timeout is None else \
        lookups.lookup(resolver, host, port, timeout, owner)
    for text in texts:
        address = ipaddress.ip_address(text.split("%")[0])  # drop an IPv6 zone
        if address not in seen:
            seen.append(address)
    return seen


def allowed_addresses(host: str, port: int, allow: tuple[Network, ...],
                      timeout: float | None = None, owner: str = "") -> list[Address]:
    """The addresses of ``host`` that may be connected to; RefusedAddress when none may."""
    addresses = resolve(host, port, timeout, owner)
    usable = [address for address in addresses if is_allowed(address, allow)]
    if not usable:
        raise RefusedAddress(f"{host} resolves only to addresses outside the public internet")
    return usable
