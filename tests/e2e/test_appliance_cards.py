"""The appliance's demo IC cards: SoftHSM2 tokens made once (redone after a crash), a signer
config per officer recorded in credentials.json, and an officer's signer started from it
signing through its confirmation page. Fast: the provisioning steps of `tgw up` without
supervisord (test_appliance.py runs the whole `tgw up`)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.agency_signer.conftest import SOFTHSM, SignerService
from tests.e2e.conftest import REPO
from tests.kit import free_port, stop_process, wait_until
from tgw.appliance.cards import ensure_cards, read_cards, record_cards, signer_command, write_signer_configs
from tgw.appliance.layout import SIGNER_PORT_OFFSET, Layout
from tgw_common.config import load_config

ROLES = ("accountant", "head", "releaser")


@pytest.fixture
def layout(demo_pki, tmp_path) -> Layout:
    """An appliance folder after its PKI and accounts steps (credentials without cards yet)."""
    if not Path(SOFTHSM).is_file():
        if os.environ.get("CI"):
            pytest.fail("softhsm2 is not installed (apt-get install softhsm2)")
        pytest.skip("needs softhsm2 (apt-get install softhsm2)")
    layout = Layout.at(tmp_path / "app")
    shutil.copytree(demo_pki, layout.pki)
    layout.config_dir.mkdir()
    agencies = {code: {"name": code, "username": f"{code.lower()}-releaser"} for code in ("A10001", "A10002")}
    layout.credentials_file.write_text(json.dumps({"portal": "http://127.0.0.1:18080", "agencies": agencies}))
    return layout


def test_cards_are_made_once_and_a_half_made_folder_is_redone(layout):
    assert ensure_cards(layout) is True
    first = read_cards(layout)
    assert set(first["tokens"]) == {f"{a}-{r}" for a in ("A10001", "A10002") for r in ROLES}
    assert ensure_cards(layout) is False
    assert read_cards(layout) == first

    (layout.cards / "pins.json").unlink()  # as a `tgw up` killed before the last file
    assert ensure_cards(layout) is True
    again = read_cards(layout)
    assert set(again["tokens"]) == set(first["tokens"])
    assert len(list((layout.cards / "tokens").iterdir())) == len(first["tokens"])  # the old tokens are gone


def test_without_softhsm_up_goes_on_without_cards_and_says_so(layout, monkeypatch, capsys):
    from tgw.appliance.cli import _ensure_cards, _signer_configs
    from tgw.appliance.layout import Settings

    monkeypatch.setattr("tgw.demo.softhsm.shutil.which", lambda name: None)
    _ensure_cards(layout)
    said = capsys.readouterr().out.strip().splitlines()
    assert len(said) == 1 and "no demo IC cards" in said[0] and "softhsm2" in said[0]
    creds = _signer_configs(layout, Settings(port_base=18000), "http://127.0.0.1:18080")
    assert all("cards" not in a for a in creds["agencies"].values())
    assert not list(layout.config_dir.glob("signer-*.yaml"))


def test_an_officers_signer_config_signs_through_confirmation(layout, kit, tmp_path):
    ensure_cards(layout)
    port = free_port()
    base = port - SIGNER_PORT_OFFSET  # A10001's accountant, the first officer, on the free port
    portal = "http://127.0.0.1:18080"
    creds = record_cards(layout, write_signer_configs(layout, port_base=base, portal=portal))

    cards = creds["agencies"]["A10001"]["cards"]
    assert set(cards) == set(ROLES) and set(creds["agencies"]["A10002"]["cards"]) == set(ROLES)
    accountant = cards["accountant"]
    assert accountant["token_label"] == "A10001-accountant"
    assert accountant["signer_url"] == f"http://127.0.0.1:{port}"
    assert accountant["pin"] == read_cards(layout)["tokens"]["A10001-accountant"]["pin"]
    assert json.loads(layout.credentials_file.read_text()) == creds
    section = yaml.safe_load(Path(accountant["signer_config"]).read_text())
    assert set(section) == {"signer"}  # no `node:` needed
    signer = load_config(accountant["signer_config"]).signer
    assert (signer.listen, signer.portal_origin, signer.token_label) == (f"127.0.0.1:{port}", portal,
                                                                         "A10001-accountant")
    command = signer_command(layout, "A10001", "accountant")
    assert command.startswith(f"SOFTHSM2_CONF={creds['softhsm2_conf']} tgw agency signer --config ")

    env = {**os.environ, "SOFTHSM2_CONF": creds["softhsm2_conf"]}
    log = tmp_path / "signer.log"
    process = subprocess.Popen([sys.executable, "-m", "tgw", "agency", "signer", "--config",
                                accountant["signer_config"]], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=open(log, "wb"))  # noqa: SIM115
    try:
        service = SignerService(port, process)

        def answering():
            assert process.poll() is None, log.read_text()
            try:
                return service.call("GET", "/v1/requests/none", origin=portal).status == 404
            except OSError:
                return False

        wait_until(answering, 30, "the appliance's A10001 accountant signer")
        asked = service.ask("accountant", "payload", kit.payload("A10001"), origin=portal)
        assert asked.status == 202, asked.body
        request_id = asked.json()["request_id"]
        confirmed = service.confirm(request_id, pin=accountant["pin"])
        assert confirmed.status == 200, confirmed.body.decode()
        done = service.call("GET", f"/v1/requests/{request_id}", origin=portal).json()
        assert done["state"] == "signed", done
        assert base64.b64decode(done["result"])
    finally:
        stop_process(process)
