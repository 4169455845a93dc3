"""`tgw demo-data`."""

from __future__ import annotations

import click


@click.group(name="demo-data")
def demo_data() -> None:
    """demo-data commands."""
