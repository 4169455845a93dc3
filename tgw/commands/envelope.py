"""`tgw envelope`."""

from __future__ import annotations

import click


@click.group(name="envelope")
def envelope() -> None:
    """envelope commands."""
