"""Who is calling: the client address (behind trusted proxies only) and the agency allow-lists.

X-Forwarded-For is believed only when the TCP peer is a configured trusted proxy, and then
only up to the first address that is not itself a trusted proxy (read right to left, the
way each proxy appends). Anything unparsable yields an address no allow-list contains, so
a garbled header fails closed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from sqlalchemy import Engine, select

from tgw_common.db import transaction

from .models import AgencyNetwork

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
UNKNOWN = "invalid"  # matches no network


def parse_networks(values: Iterable[str]) -> list[Network]:
    return [ipaddress.ip_network(v.strip(), strict=False) for v in values]


def normalise_cidr(value: str) -> str:
    """'203.0.113.7' -> '203.0.113.7/32'; ValueError naming the bad value."""
    try:
        return str(ipaddress.ip_network(value.strip(), strict=True))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a CIDR network (e.g. 203.0.113.0/24): {exc}") from None


def _address(text: str | None) -> Address | None:
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


def _inside(addr: Address, networks: Iterable[Network]) -> bool:
    return any(addr.version == n.version and addr in n for n in networks)


def client_address(peer: str | None, forwarded_for: str | None, trusted: list[Network]) -> str:
    addr = _address(peer)
    if addr is None:
        return UNKNOWN
    if not forwarded_for or not _inside(addr, trusted):
        return str(addr)
    for hop in reversed([h for h in forwarded_for.split(",") if h.strip()]):
        hop_addr = _address(hop)
        if hop_addr is None:
            return UNKNOWN
        if not _inside(hop_addr, trusted):
            return str(hop_addr)
        addr = hop_addr
    return str(addr)


def agency_networks(engine: Engine, agency: str) -> list[Network]:
    with transaction(engine) as s:
        cidrs = s.scalars(select(AgencyNetwork.cidr).where(AgencyNetwork.agency == agency)).all()
    return parse_networks(cidrs)


def ip_allowed(engine: Engine, agency: str, ip: str) -> bool:
    """An agency with an empty allow-list admits nobody: addresses must be registered first."""
    addr = _address(ip)
    return addr is not None and _inside(addr, agency_networks(engine, agency))
