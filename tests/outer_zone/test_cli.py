"""`tgw outer agency|user|token|registration|audit`: the treasury's administration, CLI only."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tgw.cli import main

from .conftest import A1, bearer, web_login


@pytest.fixture
def tgw(env):
    runner = CliRunner()

    def run(*args: str, input: str | None = None, code: int = 0):
        result = runner.invoke(main, ["outer", *args, "--config", str(env.config_path)], input=input)
        assert result.exit_code == code, (args, result.output, result.exception)
        return result

    return run


def test_agency_and_allow_list(tgw, env):
    tgw("agency", "add", "B20001", "--name", "測試機關")
    tgw("agency", "add", "B20001", "--name", "again", code=1)
    tgw("agency", "add", "bad code!", "--name", "x", code=1)
    tgw("agency", "allow-ip", "B20001", "198.51.100.0/24", "2001:db8::/48")
    out = tgw("agency", "allow-ip", "B20001", "198.51.100.0/24").output
    assert "nothing new" in out
    tgw("agency", "allow-ip", "B20001", "198.51.100.7/24", code=2)  # host bits set: say so, don't guess
    tgw("agency", "allow-ip", "NOPE", "198.51.100.0/24", code=1)
    listed = {a["code"]: a for a in json.loads(tgw("agency", "list", "--json").output)}
    assert listed["B20001"]["networks"] == ["198.51.100.0/24", "2001:db8::/48"]
    assert listed["B20001"]["name"] == "測試機關"
    tgw("agency", "remove-ip", "B20001", "2001:db8::/48")
    listed = {a["code"]: a for a in json.loads(tgw("agency", "list", "--json").output)}
    assert listed["B20001"]["networks"] == ["198.51.100.0/24"]


def test_user_add_and_one_time_password(tgw, env, client):
    out = tgw("user", "add", "--agency", A1, "--username", "a1-boss", "--role", "admin", "--role", "head").output
    one_time = out.split("one-time password (shown once): ")[1].strip()
    r = web_login(client, "a1-boss", agency=A1, password=one_time)
    assert r.headers["Location"] == "/account/password"
    tgw("user", "add", "--agency", A1, "--username", "a1-svc", "--role", "releaser", "--password-stdin",
        "--no-force-change", input="Service-pass-2024\n")
    other = client.application.test_client()
    assert web_login(other, "a1-svc", agency=A1, password="Service-pass-2024").headers["Location"] == "/"
    tgw("user", "add", "--agency", A1, "--username", "a1-svc", "--role", "releaser", "--password-stdin",
        input="Service-pass-2024\n", code=1)
    tgw("user", "add", "--agency", A1, "--username", "x", "--role", "releaser", "--password-stdin",
        input="short\n", code=1)
    tgw("user", "add", "--agency", A1, "--username", "x", "--role", "king", code=2)
    users = {u["username"]: u for u in json.loads(tgw("user", "list", "--agency", A1, "--json").output)}
    assert users["a1-boss"]["roles"] == ["admin", "head"] and users["a1-svc"]["must_change_password"] is False


def test_unlock_after_lockout(tgw, env, app_for):
    client = app_for(lockout_attempts=2).test_client()
    for _ in range(2):
        web_login(client, "a1-acc", password="wrong-wrong-wrong")
    assert web_login(client, "a1-acc").status_code == 401  # held by its delay, answered as any miss
    tgw("user", "unlock", "a1-acc")
    assert web_login(client, "a1-acc").status_code == 302


def test_token_create_use_and_revoke(tgw, env, client, envelopes):
    result = tgw("token", "create", "--user", "a1-rel", "--label", "會計系統")
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("tgwo_")
    assert client.post("/api/v1/envelopes", data=envelopes.valid(), headers=bearer(token)).status_code == 202
    listed = json.loads(tgw("token", "list", "--user", "a1-rel", "--json").output)
    mine = next(t for t in listed if t["label"] == "會計系統")
    assert mine["last_used_at"] and token not in json.dumps(listed)  # the secret is never shown again
    tgw("token", "revoke", "--id", str(mine["id"]))
    r = client.post("/api/v1/envelopes", data=envelopes.valid(), headers=bearer(token))
    assert r.status_code == 401
    tgw("token", "revoke", "--id", str(mine["id"]), code=1)  # nothing live left to revoke
    tgw("token", "revoke", code=2)
    tgw("token", "create", "--user", "a1-admin", code=1)  # an administrator only: not an officer


def test_registration_approve_writes_the_carry_file(tgw, env, demo_pki):
    from outer_zone.registration import submit
    from tgw_common.pki.certs import fingerprint, load_certificate
    from tgw_common.pki.trust import TrustStore
    from tgw_common.registry import SignerRegistry

    from .test_web import _new_cert

    trust = TrustStore.from_config(env.config().trust)
    pem = _new_cert(demo_pki, "新主辦會計 accountant")
    first = submit(env.engine(), trust, agency=A1, role="accountant", cert_data=pem, requested_by="a1-admin",
                   ip="127.0.0.1")
    second = submit(env.engine(), trust, agency=A1, role="releaser", cert_data=_new_cert(demo_pki, "x releaser"),
                    requested_by="a1-admin", ip="127.0.0.1")
    pending = json.loads(tgw("registration", "list", "--json").output)
    assert [r["id"] for r in pending] == [first.id, second.id]
    out = tgw("registration", "approve", str(first.id), "--note", "紙本申請已核對").output
    carry = env.folder / "certreq" / f"{first.id}.certreq.json"
    assert str(carry) in out
    document = json.loads(carry.read_text(encoding="utf-8"))
    cert = load_certificate(document["certificate_pem"].encode())
    assert document["fingerprint_sha256"] == fingerprint(cert) == first.fingerprint
    assert (document["agency"], document["role"], document["delegate"]) == (A1, "accountant", False)
    entry = SignerRegistry(env.engine()).get(first.fingerprint)
    assert (entry.agency, entry.role) == (A1, "accountant")
    tgw("registration", "approve", str(first.id), code=1)  # already decided
    tgw("registration", "reject", str(second.id), "--note", "憑證用途不符")
    assert SignerRegistry(env.engine()).get(second.fingerprint) is None
    decided = {r["id"]: r["status"] for r in json.loads(tgw("registration", "list", "--status", "all",
                                                             "--json").output)}
    assert decided == {first.id: "approved", second.id: "rejected"}
    actions = [e["action"] for e in json.loads(tgw("audit", "--json").output)]
    assert {"registration_approved", "registration_rejected", "cert_request_submitted"} <= set(actions)


def test_audit_log_names_the_operator(tgw, env):
    tgw("agency", "add", "C30001", "--name", "稽核測試")
    (entry,) = json.loads(tgw("audit", "--action", "agency_added", "--json").output)
    assert entry["actor"].startswith("cli:") and entry["ip"].startswith("cli@") and entry["target"] == "C30001"


def test_serve_refuses_an_inner_config(env, tmp_path):
    import yaml

    data = yaml.safe_load(env.config_path.read_text())
    data["node"]["zone"] = "inner"
    bad = tmp_path / "inner-as-outer.yaml"
    bad.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(main, ["outer", "serve", "--config", str(bad)])
    assert result.exit_code == 2 and "node.zone must be 'outer'" in result.output


def test_password_stdin_needs_a_password(tgw):
    tgw("user", "set-password", "a1-acc", input="\n", code=2)
    tgw("user", "set-password", "a1-acc", input="Fresh-password-77\n")

