"""config/signer.yaml, the documented sample, loads as a signer config (without a `node:`)."""

from __future__ import annotations

import yaml

from tgw_common.cli_support import load

from .conftest import ROOT, SOFTHSM

SAMPLE = ROOT / "config" / "signer.yaml"


def test_the_sample_signer_config_loads_without_a_node_section():
    assert set(yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))) == {"signer"}
    signer = load(str(SAMPLE), "signer").signer
    assert signer.listen.startswith("127.0.0.1:")
    assert (signer.pkcs11_module, signer.token_label) == (SOFTHSM, "A10001-accountant")
    assert signer.pin_entry == "page"
