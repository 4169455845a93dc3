"""Everything an inner-zone process needs, built once from the config in one place."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from tgw_common.config import Config
from tgw_common.db import make_engine
from tgw_common.events import Provenance

from .quarantine import Quarantine


@dataclass
class Inner:
    config: Config
    engine: Engine
    provenance: Provenance
    quarantine: Quarantine

    @property
    def inbound(self) -> Path:
        return self.config.inner.inbound


def held_dir(config: Config) -> Path:
    return config.inner.spool_dir / "held"


def engine_for(config: Config, *, upgrade: bool = True) -> Engine:
    """The zone's database engine, with the intake tables migrated to the newest revision."""
    engine = make_engine(config.database.url, echo=config.database.echo)
    if upgrade:
        from .dbsetup import upgrade as run_upgrade

        run_upgrade(engine)
    return engine


def open_inner(config: Config, *, publish: bool = True) -> Inner:
    config.need("inner")
    engine = engine_for(config)
    provenance = Provenance(engine, zone=config.node.zone, host=config.node.host,
                            publish=config.events.publish if publish else None)
    inner = config.inner
    for folder in (inner.inbound, inner.spool_dir, inner.quarantine_dir, inner.archive_dir):
        folder.mkdir(parents=True, exist_ok=True)
    return Inner(config, engine, provenance, Quarantine(inner.quarantine_dir, held_dir(config)))


def make_intake(inner: Inner, *, session_id: str | None = None, via: str = "runner"):
    """The pipeline, with the opener (and so the treasury's private key) loaded."""
    from tgw_common.tpe.factory import opener_from_config

    from .intake import Intake

    config = inner.config
    opener = opener_from_config(config, with_private_key=True)
    # A broken bank-code list must stop the process now, not fail every envelope later.
    from tgw_common.config import ConfigError
    from tgw_common.documents import BankCodesError, load_bank_codes

    bank_file = config.documents.bank_codes_file
    try:
        load_bank_codes(str(bank_file) if bank_file else None)
    except BankCodesError as exc:
        raise ConfigError(f"{config.source}: documents.bank_codes_file: {exc}") from None
    return Intake(inner.config, engine=inner.engine, provenance=inner.provenance, opener=opener,
                  quarantine=inner.quarantine, session_id=session_id or uuid.uuid4().hex, via=via)
