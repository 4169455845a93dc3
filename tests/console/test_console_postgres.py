"""The console's queries on PostgreSQL: search, detail, quarantine, reports and dashboard over a
zone filled by the real pipeline (tests/conftest.py's pg_url: a private schema per test)."""

from __future__ import annotations

import re

import pytest

from tgw_common.db import dispose_engines

from .conftest import A1, A2, make_console_zone, signed_in, token_of
from .test_console_web import _receiver_records

pytestmark = pytest.mark.postgres


def test_console_on_postgresql(tmp_path, demo_pki, kit, pg_url):
    from inner_zone.console.app import create_app

    cz = make_console_zone(tmp_path / "pg", demo_pki, kit, loaded=2, refused=1, db_url=pg_url)
    _receiver_records(cz)
    app = create_app(cz.load_config())
    try:
        client = signed_in(app, "ada")
        page = client.get("/envelopes", query_string={"agency": A1}).get_data(as_text=True)
        assert set(re.findall(r'data-sha256="([0-9a-f]{64})"', page)) == {e["sha256"] for e in cz.loaded}
        page = client.get(f"/envelopes/{cz.loaded[0]['sha256']}").get_data(as_text=True)
        assert {"loaded", "archived", "arrived"} <= set(re.findall(r'<tr data-event="([a-z]+)"', page))
        assert 'data-sha256="' in client.get("/envelopes", query_string={"agency": A2}).get_data(as_text=True)
        page = client.get("/reports").get_data(as_text=True)
        assert 'data-agency="A10001"' in page and 'data-kind="sent-not-arrived"' in page
        assert client.get("/reports/export.pdf").data.startswith(b"%PDF")
        page = client.get("/dashboard").get_data(as_text=True)
        assert 'data-daemon="outer.transfer-send"' in page and 'data-seq="4"' in page
        token = token_of(client, "/agencies")
        r = client.post("/agencies", data={"csrf_token": token, "code": A2, "mode": "parallel-test",
                                           "epayment_limit": "", "contact": ""}, follow_redirects=True)
        assert "：已更新" in r.get_data(as_text=True)
        page = client.get("/audit", query_string={"action": "agency_updated"}).get_data(as_text=True)
        assert page.count('data-action="agency_updated"') == 1
    finally:
        app.extensions["tgw_console"].close()
        dispose_engines()
