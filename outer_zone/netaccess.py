"""The agencies' address allow-lists.

The client address itself is settled by tgw_common.web.clientaddr (X-Forwarded-For only
from trusted proxies); an unparsable one is an address no allow-list contains, so a
garbled header fails closed here too.
"""

from __future__ import annotations

import ipaddress

from sqlalchemy import Engine, select

from tgw_common.db import transaction
from tgw_common.web.clientaddr import Network, inside, parse_address, parse_networks

from .models import AgencyNetwork


def normalise_cidr(value: str) -> str:
    """'203.0.113.7' -> '203.0.113.7/32'; ValueError naming the bad value."""
    try:
        return str(ipaddress.ip_network(value.strip(), strict=True))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a CIDR network (e.g. 203.0.113.0/24): {exc}") from None


def agency_networks(engine: Engine, agency: str) -> list[Network]:
    with transaction(engine) as s:
        cidrs = s.scalars(select(AgencyNetwork.cidr).where(AgencyNetwork.agency == agency)).all()
    return parse_networks(cidrs)


def ip_allowed(engine: Engine, agency: str, ip: str) -> bool:
    """An agency with an empty allow-list admits nobody: addresses must be registered first."""
    addr = parse_address(ip)
    return addr is not None and inside(addr, agency_networks(engine, agency))
