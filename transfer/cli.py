"""`tgw transfer`: commands of the transfer part."""

from __future__ import annotations

import click


@click.group(name="transfer")
def transfer() -> None:
    """Commands of the transfer part (see docs/cli.md)."""
