"""The key that signs a web app's cookies: made once, shared by every gunicorn worker."""

from __future__ import annotations

import secrets
from pathlib import Path

from tgw_common.config import ConfigError
from tgw_common.spool import durable_file


def load_secret_key(path: Path) -> bytes:
    """Create the file (0600) if it is missing, then read it.

    O_EXCL makes the creation race-free: the master normally makes it before forking, but a
    worker that gets here first must not overwrite a key another worker already signs with.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with durable_file(path, "xb", private=True) as fh:
            fh.write(secrets.token_bytes(64))
    except FileExistsError:
        pass
    key = path.read_bytes()
    if len(key) < 32:
        raise ConfigError(f"{path}: the secret key file holds {len(key)} bytes; at least 32 are needed "
                          "(delete it to have a new one made)")
    return key
