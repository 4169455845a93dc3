"""`tgw outer`: commands of the outer_zone part."""

from __future__ import annotations

import click


@click.group(name="outer")
def outer() -> None:
    """Commands of the outer_zone part (see docs/cli.md)."""
