"""The signer registry (seed: 憑證 IC 卡註冊作業): which certificate signs for which agency
and role. Keyed by the certificate's SHA-256 fingerprint, never by its subject text.

A delegate (代理人) is registered for the role it stands in for, with a window; the window is
judged at the signing time. Revoking a registration keeps the row (and its history): the
certificate is refused from then on with SIGNER_REGISTRATION_REVOKED.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml
from cryptography import x509
from sqlalchemy import Boolean, Engine, LargeBinary, String, select
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base, UTCDateTime, create_tables, transaction, utcnow
from .pki.certs import common_name, der, fingerprint, load_certificate, load_certificate_file, subject_key_id
from .pki.profile import signing_problem
from .reasons import Layer, Refusal

ROLES = ("accountant", "head", "releaser")


class SignerRow(Base):
    __tablename__ = "signers"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    agency: Mapped[str] = mapped_column(String(16), index=True)
    role: Mapped[str] = mapped_column(String(16))
    delegate: Mapped[bool] = mapped_column(Boolean, default=False)
    window_from: Mapped[datetime | None] = mapped_column(UTCDateTime())
    window_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    subject: Mapped[str] = mapped_column(String(512))
    issuer: Mapped[str] = mapped_column(String(512))
    serial: Mapped[str] = mapped_column(String(64))
    issuer_der: Mapped[bytes] = mapped_column(LargeBinary)
    ski: Mapped[str | None] = mapped_column(String(128), index=True)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime())
    not_after: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    certificate: Mapped[bytes] = mapped_column(LargeBinary)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    note: Mapped[str | None] = mapped_column(String(512))


class RegistryStateRow(Base):
    """One row whose counter moves on every change, so readers can cache the registry safely."""

    __tablename__ = "registry_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    generation: Mapped[int] = mapped_column(default=0)


@dataclass(frozen=True)
class Signer:
    fingerprint: str
    agency: str
    role: str
    delegate: bool
    window_from: datetime | None
    window_until: datetime | None
    subject: str
    not_after: datetime
    revoked_at: datetime | None
    certificate_der: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.certificate_der)

    def as_dict(self) -> dict:
        return {
            "fingerprint": self.fingerprint, "agency": self.agency, "role": self.role, "delegate": self.delegate,
            "window_from": self.window_from.isoformat() if self.window_from else None,
            "window_until": self.window_until.isoformat() if self.window_until else None,
            "subject": self.subject, "not_after": self.not_after.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def _signer(row: SignerRow) -> Signer:
    return Signer(row.fingerprint, row.agency, row.role, row.delegate, row.window_from, row.window_until,
                  row.subject, row.not_after, row.revoked_at, row.certificate)


class RegistryError(ValueError):
    pass


class SignerRegistry:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # For one SELECT alone: no BEGIN and ROLLBACK around it (two round trips on PostgreSQL).
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        create_tables(engine)
        self._cache: tuple[int, dict[str, Signer]] | None = None

    def _bump(self, session) -> None:
        state = session.get(RegistryStateRow, 1)
        if state is None:
            session.add(RegistryStateRow(id=1, generation=1))
        else:
            state.generation += 1

    def current(self) -> dict[str, Signer]:
        """Every registration by fingerprint, reloaded only when the registry changed.

        One small query per call instead of one per signature: the opener asks once per
        envelope, and a revocation is seen by the very next envelope.
        """
        with self._autocommit.connect() as conn:
            generation = conn.execute(select(RegistryStateRow.generation).where(RegistryStateRow.id == 1)).scalar()
        generation = generation or 0
        cached = self._cache
        if cached is not None and cached[0] == generation:
            return cached[1]
        with transaction(self.engine) as s:
            signers = {r.fingerprint: _signer(r) for r in s.scalars(select(SignerRow))}
        self._cache = (generation, signers)
        return signers

    def add(self, cert: x509.Certificate, *, agency: str, role: str, delegate: bool = False,
            window_from: datetime | None = None, window_until: datetime | None = None,
            note: str | None = None, replace: bool = False) -> Signer:
        if role not in ROLES:
            raise RegistryError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if delegate and role == "releaser":
            raise RegistryError("a delegate stands in for an accountant or a head, not a releaser")
        if delegate and not (window_from and window_until):
            raise RegistryError("a delegate needs --from and --until (its delegation window)")
        if window_from and window_until and window_until <= window_from:
            raise RegistryError("the delegation window ends before it starts")
        if not delegate and (window_from or window_until):
            raise RegistryError("--from/--until apply to delegates only (add --delegate)")
        unfit = signing_problem(cert)
        if unfit is not None:
            # The opener would refuse every signature it made; registering it can only mislead.
            raise RegistryError(f'certificate "{common_name(cert.subject)}" cannot be registered as a signer: '
                                f"{unfit[1]} ({unfit[0]})")
        fp = fingerprint(cert)
        ski = subject_key_id(cert)
        with transaction(self.engine) as s:
            row = s.get(SignerRow, fp)
            if row is not None and not replace:
                raise RegistryError(f"certificate {fp} is already registered to {row.agency} as {row.role}")
            if row is None:
                row = SignerRow(fingerprint=fp)
                s.add(row)
            row.agency, row.role, row.delegate = agency, role, delegate
            row.window_from, row.window_until = window_from, window_until
            row.subject, row.issuer = cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()
            row.serial = format(cert.serial_number, "x")
            row.issuer_der = cert.issuer.public_bytes()
            row.ski = ski.hex() if ski else None
            row.not_before, row.not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
            row.certificate, row.registered_at, row.revoked_at, row.note = der(cert), utcnow(), None, note
            self._bump(s)
            return _signer(row)

    def get(self, fp: str) -> Signer | None:
        return self.current().get(fp.lower())

    def find_by_issuer_serial(self, issuer_der: bytes, serial: int) -> list[x509.Certificate]:
        with transaction(self.engine) as s:
            rows = s.scalars(select(SignerRow).where(SignerRow.serial == format(serial, "x"))).all()
            return [load_certificate(r.certificate) for r in rows if r.issuer_der == issuer_der]

    def find_by_ski(self, ski: bytes) -> list[x509.Certificate]:
        with transaction(self.engine) as s:
            rows = s.scalars(select(SignerRow).where(SignerRow.ski == ski.hex())).all()
            return [load_certificate(r.certificate) for r in rows]

    def list(self, *, agency: str | None = None, role: str | None = None, include_revoked: bool = True) -> list[Signer]:
        with transaction(self.engine) as s:
            q = select(SignerRow).order_by(SignerRow.agency, SignerRow.role, SignerRow.not_after)
            if agency:
                q = q.where(SignerRow.agency == agency)
            if role:
                q = q.where(SignerRow.role == role)
            if not include_revoked:
                q = q.where(SignerRow.revoked_at.is_(None))
            return [_signer(r) for r in s.scalars(q).all()]

    def revoke(self, fp: str, *, note: str | None = None) -> Signer:
        with transaction(self.engine) as s:
            row = s.get(SignerRow, fp.lower())
            if row is None:
                raise RegistryError(f"no registered certificate with fingerprint {fp}")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                row.note = note or row.note
                self._bump(s)
            return _signer(row)

    def import_file(self, path: Path, *, replace: bool = False) -> list[Signer]:
        """Register every entry of a registry YAML file (the demo PKI writes one)."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise RegistryError(f"{path}: cannot read: {exc}") from None
        entries = (data or {}).get("signers")
        if not isinstance(entries, list):
            raise RegistryError(f"{path}: expected a 'signers' list")
        added = []
        for i, e in enumerate(entries):
            where = f"{path}: signers[{i}]"
            try:
                cert = load_certificate_file(path.parent / e["certificate"])
                window_from = _when(e.get("from"))
                window_until = _when(e.get("until"))
                existing = self.get(fingerprint(cert))
                if (existing is not None and not replace and existing.agency == str(e["agency"])
                        and existing.role == str(e["role"])):
                    continue  # importing the same file twice changes nothing
                added.append(self.add(cert, agency=str(e["agency"]), role=str(e["role"]),
                                      delegate=bool(e.get("delegate", False)), window_from=window_from,
                                      window_until=window_until, replace=replace))
            except KeyError as exc:
                raise RegistryError(f"{where}: missing key {exc}") from None
            except (OSError, ValueError) as exc:
                raise RegistryError(f"{where}: {exc}") from None
        return added


def _when(value: object) -> datetime | None:
    if value is None:
        return None
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if when.tzinfo is None:
        raise ValueError(f"time {value!r} needs a UTC offset")
    return when


def check_role(entry: Signer | None, cert: x509.Certificate, *, layer: Layer, agency: str | None,
               roles: tuple[str, ...], signing_time: datetime) -> Signer:
    """The role policy for one signature: registered, not revoked, right agency and role, in window."""
    who = common_name(cert.subject)
    if entry is None:
        raise Refusal("SIGNER_NOT_REGISTERED", layer, f'"{who}" ({fingerprint(cert)[:16]}…) is not in the registry')
    if entry.revoked_at is not None:
        raise Refusal("SIGNER_REGISTRATION_REVOKED", layer,
                      f'"{who}": registration revoked at {entry.revoked_at:%Y-%m-%d %H:%M}Z')
    if agency is not None and entry.agency != agency:
        raise Refusal("SIGNER_WRONG_AGENCY", layer, f'"{who}" is registered to agency {entry.agency}, not {agency}')
    if entry.role not in roles:
        raise Refusal("SIGNER_WRONG_ROLE", layer, f'"{who}" is registered as {entry.role}, not {" or ".join(roles)}')
    if entry.delegate and not (entry.window_from <= signing_time <= entry.window_until):
        raise Refusal("DELEGATE_OUTSIDE_WINDOW", layer,
                      f'"{who}" delegates {entry.window_from:%Y-%m-%d %H:%M}Z to {entry.window_until:%Y-%m-%d %H:%M}Z; '
                      f"signed at {signing_time:%Y-%m-%d %H:%M}Z")
    return entry
