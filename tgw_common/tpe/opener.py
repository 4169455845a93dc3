"""Opening a TPE/1 envelope layer by layer, outermost first.

The outer zone calls only `check_release` (no private key exists there). The inner zone
calls `open`, which runs every layer in order and cannot be entered half-way: release,
seal, approval, payload, documents. Each step either returns what the next one needs or
raises a Refusal with its reason code and layer.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from asn1crypto import cms
from cryptography import x509
from sqlalchemy.exc import SQLAlchemyError

from ..pki.certs import common_name, fingerprint
from ..pki.profile import check_all_used, check_carried
from ..pki.trust import TrustStore
from ..reasons import Layer, Refusal
from ..registry import Signer, SignerRegistry, check_role
from .cms import SignerCheck
from .payload import Payload, unpack_payload
from .seal import SealInfo, open_seal
from .signed import read_signed

TAIPEI = ZoneInfo("Asia/Taipei")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SignerSummary:
    role: str
    agency: str
    delegate: bool
    fingerprint: str
    subject: str
    signing_time: str
    digest: str
    signature: str
    not_after: str


@dataclass(frozen=True)
class ReleaseCheck:
    """What the outer zone learns: who released it, and the digest that identifies a replay."""

    sha256: str  # of the whole envelope file
    release_digest: str  # SHA-256 of the sealed blob (layer 2) the releaser signed
    releaser: SignerSummary


@dataclass(frozen=True)
class OpenedEnvelope:
    sha256: str
    release_digest: str
    releaser: SignerSummary
    seal: SealInfo
    approvals: list[SignerSummary]
    payload: Payload = field(repr=False)
    documents: list[Any] = field(default_factory=list, repr=False)

    @property
    def envelope_id(self) -> str:
        return self.payload.envelope_id

    @property
    def agency(self) -> str:
        return self.payload.agency


def _summary(check: SignerCheck, entry: Signer) -> SignerSummary:
    cert = check.certificate
    return SignerSummary(entry.role, entry.agency, entry.delegate, fingerprint(cert), common_name(cert.subject),
                         check.signing_time.isoformat(), check.digest, check.signature,
                         cert.not_valid_after_utc.isoformat())


class EnvelopeOpener:
    def __init__(self, *, trust: TrustStore, registry: SignerRegistry, policy, limits, documents=None,
                 treasury_certificate: x509.Certificate | None = None, treasury_key=None,
                 legacy_pkcs1v15: bool = False) -> None:
        self.trust = trust
        self.registry = registry
        self.policy = policy
        self.limits = limits
        self.documents = documents
        self.treasury_certificate = treasury_certificate
        self.treasury_key = treasury_key
        self.legacy = legacy_pkcs1v15

    # --- helpers
    def _lookup(self, sid: cms.SignerIdentifier) -> list[x509.Certificate]:
        if sid.name == "issuer_and_serial_number":
            return self.registry.find_by_issuer_serial(sid.chosen["issuer"].dump(), sid.chosen["serial_number"].native)
        return self.registry.find_by_ski(sid.chosen.native)

    def _judge(self, check: SignerCheck, *, layer: Layer, moment: datetime, roles: tuple[str, ...],
               agency: str | None, carried: list[x509.Certificate], registered: dict[str, Signer],
               used: set[str]) -> Signer:
        skew = timedelta(seconds=self.policy.clock_skew_seconds)
        n = check.index + 1
        if check.signing_time > moment + skew:
            raise Refusal("SIGNING_TIME_FUTURE", layer, f"signer {n}: signingTime {check.signing_time:%Y-%m-%dT%H:%M:%SZ}"
                                                         f" is after {moment:%Y-%m-%dT%H:%M:%SZ}")
        if check.signing_time < moment - timedelta(seconds=self.policy.max_signing_age_seconds):
            raise Refusal("SIGNING_TIME_TOO_OLD", layer,
                          f"signer {n}: signingTime {check.signing_time:%Y-%m-%dT%H:%M:%SZ} is older than "
                          f"{self.policy.max_signing_age_seconds // 86400} days")
        path = self.trust.validate(check.certificate, layer=layer, moment=moment, signing_time=check.signing_time,
                                   extra_certs=[c for c in carried if c is not check.certificate])
        used.update(fingerprint(c) for c in path.certificates)
        entry = registered.get(fingerprint(check.certificate))
        return check_role(entry, check.certificate, layer=layer, agency=agency, roles=roles,
                          signing_time=check.signing_time)

    def _check_carried(self, carried: list[x509.Certificate], layer: Layer) -> set[str]:
        """Every carried certificate sound before any is used; the set the signers' paths fill."""
        check_carried(carried, layer, issuers=[*self.trust.anchors, *self.trust.intermediates],
                      max_depth=self.trust.max_chain_depth)
        return set()

    # --- layer 1
    def check_release(self, data: bytes, *, moment: datetime | None = None, agency: str | None = None,
                      registered: dict[str, Signer] | None = None) -> ReleaseCheck:
        """The release layer alone: one releaser, signature, path, CRL, registry (and agency, if given)."""
        return self._release(data, moment=moment, agency=agency, registered=registered)[0]

    def _release(self, data: bytes | memoryview, *, moment: datetime | None, agency: str | None = None,
                 registered: dict[str, Signer] | None = None) -> tuple[ReleaseCheck, memoryview]:
        """`check_release`, and the sealed blob as a view into `data` (for `open` only: the
        view keeps the whole envelope's bytes alive)."""
        moment = moment or datetime.now(UTC)
        registered = registered if registered is not None else self.registry.current()
        if len(data) > self.limits.max_envelope_bytes:
            raise Refusal("TOO_LARGE", Layer.RELEASE, f"{len(data)} bytes, the limit is {self.limits.max_envelope_bytes}")
        layer = read_signed(data, layer=Layer.RELEASE, digests=self.policy.digest_algorithms,
                            signatures=self.policy.signature_algorithms, lookup=self._lookup, exactly_one=True)
        check = layer.signers[0]
        used = self._check_carried(layer.certificates, Layer.RELEASE)
        entry = self._judge(check, layer=Layer.RELEASE, moment=moment, roles=("releaser",), agency=agency,
                            carried=layer.certificates, registered=registered, used=used)
        check_all_used(layer.certificates, used, Layer.RELEASE)
        return ReleaseCheck(sha256=hashlib.sha256(data).hexdigest(),
                            release_digest=hashlib.sha256(layer.content).hexdigest(),
                            releaser=_summary(check, entry)), layer.content

    # --- one approval signature on its own (the outer portal's batches)
    def check_approval(self, data: bytes, *, content: bytes, role: str, agency: str,
                       moment: datetime | None = None) -> SignerSummary:
        """One approval signature over exactly `content`, judged as the inner zone will judge it
        (signature, path, CRL, registry, agency, role and delegation window at its signingTime).

        A delegate's registry entry carries the principal's role, so `role` is the step's role.
        """
        moment = moment or datetime.now(UTC)
        layer = read_signed(data, layer=Layer.APPROVAL, digests=self.policy.digest_algorithms,
                            signatures=self.policy.signature_algorithms, lookup=self._lookup)
        if len(layer.signers) != 1:
            raise Refusal("SIGNATURE_ONE_SIGNER", Layer.BATCH,
                          f"{len(layer.signers)} SignerInfos; send one signature per step")
        if bytes(layer.content) != content:
            raise Refusal("SIGNATURE_WRONG_CONTENT", Layer.BATCH,
                          f"the signed content (SHA-256 {hashlib.sha256(layer.content).hexdigest()[:16]}…) is not "
                          f"the batch's payload (SHA-256 {hashlib.sha256(content).hexdigest()[:16]}…)")
        used = self._check_carried(layer.certificates, Layer.APPROVAL)
        check = layer.signers[0]
        entry = self._judge(check, layer=Layer.APPROVAL, moment=moment, roles=(role,), agency=agency,
                            carried=layer.certificates, registered=self.registry.current(), used=used)
        check_all_used(layer.certificates, used, Layer.APPROVAL)
        return _summary(check, entry)

    # --- every layer
    def open(self, source: bytes | Path, *, moment: datetime | None = None,
             validate_documents: bool = True) -> OpenedEnvelope:
        """Every layer in order. Given the file's path rather than its bytes, only this method
        holds them, and lets go of them once the seal is open: a large envelope is in memory
        as ciphertext and plaintext at once only while it is being decrypted."""
        if self.treasury_key is None or self.treasury_certificate is None:
            raise RuntimeError("opening needs the treasury certificate and private key (inner zone only)")
        moment = moment or datetime.now(UTC)
        registered = self.registry.current()  # one consistent view of the registry for the whole envelope
        data = source.read_bytes() if isinstance(source, Path) else source
        release, sealed = self._release(data, moment=moment, registered=registered)

        approved, seal = open_seal(sealed, certificate=self.treasury_certificate,
                                   private_key=self.treasury_key, ciphers=self.policy.content_ciphers,
                                   legacy=self.legacy)
        del data, sealed

        layer = read_signed(approved, layer=Layer.APPROVAL, digests=self.policy.digest_algorithms,
                            signatures=self.policy.signature_algorithms, lookup=self._lookup)
        prints = [fingerprint(c.certificate) for c in layer.signers]
        if len(set(prints)) < len(prints):
            raise Refusal("APPROVALS_SAME_CERT", Layer.APPROVAL, "two approvals were made with one certificate")
        used = self._check_carried(layer.certificates, Layer.APPROVAL)
        entries = [self._judge(c, layer=Layer.APPROVAL, moment=moment, roles=("accountant", "head"), agency=None,
                               carried=layer.certificates, registered=registered, used=used) for c in layer.signers]
        check_all_used(layer.certificates, used, Layer.APPROVAL)
        roles = {e.role for e in entries}
        if len(entries) < 2 or not {"accountant", "head"} <= roles:
            have = ", ".join(sorted(e.role + (" (delegate)" if e.delegate else "") for e in entries))
            raise Refusal("APPROVALS_MISSING", Layer.APPROVAL,
                          f"an accountant's and a head's approval are required; found: {have or 'none'}")

        payload = unpack_payload(layer.content, self.limits)
        signers = layer.signers
        del approved, layer  # the plaintext, as large as the envelope, is not needed any more
        agency = payload.agency
        for check, entry in zip(signers, entries, strict=True):
            if entry.agency != agency:
                raise Refusal("SIGNER_WRONG_AGENCY", Layer.APPROVAL,
                              f'"{common_name(check.certificate.subject)}" is registered to {entry.agency}, '
                              f"the manifest names {agency}")
        if release.releaser.agency != agency:
            raise Refusal("SIGNER_WRONG_AGENCY", Layer.RELEASE,
                          f"the releaser is registered to {release.releaser.agency}, the manifest names {agency}")

        documents: list[Any] = []
        if validate_documents and self.documents is not None:
            from ..documents import validate_documents as check_documents

            documents = check_documents(payload.manifest, None, agency=agency, limits=self.documents,
                                        manifest_checked=True, parsed=payload.documents,
                                        today=moment.astimezone(TAIPEI).date())
        return OpenedEnvelope(sha256=release.sha256, release_digest=release.release_digest,
                              releaser=release.releaser, seal=seal,
                              approvals=[_summary(c, e) for c, e in zip(signers, entries, strict=True)],
                              payload=payload, documents=documents)

    def verdict(self, data: bytes, *, moment: datetime | None = None, release_only: bool = False) -> dict[str, Any]:
        """The whole judgement as a JSON-ready dict; never raises for a bad envelope."""
        result: dict[str, Any] = {"accepted": False, "reason": None, "layer": None, "message": None,
                                  "hold": False, "sha256": hashlib.sha256(data).hexdigest()}
        try:
            if release_only:
                check = self.check_release(data, moment=moment)
                result.update(release=asdict(check.releaser), release_digest=check.release_digest)
            else:
                opened = self.open(data, moment=moment)
                result.update(describe_opened(opened))
            result["accepted"] = True
        except Refusal as refusal:
            result.update(reason=refusal.code, layer=str(refusal.layer), message=refusal.message,
                          hold=bool(refusal.detail.get("hold")))
        except (OSError, MemoryError, SQLAlchemyError):
            raise  # the machine's trouble, not a verdict on the envelope
        except Exception as exc:  # a defect: said as one, with the traceback logged once
            log.exception("unexpected exception while judging an envelope", extra={"sha256": result["sha256"]})
            refusal = internal_error(exc)
            result.update(reason=refusal.code, layer=str(refusal.layer), message=refusal.message)
        return result


def internal_error(exc: BaseException) -> Refusal:
    """The refusal for an exception no rule expected: a defect of the gateway, never a verdict."""
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
    return Refusal("INTERNAL_ERROR", Layer.INTAKE, f"unexpected exception ({text}); a defect, the traceback is "
                                                   "in the log")


def describe_opened(opened: OpenedEnvelope) -> dict[str, Any]:
    manifest = opened.payload.manifest
    return {
        "envelope_id": opened.envelope_id,
        "agency": opened.agency,
        "release_digest": opened.release_digest,
        "release": asdict(opened.releaser),
        "seal": asdict(opened.seal),
        "approvals": [asdict(a) for a in opened.approvals],
        "documents": [{"path": d["path"], "kind": d["kind"], "sha256": d["sha256"]} for d in manifest["documents"]],
        "control": manifest["control"],
        "created_at": manifest.get("created_at"),
    }
