"""`tgw pki`."""

from __future__ import annotations

import click


@click.group(name="pki")
def pki() -> None:
    """pki commands."""
