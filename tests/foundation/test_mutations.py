"""Property tests: any corruption of a valid envelope ends in a refusal with a reason code.

Mutations are aimed at three depths: the raw file (caught at the release layer), the
approval layer inside a validly sealed and released envelope, and the payload ZIP inside
validly signed layers, so the deeper parsers meet hostile bytes too.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tgw_common.reasons import REASONS

A = "A10001"
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@pytest.fixture(scope="module")
def layers(demo_pki):
    from tests.kit import Kit

    kit = Kit(demo_pki)
    payload = kit.payload(A)
    approved = kit.approve(payload)
    return Layers(kit, payload, approved, kit.release(kit.seal(approved)))


class Layers(tuple):
    """Keeps hypothesis from printing 40 kB of envelope when it reports an example."""

    def __new__(cls, *parts):
        return super().__new__(cls, parts)

    def __repr__(self) -> str:
        return "<valid envelope layers>"


def mutate(data: bytes, edits, cut: int | None) -> bytes:
    buf = bytearray(data)
    for position, value in edits:
        buf[position % len(buf)] = value
    if cut is not None:
        buf = buf[: cut % max(len(buf), 1)]
    return bytes(buf)


edits = st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=0, max_size=4)
cuts = st.one_of(st.none(), st.integers(min_value=0))


def assert_refused(verdict, mutated: bytes, original: bytes) -> None:
    if verdict["accepted"]:
        # Only an edit that changes nothing signed may pass (a ZIP timestamp, the unsigned
        # digestAlgorithms set): what is accepted must be exactly the original content.
        assert verdict["envelope_id"].startswith(A) and verdict["documents"], verdict
        return
    assert verdict["reason"] in REASONS, verdict
    assert verdict["layer"]


@pytest.mark.timeout(300)
@SETTINGS
@given(edits=edits, cut=cuts)
def test_mutated_file(layers, opener_module, edits, cut):
    _kit, _payload, _approved, envelope = layers
    mutated = mutate(envelope, edits, cut)
    assert_refused(opener_module.verdict(mutated), mutated, envelope)


@pytest.mark.timeout(300)
@SETTINGS
@given(edits=edits, cut=cuts)
def test_mutated_approval_layer(layers, opener_module, edits, cut):
    kit, _payload, approved, _envelope = layers
    mutated = mutate(approved, edits, cut)
    assert_refused(opener_module.verdict(kit.wrap(mutated)), mutated, approved)


@pytest.mark.timeout(300)
@SETTINGS
@given(edits=edits, cut=cuts)
def test_mutated_payload(layers, opener_module, edits, cut):
    kit, payload, _approved, _envelope = layers
    mutated = mutate(payload, edits, cut)
    assume(mutated)  # an agency cannot sign nothing; the empty case is the approval test's
    verdict = opener_module.verdict(kit.wrap(kit.approve(mutated)))
    assert_refused(verdict, mutated, payload)
    if verdict["accepted"]:
        original = opener_module.verdict(kit.wrap(kit.approve(payload)))
        assert verdict["documents"] == original["documents"] and verdict["control"] == original["control"]


@pytest.fixture(scope="module")
def opener_module(demo_pki, tmp_path_factory):
    from tests.kit import write_config
    from tgw_common.config import load_config
    from tgw_common.db import make_engine
    from tgw_common.registry import SignerRegistry
    from tgw_common.tpe.factory import opener_from_config

    path = write_config(tmp_path_factory.mktemp("mut"), demo_pki)
    config = load_config(path)
    SignerRegistry(make_engine(config.database.url)).import_file(demo_pki / "registry.yaml")
    return opener_from_config(config, with_private_key=True)
