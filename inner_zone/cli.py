"""`tgw inner`: commands of the inner_zone part."""

from __future__ import annotations

import click


@click.group(name="inner")
def inner() -> None:
    """Commands of the inner_zone part (see docs/cli.md)."""
