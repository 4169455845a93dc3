"""What every part's click commands share: exit codes, config loading, JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from .config import Config

# Exit codes (docs/cli.md): scripts and monitoring rely on them.
EXIT_OK = 0
EXIT_REFUSED = 1  # the command worked and the answer is "no" (refused, gaps found, check failed)
EXIT_USAGE = 2  # wrong arguments or an unusable config file
EXIT_FAILURE = 3  # the command could not do its work (database down, disk full, ...)


class Failure(click.ClickException):
    """An operational failure: printed as 'error: ...' with exit code 3."""

    exit_code = EXIT_FAILURE


class UsageProblem(click.ClickException):
    exit_code = EXIT_USAGE


def config_option(required: bool = True) -> Callable:
    return click.option(
        "--config", "config_path", type=click.Path(dir_okay=False), required=required,
        envvar="TGW_CONFIG", show_envvar=True, help="YAML config file (see config/ and docs/configuration.md).",
    )


def load(config_path: str, *sections: str, check_files: bool = True) -> Config:
    """Load the config or exit 2 with a message that names the file, key and problem."""
    # Imported here, not at the top: every part's commands import this module, and `--help`
    # should not pay for pydantic and the config models.
    from .config import ConfigError, load_config

    try:
        return load_config(config_path, check_files=check_files).need(*sections)
    except ConfigError as exc:
        raise UsageProblem(f"config: {exc}") from None


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def operational(fn: Callable) -> Callable:
    """Turn unexpected OS and database errors into exit 3 with one readable line."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from sqlalchemy.exc import OperationalError

        try:
            return fn(*args, **kwargs)
        except OperationalError as exc:
            raise Failure(f"database: {exc.orig}") from None
        except OSError as exc:
            raise Failure(f"{exc.filename or ''}: {exc.strerror or exc}") from None

    return wrapper


def die(message: str, code: int = EXIT_REFUSED) -> None:
    click.echo(message, err=True)
    sys.exit(code)


def run_daemon(make: Callable[[], Any]) -> None:
    """Build a runner with `make()` and run it until SIGTERM: a config it rejects exits 2,
    another instance holding its lock exits 3 (docs/cli.md)."""
    from .config import ConfigError
    from .instance_lock import AlreadyRunning

    try:
        runner = make()
    except (ConfigError, ValueError) as exc:
        raise UsageProblem(f"config: {exc}") from None
    runner.install_signal_handlers()
    try:
        runner.run()
    except AlreadyRunning as exc:
        raise Failure(str(exc)) from None
