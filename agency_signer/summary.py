"""What a request asks the officer to sign, read from the bytes themselves.

Whatever the caller says about a batch is ignored: agency, envelope id, document count and
total come from the payload's own manifest, checked against its documents as the inner zone
checks them (tgw_common.tpe.unpack_payload). A sealed layer cannot be read here (it is
encrypted for the treasury): the officer sees its hash, size and recipients only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from tgw_common.config import LimitsConfig
from tgw_common.reasons import Layer, Refusal
from tgw_common.tpe.cms import load_content_info

APPROVAL_ROLES = ("accountant", "head", "delegate")
RELEASE_ROLE = "releaser"


class NotSignable(ValueError):
    """The request's bytes are not what its role signs; the message says why."""


@dataclass(frozen=True)
class ToSign:
    role: str
    given: str  # payload | approval | sealed
    data: bytes  # as given: the payload ZIP, the approval layer so far, or the sealed layer
    content: bytes  # the bytes the new signature covers
    sha256: str  # of `content`, kept when the bytes are let go
    agency: str | None = None
    envelope_id: str | None = None
    document_count: int | None = None
    total_amount: int | None = None
    signatures_so_far: int = 0
    recipients: list[str] = field(default_factory=list)


def read_request(role: str, given: str, data: bytes) -> ToSign:
    """Check that `data` is what `role` signs and read what the officer must see."""
    if role in APPROVAL_ROLES and given in ("payload", "approval"):
        return _approval(role, given, data)
    if role == RELEASE_ROLE and given == "sealed":
        return _sealed(data)
    raise NotSignable(f"role {role!r} does not sign a {given} (accountant, head and delegate sign a payload or "
                      f"an approval layer; the releaser signs the sealed layer)")


def _approval(role: str, given: str, data: bytes) -> ToSign:
    from tgw_common.tpe import unpack_payload

    content, so_far = data, 0
    if given == "approval":
        try:
            signed = load_content_info(data, Layer.APPROVAL, ("signed_data",))["content"]
            content = signed["encap_content_info"]["content"].native or b""
            so_far = len(signed["signer_infos"])
        except Refusal as exc:
            raise NotSignable(f"not an approval SignedData: {exc.code}: {exc.message}") from None
    try:
        payload = unpack_payload(content, LimitsConfig())
    except Refusal as exc:
        raise NotSignable(f"the payload does not unpack: {exc.code}: {exc.message}") from None
    control = payload.manifest["control"]
    return ToSign(role=role, given=given, data=data, content=content, sha256=hashlib.sha256(content).hexdigest(),
                  agency=payload.agency,
                  envelope_id=payload.envelope_id, document_count=len(payload.documents),
                  total_amount=int(control["total_amount"]), signatures_so_far=so_far)


def _sealed(data: bytes) -> ToSign:
    try:
        info = load_content_info(data, Layer.SEAL, ("enveloped_data", "authenticated_enveloped_data"))
    except Refusal as exc:
        raise NotSignable(f"not a sealed layer: {exc.code}: {exc.message}") from None
    recipients = []
    for ri in info["content"]["recipient_infos"]:
        rid = ri.chosen["rid"] if ri.name == "ktri" else None
        if rid is not None and rid.name == "issuer_and_serial_number":
            issuer = rid.chosen["issuer"]
            recipients.append(f"{_cn(issuer)} #{rid.chosen['serial_number'].native:x}")
        elif rid is not None:
            recipients.append(f"key id {rid.chosen.native.hex()}")
    return ToSign(role=RELEASE_ROLE, given="sealed", data=data, content=data,
                  sha256=hashlib.sha256(data).hexdigest(), recipients=recipients)


def _cn(name) -> str:
    """An asn1crypto Name as its common name, or the whole name when it has none."""
    native = name.native
    return str(native.get("common_name") or name.human_friendly) if isinstance(native, dict) else name.human_friendly
