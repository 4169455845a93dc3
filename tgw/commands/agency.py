"""`tgw agency`."""

from __future__ import annotations

import click


@click.group(name="agency")
def agency() -> None:
    """agency commands."""
