"""Certificate paths and revocation, offline: trust anchors, intermediates, newest CRLs.

pyhanko-certvalidator builds and validates the path (RFC 5280) and checks every certificate
on it against CRLs, the intermediate through the root's CRL. Its outcome maps onto the
reason codes. Validation is done at the moment of receipt; the validity of each certificate
on the path at the signing time is checked here too (the profile asks for both).

A positive result is cached: with one fixed set of CRLs it cannot change before the first
notAfter on the path or the first nextUpdate of a CRL used, so later signatures by the same
certificate cost a dictionary look-up instead of a path validation (about 6 ms).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator import errors as pv

from ..reasons import Layer, Refusal
from . import profile
from .certs import common_name, der, fingerprint, load_certificates_file, load_crl

log = logging.getLogger(__name__)


class _OneLine(logging.Filter):
    """pyhanko-certvalidator logs an expected failure (a CRL issuer whose path fails) as a
    warning with the whole stack trace; here it is an ordinary refusal, logged by the caller
    as one line with its code. The library's own line is kept at debug level, without it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info or record.levelno > logging.DEBUG:
            record.exc_info, record.exc_text, record.stack_info = None, None, None
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


# Filters of a logger see only its own records, not its children's: each module that logs.
for _name in ("pyhanko_certvalidator", "pyhanko_certvalidator.revinfo.validate_crl",
              "pyhanko_certvalidator.revinfo.validate_ocsp", "pyhanko_certvalidator.util",
              "pyhanko_certvalidator.name_trees", "pyhanko_certvalidator.fetchers.common_utils"):
    logging.getLogger(_name).addFilter(_OneLine())


@dataclass(frozen=True)
class ValidatedPath:
    """The certificates from the signer up to its trust anchor."""

    certificates: tuple[x509.Certificate, ...]
    valid_until: datetime  # the cache may reuse this result until then


def _newest_per_issuer(crls: Iterable[x509.CertificateRevocationList]) -> list[x509.CertificateRevocationList]:
    newest: dict[bytes, x509.CertificateRevocationList] = {}
    for crl in crls:
        key = crl.issuer.public_bytes()
        held = newest.get(key)
        if held is None or crl.last_update_utc > held.last_update_utc:
            newest[key] = crl
    return list(newest.values())


class TrustStore:
    """Everything needed to judge a certificate offline, loaded once per process."""

    def __init__(self, anchors: list[x509.Certificate], intermediates: list[x509.Certificate],
                 crls: list[x509.CertificateRevocationList], *, stale_crl: str = "hold",
                 max_chain_depth: int = 4) -> None:
        if not anchors:
            raise ValueError("at least one trust anchor is needed")
        self.max_chain_depth = max_chain_depth
        self.anchors = anchors
        self.intermediates = intermediates
        self.crls = _newest_per_issuer(crls)
        self.stale_crl = stale_crl
        self._anchor_asn1 = [asn1_x509.Certificate.load(der(c)) for c in anchors]
        self._intermediate_asn1 = [asn1_x509.Certificate.load(der(c)) for c in intermediates]
        self._crl_der = [c.public_bytes(Encoding.DER) for c in self.crls]
        self._crl_next_update = {c.issuer.public_bytes(): c.next_update_utc for c in self.crls}
        self._cache: dict[tuple[str, tuple[str, ...]], ValidatedPath] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, trust, *, now: datetime | None = None) -> TrustStore:  # trust: config.TrustConfig
        """The configured store, judged first: an anchor or intermediate that is not a CA able to
        sign certificates is a ValueError naming its file and subject (start-up fails); one that
        has expired or is not yet valid is logged as a warning naming both, and kept."""
        anchors = _authorities(trust.anchors, "anchor", now)
        intermediates = _authorities(trust.intermediates, "intermediate", now)
        crl_files = list(trust.crls)
        if trust.crl_dir is not None and Path(trust.crl_dir).is_dir():
            crl_files += sorted(p for p in Path(trust.crl_dir).iterdir()
                                if p.suffix.lower() in (".crl", ".der", ".pem") and p.is_file())
        crls = []
        for p in crl_files:
            try:
                crls.append(load_crl(p.read_bytes()))
            except ValueError as exc:
                raise ValueError(f"{p}: not a CRL: {exc}") from None
        return cls(anchors, intermediates, crls, stale_crl=trust.stale_crl, max_chain_depth=trust.max_chain_depth)

    def crl_status(self) -> list[dict]:
        """Each issuer's newest CRL and when it goes stale (for monitoring and the console)."""
        return [{"issuer": c.issuer.rfc4514_string(), "this_update": c.last_update_utc.isoformat(),
                 "next_update": c.next_update_utc.isoformat() if c.next_update_utc else None,
                 "revoked": len(c)} for c in self.crls]

    def validate(self, cert: x509.Certificate, *, layer: Layer, moment: datetime, signing_time: datetime,
                 extra_certs: Iterable[x509.Certificate] = ()) -> ValidatedPath:
        """Judge `cert` for signing: its own profile, path, validity at both times, revocation."""
        profile.check_signer(cert, layer)
        extra = tuple(sorted(fingerprint(c) for c in extra_certs))
        key = (fingerprint(cert), extra)
        # One validation at a time: the parsed anchors and intermediates are shared, and
        # asn1crypto parses lazily, which is not safe from two threads at once. Hits are
        # served under the lock too; they are a dictionary look-up.
        with self._lock:
            cached = self._cache.get(key)
            if cached is None or not (cached.valid_until > moment):
                cached = self._validate_path(cert, layer=layer, moment=moment, extra_certs=list(extra_certs))
                self._cache[key] = cached
            elif moment < _path_valid_from(cached.certificates):
                cached = self._validate_path(cert, layer=layer, moment=moment, extra_certs=list(extra_certs))
        for c in cached.certificates:
            if signing_time > c.not_valid_after_utc:
                raise Refusal("CERT_EXPIRED", layer, f"{_cn(c)} had expired at the signing time {signing_time:%Y-%m-%dT%H:%M:%SZ}")
            if signing_time < c.not_valid_before_utc:
                raise Refusal("CERT_NOT_YET_VALID", layer,
                              f"{_cn(c)} was not yet valid at the signing time {signing_time:%Y-%m-%dT%H:%M:%SZ}")
        return cached

    def _validate_path(self, cert: x509.Certificate, *, layer: Layer, moment: datetime,
                       extra_certs: list[x509.Certificate]) -> ValidatedPath:
        context = ValidationContext(
            trust_roots=self._anchor_asn1,
            other_certs=self._intermediate_asn1 + [asn1_x509.Certificate.load(der(c)) for c in extra_certs],
            crls=self._crl_der,
            moment=moment,
            allow_fetching=False,
            revocation_mode="require",
            retroactive_revinfo=True,
        )
        validator = CertificateValidator(asn1_x509.Certificate.load(der(cert)), validation_context=context)
        try:
            path = asyncio.run(validator.async_validate_path())
        except Exception as exc:
            raise self._refusal(exc, cert, layer, extra_certs) from None
        certs = tuple(x509.load_der_x509_certificate(c.dump()) for c in path)
        if len(certs) > self.max_chain_depth:
            raise Refusal("CERT_CHAIN_TOO_LONG", layer, f"{_cn(cert)}: a path of {len(certs)} certificates, "
                                                        f"trust.max_chain_depth is {self.max_chain_depth}")
        limits = [c.not_valid_after_utc for c in certs]
        limits += [nu for c in certs if (nu := self._crl_next_update.get(c.issuer.public_bytes())) is not None]
        return ValidatedPath(certificates=tuple(reversed(certs)), valid_until=min(limits))

    def _refusal(self, exc: Exception, cert: x509.Certificate, layer: Layer,
                 carried: list[x509.Certificate]) -> Exception:
        """The reason code for what path validation raised; an exception of no known kind is
        given back as it is (a defect, not a verdict on the certificate)."""
        subject = _cn(cert)
        simple = ((pv.RevokedError, "CERT_REVOKED"), (pv.ExpiredError, "CERT_EXPIRED"),
                  (pv.NotYetValidError, "CERT_NOT_YET_VALID"), (pv.DisallowedAlgorithmError, "UNSUPPORTED_ALGORITHM"))
        for kind, code in simple:
            if isinstance(exc, kind):
                return Refusal(code, layer, f"{subject}: {exc}")
        if isinstance(exc, pv.StaleRevinfoError):
            return Refusal("CRL_STALE", layer, f"{subject}: {exc}", hold=self.stale_crl == "hold")
        if isinstance(exc, pv.InsufficientRevinfoError | pv.CRLValidationError):
            return Refusal("REVOCATION_UNKNOWN", layer, f"{subject}: {exc}")
        if isinstance(exc, pv.PathError | pv.ValidationError):
            root = profile.foreign_root(cert, carried, self.anchors, self.max_chain_depth)
            if root is not None:
                return Refusal("CERT_FOREIGN_ROOT", layer,
                               f"{subject} leads to the root {_cn(root)}, which is not a configured trust anchor")
            return Refusal("CERT_UNTRUSTED", layer, f"{subject}: {exc}")
        if isinstance(exc, ValueError | TypeError | LookupError | AttributeError):
            # asn1crypto parses lazily, inside the validation: a damaged extension shows here.
            return Refusal("CERT_MALFORMED", layer, f"{subject}: cannot be parsed for validation: "
                                                    f"{type(exc).__name__}: {exc}"[:400])
        return exc


def _authorities(paths, kind: str, now: datetime | None) -> list[x509.Certificate]:
    """The certificates of the configured anchor or intermediate files, each judged as a CA."""
    now = now or datetime.now(UTC)
    out = []
    for path in paths:
        for cert in load_certificates_file(path):
            who = f'{path}: {kind} "{common_name(cert.subject)}"'
            problem = profile.authority_problem(cert)
            if problem:
                raise ValueError(f"{who} cannot issue certificates: {problem}")
            if cert.not_valid_after_utc < now:
                log.warning(f"{who} expired at {cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}; "
                            "no path through it is valid", extra={"file": str(path), "kind": kind})
            elif cert.not_valid_before_utc > now:
                log.warning(f"{who} is not valid before {cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}",
                            extra={"file": str(path), "kind": kind})
            out.append(cert)
    return out


def _path_valid_from(certs: Iterable[x509.Certificate]) -> datetime:
    """A cached path holds only from the latest notBefore on it."""
    return max(c.not_valid_before_utc for c in certs)


def _cn(cert: x509.Certificate) -> str:
    return f'"{common_name(cert.subject)}"'

