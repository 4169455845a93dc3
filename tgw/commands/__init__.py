"""The foundation's command groups: pki, agency, demo-data, envelope, registry."""

from .agency import agency
from .demo_data import demo_data
from .envelope import envelope
from .pki import pki
from .registry import registry

__all__ = ["agency", "demo_data", "envelope", "pki", "registry"]
