"""Findings of the security review of the running portal (issue 13, item 7)."""

from __future__ import annotations

import pytest

from tgw_common.web.redirects import safe_next

from .conftest import PASSWORD, USERS, bearer, csrf_of


@pytest.mark.parametrize("target", ["/\t/evil.com", "/\n/evil.com", "/\r/evil.com", "//evil.com", "/\\evil.com",
                                    "https://evil.com/", "javascript:alert(1)", "/ /evil.com", "evil.com",
                                    "/\x00/evil.com", "/\u2028/evil.com"])
def test_no_redirect_leaves_the_site(target):
    assert safe_next(target) is None


def test_paths_of_the_site_are_kept():
    assert safe_next("/uploads?page=2") == "/uploads?page=2"


@pytest.mark.parametrize("target", ["/\t/evil.com", "/\n/evil.com"])
def test_sign_in_never_sends_the_browser_away(client, target):
    page = client.get("/login")
    user = "a1-rel"
    answer = client.post("/login", data={"agency": USERS[user][0], "username": user, "password": PASSWORD,
                                         "next": target, "csrf_token": csrf_of(page.get_data(as_text=True))})
    assert answer.status_code == 302
    assert "evil.com" not in answer.headers["Location"]


def test_bad_tokens_from_an_address_never_stop_a_valid_token(client, env, envelopes):
    for _ in range(13):  # outer.login_rate_per_minute is 10
        bad = client.post("/api/v1/envelopes", data=b"x", headers=bearer("not-a-token"))
    assert bad.status_code == 429
    answer = client.post("/api/v1/envelopes", data=envelopes.valid(), headers=bearer(env.tokens["a1-rel"]))
    assert answer.status_code == 202, answer.get_json()
