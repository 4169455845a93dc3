"""Every fault a certificate an agency sends can have ends in its own reason code, never in
another exception and never in the INTERNAL_ERROR fallback; `tgw registry add` refuses the
certificates no signature could pass with; the trust configuration is judged at start-up."""

from __future__ import annotations

import logging
import subprocess
from datetime import timedelta

import pytest
from asn1crypto import cms
from cryptography import x509

from tests.certkit import (
    A,
    build,
    by_gca,
    choice,
    gca,
    head_signed_by,
    key,
    name,
    released_by,
    self_signed,
    usage,
    with_certificates,
)
from tests.kit import NOW, write_config
from tgw_common.pki.certs import der
from tgw_common.reasons import REASONS
from tgw_common.registry import RegistryError


def s_self_signed(kit, ctx):
    return head_signed_by(kit, *self_signed("self-signed head"))


def s_self_signed_ca(kit, ctx):
    # What `openssl req -x509` makes by default: self-signed and CA:TRUE.
    return head_signed_by(kit, *self_signed("self-signed ca head", ca=True))


def s_is_ca(kit, ctx):
    return head_signed_by(kit, *by_gca(kit, "ca head", ca=True))


def s_is_ca_by_usage(kit, ctx):
    return released_by(kit, *by_gca(kit, "cert-signing releaser", key_usage=usage(ca=True)))


def s_key_usage(kit, ctx):
    return head_signed_by(kit, *by_gca(kit, "encipher head", key_usage=usage(sign=False, encipher=True)))


def s_weak_rsa(kit, ctx):
    return head_signed_by(kit, *by_gca(kit, "rsa1024 head", "rsa1024"))


def s_weak_curve(kit, ctx):
    return released_by(kit, *by_gca(kit, "p192 releaser", "p192"))


def s_critical_extension(kit, ctx):
    odd = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")
    return head_signed_by(kit, *by_gca(kit, "critical head", extensions=[(odd, True)]))


def s_chain_too_long(kit, ctx):
    ctx["max_chain_depth"] = 2  # root > GCA > releaser is 3
    return kit.envelope()


def s_malformed(kit, ctx):
    envelope = kit.envelope()
    own = bytearray(cms.ContentInfo.load(envelope)["content"]["certificates"][0].dump())
    at = own.find(bytes([0xA0, 0x03, 0x02, 0x01, 0x02]))  # [0] version v3 (2)
    own[at + 4] = 0x03  # there is no v4
    return with_certificates(envelope, [bytes(own)])


def s_foreign_root(kit, ctx):
    root_key = key("rsa2048b")
    root = build(name("Other Root", "X"), root_key.public_key(), name("Other Root", "X"), root_key, ca=True,
                 key_usage=usage(sign=False, ca=True))
    private = key("rsa2048")
    leaf = build(name("foreign releaser"), private.public_key(), root.subject, root_key, key_usage=usage())
    return released_by(kit, leaf, private, extra=[root])


def s_untrusted(kit, ctx):
    return released_by(kit, *kit.extra("untrusted-releaser"))


def s_altered(kit, ctx):
    """One byte changed in the releaser's carried certificate, in its serial number: the
    signer is found in the registry, and the broken copy must not go unjudged."""
    envelope = kit.envelope()
    own = cms.ContentInfo.load(envelope)["content"]["certificates"][0].chosen
    raw = bytearray(own.dump())
    serial = own["tbs_certificate"]["serial_number"].contents
    at = raw.find(serial)
    raw[at + len(serial) - 1] ^= 0x01
    return with_certificates(envelope, [cms.CertificateChoices({"certificate": cms.Certificate.load(bytes(raw))})
                                        .dump()], drop_own=True)


def s_altered_validity(kit, ctx):
    releaser, _ = kit.pair(A, "releaser")
    raw = bytearray(der(releaser))
    stamp = releaser.not_valid_after_utc.strftime("%y%m%d%H%M%SZ").encode()
    at = raw.find(stamp)
    raw[at + 1] = ord("9") if raw[at + 1] != ord("9") else ord("8")  # a later notAfter year
    return with_certificates(kit.envelope(), [cms.CertificateChoices(
        {"certificate": cms.Certificate.load(bytes(raw))}).dump()], drop_own=True)


def s_duplicate(kit, ctx):
    envelope = kit.envelope()
    own = cms.ContentInfo.load(envelope)["content"]["certificates"][0].dump()
    return with_certificates(envelope, [own])


def s_superfluous(kit, ctx):
    stranger, _ = self_signed("unrelated", "rsa2048b")
    return with_certificates(kit.envelope(), [choice(stranger)])


def s_superfluous_gca_issued(kit, ctx):
    other, _ = kit.pair(A, "head")
    return with_certificates(kit.envelope(), [choice(other)])


def s_loop(kit, ctx):
    one, two = key("rsa2048"), key("rsa2048b")
    x = build(name("Loop X", "L"), one.public_key(), name("Loop Y", "L"), two, ca=True,
              key_usage=usage(sign=False, ca=True))
    y = build(name("Loop Y", "L"), two.public_key(), name("Loop X", "L"), one, ca=True,
              key_usage=usage(sign=False, ca=True))
    return with_certificates(kit.envelope(), [choice(x), choice(y)])


SCENARIOS = {
    "CERT_SELF_SIGNED": [s_self_signed, s_self_signed_ca],
    "CERT_IS_CA": [s_is_ca, s_is_ca_by_usage],
    "CERT_KEY_USAGE": [s_key_usage],
    "CERT_WEAK_KEY": [s_weak_rsa, s_weak_curve],
    "CERT_CRITICAL_EXTENSION": [s_critical_extension],
    "CERT_CHAIN_TOO_LONG": [s_chain_too_long],
    "CERT_MALFORMED": [s_malformed],
    "CERT_FOREIGN_ROOT": [s_foreign_root],
    "CERT_UNTRUSTED": [s_untrusted],
    "CERT_ALTERED": [s_altered, s_altered_validity],
    "CERT_DUPLICATE": [s_duplicate],
    "CERT_SUPERFLUOUS": [s_superfluous, s_superfluous_gca_issued],
    "CERT_LOOP": [s_loop],
}
CASES = [(code, fn) for code, fns in SCENARIOS.items() for fn in fns]
# The codes this module drives through the opener (tests/foundation/test_reason_codes.py counts them).
TRIGGERED = set(SCENARIOS)


def judge(kit, opener, scenario) -> dict:
    ctx: dict = {}
    data = scenario(kit, ctx)
    if "max_chain_depth" in ctx:
        opener.trust.max_chain_depth = ctx["max_chain_depth"]
    return opener.verdict(data)


@pytest.mark.parametrize(("code", "scenario"), CASES, ids=[fn.__name__[2:] for _, fn in CASES])
def test_each_certificate_fault_has_its_own_code(code, scenario, kit, opener):
    verdict = judge(kit, opener, scenario)
    assert verdict["accepted"] is False
    assert verdict["reason"] == code, verdict
    assert verdict["reason"] != "INTERNAL_ERROR"
    assert verdict["layer"] in [str(layer) for layer in REASONS[code].layers]
    assert verdict["message"]


def test_the_unaltered_envelope_is_still_accepted(kit, opener):
    # The scenarios above change one thing each in an envelope that is otherwise good.
    assert opener.verdict(kit.envelope())["accepted"] is True


def test_a_ca_signer_is_refused_even_when_registered_behind_the_checks_back(kit, opener):
    """The reported bug: a CA:TRUE certificate from the GCA, registered as the head, was accepted."""
    from sqlalchemy import update

    from tgw_common.registry import SignerRow

    cert, private = by_gca(kit, "registered ca head", ca=True)
    plain, _ = by_gca(kit, "plain head")
    opener.registry.add(plain, agency=A, role="head")  # then swapped for the CA, as an old registry may hold
    from tgw_common.db import transaction
    from tgw_common.pki.certs import fingerprint

    with transaction(opener.registry.engine) as s:
        s.execute(update(SignerRow).where(SignerRow.fingerprint == fingerprint(plain))
                  .values(fingerprint=fingerprint(cert), certificate=der(cert)))
        opener.registry._bump(s)
    verdict = opener.verdict(head_signed_by(kit, cert, private))
    assert (verdict["accepted"], verdict["reason"], verdict["layer"]) == (False, "CERT_IS_CA", "approval")


@pytest.mark.parametrize(("maker", "word"), [
    (lambda kit: by_gca(kit, "ca", ca=True), "CA certificate"),
    (lambda kit: by_gca(kit, "crl signer", key_usage=usage(ca=True)), "keyCertSign/cRLSign"),
    (lambda kit: by_gca(kit, "encipher", key_usage=usage(sign=False, encipher=True)), "not for signing"),
    (lambda kit: by_gca(kit, "no usage", key_usage=None), "no keyUsage"),
    (lambda kit: by_gca(kit, "weak", "rsa1024"), "1024 bits"),
    (lambda kit: self_signed("self"), "self-signed"),
])
def test_registry_add_refuses_a_certificate_unfit_for_signing(maker, word, kit, opener):
    cert, _ = maker(kit)
    with pytest.raises(RegistryError, match=word):
        opener.registry.add(cert, agency=A, role="head")
    assert opener.registry.list(agency=A, role="head") and all(
        s.subject != cert.subject.rfc4514_string() for s in opener.registry.list())


def test_tgw_registry_add_names_why(kit, tmp_path, config_path):
    from tests.inner_zone.ikit import cli

    cert, _ = by_gca(kit, "cli ca head", ca=True)
    pem = tmp_path / "ca-head.pem"
    from cryptography.hazmat.primitives.serialization import Encoding

    pem.write_bytes(cert.public_bytes(Encoding.PEM))
    code, out = cli("registry", "add", "--config", str(config_path), "--cert", str(pem), "--agency", A,
                    "--role", "head")
    assert code != 0
    assert "CA certificate" in out and "basicConstraints CA:TRUE" in out, out


# --------------------------------------------------------------------- the trust configuration


def _trust(tmp_path, demo_pki, **trust):
    from tgw_common.config import load_config

    return load_config(write_config(tmp_path / "cfg", demo_pki, trust=trust)).trust


def _pem(tmp_path, cert, stem):
    from cryptography.hazmat.primitives.serialization import Encoding

    path = tmp_path / f"{stem}.pem"
    path.write_bytes(cert.public_bytes(Encoding.PEM))
    return str(path)


@pytest.mark.parametrize(("kind", "maker", "why"), [
    ("anchors", lambda kit: kit.pair(A, "releaser")[0], "CA:FALSE"),
    ("intermediates", lambda kit: by_gca(kit, "no cert sign", ca=True, key_usage=usage())[0], "keyCertSign"),
    ("intermediates", lambda kit: by_gca(kit, "no constraints", ca=None, key_usage=usage(ca=True))[0],
     "no basicConstraints"),
])
def test_a_configured_authority_that_cannot_issue_stops_start_up_naming_it(kind, maker, why, kit, tmp_path,
                                                                            demo_pki):
    from tgw_common.pki.trust import TrustStore

    cert = maker(kit)
    path = _pem(tmp_path, cert, "bad")
    trust = _trust(tmp_path, demo_pki, **{kind: [str(demo_pki / "root.pem"), path] if kind == "anchors" else [path]})
    with pytest.raises(ValueError) as caught:
        TrustStore.from_config(trust)
    text = str(caught.value)
    assert path in text and why in text and str(cert.subject.get_attributes_for_oid(
        x509.NameOID.COMMON_NAME)[0].value) in text


def test_an_expired_intermediate_is_a_warning_naming_it(kit, tmp_path, demo_pki, caplog):
    from tgw_common.pki.trust import TrustStore

    old = by_gca(kit, "Old GCA", ca=True, key_usage=usage(sign=False, ca=True),
                 not_before=NOW - timedelta(days=90), not_after=NOW - timedelta(days=1))[0]
    path = _pem(tmp_path, old, "old-gca")
    trust = _trust(tmp_path, demo_pki, intermediates=[str(demo_pki / "gca.pem"), path])
    with caplog.at_level(logging.WARNING, logger="tgw_common.pki.trust"):
        store = TrustStore.from_config(trust)
    [record] = [r for r in caplog.records if "expired" in r.getMessage()]
    assert path in record.getMessage() and "Old GCA" in record.getMessage()
    assert len(store.intermediates) == 2


def test_tgw_envelope_open_fails_cleanly_on_a_leaf_configured_as_anchor(kit, tmp_path, demo_pki):
    from tests.inner_zone.ikit import TGW

    leaf = _pem(tmp_path, kit.pair(A, "releaser")[0], "leaf")
    config = write_config(tmp_path / "cfg", demo_pki, trust={"anchors": [leaf]})
    envelope = tmp_path / "e.p7m"
    envelope.write_bytes(kit.envelope())
    result = subprocess.run([TGW, "envelope", "open", str(envelope), "--config", str(config), "--json"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode not in (0, 1) and "Traceback" not in result.stderr, result.stderr
    assert leaf in result.stderr + result.stdout and "CA:FALSE" in result.stderr + result.stdout


def test_a_crl_issuer_path_failure_logs_one_line_without_a_traceback(kit, opener, caplog):
    """The GCA's CRL can be trusted only through the root's CRL; without it the library used to
    log the failed CRL issuer path at warning level with a full stack trace."""
    from tgw_common.pki.trust import TrustStore

    trust = opener.trust
    opener.trust = TrustStore(trust.anchors, trust.intermediates,
                              [c for c in trust.crls if c.issuer != trust.anchors[0].subject])
    with caplog.at_level(logging.DEBUG):
        verdict = opener.verdict(kit.envelope())
    assert verdict["accepted"] is False and verdict["reason"] == "REVOCATION_UNKNOWN", verdict
    loud = [r for r in caplog.records if r.name.startswith("pyhanko") and (r.levelno >= logging.WARNING
                                                                           or r.exc_info)]
    assert not loud, [r.getMessage() for r in loud]


def test_the_library_s_crl_issuer_warning_loses_its_stack_trace(caplog):
    """What pyhanko-certvalidator does when a CRL issuer's path fails (validate_crl.py): a
    warning with exc_info. The refusal that follows is the one line worth logging."""
    import tgw_common.pki.trust  # noqa: F401 (installs the filter)

    library = logging.getLogger("pyhanko_certvalidator.revinfo.validate_crl")
    with caplog.at_level(logging.DEBUG):
        try:
            raise ValueError("path for the CRL issuer failed")
        except ValueError as exc:
            library.warning("Path for CRL issuer Demo GCA could not be validated.", exc_info=exc)
    [record] = [r for r in caplog.records if r.name == library.name]
    assert record.levelno == logging.DEBUG and record.exc_info is None
    assert "Traceback" not in caplog.text


def test_registry_signers_are_judged_as_carried(kit, opener):
    # A releaser that carries no certificate at all is judged from the registry's copy.
    gca_cert, _ = gca(kit)
    data = released_by(kit, *kit.pair(A, "releaser"))
    bare = with_certificates(data, [], drop_own=True)
    assert opener.verdict(bare)["accepted"] is True
    assert opener.verdict(with_certificates(data, [choice(gca_cert)]))["accepted"] is True
