"""Keeps webhooks away from denied networks (`webhooks.deny_networks`, docs/webhooks.md).

The check sits in the connection itself: the resolver a webhook session connects through
refuses a name if any address it resolves to is denied, so a name that resolves to an
allowed address when checked and a denied one when used (DNS rebinding) cannot slip by.
Literal IP hosts never reach a resolver; `literal_denied` checks them before sending.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DENIED_MESSAGE = "address denied by webhooks.deny_networks"


class AddressDenied(OSError):
    """A webhook host is, or resolves to, an address in a denied network.

    An OSError, so that aiohttp reports it like any other failed lookup
    (`ClientConnectorError.os_error`)."""

    def __init__(self, host: str) -> None:
        super().__init__(f"{host}: {DENIED_MESSAGE}")
        self.host = host


def parse_networks(networks: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(net, strict=False) for net in networks)


def parse_address(text: str) -> IPAddress | None:
    """The address of a literal IP host (brackets and zone index allowed), else None."""
    try:
        return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def is_denied(address: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    """True when `address` is in one of `networks`; an IPv4-mapped IPv6 address
    (::ffff:169.254.169.254) is also checked as the IPv4 address it carries."""
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)
    return any(a.version == net.version and a in net for a in candidates for net in networks)


def literal_denied(host: str, networks: Sequence[IPNetwork]) -> bool:
    address = parse_address(host)
    return address is not None and is_denied(address, networks)


class GuardedResolver(AbstractResolver):
    """Resolves through `inner` and refuses a name if any of its addresses is denied.

    `networks` is read on every lookup, so a config reload applies to the next
    connection."""

    def __init__(
        self,
        networks: Callable[[], Sequence[IPNetwork]],
        inner: AbstractResolver | None = None,
    ) -> None:
        self._networks = networks
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        networks = self._networks()
        for result in results:
            address = parse_address(result["host"])
            # An answer that is not an address at all is refused rather than trusted.
            if address is None or is_denied(address, networks):
                raise AddressDenied(host)
        return results

    async def close(self) -> None:
        await self._inner.close()
