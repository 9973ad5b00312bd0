"""The deny_networks check: addresses, literal hosts, and the resolver in the connection."""

from __future__ import annotations

import socket
from collections.abc import Sequence

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from config.settings import WebhookSettings
from daemon.netguard import (
    AddressDenied,
    GuardedResolver,
    IPNetwork,
    is_denied,
    literal_denied,
    parse_address,
    parse_networks,
)

DEFAULT = parse_networks(WebhookSettings().deny_networks)


@pytest.mark.parametrize(
    ("address", "networks", "denied"),
    [
        ("169.254.169.254", DEFAULT, True),
        ("169.254.0.1", DEFAULT, True),
        ("::ffff:169.254.169.254", DEFAULT, True),  # IPv4-mapped IPv6
        ("fe80::1", DEFAULT, True),
        ("fe80::1%eth0", DEFAULT, True),
        ("[fe80::1]", DEFAULT, True),
        ("10.0.0.1", DEFAULT, False),
        ("93.184.216.34", DEFAULT, False),
        ("2001:db8::1", DEFAULT, False),
        ("127.0.0.1", parse_networks(["127.0.0.0/8"]), True),
        ("::ffff:127.0.0.1", parse_networks(["127.0.0.0/8"]), True),
        ("127.0.0.1", parse_networks([]), False),
        ("10.1.2.3", parse_networks(["10.0.0.0/8", "192.168.0.0/16"]), True),
    ],
)
def test_an_address_is_denied_only_inside_a_denied_network(
    address: str, networks: Sequence[IPNetwork], denied: bool
) -> None:
    parsed = parse_address(address)
    assert parsed is not None
    assert is_denied(parsed, networks) is denied
    assert literal_denied(address, networks) is denied


@pytest.mark.parametrize("host", ["example.com", "169.254.169.254.", "metadata.google.internal"])
def test_a_name_is_not_a_literal_and_is_left_to_the_resolver(host: str) -> None:
    assert parse_address(host) is None
    assert not literal_denied(host, DEFAULT)


class ScriptedResolver(AbstractResolver):
    """Answers each lookup with the next list of addresses: a rebinding DNS server."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.closed = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self.answers.pop(0)
        ]

    async def close(self) -> None:
        self.closed = True


async def test_the_resolver_checks_every_lookup_so_rebinding_is_refused() -> None:
    inner = ScriptedResolver(["93.184.216.34"], ["169.254.169.254"])
    resolver = GuardedResolver(lambda: DEFAULT, inner)
    first = await resolver.resolve("hooks.example", 443)
    assert [r["host"] for r in first] == ["93.184.216.34"]
    with pytest.raises(AddressDenied, match=r"hooks\.example: address denied"):
        await resolver.resolve("hooks.example", 443)


async def test_one_denied_address_among_several_refuses_the_name() -> None:
    resolver = GuardedResolver(lambda: DEFAULT, ScriptedResolver(["10.0.0.1", "fe80::2"]))
    with pytest.raises(AddressDenied):
        await resolver.resolve("hooks.example", 80)


async def test_the_resolver_reads_the_deny_list_at_each_lookup() -> None:
    networks: list[Sequence[IPNetwork]] = [DEFAULT]
    inner = ScriptedResolver(["10.0.0.1"], ["10.0.0.1"])
    resolver = GuardedResolver(lambda: networks[0], inner)
    await resolver.resolve("hooks.example", 80)
    networks[0] = parse_networks(["10.0.0.0/8"])
    with pytest.raises(AddressDenied):
        await resolver.resolve("hooks.example", 80)
    await resolver.close()
    assert inner.closed
