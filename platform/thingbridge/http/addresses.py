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
import threading
from collections.abc import Callable

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


# The system resolver has no deadline of its own (glibc: 5 s per attempt, two attempts per
# name server), and an app chooses the names its webhooks go to: a name whose server never
# answers would hold a sending thread, or an API request registering it, for half a minute.
# A lookup with a deadline runs on a thread of its own, waited for only until the deadline
# (a daemon: one still hanging does not hold up the process's exit); at most MAX_LOOKUPS at
# once per process and kind of name, so names that hang take that many threads and no more
# (beyond, a lookup fails at once as a timeout). Names apps chose and the providers' names the
# operator configured wait apart: an app's hanging names never fail a provider's lookup.
MAX_LOOKUPS = 16
APP_NAMES = threading.BoundedSemaphore(MAX_LOOKUPS)
PROVIDER_NAMES = threading.BoundedSemaphore(MAX_LOOKUPS)


def _lookup(host: str, port: int, timeout: float | None,
            slots: threading.BoundedSemaphore) -> list[str]:
    if timeout is None:
        return resolver(host, port)
    if not slots.acquire(blocking=False):
        raise TimeoutError(f"{host}: too many name lookups waiting")
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(resolver(host, port))
        except BaseException as exc:  # handed to the waiting thread
            outcome.append(exc)
        finally:
            slots.release()

    thread = threading.Thread(target=run, name="name-lookup", daemon=True)
    try:
        thread.start()
    except BaseException:
        slots.release()
        raise
    thread.join(max(timeout, 0.0))
    if not outcome:
        raise TimeoutError(f"{host} did not resolve within {timeout:.1f} s")
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def resolve(host: str, port: int, timeout: float | None = None,
            slots: threading.BoundedSemaphore = APP_NAMES) -> list[Address]:
    """The addresses ``host`` stands for now: socket.gaierror when it does not resolve,
    TimeoutError when that takes longer than ``timeout`` seconds (``slots``: whose names)."""
    if (address := literal(host)) is not None:
        return [address]
    seen: list[Address] = []
    for text in _lookup(host, port, timeout, slots):
        address = ipaddress.ip_address(text.split("%")[0])  # drop an IPv6 zone
        if address not in seen:
            seen.append(address)
    return seen


def allowed_addresses(host: str, port: int, allow: tuple[Network, ...],
                      timeout: float | None = None) -> list[Address]:
    """The addresses of ``host`` that may be connected to; RefusedAddress when none may."""
    addresses = resolve(host, port, timeout)
    usable = [address for address in addresses if is_allowed(address, allow)]
    if not usable:
        raise RefusedAddress(f"{host} resolves only to addresses outside the public internet")
    return usable
