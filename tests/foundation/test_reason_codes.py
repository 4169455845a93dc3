"""Every reason code of the envelope layers is triggered by a concrete bad envelope.

The table SCENARIOS maps each code to a function that builds the offending envelope (and,
where the code depends on the judging side, adjusts the opener or the moment). The test
that closes this module fails when a documented code has no scenario here or in the
zones' own tests (OTHER_TESTS), so a new code cannot go untested.
"""

from __future__ import annotations

import json
import stat
from datetime import timedelta

import pytest
from asn1crypto import cms

from tests.kit import NOW, Signer, custom_signed, manifest_for, payload_zip, zip_bytes
from tgw_common.config import LimitsConfig
from tgw_common.reasons import REASONS, reason_table_markdown
from tgw_common.tpe import sign_new

A = "A10001"


def _docs(kit, n=2):
    return kit.documents(A, n)


def _wrap_payload(kit, payload):
    return kit.wrap(kit.approve(payload))


def _reseal_with(kit, mutate_ci):
    """Valid approval layer, then a seal whose structure `mutate_ci` alters, then a valid release."""
    sealed = cms.ContentInfo.load(kit.seal(kit.approve(kit.payload(A))))
    mutate_ci(sealed)
    return kit.release(sealed.dump(force=True))


# Each scenario returns (envelope bytes, options) where options may hold moment / limits / registry changes.
def s_too_large(kit, ctx):
    ctx["limits"] = LimitsConfig(max_envelope_bytes=1000)
    return kit.envelope()


def s_malformed(kit, ctx):
    return b"\x30\x82\x01\x00" + b"\x00" * 20


def s_trailing(kit, ctx):
    return kit.envelope() + b"\x00"


def s_wrong_type(kit, ctx):
    return kit.seal(kit.approve(kit.payload(A)))  # EnvelopedData where SignedData belongs


def s_content_missing(kit, ctx):
    return custom_signed(None, [kit.signer(A, "releaser")])


def s_unsupported_alg(kit, ctx):
    sealed = kit.seal(kit.approve(kit.payload(A)))
    return custom_signed(sealed, [kit.signer(A, "releaser", digest="sha1")])


def s_signer_count(kit, ctx):
    sealed = kit.seal(kit.approve(kit.payload(A)))
    return custom_signed(sealed, [kit.signer(A, "releaser"), kit.signer(A, "head")])


def s_attrs_missing(kit, ctx):
    sealed = kit.seal(kit.approve(kit.payload(A)))
    return custom_signed(sealed, [kit.signer(A, "releaser", attrs={"signing_time": None})])


def s_ctype_mismatch(kit, ctx):
    sealed = kit.seal(kit.approve(kit.payload(A)))
    return custom_signed(sealed, [kit.signer(A, "releaser", attrs={"content_type": "enveloped_data"})])


def s_digest_mismatch(kit, ctx):
    sealed = kit.seal(kit.approve(kit.payload(A)))
    return custom_signed(sealed, [kit.signer(A, "releaser", attrs={"message_digest": b"\x00" * 32})])


def s_bad_signature(kit, ctx):
    sealed = kit.seal(kit.approve(kit.payload(A)))
    return custom_signed(sealed, [kit.signer(A, "releaser", corrupt_signature=True)])


def s_cert_missing(kit, ctx):
    sealed = kit.seal(kit.approve(kit.payload(A)))
    return custom_signed(sealed, [Signer(*kit.extra("unregistered-releaser"))], carry_certs=False)


def s_time_future(kit, ctx):
    sealed = kit.seal(kit.approve(kit.payload(A)))
    return custom_signed(sealed, [kit.signer(A, "releaser", signing_time=NOW + timedelta(hours=2))])


def s_time_old(kit, ctx):
    sealed = kit.seal(kit.approve(kit.payload(A)))
    return custom_signed(sealed, [kit.signer(A, "releaser", signing_time=NOW - timedelta(days=31))])


def s_untrusted(kit, ctx):
    return sign_new(kit.seal(kit.approve(kit.payload(A))), *kit.extra("untrusted-releaser"))


def s_expired(kit, ctx):
    payload = kit.payload(A)
    approved = custom_signed(payload, [Signer(*kit.extra("expired-accountant")), kit.signer(A, "head")])
    return kit.wrap(approved)


def s_not_yet_valid(kit, ctx):
    # Judged 40 days ago, before any demo certificate (all start 30 days ago) was valid.
    ctx["moment"] = NOW - timedelta(days=40)
    sealed = kit.seal(kit.approve(kit.payload(A)))
    return custom_signed(sealed, [kit.signer(A, "releaser", signing_time=NOW - timedelta(days=40))])


def s_revoked(kit, ctx):
    return sign_new(kit.seal(kit.approve(kit.payload(A))), *kit.extra("revoked-releaser"))


def s_key_usage(kit, ctx):
    approved = custom_signed(kit.payload(A), [kit.signer(A, "accountant"), Signer(*kit.extra("wrong-usage-head"))])
    return kit.wrap(approved)


def s_crl_stale(kit, ctx):
    ctx["moment"] = NOW + timedelta(days=8)  # the demo CRLs are good for 7 days
    sealed = kit.seal(kit.approve(kit.payload(A)))
    return custom_signed(sealed, [kit.signer(A, "releaser", signing_time=NOW + timedelta(days=8))])


def s_revocation_unknown(kit, ctx):
    ctx["no_crls"] = True
    return kit.envelope()


def s_not_registered(kit, ctx):
    return sign_new(kit.seal(kit.approve(kit.payload(A))), *kit.extra("unregistered-releaser"))


def s_registration_revoked(kit, ctx):
    ctx["revoke"] = kit.pair(A, "releaser")[0]
    return kit.envelope()


def s_wrong_agency(kit, ctx):
    return kit.release(kit.seal(kit.approve(kit.payload(A))), agency="A10002")


def s_wrong_role(kit, ctx):
    return kit.release(kit.seal(kit.approve(kit.payload(A))), role="head")


def s_delegate_window(kit, ctx):
    payload = kit.payload(A)
    approved = custom_signed(payload, [kit.signer(A, "delegate", signing_time=NOW - timedelta(days=2)),
                                       kit.signer(A, "head")])
    return kit.wrap(approved)


def s_approvals_missing(kit, ctx):
    return kit.wrap(kit.approve(kit.payload(A), roles=("accountant",)))


def s_approvals_same_cert(kit, ctx):
    payload = kit.payload(A)
    return kit.wrap(custom_signed(payload, [kit.signer(A, "accountant"), kit.signer(A, "accountant")]))


def s_not_for_treasury(kit, ctx):
    approved = kit.approve(kit.payload(A))
    return kit.release(kit.seal(approved, recipients=[kit.pair(A, "head")[0]]))


def s_decrypt_failed(kit, ctx):
    def corrupt_key(ci):
        ktri = ci["content"]["recipient_infos"][0].chosen
        key = bytearray(ktri["encrypted_key"].native)
        key[-1] ^= 0x55
        ktri["encrypted_key"] = bytes(key)

    return _reseal_with(kit, corrupt_key)


def s_archive_invalid(kit, ctx):
    return _wrap_payload(kit, b"PK\x03\x04 this is not really a zip")


def s_traversal(kit, ctx):
    docs = _docs(kit)
    return _wrap_payload(kit, payload_zip(manifest_for(A, docs), docs, [("../evil.json", b"{}")]))


def s_absolute(kit, ctx):
    docs = _docs(kit)
    return _wrap_payload(kit, payload_zip(manifest_for(A, docs), docs, [("/etc/evil.json", b"{}")]))


def s_symlink(kit, ctx):
    docs = _docs(kit)
    return _wrap_payload(kit, payload_zip(manifest_for(A, docs), docs,
                                          [("documents/link", b"/etc/passwd", stat.S_IFLNK | 0o777)]))


def s_duplicate_name(kit, ctx):
    docs = _docs(kit)
    return _wrap_payload(kit, payload_zip(manifest_for(A, docs), docs, [docs[0][:1] + docs[0][2:]]))


def s_unlisted(kit, ctx):
    docs = _docs(kit)
    return _wrap_payload(kit, payload_zip(manifest_for(A, docs), docs, [("documents/extra.json", b"{}")]))


def s_too_many(kit, ctx):
    ctx["limits"] = LimitsConfig(max_entries=2)
    return kit.envelope()


def s_archive_too_large(kit, ctx):
    ctx["limits"] = LimitsConfig(max_entry_bytes=100)
    return kit.envelope()


def s_ratio(kit, ctx):
    docs = _docs(kit)
    bomb = b" " * (3 * 1024 * 1024)
    return _wrap_payload(kit, payload_zip(manifest_for(A, docs), docs, [("documents/bomb.json", bomb)]))


def s_manifest_missing(kit, ctx):
    docs = _docs(kit)
    return _wrap_payload(kit, zip_bytes([(p, b) for p, _k, b in docs]))


def s_manifest_invalid(kit, ctx):
    docs = _docs(kit)
    manifest = manifest_for(A, docs)
    del manifest["envelope_id"]
    return _wrap_payload(kit, payload_zip(manifest, docs))


def s_profile(kit, ctx):
    docs = _docs(kit)
    return _wrap_payload(kit, payload_zip(manifest_for(A, docs, profile="TPE/2"), docs))


def s_file_missing(kit, ctx):
    docs = _docs(kit)
    return _wrap_payload(kit, payload_zip(manifest_for(A, docs), docs[:1]))


def s_hash_mismatch(kit, ctx):
    docs = _docs(kit)
    manifest = manifest_for(A, docs)
    tampered = [(docs[0][0], docs[0][1], docs[0][2].replace(b"{", b"{ ", 1)), *docs[1:]]
    return _wrap_payload(kit, payload_zip(manifest, tampered))


def s_count_mismatch(kit, ctx):
    docs = _docs(kit)
    manifest = manifest_for(A, docs)
    manifest["control"]["document_count"] += 1
    return _wrap_payload(kit, payload_zip(manifest, docs))


def s_total_mismatch(kit, ctx):
    docs = _docs(kit)
    manifest = manifest_for(A, docs)
    manifest["control"]["total_amount"] = int(manifest["control"]["total_amount"]) + 1
    return _wrap_payload(kit, payload_zip(manifest, docs))


SCENARIOS = {
    "TOO_LARGE": s_too_large, "MALFORMED_DER": s_malformed, "TRAILING_DATA": s_trailing,
    "WRONG_CONTENT_TYPE": s_wrong_type, "CONTENT_MISSING": s_content_missing,
    "UNSUPPORTED_ALGORITHM": s_unsupported_alg, "SIGNER_COUNT": s_signer_count,
    "SIGNED_ATTRS_MISSING": s_attrs_missing, "CONTENT_TYPE_MISMATCH": s_ctype_mismatch,
    "DIGEST_MISMATCH": s_digest_mismatch, "BAD_SIGNATURE": s_bad_signature, "SIGNER_CERT_MISSING": s_cert_missing,
    "SIGNING_TIME_FUTURE": s_time_future, "SIGNING_TIME_TOO_OLD": s_time_old, "CERT_UNTRUSTED": s_untrusted,
    "CERT_EXPIRED": s_expired, "CERT_NOT_YET_VALID": s_not_yet_valid, "CERT_REVOKED": s_revoked,
    "CERT_KEY_USAGE": s_key_usage, "CRL_STALE": s_crl_stale, "REVOCATION_UNKNOWN": s_revocation_unknown,
    "SIGNER_NOT_REGISTERED": s_not_registered, "SIGNER_REGISTRATION_REVOKED": s_registration_revoked,
    "SIGNER_WRONG_AGENCY": s_wrong_agency, "SIGNER_WRONG_ROLE": s_wrong_role,
    "DELEGATE_OUTSIDE_WINDOW": s_delegate_window, "APPROVALS_MISSING": s_approvals_missing,
    "APPROVALS_SAME_CERT": s_approvals_same_cert, "NOT_FOR_TREASURY": s_not_for_treasury,
    "DECRYPT_FAILED": s_decrypt_failed, "ARCHIVE_INVALID": s_archive_invalid, "ARCHIVE_PATH_TRAVERSAL": s_traversal,
    "ARCHIVE_ABSOLUTE_PATH": s_absolute, "ARCHIVE_SYMLINK": s_symlink, "ARCHIVE_DUPLICATE_NAME": s_duplicate_name,
    "ARCHIVE_UNLISTED_ENTRY": s_unlisted, "ARCHIVE_TOO_MANY_ENTRIES": s_too_many,
    "ARCHIVE_TOO_LARGE": s_archive_too_large, "ARCHIVE_RATIO": s_ratio, "MANIFEST_MISSING": s_manifest_missing,
    "MANIFEST_INVALID": s_manifest_invalid, "UNSUPPORTED_PROFILE": s_profile, "MANIFEST_FILE_MISSING": s_file_missing,
    "MANIFEST_HASH_MISMATCH": s_hash_mismatch, "CONTROL_COUNT_MISMATCH": s_count_mismatch,
    "CONTROL_TOTAL_MISMATCH": s_total_mismatch,
}


def _judge(kit, opener, scenario, tmp_path):
    ctx: dict = {}
    data = scenario(kit, ctx)
    if "limits" in ctx:
        opener.limits = ctx["limits"]
    if ctx.get("no_crls"):
        from tgw_common.pki.trust import TrustStore

        opener.trust = TrustStore(opener.trust.anchors, opener.trust.intermediates, [])
    if "revoke" in ctx:
        from tgw_common.pki.certs import fingerprint

        opener.registry.revoke(fingerprint(ctx["revoke"]))
    return opener.verdict(data, moment=ctx.get("moment"))


@pytest.mark.parametrize("code", sorted(SCENARIOS))
def test_envelope_refused_with_its_code(code, kit, opener, tmp_path):
    verdict = _judge(kit, opener, SCENARIOS[code], tmp_path)
    assert verdict["accepted"] is False
    assert verdict["reason"] == code, verdict["message"]
    assert verdict["layer"] in [str(layer) for layer in REASONS[code].layers]
    assert verdict["message"]


def test_stale_crl_is_held_not_silently_accepted(kit, opener):
    verdict = _judge(kit, opener, s_crl_stale, None)
    assert verdict["reason"] == "CRL_STALE" and verdict["hold"] is True


def test_decrypt_failures_look_alike(kit, opener):
    """No oracle: a corrupted key and a corrupted ciphertext give the same answer."""
    def corrupt_ciphertext(ci):
        eci = ci["content"]["encrypted_content_info"]
        data = bytearray(eci["encrypted_content"].native)
        data[-1] ^= 0x01
        eci["encrypted_content"] = bytes(data)

    a = opener.verdict(s_decrypt_failed(kit, {}))
    b = opener.verdict(_reseal_with(kit, corrupt_ciphertext))
    assert (a["reason"], a["message"]) == (b["reason"], b["message"]) == ("DECRYPT_FAILED", a["message"])


def test_signer_cert_found_in_registry_when_not_carried(kit, opener):
    sealed = kit.seal(kit.approve(kit.payload(A)))
    data = custom_signed(sealed, [kit.signer(A, "releaser")], carry_certs=False)
    assert opener.verdict(data)["accepted"] is True


def test_delegate_inside_window_is_accepted(kit, opener):
    payload = kit.payload(A)
    approved = custom_signed(payload, [kit.signer(A, "delegate"), kit.signer(A, "head")])
    verdict = opener.verdict(kit.wrap(approved))
    assert verdict["accepted"] is True, verdict
    assert {a["role"] for a in verdict["approvals"]} == {"accountant", "head"}
    assert any(a["delegate"] for a in verdict["approvals"])


def test_revoked_certificate_passes_before_its_revocation(kit, opener):
    # Judged at a moment before the revocation date, the same certificate is fine.
    earlier = NOW - timedelta(hours=3)
    approved = custom_signed(kit.payload(A), [kit.signer(A, "accountant", signing_time=earlier),
                                              kit.signer(A, "head", signing_time=earlier)])
    data = sign_new(kit.seal(approved), *kit.extra("revoked-releaser"), signing_time=earlier)
    verdict = opener.verdict(data, moment=NOW - timedelta(hours=2))
    assert verdict["accepted"] is True, verdict


# Each zone's test module that triggers codes exports TRIGGERED: the codes its parametrized
# test drives through the real component (an upload through the Flask app, an envelope
# through the runner). A code listed there but not really triggered fails in that module.
COVERAGE_MODULES = (
    "tests.foundation.test_cert_faults",
    "tests.foundation.test_document_codes",
    "tests.inner_zone.test_internal_error",
    "tests.inner_zone.test_intake_codes",
    "tests.outer_zone.test_upload_codes",
    "tests.outer_zone.test_batch_workflow",
)


def test_every_documented_code_has_a_test():
    import importlib

    covered = set(SCENARIOS)
    for name in COVERAGE_MODULES:
        try:
            covered |= set(importlib.import_module(name).TRIGGERED)
        except ModuleNotFoundError:
            continue
    missing = sorted(set(REASONS) - covered)
    assert not missing, f"reason codes without a triggering test: {missing}"


def test_reason_codes_doc_is_current():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "reason-codes.md").read_text(encoding="utf-8")
    assert reason_table_markdown() in doc, "docs/reason-codes.md is out of date: run `python -m tgw_common.docs_gen`"


def test_refusal_dict_is_json(kit, opener):
    verdict = opener.verdict(s_revoked(kit, {}))
    json.dumps(verdict)
    assert set(verdict) >= {"accepted", "reason", "layer", "message"}
