"""Who did it, when it was done from a command line rather than through a web page."""

from __future__ import annotations

import getpass
import socket


def os_user() -> str:
    """The operating-system user running this command."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"


def cli_actor() -> tuple[str, str]:
    """(who, where) of a CLI command for an audit log: the OS user on this host."""
    return f"cli:{os_user()}", f"cli@{socket.gethostname()}"
