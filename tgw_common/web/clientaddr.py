"""Who is calling: the client address, believing X-Forwarded-For only from trusted proxies.

X-Forwarded-For is read only when the TCP peer is a configured trusted proxy, and then only
up to the first address that is not itself a trusted proxy (right to left, the way each
proxy appends). Anything unparsable yields an address no network contains, so a garbled
header fails closed instead of passing for the proxy or for someone else.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
UNKNOWN = "invalid"  # matches no network


def parse_networks(values: Iterable[str]) -> list[Network]:
    return [ipaddress.ip_network(v.strip(), strict=False) for v in values]


def parse_address(text: str | None) -> Address | None:
    """An address as peers and proxies write it; IPv4-mapped IPv6 counts as the IPv4 address."""
    if not text:
        return None
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port as some proxies write it
        text = text[1:text.index("]")]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        return addr.ipv4_mapped
    return addr


def inside(addr: Address, networks: Iterable[Network]) -> bool:
    return any(addr.version == n.version and addr in n for n in networks)


def client_address(peer: str | None, forwarded_for: str | None, trusted: list[Network]) -> str:
    addr = parse_address(peer)
    if addr is None:
        return UNKNOWN
    if not forwarded_for or not inside(addr, trusted):
        return str(addr)
    for hop in reversed([h for h in forwarded_for.split(",") if h.strip()]):
        hop_addr = parse_address(hop)
        if hop_addr is None:
            return UNKNOWN
        if not inside(hop_addr, trusted):
            return str(hop_addr)
        addr = hop_addr
    return str(addr)
