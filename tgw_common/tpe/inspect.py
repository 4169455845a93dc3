"""Describe an envelope's public structure without any key: layers, signers, recipients,
algorithms and sizes. Best effort on damaged input: it says where parsing stopped."""

from __future__ import annotations

import hashlib
from typing import Any

from asn1crypto import cms

from ..pki.certs import common_name
from .cms import embedded_certificates


def _sid(sid: cms.SignerIdentifier) -> dict[str, Any]:
    if sid.name == "issuer_and_serial_number":
        return {"issuer": sid.chosen["issuer"].human_friendly, "serial": format(sid.chosen["serial_number"].native, "x")}
    return {"subject_key_identifier": sid.chosen.native.hex()}


def _signed(info: cms.ContentInfo) -> dict[str, Any]:
    sd = info["content"]
    certs = embedded_certificates(sd)
    content = sd["encap_content_info"]["content"]
    signers = []
    for si in sd["signer_infos"]:
        attrs = {a["type"].native: a["values"][0].native for a in (si["signed_attrs"] or [])}
        sid = _sid(si["sid"])
        match = [c for c in certs if sid.get("serial") == format(c.serial_number, "x")]
        signers.append({
            **sid,
            "subject": common_name(match[0].subject) if match else None,
            "digest": si["digest_algorithm"]["algorithm"].native,
            "signature": si["signature_algorithm"]["algorithm"].native,
            "signing_time": attrs["signing_time"].isoformat() if "signing_time" in attrs else None,
        })
    return {"type": "SignedData", "content_type": sd["encap_content_info"]["content_type"].native,
            "content_bytes": len(content.native) if content is not None and content.native else 0,
            "certificates": [common_name(c.subject) for c in certs], "signers": signers}


def _sealed(info: cms.ContentInfo) -> dict[str, Any]:
    env = info["content"]
    auth = info["content_type"].native == "authenticated_enveloped_data"
    eci = env["auth_encrypted_content_info" if auth else "encrypted_content_info"]
    recipients = []
    for ri in env["recipient_infos"]:
        if ri.name != "ktri":
            recipients.append({"type": ri.name})
            continue
        k = ri.chosen
        alg = k["key_encryption_algorithm"]
        entry = {"type": "ktri", **_sid(k["rid"]), "key_transport": alg["algorithm"].native}
        if alg["algorithm"].native == "rsaes_oaep":
            entry["oaep_hash"] = alg["parameters"]["hash_algorithm"]["algorithm"].native
        recipients.append(entry)
    ciphertext = eci["encrypted_content"].native
    return {"type": "AuthEnvelopedData" if auth else "EnvelopedData",
            "cipher": eci["content_encryption_algorithm"]["algorithm"].native,
            "ciphertext_bytes": len(ciphertext or b""), "recipients": recipients}


def describe(data: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "layers": []}
    try:
        info = cms.ContentInfo.load(data)
        trailing = len(data) - len(info.dump())
        if info["content_type"].native != "signed_data":
            raise ValueError(f"outer layer is {info['content_type'].native}, not SignedData")
        release = {"layer": "release", **_signed(info)}
        if trailing:
            release["trailing_bytes"] = trailing
        out["layers"].append(release)
        sealed = cms.ContentInfo.load(info["content"]["encap_content_info"]["content"].native)
        out["layers"].append({"layer": "seal", **_sealed(sealed)})
        out["note"] = "the approval layer and the payload are encrypted: only the inner zone can read them"
    except Exception as exc:  # inspection of a damaged file says how far it got
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out
