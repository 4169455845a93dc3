"""Every upload-layer reason code (and REPLAY) is really produced by the portal.

TRIGGERED is imported by tests/foundation/test_reason_codes.py for its coverage check; each
code in it has a scenario below that drives the Flask app (API or login page) into it and
checks the HTTP status, the reason in the answer, and that nothing reached the spool.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from outer_zone.models import AuditEntry
from tgw_common.db import transaction
from tgw_common.reasons import REASONS, Layer

from .conftest import A1, PASSWORD, bearer, csrf_of, web_login

TRIGGERED = {
    "UPLOAD_TOO_LARGE", "EMPTY_UPLOAD", "UNAUTHENTICATED", "FORBIDDEN", "IP_NOT_ALLOWED", "RATE_LIMITED",
    "ACCOUNT_LOCKED", "DISK_FULL", "REPLAY",
}

REASON_ATTR = re.compile(r'data-reason="([A-Z_]+)"')


def _api(client, env, body: bytes, user: str = "a1-rel", **kw):
    return client.post("/api/v1/envelopes", data=body, headers=bearer(env.tokens[user]), **kw)


def _json(response) -> tuple[int, str]:
    return response.status_code, response.get_json()["reason"]


def s_upload_too_large(env, app_for, envelopes):
    client = app_for(max_upload_bytes=1000).test_client()
    return _json(_api(client, env, envelopes.valid()))


def s_empty_upload(env, app_for, envelopes):
    return _json(_api(app_for().test_client(), env, b""))


def s_unauthenticated(env, app_for, envelopes):
    client = app_for().test_client()
    return _json(client.post("/api/v1/envelopes", data=envelopes.valid(),
                             headers={"Content-Type": "application/pkcs7-mime"}))


def s_forbidden(env, app_for, envelopes):
    # The token's user lost the releaser role after the token was issued.
    from outer_zone.accounts import find_user, set_roles
    from tgw_common.db import transaction

    with transaction(env.engine()) as s:
        set_roles(s, find_user(s, "a1-rel"), ["preparer"])
    return _json(_api(app_for().test_client(), env, envelopes.valid()))


def s_ip_not_allowed(env, app_for, envelopes):
    client = app_for().test_client()
    return _json(_api(client, env, envelopes.valid(), environ_base={"REMOTE_ADDR": "203.0.113.9"}))


def s_rate_limited(env, app_for, envelopes):
    client = app_for(login_rate_per_minute=3).test_client()
    for _ in range(3):
        assert _json(client.post("/api/v1/envelopes", data=b"x", headers=bearer("tgwo_guess")))[1] == "UNAUTHENTICATED"
    # A further bad token from this address is limited; a valid one never is (test_review_fixes).
    return _json(client.post("/api/v1/envelopes", data=b"x", headers=bearer("tgwo_guess")))


def s_account_locked(env, app_for, envelopes):
    client = app_for(lockout_attempts=2).test_client()
    for _ in range(2):
        web_login(client, "a1-admin", password="wrong-password-1")
    page = client.get("/login")
    response = client.post("/login", data={"agency": A1, "username": "a1-admin", "password": PASSWORD,
                                           "csrf_token": csrf_of(page.get_data(as_text=True))})
    # Outside, the held account reads like any wrong password (no user name can be told
    # apart); the audit log keeps what really happened.
    assert REASON_ATTR.search(response.get_data(as_text=True)).group(1) == "UNAUTHENTICATED"
    with transaction(env.engine()) as s:
        held = s.scalars(select(AuditEntry).where(AuditEntry.action == "login_failed")
                         .order_by(AuditEntry.id.desc())).first()
    return response.status_code, held.reason


def s_disk_full(env, app_for, envelopes):
    client = app_for(min_free_fraction=1.0).test_client()
    return _json(_api(client, env, envelopes.valid()))


def s_replay(env, app_for, envelopes):
    client = app_for().test_client()
    body = envelopes.valid()
    assert _api(client, env, body).status_code == 202
    spooled = env.outbound_files()
    result = _json(_api(client, env, body))
    assert env.outbound_files() == spooled  # the first copy stays, no second one
    return result


SCENARIOS = {
    "UPLOAD_TOO_LARGE": (s_upload_too_large, 413), "EMPTY_UPLOAD": (s_empty_upload, 400),
    "UNAUTHENTICATED": (s_unauthenticated, 401), "FORBIDDEN": (s_forbidden, 403),
    "IP_NOT_ALLOWED": (s_ip_not_allowed, 403), "RATE_LIMITED": (s_rate_limited, 429),
    "ACCOUNT_LOCKED": (s_account_locked, 401), "DISK_FULL": (s_disk_full, 503), "REPLAY": (s_replay, 409),
}


def test_triggered_is_every_upload_code():
    upload_codes = {code for code, info in REASONS.items() if Layer.UPLOAD in info.layers}
    assert upload_codes == TRIGGERED == set(SCENARIOS)


@pytest.mark.parametrize("code", sorted(TRIGGERED))
def test_upload_refused_with_its_code(code, env, app_for, envelopes):
    scenario, status = SCENARIOS[code]
    before = env.outbound_files()
    assert scenario(env, app_for, envelopes) == (status, code)
    if code != "REPLAY":
        assert env.outbound_files() == before == []
