"""The console's language: zh-TW unless the operator switches to English in the footer; the
choice is kept in the tgw_lang cookie (not the session), so it outlives signing out and in,
and flash messages and refusal pages follow it like the pages do."""

from __future__ import annotations

import re
from html import unescape

from .conftest import csrf_of, login, signed_in, token_of

SWITCH = re.compile(r'<a class="lang-switch" id="lang-(?P<code>[a-zA-Z-]+)" href="(?P<href>[^"]+)"')


def _lang(html: str) -> str:
    return re.search(r'<html lang="([^"]+)"', html).group(1)


def _h1(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", "", re.search(r"<h1>(.*?)</h1>", html, re.S).group(1))).strip()


def _switch(html: str) -> tuple[str, str]:
    found = SWITCH.search(html)
    assert found, "no language switch in the footer"
    return found.group("code"), unescape(found.group("href"))


def test_the_console_speaks_traditional_chinese_by_default(app):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    assert _lang(page) == "zh-Hant-TW" and _h1(page) == "登入" and "Sign in" not in page
    assert _switch(page)[0] == "en"
    login(client, "vera")
    page = client.get("/dashboard").get_data(as_text=True)
    assert _h1(page).startswith("總覽") and 'id="nav-envelopes">信封查詢<' in page and "（檢視者）</span>" in page


def test_the_footer_switch_turns_it_english_and_the_choice_survives_signing_out_and_in(app):
    client = signed_in(app, "vera")
    page = client.get("/envelopes").get_data(as_text=True)
    code, href = _switch(page)
    assert code == "en" and href.startswith("/lang/en?next=")
    r = client.get(href)
    assert r.status_code == 302 and r.headers["Location"].split("?")[0].endswith("/envelopes")
    assert "tgw_lang=en" in r.headers["Set-Cookie"]
    page = client.get("/envelopes").get_data(as_text=True)
    assert _lang(page) == "en" and _h1(page) == "Envelopes" and "信封查詢" not in page
    assert 'id="nav-envelopes">Envelopes<' in page and "viewer）</span>" in page and _switch(page)[0] == "zh-TW"
    token = csrf_of(page)
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    page = client.get("/login").get_data(as_text=True)
    assert _lang(page) == "en" and _h1(page) == "Sign in"
    assert login(client, "vera").status_code == 302
    page = client.get("/dashboard").get_data(as_text=True)
    assert _lang(page) == "en" and _h1(page).startswith("Dashboard")
    # And back to Chinese by the same switch.
    client.get(_switch(page)[1])
    assert _h1(client.get("/dashboard").get_data(as_text=True)).startswith("總覽")


def test_a_flash_message_follows_the_choice(app):
    client = signed_in(app, "otto")
    token = token_of(client, "/quarantine")
    r = client.post("/quarantine/reject", data={"csrf_token": token}, follow_redirects=True)
    assert '<p class="flash error" role="status">請勾選要結案的信封。</p>' in r.get_data(as_text=True)
    client.get("/lang/en")
    r = client.post("/quarantine/reject", data={"csrf_token": token}, follow_redirects=True)
    html = r.get_data(as_text=True)
    assert '<p class="flash error" role="status">Tick the envelopes to reject.</p>' in html and "請勾選" not in html


def test_a_refusal_page_follows_the_choice(app):
    client = signed_in(app, "vera")
    token = token_of(client)
    r = client.post("/quarantine/retry", data={"csrf_token": token, "ids": "X"})
    html = r.get_data(as_text=True)
    assert r.status_code == 403 and _h1(html) == "權限不足" and "您的角色不能重試隔離信封。" in html
    client.get("/lang/en")
    r = client.post("/quarantine/retry", data={"csrf_token": token, "ids": "X"})
    html = r.get_data(as_text=True)
    assert r.status_code == 403 and _h1(html) == "Forbidden"
    assert "Your role may not retry quarantined envelopes." in html and "權限不足" not in html
    # An error page of the app's own (the form's CSRF token is missing) does the same.
    r = client.post("/quarantine/retry", data={"ids": "X"})
    assert r.status_code == 400 and _h1(r.get_data(as_text=True)) == "Form expired"


def test_the_scripts_texts_are_in_the_pages_language(app):
    client = signed_in(app, "otto")
    block = re.compile(r'<script type="application/json" id="tgw-texts">([^<]*)</script>')
    assert "此動作會記入稽核紀錄" in block.search(client.get("/quarantine").get_data(as_text=True)).group(1)
    client.get("/lang/en")
    assert "recorded in the audit log" in block.search(client.get("/quarantine").get_data(as_text=True)).group(1)
