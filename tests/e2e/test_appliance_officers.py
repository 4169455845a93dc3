"""`tgw up`'s accounts step: four officers per agency (preparer, accountant, head, releaser),
each with a password and a working API token in credentials.json, made once and kept; an
appliance made before officers existed gains the missing ones and keeps its releaser.
Fast: the provisioning steps without supervisord (test_appliance.py runs the whole `tgw up`)."""

from __future__ import annotations

import json
import shutil

import pytest

from tgw.appliance.configs import write_configs
from tgw.appliance.layout import Layout, Settings
from tgw.appliance.provision import OFFICERS, agency_names, ensure_accounts, prepare_databases
from tgw_common.config import load_config
from tgw_common.db import dispose_engines, make_engine, transaction

PORTAL = "http://127.0.0.1:18080"


@pytest.fixture
def layout(demo_pki, tmp_path) -> Layout:
    layout = Layout.at(tmp_path / "app")
    shutil.copytree(demo_pki, layout.pki)
    layout.config_dir.mkdir(parents=True)
    write_configs(layout, Settings(agencies=2), console=False)
    prepare_databases(layout)
    yield layout
    dispose_engines()


def _token_user(layout: Layout, token: str) -> tuple[str, set[str]]:
    from outer_zone.accounts import own_roles, user_for_token

    engine = make_engine(load_config(layout.outer_config).database.url)
    with transaction(engine) as s:
        user, _ = user_for_token(s, token)
        return user.username, own_roles(s, user.id)


def test_every_agency_gets_its_four_officers_once(layout):
    creds = ensure_accounts(layout, portal_url=PORTAL)
    assert set(creds["agencies"]) == set(agency_names(layout))
    for code, entry in creds["agencies"].items():
        officers = entry["officers"]
        assert list(officers) == list(OFFICERS)
        for role, officer in officers.items():
            assert officer["user"] == f"{code.lower()}-{role}" and officer["password"]
            assert _token_user(layout, officer["token"]) == (officer["user"], {role})
        assert (entry["username"], entry["token"]) == (officers["releaser"]["user"], officers["releaser"]["token"])
    assert json.loads(layout.credentials_file.read_text()) == creds
    assert layout.credentials_file.stat().st_mode & 0o077 == 0
    assert ensure_accounts(layout, portal_url=PORTAL) == creds  # a second run changes nothing


def test_an_older_appliance_gains_the_missing_officers(layout):
    creds = ensure_accounts(layout, portal_url=PORTAL)
    old = creds["agencies"]["A10001"]
    releaser = old["officers"]["releaser"]
    del old["officers"]  # as a credentials file written before officers existed
    layout.credentials_file.write_text(json.dumps(creds, ensure_ascii=False))
    again = ensure_accounts(layout, portal_url=PORTAL)["agencies"]["A10001"]
    assert again["officers"]["releaser"] == releaser  # kept: nobody's token was revoked
    assert _token_user(layout, releaser["token"])[0] == releaser["user"]
    for role in ("preparer", "accountant", "head"):
        assert _token_user(layout, again["officers"][role]["token"]) == (f"a10001-{role}", {role})
