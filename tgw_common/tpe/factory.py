"""Building an EnvelopeOpener from a loaded Config (one place, used by every zone)."""

from __future__ import annotations

import os

from ..config import Config, ConfigError
from ..db import make_engine
from ..pki.certs import load_certificate_file, load_private_key_file
from ..pki.trust import TrustStore
from ..registry import SignerRegistry
from .opener import EnvelopeOpener


def opener_from_config(config: Config, *, with_private_key: bool) -> EnvelopeOpener:
    """The opener a process needs; only the inner zone asks for the private key."""
    config.need("trust")
    try:
        trust = TrustStore.from_config(config.trust)
    except ValueError as exc:
        raise ConfigError(f"{config.source}: trust: {exc}") from None
    registry = SignerRegistry(make_engine(config.database.url, echo=config.database.echo))
    certificate = key = None
    legacy = False
    if with_private_key:
        config.need("treasury")
        t = config.treasury
        if t.private_key is None:
            raise ConfigError(f"{config.source}: treasury.private_key: required to open envelopes")
        password = None
        if t.private_key_password_env:
            value = os.environ.get(t.private_key_password_env)
            if value is None:
                raise ConfigError(f"{config.source}: treasury.private_key_password_env: "
                                  f"environment variable {t.private_key_password_env} is not set")
            password = value.encode()
        try:
            certificate = load_certificate_file(t.certificate)
            key = load_private_key_file(t.private_key, password)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{config.source}: treasury: cannot load the certificate or key: {exc}") from None
        legacy = t.legacy_pkcs1v15
    return EnvelopeOpener(trust=trust, registry=registry, policy=config.policy, limits=config.limits,
                          documents=config.documents, treasury_certificate=certificate, treasury_key=key,
                          legacy_pkcs1v15=legacy)


def release_opener(config: Config) -> EnvelopeOpener:
    """The outer zone's opener: it can check the release layer and nothing else (no key)."""
    return opener_from_config(config, with_private_key=False)
