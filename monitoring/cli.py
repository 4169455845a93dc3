"""`tgw monitor`: commands of the monitoring part."""

from __future__ import annotations

import click


@click.group(name="monitor")
def monitor() -> None:
    """Commands of the monitoring part (see docs/cli.md)."""
