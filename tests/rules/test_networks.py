"""A network's pattern (|cidr) against Python's ipaddress: each address near and inside the network, in each
way of writing it (leading zeros, `::` at each run of zero groups, an IPv4 tail, a zone, any case), and text
that is almost one (a port, too few or too many parts)."""

from __future__ import annotations

import ipaddress
import random
import re

import pytest

from loglake.rules.networks import network_regex

NETWORKS = [
    "0.0.0.0/0",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "172.16.0.0/12",
    "192.168.0.0/23",
    "10.1.2.0/25",
    "10.1.2.3/32",
    "::/0",
    "fc00::/7",
    "fe80::/10",
    "2001:db8::/32",
    "2001:db8:ab00::/40",
    "::ffff:0:0/96",
    "::ffff:10.0.0.0/104",
    "::1/128",
    "1:2:3:4:5:6:7:8/127",
]


def _written(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> set[str]:
    text = str(address)
    if address.version == 4:
        octets = text.split(".")
        return {
            text,
            "0" + text,
            text + ":443",
            text + ".1",
            ".".join(octets[:3]),
            ".".join(o.zfill(3) for o in octets),
        }
    groups = address.exploded.split(":")
    short = [g.lstrip("0") or "0" for g in groups]
    tail = str(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    found = {text, text.upper(), address.exploded, text + "%eth0", f"[{text}]", text + "/64", ":".join(groups) + ":1"}
    found |= {":".join([*groups[:6], tail]), ":".join([*groups[:5], tail])}
    for left in range(8):
        for right in range(left + 1, 9):
            if all(int(g, 16) == 0 for g in groups[left:right]):
                for written in (groups, short):
                    found.add(":".join(written[:left]) + "::" + ":".join(written[right:]))
                    if right <= 6:
                        found.add(":".join(written[:left]) + "::" + ":".join([*written[right:6], tail]))
    return found


def _sparse(value: int, bits: int, rnd: random.Random) -> int:
    """The value with some of its 16-bit groups zero (for `::`)."""
    for shift in range(0, bits, 16):
        if rnd.random() < 0.5:
            value &= ~(0xFFFF << shift)
    return value


def _near(network: ipaddress.IPv4Network | ipaddress.IPv6Network, rnd: random.Random) -> int:
    size, start, bits = network.num_addresses, int(network.network_address), network.max_prefixlen
    choice = rnd.random()
    if choice < 0.5:
        return start + _sparse(rnd.randrange(size), bits, rnd)
    if choice < 0.8:
        return (start + rnd.choice([-1, size, -rnd.randrange(1, 300), size + rnd.randrange(300)])) % 2**bits
    return _sparse(rnd.getrandbits(bits), bits, rnd)


@pytest.mark.parametrize("network", NETWORKS)
def test_the_pattern_matches_what_ipaddress_takes_as_the_networks(network: str) -> None:
    net = ipaddress.ip_network(network)
    pattern = re.compile(network_regex(net).replace("\\z", "\\Z"))  # (Python's \z is \Z before 3.14)
    rnd = random.Random(network)
    texts: set[str] = set()
    other, bits = (ipaddress.IPv6Address, 128) if net.version == 4 else (ipaddress.IPv4Address, 32)
    for _ in range(150):
        texts |= _written(type(net.network_address)(_near(net, rnd)))
        texts |= _written(other(_sparse(rnd.getrandbits(bits), bits, rnd)))
    wrong = []
    for text in texts:
        try:
            address = ipaddress.ip_address(text)
            expected = address.version == net.version and address in net
        except ValueError:
            expected = False
        if bool(pattern.search(text)) != expected:
            wrong.append((text, expected))
    assert not wrong, wrong[:10]
    assert any(pattern.search(t) for t in texts) and not all(pattern.search(t) for t in texts)
