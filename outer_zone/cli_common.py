"""What every `tgw outer` command module shares: the refusal exit, the database, the
translation of the accounts layer's refusals."""

from __future__ import annotations

import click

from tgw_common.cli_support import load


class Refused(click.ClickException):
    """The command worked and the answer is no (exit 1)."""

    exit_code = 1


def open_engine(config_path: str, *sections: str):
    """The config (with `sections` checked) and an engine whose tables exist."""
    from tgw_common.db import create_tables, make_engine

    from . import models  # noqa: F401 - the tables must be known to create them

    config = load(config_path, *sections, check_files=False)
    engine = make_engine(config.database.url, echo=config.database.echo)
    create_tables(engine)
    return config, engine


def account_call(fn, *args, **kwargs):
    """fn(...), with an AccountError (a refusal by the accounts layer) as exit 1."""
    from .accounts import AccountError

    try:
        return fn(*args, **kwargs)
    except AccountError as exc:
        raise Refused(str(exc)) from None
