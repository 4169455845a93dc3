"""Rule changes made from the command line are in the console's audit log (who on which host,
when, before and after), and the audit page shows them: `tgw registry add/revoke/import`,
`tgw inner agency set` and `tgw inner console-user ...`, run as the real click commands.
The same on PostgreSQL, and `tgw registry` with an outer-zone config writes the portal's log."""

from __future__ import annotations

import html
import socket

import pytest
import yaml
from click.testing import CliRunner

from tgw_common.db import dispose_engines
from tgw_common.web.actor import os_user

from .conftest import MISSING, copy_zone, make_console_zone, signed_in

ACTOR = f"cli:{os_user()}"
ORIGIN = f"cli@{socket.gethostname()}"


def tgw(*args: str, input: str | None = None) -> str:
    from tgw.cli import main

    result = CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _changes(cz) -> dict:
    """Every kind of CLI rule change once; returns the missing certificate's fingerprint."""
    from tgw_common.pki.certs import fingerprint, load_certificate_file

    cfg = str(cz.config)
    cert = cz.pki / "agencies" / MISSING[0] / f"{MISSING[1]}.pem"
    fp = fingerprint(load_certificate_file(cert))
    tgw("registry", "import", str(cz.pki / "registry.yaml"), "--config", cfg)  # brings the missing one back
    tgw("registry", "revoke", fp, "--note", "card lost", "--config", cfg)
    tgw("registry", "add", "--cert", str(cert), "--agency", MISSING[0], "--role", MISSING[1], "--replace",
        "--config", cfg)
    tgw("inner", "agency", "set", "A10002", "--mode", "parallel-test", "--epayment-limit", "500000",
        "--config", cfg)
    tgw("inner", "agency", "set", "A10002", "--mode", "live", "--config", cfg)
    tgw("inner", "console-user", "disable", "--username", "otto", "--config", cfg)
    tgw("inner", "console-user", "enable", "--username", "otto", "--config", cfg)
    tgw("inner", "console-user", "password", "--username", "vera", "--password-stdin", "--config", cfg,
        input="Another-pass-4242\n")
    tgw("inner", "console-user", "add", "--username", "nina", "--role", "operator", "--password-stdin",
        "--config", cfg, input="Nina-pass-424242\n")
    return {"fingerprint": fp}


def _check_rows(cz, fp: str) -> None:
    rows = [r for r in cz.audit() if r["actor"] == ACTOR]
    by = {}
    for r in rows:
        by.setdefault(r["action"], []).append(r)
    for r in rows:
        assert r["ip"] == ORIGIN and r["at"], r
    imported = by["registry_imported"][0]["detail"]
    assert [e["fingerprint"] for e in imported["after"]] == [fp] and imported["before"] == [None]
    revoked = by["signer_revoked"][0]
    assert revoked["target"] == fp and revoked["detail"]["before"]["revoked_at"] is None
    assert revoked["detail"]["after"]["revoked_at"] and revoked["detail"]["note"] == "card lost"
    added = by["signer_registered"][0]["detail"]
    assert added["before"]["revoked_at"] and added["after"]["revoked_at"] is None and added["replaced"] is True
    first, second = by["agency_updated"]
    assert "before" not in first["detail"] and first["detail"]["created"] is True
    assert first["detail"]["after"] == {"mode": "parallel-test", "epayment_limit": 500000, "contact": None}
    assert second["detail"]["before"]["mode"] == "parallel-test" and second["detail"]["after"]["mode"] == "live"
    assert second["detail"]["after"]["epayment_limit"] == 500000  # only what was given changes
    disabled = by["user_disabled"][0]["detail"]
    assert disabled["before"]["active"] is True and disabled["after"]["active"] is False
    assert by["user_enabled"][0]["detail"]["after"]["active"] is True
    assert by["user_password_set"][0]["target"] == "vera"
    assert by["user_added"][0]["detail"]["after"]["role"] == "operator"


def _check_page(app) -> None:
    client = signed_in(app, "ada")
    page = html.unescape(client.get("/audit", query_string={"actor": ACTOR}).get_data(as_text=True))
    for action in ("registry_imported", "signer_revoked", "signer_registered", "agency_updated", "user_disabled",
                   "user_enabled", "user_password_set", "user_added"):
        assert f'data-action="{action}"' in page, action
    assert ACTOR in page and ORIGIN in page
    assert '<li data-field="mode">mode: <span class="before">parallel-test</span> → <span class="after">live</span>' \
        in page
    assert '<li data-field="active">active: <span class="before">True</span> → <span class="after">False</span>' \
        in page
    assert 'data-field="revoked_at">revoked_at: <span class="before">-</span>' in page


def _app(cz):
    from inner_zone.console.app import create_app

    application = create_app(cz.load_config())
    application.config["TESTING"] = True
    return application


def test_cli_rule_changes_are_audited_and_shown(tmp_path, zone_template):
    cz = copy_zone(zone_template, tmp_path / "z")
    fp = _changes(cz)["fingerprint"]
    _check_rows(cz, fp)
    app = _app(cz)
    try:
        _check_page(app)
    finally:
        app.extensions["tgw_console"].close()
        dispose_engines()


@pytest.mark.postgres
def test_cli_rule_changes_are_audited_on_postgresql(tmp_path, demo_pki, kit, pg_url):
    cz = make_console_zone(tmp_path / "pg", demo_pki, kit, loaded=1, refused=0, db_url=pg_url)
    fp = _changes(cz)["fingerprint"]
    _check_rows(cz, fp)
    app = _app(cz)
    try:
        _check_page(app)
    finally:
        app.extensions["tgw_console"].close()
        dispose_engines()


def test_registry_changes_with_an_outer_config_go_to_the_portals_log(tmp_path, demo_pki):
    from sqlalchemy import select

    from outer_zone.models import AuditEntry
    from tgw_common.db import make_engine, transaction
    from tgw_common.pki.certs import fingerprint, load_certificate_file

    db = tmp_path / "outer.db"
    cfg = tmp_path / "outer.yaml"
    cfg.write_text(yaml.safe_dump({"node": {"zone": "outer", "host": "portal-host"},
                                   "database": {"url": f"sqlite:///{db}"}}))
    cert = demo_pki / "agencies" / "A10001" / "releaser.pem"
    fp = fingerprint(load_certificate_file(cert))
    tgw("registry", "add", "--cert", str(cert), "--agency", "A10001", "--role", "releaser", "--config", str(cfg))
    tgw("registry", "revoke", fp, "--config", str(cfg))
    with transaction(make_engine(f"sqlite:///{db}")) as s:
        rows = [r.as_dict() for r in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert [(r["action"], r["actor"], r["ip"], r["agency"], r["target"]) for r in rows] == [
        ("signer_registered", ACTOR, ORIGIN, "A10001", fp), ("signer_revoked", ACTOR, ORIGIN, "A10001", fp)]
    assert "before" not in rows[0]["detail"] or rows[0]["detail"]["before"] is None
    assert rows[1]["detail"]["before"]["revoked_at"] is None and rows[1]["detail"]["after"]["revoked_at"]
    dispose_engines()
