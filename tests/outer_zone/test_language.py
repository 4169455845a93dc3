"""The portal's language: zh-TW by default, English by the switch in the footer, kept by a
cookie across sign-outs; the switch only ever sends the browser back to this site."""

from __future__ import annotations

import re

from .conftest import A1, csrf_of, web_login

SWITCH = re.compile(r'<a class="lang-switch" id="lang-([\w-]+)" href="([^"]+)"')


def _switches(html: str) -> dict[str, str]:
    return {code: href.replace("&amp;", "&") for code, href in SWITCH.findall(html)}


def test_pages_are_chinese_until_the_user_switches(client):
    html = client.get("/login").get_data(as_text=True)
    assert '<html lang="zh-Hant-TW">' in html and "國庫電子支付閘道" in html
    assert "Treasury e-Payment Gateway" not in html
    assert set(_switches(html)) == {"en"}


def test_accept_language_does_not_override_the_default(client):
    html = client.get("/login", headers={"Accept-Language": "en-US,en;q=0.9"}).get_data(as_text=True)
    assert '<html lang="zh-Hant-TW">' in html


def test_the_switch_returns_to_the_page_and_is_kept(client):
    href = _switches(client.get("/login?next=/status").get_data(as_text=True))["en"]
    r = client.get(href)
    assert r.status_code == 302 and r.headers["Location"] == "/login?next=/status"
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("tgw_lang=en;") and "Max-Age=31536000" in cookie and "HttpOnly" in cookie
    html = client.get("/login").get_data(as_text=True)
    assert '<html lang="en">' in html and "Treasury e-Payment Gateway" in html and "國庫電子支付閘道" not in html
    assert set(_switches(html)) == {"zh-TW"}


def test_the_choice_outlives_the_session_and_reaches_messages(env, client):
    client.get("/lang/en")
    web_login(client, "a1-rel")
    page = client.get("/upload").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": csrf_of(page)})
    html = client.get("/login").get_data(as_text=True)
    assert '<html lang="en">' in html and "signed out" in html and "已登出" not in html
    client.get("/lang/zh-TW")
    web_login(client, "a1-rel")
    page = client.get("/upload").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": csrf_of(page)})
    assert "已登出" in client.get("/login").get_data(as_text=True)


def test_the_switch_sends_nowhere_else_and_ignores_unknown_languages(client):
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)"):
        r = client.get("/lang/en", query_string={"next": target})
        assert r.status_code == 302 and r.headers["Location"] == "/", target
    r = client.get("/lang/fr")
    assert r.status_code == 302 and "Set-Cookie" not in r.headers
    client.set_cookie("tgw_lang", "fr")
    assert '<html lang="zh-Hant-TW">' in client.get("/login").get_data(as_text=True)


def test_api_refusals_follow_accept_language(env, client):
    """The API has no language cookie: its messages are zh-TW unless the client prefers English."""
    token = {"Authorization": f"Bearer {env.tokens['a1-acc']}"}
    chinese = client.get("/api/v1/envelopes", headers=token)
    assert chinese.status_code == 403 and chinese.get_json()["reason"] == "FORBIDDEN"
    assert chinese.get_json()["message"] == "您的角色不能使用 API（僅限放行人）"
    english = client.get("/api/v1/envelopes", headers={**token, "Accept-Language": "en-US,en;q=0.9"})
    assert english.status_code == 403 and english.get_json()["reason"] == "FORBIDDEN"
    assert english.get_json()["message"] == "your role may not use the API (releaser only)"
    releaser = {"Authorization": f"Bearer {env.tokens['a1-rel']}"}
    missing = client.get("/api/v1/envelopes/nope", headers={**releaser, "Accept-Language": "en"}).get_json()
    assert missing["message"] == f"no upload nope for agency {A1}"
    assert "沒有追蹤編號" in client.get("/api/v1/envelopes/nope", headers=releaser).get_json()["message"]


def test_pages_speak_one_language(env, client):
    web_login(client, "a1-rel")
    html = client.get("/upload").get_data(as_text=True)
    assert "上傳信封" in html and "Upload an envelope" not in html
    client.get("/lang/en")
    html = client.get("/upload").get_data(as_text=True)
    assert "Upload an envelope" in html and "上傳信封" not in html
    texts = re.search(r'<script type="application/json" id="tgw-texts">([^<]*)</script>', html)
    assert texts and '"choose_first": "choose a file first"' in texts.group(1)
    refused = client.get("/admin/users")
    assert refused.status_code == 403
    card = refused.get_data(as_text=True).split('<section class="card narrow">')[1].split("</section>")[0]
    assert "role may not do this</h1>" in card
    assert "your role may not manage users and delegations" in card and not re.search(r"[\u4e00-\u9fff]", card)
