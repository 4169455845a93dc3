"""Hostile certificates, generated: whatever cryptography's builder can make, carried as a
signer's certificate in the approval or the release layer, ends in a refusal with a
documented reason code in `tgw envelope open` (the opener in-process, and a few through the
real command) and in the runner: never a traceback, never a hang, never accepted.

Keys come from a small pool made once (tests/certkit.py), so an example costs a few
signatures, not a key generation.
"""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.certkit import KEY_KINDS, A, build, choice, gca, head_signed_by, key, name, released_by, with_certificates
from tests.kit import NOW
from tgw_common.reasons import REASONS

SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]}
OIDS = ["1.3.6.1.4.1.55555.1", "2.5.29.99", "1.2.840.113549.1.9.15", "2.5.29.15", "2.5.29.19", "2.5.29.37"]


@st.composite
def key_usages(draw) -> x509.KeyUsage | None:
    if draw(st.booleans()):
        return None
    bits = draw(st.lists(st.booleans(), min_size=9, max_size=9))
    agreement = bits[4]
    return x509.KeyUsage(*bits[:7], encipher_only=bits[7] and agreement, decipher_only=bits[8] and agreement)


@st.composite
def hostile_certificates(draw, kit):
    """(certificate, private key, certificates carried beside it)."""
    ca_cert, ca_key = gca(kit)
    kind = draw(st.sampled_from(["rsa2048"] * 5 + list(KEY_KINDS)))  # mostly keys that pass the strength check
    private = key(kind)
    issuer = draw(st.sampled_from(["gca", "self", "stranger", "gca-name-other-key"]))
    subject = draw(st.sampled_from(["fresh", "gca-name", "issuer-name"]))
    issuer_name = {"gca": ca_cert.subject, "self": name("hostile"), "stranger": name("Stranger CA", "X"),
                   "gca-name-other-key": ca_cert.subject}[issuer]
    issuer_key = {"gca": ca_key, "self": private}.get(issuer, key("rsa2048b"))
    subject_name = {"fresh": name(f"hostile {draw(st.integers(0, 999))}"), "gca-name": ca_cert.subject,
                    "issuer-name": issuer_name}[subject]
    if issuer == "self":
        subject_name = issuer_name
    extensions = []
    for oid, critical in draw(st.lists(st.tuples(st.sampled_from(OIDS), st.booleans()), max_size=2, unique_by=lambda t: t[0])):
        if oid in ("2.5.29.15", "2.5.29.19", "2.5.29.37"):
            continue  # those are drawn as the real extensions below
        extensions.append((x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), draw(st.binary(max_size=8))),
                           critical))
    if draw(st.booleans()):
        extensions.append((x509.ExtendedKeyUsage(draw(st.lists(st.sampled_from(
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION, ExtendedKeyUsageOID.CODE_SIGNING]),
            min_size=1, max_size=2, unique=True))), draw(st.booleans())))
    ca = draw(st.sampled_from([None, False, True]))
    start, length = draw(st.integers(-400, 10)), draw(st.integers(0, 800))
    cert = build(subject_name, private.public_key(), issuer_name, issuer_key, ca=ca, key_usage=draw(key_usages()),
                 extensions=extensions, not_before=NOW + timedelta(days=start),
                 not_after=NOW + timedelta(days=start + length, seconds=1), serial=draw(st.integers(1, 2**159 - 1)))
    carried = draw(st.sampled_from([[], [], [ca_cert], [ca_cert, key_holder(kit)]]))
    return cert, private, carried


def key_holder(kit) -> x509.Certificate:
    """A real signer's certificate, carried where it signs nothing."""
    return kit.pair(A, "head")[0]


@st.composite
def hostile_envelopes(draw, kit):
    cert, private, carried = draw(hostile_certificates(kit))
    layer = head_signed_by if draw(st.booleans()) else released_by
    data = layer(kit, cert, private, extra=carried)
    if draw(st.sampled_from([False] * 9 + [True])):  # the same certificate twice, in the release layer
        data = with_certificates(data, [choice(cert)])
    return data


def assert_refused_with_a_code(verdict: dict) -> None:
    assert verdict["accepted"] is False, verdict
    assert verdict["reason"] in REASONS and verdict["reason"] != "INTERNAL_ERROR", verdict
    assert verdict["layer"] in [str(layer) for layer in REASONS[verdict["reason"]].layers], verdict
    assert verdict["message"]


def test_hostile_certificates_are_refused_by_the_opener(kit, opener):
    @settings(max_examples=120, **SETTINGS)
    @given(data=hostile_envelopes(kit))
    def judged(data):
        assert_refused_with_a_code(opener.verdict(data))

    judged()


def test_hostile_certificates_are_refused_by_the_runner_and_the_cli(kit, tmp_path, demo_pki):
    from tests.inner_zone.ikit import TGW, make_zone, run_once

    zone = make_zone(tmp_path / "zone", demo_pki)
    seen = {"n": 0}

    @settings(max_examples=12, **SETTINGS)
    @given(data=hostile_envelopes(kit))
    def judged(data):
        seen["n"] += 1
        name_ = f"H{seen['n']:04d}"
        zone.drop(f"{name_}.p7m", data)
        run_once(zone)
        [entry] = [e for e in zone.quarantine_entries() if e["id"] == name_]
        assert_refused_with_a_code({"accepted": False, **entry})
        assert not zone.archived()
        if seen["n"] % 4 == 1:  # a few through the real command
            path = tmp_path / f"{name_}.p7m"
            path.write_bytes(data)
            result = subprocess.run([TGW, "envelope", "open", str(path), "--config", str(zone.config), "--json"],
                                    capture_output=True, text=True, timeout=120, check=False)
            assert "Traceback" not in result.stderr, result.stderr
            verdict = json.loads(result.stdout)
            assert_refused_with_a_code(verdict)
            assert (verdict["reason"], verdict["layer"]) == (entry["reason"], entry["layer"])

    judged()


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_every_pooled_key_type_gets_a_code_as_releaser(kind, kit, opener):
    from tests.certkit import by_gca

    assert_refused_with_a_code(opener.verdict(released_by(kit, *by_gca(kit, f"{kind} releaser", kind))))

