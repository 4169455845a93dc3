"""`tgw registry`."""

from __future__ import annotations

import click


@click.group(name="registry")
def registry() -> None:
    """registry commands."""
