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
from datetime import datetime
from pathlib import Path

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator import errors as pv

from ..reasons import Layer, Refusal
from .certs import der, fingerprint, load_certificates_file, load_crl

log = logging.getLogger(__name__)


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
                 crls: list[x509.CertificateRevocationList], *, stale_crl: str = "hold") -> None:
        if not anchors:
            raise ValueError("at least one trust anchor is needed")
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
    def from_config(cls, trust) -> TrustStore:  # trust: tgw_common.config.TrustConfig
        anchors = [c for p in trust.anchors for c in load_certificates_file(p)]
        intermediates = [c for p in trust.intermediates for c in load_certificates_file(p)]
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
        return cls(anchors, intermediates, crls, stale_crl=trust.stale_crl)

    def crl_status(self) -> list[dict]:
        """Each issuer's newest CRL and when it goes stale (for monitoring and the console)."""
        return [{"issuer": c.issuer.rfc4514_string(), "this_update": c.last_update_utc.isoformat(),
                 "next_update": c.next_update_utc.isoformat() if c.next_update_utc else None,
                 "revoked": len(c)} for c in self.crls]

    def validate(self, cert: x509.Certificate, *, layer: Layer, moment: datetime, signing_time: datetime,
                 extra_certs: Iterable[x509.Certificate] = ()) -> ValidatedPath:
        """Judge `cert` for signing: path, validity at both times, revocation, key usage."""
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
        _check_key_usage(cert, layer)
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
        subject = _cn(cert)
        try:
            path = asyncio.run(validator.async_validate_path())
        except pv.RevokedError as exc:
            raise Refusal("CERT_REVOKED", layer, f"{subject}: {exc}") from None
        except pv.ExpiredError as exc:
            raise Refusal("CERT_EXPIRED", layer, f"{subject}: {exc}") from None
        except pv.NotYetValidError as exc:
            raise Refusal("CERT_NOT_YET_VALID", layer, f"{subject}: {exc}") from None
        except pv.StaleRevinfoError as exc:
            raise Refusal("CRL_STALE", layer, f"{subject}: {exc}", hold=self.stale_crl == "hold") from None
        except pv.InsufficientRevinfoError as exc:
            raise Refusal("REVOCATION_UNKNOWN", layer, f"{subject}: {exc}") from None
        except (pv.PathBuildingError, pv.PathValidationError) as exc:
            raise Refusal("CERT_UNTRUSTED", layer, f"{subject}: {exc}") from None
        except (ValueError, TypeError) as exc:  # malformed extensions in a hostile certificate
            raise Refusal("CERT_UNTRUSTED", layer, f"{subject}: cannot be validated: {exc}") from None
        certs = tuple(x509.load_der_x509_certificate(c.dump()) for c in path)
        limits = [c.not_valid_after_utc for c in certs]
        limits += [nu for c in certs if (nu := self._crl_next_update.get(c.issuer.public_bytes())) is not None]
        return ValidatedPath(certificates=tuple(reversed(certs)), valid_until=min(limits))


def _path_valid_from(certs: Iterable[x509.Certificate]) -> datetime:
    """A cached path holds only from the latest notBefore on it."""
    return max(c.not_valid_before_utc for c in certs)


def _check_key_usage(cert: x509.Certificate, layer: Layer) -> None:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise Refusal("CERT_KEY_USAGE", layer, f"{_cn(cert)} has no keyUsage extension") from None
    if not (usage.digital_signature or usage.content_commitment):
        raise Refusal("CERT_KEY_USAGE", layer, f"{_cn(cert)}: keyUsage has neither digitalSignature nor nonRepudiation")


def _cn(cert: x509.Certificate) -> str:
    from .certs import common_name

    return f'"{common_name(cert.subject)}"'

