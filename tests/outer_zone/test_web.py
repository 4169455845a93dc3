"""The portal's pages through the Flask test client: sign-in, CSRF, sessions, upload, status,
failed transmissions, certificate warnings and requests, user and delegation management."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from outer_zone.models import AuditEntry, Upload, User, WebSession
from tgw_common.db import transaction

from .conftest import A1, A2, PASSWORD, bearer, csrf_of, web_login

REASON = re.compile(r'data-reason="([A-Z_]+)"')


def _reason(response) -> str:
    return REASON.search(response.get_data(as_text=True)).group(1)


def _csrf(client, path: str = "/status") -> str:
    return csrf_of(client.get(path).get_data(as_text=True))


def _audit(env, action: str) -> list[AuditEntry]:
    with transaction(env.engine()) as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


# --- sign-in
def test_login_lands_by_role_and_sets_a_strict_cookie(env, client):
    r = web_login(client, "a1-rel")
    assert r.status_code == 302 and r.headers["Location"] == "/"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert client.get("/").headers["Location"] == "/upload"
    other = client.application.test_client()
    web_login(other, "a1-acc")
    assert other.get("/").headers["Location"] == "/status"
    (entry,) = _audit(env, "login")[:1]
    assert (entry.actor, entry.agency, entry.ip, entry.outcome) == ("a1-rel", A1, "127.0.0.1", "ok")


def test_secure_cookie_when_configured(env, app_for):
    client = app_for(cookie_secure=True).test_client()
    r = web_login(client, "a1-rel")
    assert r.headers["Set-Cookie"].startswith("__Host-tgw-outer=") and "Secure" in r.headers["Set-Cookie"]


def test_wrong_credentials_are_one_answer(env, client):
    for agency, user, password in ((A1, "a1-rel", "wrong-password"), (A1, "nobody", PASSWORD),
                                   ("Z99999", "a1-rel", PASSWORD), (A2, "a1-rel", PASSWORD)):
        r = web_login(client, user, agency=agency, password=password)
        assert (r.status_code, _reason(r)) == (401, "UNAUTHENTICATED"), (agency, user)
        assert "機關代號、帳號或密碼錯誤" in r.get_data(as_text=True)
    assert len(_audit(env, "login_failed")) == 4


def test_login_needs_the_csrf_token(env, client):
    client.get("/login")
    r = client.post("/login", data={"agency": A1, "username": "a1-rel", "password": PASSWORD})
    assert (r.status_code, _reason(r)) == (403, "FORBIDDEN")
    assert client.get("/status").status_code == 302  # not signed in


def test_brute_force_delays_the_account_then_limits_the_address(env, app_for):
    client = app_for(lockout_attempts=3, login_rate_per_minute=4).test_client()
    answers = [web_login(client, "a1-rel", password=f"guess-{i}") for i in range(3)]
    assert [(r.status_code, _reason(r)) for r in answers] == [(401, "UNAUTHENTICATED")] * 3
    # The third wrong password started a delay: even the right one is refused meanwhile, and
    # the answer reads exactly like a wrong password's (no 423 that tells the name is real).
    r = web_login(client, "a1-rel")
    assert (r.status_code, _reason(r)) == (401, "UNAUTHENTICATED")
    assert r.get_data(as_text=True).count("帳號或密碼錯誤") == answers[0].get_data(as_text=True).count("帳號或密碼錯誤")
    throttled = _audit(env, "login_throttled")
    assert len(throttled) == 1 and throttled[0].agency == A1 and throttled[0].target == "a1-rel"
    assert [a.reason for a in _audit(env, "login_failed")][-1] == "ACCOUNT_LOCKED"
    # Guessing at another account from the same address runs into the rate limit.
    r = web_login(client, "a1-acc", password="guess")
    assert (r.status_code, _reason(r), r.headers["Retry-After"]) == (429, "RATE_LIMITED", "60")
    # Another address is not limited, and the other account is not delayed.
    elsewhere = client.application.test_client()
    assert web_login(elsewhere, "a1-acc", REMOTE_ADDR="127.0.0.2").status_code == 302
    # Once the delay has passed the owner gets in: a delay, never a lock.
    with transaction(env.engine()) as s:
        s.execute(update(User).where(User.username == "a1-rel").values(locked_until=datetime.now(UTC)))
    assert web_login(elsewhere, "a1-rel", REMOTE_ADDR="127.0.0.3").status_code == 302
    # The agency's admin is told, on the users page (audit.recent is filtered by agency).
    admin = client.application.test_client()
    web_login(admin, "a1-admin", REMOTE_ADDR="127.0.0.4")
    html = admin.get("/admin/users", environ_base={"REMOTE_ADDR": "127.0.0.4"}).get_data(as_text=True)
    delays = html[html.index('id="sign-in-delays"'):]
    assert 'data-username="a1-rel"' in delays and "127.0.0.1" in delays


def test_allow_list_applies_to_the_login_page_and_sessions(env, client):
    outside = {"REMOTE_ADDR": "203.0.113.7"}
    page = client.get(f"/login?agency={A1}", environ_base=outside)
    assert (page.status_code, _reason(page)) == (403, "IP_NOT_ALLOWED")
    assert client.get("/login", environ_base=outside).status_code == 200  # agency not known yet
    r = web_login(client, "a1-rel", **outside)
    assert (r.status_code, _reason(r)) == (403, "IP_NOT_ALLOWED")
    # A session opened from an allowed address cannot be used from elsewhere.
    assert web_login(client, "a1-rel").status_code == 302
    r = client.get("/status", environ_base=outside)
    assert (r.status_code, _reason(r)) == (403, "IP_NOT_ALLOWED")
    assert _audit(env, "ip_refused")


def test_idle_session_times_out(env, client):
    web_login(client, "a1-rel")
    assert client.get("/status").status_code == 200
    with transaction(env.engine()) as s:
        s.execute(update(WebSession).values(last_seen_at=datetime.now(UTC) - timedelta(minutes=31)))
    r = client.get("/status")
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")
    assert _audit(env, "session_expired")[0].detail["cause"] == "idle"


def test_logout_ends_the_server_session(env, client):
    web_login(client, "a1-rel")
    stolen = client.get_cookie("tgw-outer").value
    r = client.post("/logout", data={"csrf_token": _csrf(client)})
    assert r.status_code == 302
    thief = client.application.test_client()
    thief.set_cookie("tgw-outer", stolen)
    assert thief.get("/status").status_code == 302


def test_pages_are_csp_clean(env, client):
    pages = ["/login"]
    web_login(client, "a1-admin")
    pages += ["/status", "/failed", "/certificates", "/admin/users", "/admin/delegations", "/account/password"]
    for path in pages:
        r = client.get(path)
        html = r.get_data(as_text=True)
        assert r.status_code == 200, path
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        assert r.headers["X-Frame-Options"] == "DENY" and r.headers["Cache-Control"] == "no-store"
        # A JSON data block (a page script's texts) is data, never run: CSP lets it be.
        assert not re.search(r'<script(?![^>]*\b(src=|type="application/json"))', html), f"inline script on {path}"
        assert not re.search(r"\sstyle=|<style", html), f"inline style on {path}"
        assert not re.search(r"(src|href)=\"(https?:)?//", html), f"remote asset on {path}"
    assert client.get("/static/outer.js").status_code == 200


# --- upload and status
def test_web_upload_by_script_and_by_form(env, client, envelopes):
    web_login(client, "a1-rel")
    token = _csrf(client, "/upload")
    raw = client.post("/upload", data=envelopes.valid(), headers={
        "Content-Type": "application/octet-stream", "Accept": "application/json", "X-CSRFToken": token})
    assert raw.status_code == 202 and raw.get_json()["tracking_id"]
    import io

    form = client.post("/upload", data={"csrf_token": token, "envelope": (io.BytesIO(envelopes.valid()), "e.p7m")},
                       content_type="multipart/form-data")
    assert form.status_code == 202 and 'data-state="accepted"' in form.get_data(as_text=True)
    assert len(env.outbound_files()) == 2
    with transaction(env.engine()) as s:
        assert {u.via for u in s.scalars(select(Upload))} == {"web"}
    # Without the CSRF header the body is not even read.
    forged = client.post("/upload", data=envelopes.valid(), headers={"Content-Type": "application/octet-stream"})
    assert (forged.status_code, forged.get_json()["reason"]) == (403, "FORBIDDEN")
    assert len(env.outbound_files()) == 2


def test_upload_page_needs_a_releaser(env, client, envelopes):
    web_login(client, "a1-acc")
    assert _reason(client.get("/upload")) == "FORBIDDEN"
    r = client.post("/upload", data=envelopes.valid(), headers={
        "Content-Type": "application/octet-stream", "Accept": "application/json", "X-CSRFToken": _csrf(client)})
    assert (r.status_code, r.get_json()["reason"]) == (403, "FORBIDDEN")
    assert env.outbound_files() == []


def test_status_page_states_and_search(env, client, envelopes, kit):
    from tgw_common.events import Provenance

    api = client.application.test_client()
    headers = bearer(env.tokens["a1-rel"])
    sent = api.post("/api/v1/envelopes", data=envelopes.valid(), headers=headers).get_json()["tracking_id"]
    waiting = api.post("/api/v1/envelopes", data=envelopes.valid(), headers=headers).get_json()["tracking_id"]
    refused = api.post("/api/v1/envelopes", data=envelopes.signed_by(*kit.pair(A2, "releaser")),
                       headers=headers).get_json()["tracking_id"]
    Provenance(env.engine(), zone="outer", host="x").record("sent", "transfer-send", tracking_id=sent)
    web_login(client, "a1-prep")  # any role of the agency may follow its uploads
    html = client.get("/status").get_data(as_text=True)
    states = dict(re.findall(r'data-tracking-id="([^"]+)" data-state="([a-z]+)"', html))
    assert states == {sent: "sent", waiting: "accepted", refused: "refused"}
    assert "SIGNER_WRONG_AGENCY" in html
    found = client.get(f"/status?q={waiting[:24]}").get_data(as_text=True)
    assert waiting in found and sent not in found
    only_sent = client.get("/status?state=sent").get_data(as_text=True)
    assert sent in only_sent and waiting not in only_sent
    # The other agency sees none of it.
    other = client.application.test_client()
    web_login(other, "a2-rel")
    assert 'id="no-rows"' in other.get("/status").get_data(as_text=True)


def test_failed_transmission_query(env, client, envelopes, kit):
    api = client.application.test_client()
    headers = bearer(env.tokens["a1-rel"])
    late = api.post("/api/v1/envelopes", data=envelopes.valid(), headers=headers).get_json()["tracking_id"]
    fresh = api.post("/api/v1/envelopes", data=envelopes.valid(), headers=headers).get_json()["tracking_id"]
    refused = api.post("/api/v1/envelopes", data=envelopes.signed_by(*kit.extra("revoked-releaser")),
                       headers=headers).get_json()["tracking_id"]
    with transaction(env.engine()) as s:
        s.execute(update(Upload).where(Upload.tracking_id == late)
                  .values(received_at=datetime.now(UTC) - timedelta(hours=2)))
    web_login(client, "a1-rel")
    html = client.get("/failed").get_data(as_text=True)
    assert late in html and refused in html and fresh not in html
    assert "逾時未傳送" in html and "CERT_REVOKED" in html
    client.get("/lang/en")
    html = client.get("/failed").get_data(as_text=True)
    assert "not sent in time" in html and "逾時未傳送" not in html


def test_certificate_expiry_warning(env, client, kit, demo_pki):
    from tgw.demo.pki import Issuer, _key, _name, _usage, issue
    from tgw_common.pki.certs import load_certificate_file, load_private_key_file
    from tgw_common.registry import SignerRegistry

    web_login(client, "a2-rel")
    assert 'id="cert-warnings"' not in client.get("/status").get_data(as_text=True)
    gca = Issuer(load_certificate_file(demo_pki / "gca.pem"), load_private_key_file(demo_pki / "gca.key"))
    now = datetime.now(UTC)
    cert = issue(_name("即將到期 head", "Demo Government", A2), _key(2048), gca, not_before=now - timedelta(days=300),
                 not_after=now + timedelta(days=20), usage=_usage(sign=True))
    SignerRegistry(env.engine()).add(cert, agency=A2, role="head")
    html = client.get("/status").get_data(as_text=True)
    warning = html[html.index('id="cert-warnings"'):]
    assert "即將到期 head" in warning and "機關長官" in warning and "天）" in warning
    client.get("/lang/en")
    html = client.get("/status").get_data(as_text=True)
    warning = html[html.index('id="cert-warnings"'):]
    assert "Certificates expiring" in warning and "head: " in warning and " days)" in warning


# --- the agency administrator
def test_admin_creates_a_user_who_must_change_the_password(env, client):
    web_login(client, "a1-admin")
    token = _csrf(client, "/admin/users")
    r = client.post("/admin/users", data={"csrf_token": token, "username": "a1-new", "display_name": "新同仁",
                                          "roles": ["reviewer"]})
    html = r.get_data(as_text=True)
    one_time = re.search(r'id="new-password">([^<]+)<', html).group(1)
    newcomer = client.application.test_client()
    r = web_login(newcomer, "a1-new", agency=A1, password=one_time)
    assert r.headers["Location"] == "/account/password"
    assert newcomer.get("/status").headers["Location"] == "/account/password"
    token = _csrf(newcomer, "/account/password")
    weak = newcomer.post("/account/password", data={"csrf_token": token, "current": one_time, "new": "short",
                                                     "confirm": "short"})
    assert weak.status_code == 400
    ok = newcomer.post("/account/password", data={"csrf_token": token, "current": one_time,
                                                   "new": "A-much-better-pass-9", "confirm": "A-much-better-pass-9"})
    assert ok.status_code == 302 and newcomer.get("/status").status_code == 200
    assert [e.target for e in _audit(env, "user_created")] == ["a1-new"]
    assert _audit(env, "password_changed")


def test_admin_pages_are_for_the_admin_of_the_agency(env, client):
    from outer_zone.accounts import find_user

    web_login(client, "a1-rel")
    assert _reason(client.get("/admin/users")) == "FORBIDDEN"
    admin = client.application.test_client()
    web_login(admin, "a1-admin")
    with transaction(env.engine()) as s:
        other_agency_user = find_user(s, "a2-rel").id
    assert admin.get(f"/admin/users/{other_agency_user}").status_code == 404
    token = _csrf(admin, "/admin/users")
    r = admin.post(f"/admin/users/{other_agency_user}", data={"csrf_token": token, "roles": ["admin"],
                                                             "active": "on"})
    assert r.status_code == 404


def test_disabling_a_user_ends_their_sessions(env, client):
    from outer_zone.accounts import find_user

    victim = client.application.test_client()
    web_login(victim, "a1-acc")
    web_login(client, "a1-admin")
    with transaction(env.engine()) as s:
        uid = find_user(s, "a1-acc").id
    r = client.post(f"/admin/users/{uid}", data={"csrf_token": _csrf(client), "roles": ["accountant"]})
    assert r.status_code == 302
    assert victim.get("/status").status_code == 302
    assert _audit(env, "user_updated")[0].detail["active"] is False


def test_delegation_lends_a_role_for_its_period(env, client, envelopes):
    from outer_zone.accounts import find_user

    with transaction(env.engine()) as s:
        rel, acc = find_user(s, "a1-rel").id, find_user(s, "a1-acc").id
    web_login(client, "a1-admin")
    now = datetime.now(UTC).astimezone()
    fmt = "%Y-%m-%dT%H:%M"
    token = _csrf(client, "/admin/delegations")
    future = client.post("/admin/delegations", data={
        "csrf_token": token, "principal": rel, "delegate": acc, "role": "releaser",
        "starts_at": (now + timedelta(days=2)).strftime(fmt), "ends_at": (now + timedelta(days=3)).strftime(fmt)})
    assert future.status_code == 302
    deputy = client.application.test_client()
    web_login(deputy, "a1-acc")
    assert deputy.get("/upload").status_code == 403  # not yet inside the period
    r = client.post("/admin/delegations", data={
        "csrf_token": token, "principal": rel, "delegate": acc, "role": "releaser",
        "starts_at": (now - timedelta(hours=1)).strftime(fmt), "ends_at": (now + timedelta(days=1)).strftime(fmt)})
    assert r.status_code == 302
    assert deputy.get("/upload").status_code == 200
    up = deputy.post("/upload", data=envelopes.valid(), headers={
        "Content-Type": "application/octet-stream", "Accept": "application/json", "X-CSRFToken": _csrf(deputy)})
    assert up.status_code == 202
    bad = client.post("/admin/delegations", data={
        "csrf_token": token, "principal": rel, "delegate": rel, "role": "releaser",
        "starts_at": now.strftime(fmt), "ends_at": (now + timedelta(days=1)).strftime(fmt)})
    assert bad.status_code == 400 and "代理人不可為本人" in bad.get_data(as_text=True)
    ids = re.findall(r'data-delegation-id="(\d+)"', client.get("/admin/delegations").get_data(as_text=True))
    for did in ids:
        client.post(f"/admin/delegations/{did}/revoke", data={"csrf_token": token})
    assert deputy.get("/upload").status_code == 403
    assert len(_audit(env, "delegation_added")) == 2 and len(_audit(env, "delegation_revoked")) == 2


def _new_cert(demo_pki, cn: str, agency: str = A1, issuer: str = "gca"):
    from cryptography.hazmat.primitives import serialization

    from tgw.demo.pki import Issuer, _key, _name, _usage, issue
    from tgw_common.pki.certs import load_certificate_file, load_private_key_file

    ca = Issuer(load_certificate_file(demo_pki / f"{issuer}.pem"), load_private_key_file(demo_pki / f"{issuer}.key"))
    now = datetime.now(UTC)
    cert = issue(_name(cn, "Demo Government", agency), _key(2048), ca, not_before=now - timedelta(days=1),
                 not_after=now + timedelta(days=700), usage=_usage(sign=True))
    return cert.public_bytes(serialization.Encoding.PEM)


def test_certificate_registration_request(env, client, demo_pki, kit):
    import io

    web_login(client, "a1-admin")
    token = _csrf(client, "/certificates")
    pem = _new_cert(demo_pki, "新放行人 new releaser")
    r = client.post("/certificates", data={"csrf_token": token, "role": "releaser",
                                           "certificate": (io.BytesIO(pem), "rel.pem")},
                    content_type="multipart/form-data")
    assert r.status_code == 302
    html = client.get("/certificates").get_data(as_text=True)
    assert 'data-status="pending"' in html and "新放行人" in html
    for data, expect in ((b"not a certificate", "不是 PEM 或 DER"),
                         (pem, "已有待審核的申請"),
                         (kit.extra("revoked-releaser")[0].public_bytes(__import__(
                             "cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]).Encoding.PEM),
                          "CERT_REVOKED")):
        r = client.post("/certificates", data={"csrf_token": token, "role": "releaser",
                                               "certificate": (io.BytesIO(data), "c.pem")},
                        content_type="multipart/form-data")
        assert r.status_code == 400 and expect in r.get_data(as_text=True), expect
    # Only the agency administrator or the role's own officer may ask (tests/outer_zone/test_card_registration.py).
    other = client.application.test_client()
    web_login(other, "a1-prep")
    r = other.post("/certificates", data={"csrf_token": _csrf(other, "/certificates"), "role": "releaser",
                                          "certificate": (io.BytesIO(pem), "rel.pem")},
                   content_type="multipart/form-data")
    assert r.status_code == 403


def test_admin_cannot_tell_a_name_taken_in_another_agency(env, client):
    """A name held in the admin's own agency and one held in another agency answer alike, so
    an agency admin cannot probe which user names other agencies have."""
    web_login(client, "a1-admin")

    def add(username: str) -> tuple[int, str]:
        token = _csrf(client, "/admin/users")
        r = client.post("/admin/users", data={"csrf_token": token, "username": username, "display_name": "試",
                                              "roles": ["reviewer"]})
        html = r.get_data(as_text=True)
        message = re.search(r"此帳號無法使用[^<]*", html)
        return r.status_code, message.group(0) if message else html

    own, other = add("a1-rel"), add("a2-rel")
    assert own == other and "無法使用" in own[1]
    assert "a2-rel" not in other[1] and A2 not in other[1]
