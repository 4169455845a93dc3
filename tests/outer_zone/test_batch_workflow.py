"""A batch from import to release through the API: routing, signatures judged as the inner zone
judges them, returns and changes that discard signatures, delegates, paper, other agencies."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from tgw.demo.documents import generate_documents
from tgw_common.tpe import sign_new

from .conftest import A1, A2, bearer

CMS = "application/pkcs7-mime"
# The batch codes these tests drive through the API (tests/foundation/test_reason_codes.py).
TRIGGERED = ("BATCH_ALL_PAPER", "BATCH_CANNOT_SEAL", "BATCH_WRONG_STATE", "RELEASE_WRONG_CONTENT",
             "RETURN_COMMENT_REQUIRED", "SIGNATURE_ONE_SIGNER", "SIGNATURE_WRONG_CONTENT", "WRONG_MEDIA_TYPE")


def _docs(count: int = 3, seed: int = 21) -> list[dict]:
    return [json.loads(d.data) for d in generate_documents(A1, count, seed=seed,
                                                           kinds=("payment_voucher", "transfer_voucher"))]


class Api:
    def __init__(self, client, env) -> None:
        self.client, self.env = client, env

    def _h(self, user: str, **extra) -> dict:
        return {"Authorization": f"Bearer {self.env.tokens[user]}", **extra}

    def create(self, docs: list[dict], user: str = "a1-prep") -> int:
        r = self.client.post("/api/v1/batches", data=json.dumps(docs, ensure_ascii=False).encode(),
                             headers=self._h(user, **{"Content-Type": "application/json"}))
        assert r.status_code == 201, r.get_json()
        return r.get_json()["batch_id"]

    def view(self, batch_id: int, user: str = "a1-prep"):
        return self.client.get(f"/api/v1/batches/{batch_id}", headers=self._h(user))

    def state(self, batch_id: int) -> str:
        return self.view(batch_id).get_json()["state"]

    def post(self, batch_id: int, step: str, user: str, data=None, content_type: str | None = None, json_=None):
        headers = self._h(user, **({"Content-Type": content_type} if content_type else {}))
        return self.client.post(f"/api/v1/batches/{batch_id}/{step}", data=data, json=json_, headers=headers)

    def get(self, batch_id: int, what: str, user: str):
        return self.client.get(f"/api/v1/batches/{batch_id}/{what}", headers=self._h(user))

    def sign(self, batch_id: int, user: str, cert, key):
        payload = self.get(batch_id, "payload", user)
        assert payload.status_code == 200 and payload.mimetype == "application/zip"
        return self.post(batch_id, "signatures", user, sign_new(payload.data, cert, key), CMS)

    def submitted(self, docs=None) -> int:
        batch_id = self.create(docs or _docs())
        assert self.post(batch_id, "submit", "a1-prep").status_code == 200
        return batch_id


@pytest.fixture
def api(client, env) -> Api:
    return Api(client, env)


def _reason(r) -> str:
    return r.get_json().get("reason")


def test_import_to_release_opens_in_the_inner_zone(api, env, kit, opener):
    docs = _docs(3)
    batch_id = api.submitted(docs)
    assert api.state(batch_id) == "accountant"
    assert api.sign(batch_id, "a1-acc", *kit.pair(A1, "accountant")).status_code == 200
    assert api.state(batch_id) == "head"
    assert api.sign(batch_id, "a1-head", *kit.pair(A1, "head")).status_code == 200
    assert api.state(batch_id) == "releaser"
    sealed = api.get(batch_id, "sealed", "a1-rel")
    assert sealed.status_code == 200 and sealed.mimetype == CMS
    r = api.post(batch_id, "release", "a1-rel", sign_new(sealed.data, *kit.pair(A1, "releaser")), CMS)
    assert r.status_code == 202, r.get_json()
    tracking_id = r.get_json()["tracking_id"]
    assert r.headers["Location"] == f"/api/v1/envelopes/{tracking_id}"
    view = api.view(batch_id).get_json()
    assert (view["state"], view["tracking_id"]) == ("released", tracking_id)
    assert [h["action"] for h in view["history"]] == ["imported", "submitted", "signed", "signed", "sealed",
                                                     "released"]
    assert [s["role"] for s in view["envelope"]["signatures"]] == ["accountant", "head"]
    status = api.client.get(f"/api/v1/envelopes/{tracking_id}", headers=bearer(env.tokens["a1-rel"]))
    assert status.status_code == 200 and status.get_json()["state"] == "accepted"
    [spooled] = env.outbound_files()
    opened = opener.open(env.outbound / spooled)
    assert opened.agency == A1 and opened.envelope_id == view["envelope"]["envelope_id"]
    assert sorted(a.role for a in opened.approvals) == ["accountant", "head"]
    assert list(opened.payload.documents.values()) == docs


def test_an_openssl_signature_is_accepted(api, kit, tmp_path, demo_pki):
    batch_id = api.submitted()
    (tmp_path / "payload.zip").write_bytes(api.get(batch_id, "payload", "a1-acc").data)
    folder = demo_pki / "agencies" / A1
    subprocess.run(["openssl", "cms", "-sign", "-binary", "-nodetach", "-md", "sha256", "-outform", "DER",
                    "-in", str(tmp_path / "payload.zip"), "-signer", str(folder / "accountant.pem"),
                    "-inkey", str(folder / "accountant.key"), "-out", str(tmp_path / "sig.der")], check=True)
    r = api.post(batch_id, "signatures", "a1-acc", (tmp_path / "sig.der").read_bytes(), CMS)
    assert r.status_code == 200, r.get_json()
    assert api.state(batch_id) == "head"


def test_wrong_signer_role_agency_or_content_is_refused(api, kit):
    batch_id = api.submitted()
    assert _reason(api.sign(batch_id, "a1-acc", *kit.pair(A1, "head"))) == "SIGNER_WRONG_ROLE"
    assert _reason(api.sign(batch_id, "a1-acc", *kit.pair(A2, "accountant"))) == "SIGNER_WRONG_AGENCY"
    wrong = api.post(batch_id, "signatures", "a1-acc", sign_new(b"PK other bytes", *kit.pair(A1, "accountant")), CMS)
    assert (wrong.status_code, _reason(wrong)) == (422, "SIGNATURE_WRONG_CONTENT")
    assert _reason(api.post(batch_id, "signatures", "a1-acc", b"\x30\x03\x02\x01\x01", CMS)) == "MALFORMED_DER"
    assert _reason(api.post(batch_id, "signatures", "a1-acc", b"x", "application/octet-stream")) == "WRONG_MEDIA_TYPE"
    # the head's user cannot sign at the accountant's step, whatever card it holds
    forbidden = api.sign(batch_id, "a1-head", *kit.pair(A1, "accountant"))
    assert (forbidden.status_code, _reason(forbidden)) == (403, "FORBIDDEN")
    assert api.state(batch_id) == "accountant"
    assert api.view(batch_id).get_json()["envelope"]["signatures"] == []


def test_steps_out_of_turn_are_refused(api, kit):
    batch_id = api.create(_docs())
    assert _reason(api.get(batch_id, "payload", "a1-acc")) == "BATCH_WRONG_STATE"
    assert _reason(api.get(batch_id, "sealed", "a1-rel")) == "BATCH_WRONG_STATE"
    assert api.post(batch_id, "submit", "a1-acc").status_code == 403  # only the preparer submits a draft
    assert api.post(batch_id, "submit", "a1-prep").status_code == 200
    again = api.post(batch_id, "submit", "a1-prep")
    assert (again.status_code, _reason(again)) == (409, "BATCH_WRONG_STATE")
    assert _reason(api.get(batch_id, "sealed", "a1-rel")) == "BATCH_WRONG_STATE"


def test_return_needs_a_comment_and_discards_signatures(api, kit):
    batch_id = api.submitted()
    first = api.view(batch_id).get_json()["envelope"]
    assert api.sign(batch_id, "a1-acc", *kit.pair(A1, "accountant")).status_code == 200
    assert _reason(api.post(batch_id, "return", "a1-head", json_={"comment": "  "})) == "RETURN_COMMENT_REQUIRED"
    assert _reason(api.post(batch_id, "return", "a1-acc", json_={"comment": "not mine"})) == "FORBIDDEN"
    r = api.post(batch_id, "return", "a1-head", json_={"comment": "第 2 筆受款帳號有誤 account of line 2"})
    assert r.status_code == 200
    view = r.get_json()
    assert view["state"] == "returned" and view["envelope"] is None
    assert [(h["action"], h["role"]) for h in view["history"][-2:]] == [("signatures_discarded", "head"),
                                                                       ("returned", "head")]
    assert view["history"][-1]["comment"] == "第 2 筆受款帳號有誤 account of line 2"
    assert api.post(batch_id, "submit", "a1-prep").status_code == 200
    again = api.view(batch_id).get_json()["envelope"]
    assert again["envelope_id"] != first["envelope_id"] and again["signatures"] == []


def test_a_change_after_a_signature_discards_it(api, kit, client, env):
    batch_id = api.submitted()
    assert api.sign(batch_id, "a1-acc", *kit.pair(A1, "accountant")).status_code == 200
    changed = _docs(2, seed=5)
    r = client.put(f"/api/v1/batches/{batch_id}/documents", data=json.dumps(changed, ensure_ascii=False).encode(),
                   headers=api._h("a1-prep", **{"Content-Type": "application/json"}))
    assert r.status_code == 200, r.get_json()
    view = r.get_json()
    assert (view["state"], view["document_count"], view["envelope"]) == ("draft", 2, None)
    assert [h["action"] for h in view["history"][-2:]] == ["signatures_discarded", "changed"]
    bad = client.put(f"/api/v1/batches/{batch_id}/documents", data=b'[{"kind": "payment_voucher"}]',
                     headers=api._h("a1-prep", **{"Content-Type": "application/json"}))
    assert bad.status_code == 422 and bad.get_json()["errors"]
    assert api.view(batch_id).get_json()["document_count"] == 2  # nothing of the bad file was kept


def test_another_agency_sees_nothing(api, kit):
    batch_id = api.submitted()
    for r in (api.view(batch_id, "a2-rel"), api.get(batch_id, "payload", "a2-rel"),
              api.post(batch_id, "submit", "a2-rel"), api.post(batch_id, "return", "a2-rel", json_={"comment": "x"})):
        assert r.status_code == 404
    listed = api.client.get("/api/v1/batches", headers=api._h("a2-rel")).get_json()
    assert listed == {"batches": []}
    mine = api.client.get("/api/v1/batches?state=accountant", headers=api._h("a1-rel")).get_json()
    assert [b["batch_id"] for b in mine["batches"]] == [batch_id]


def test_delegate_signs_inside_its_window_only(api, kit, env, demo_pki):
    from tgw.demo.pki import Issuer, _key, _name, _usage, issue
    from tgw_common.pki.certs import load_certificate_file, load_private_key_file
    from tgw_common.registry import SignerRegistry

    batch_id = api.submitted()
    gca = Issuer(load_certificate_file(demo_pki / "gca.pem"), load_private_key_file(demo_pki / "gca.key"))
    now = datetime.now(UTC).replace(microsecond=0)
    key = _key(2048)
    cert = issue(_name("過期代理人 late delegate", "Demo Government", A1), key, gca, not_before=now - timedelta(days=30),
                 not_after=now + timedelta(days=300), usage=_usage(sign=True))
    SignerRegistry(env.engine()).add(cert, agency=A1, role="accountant", delegate=True,
                                     window_from=now - timedelta(days=20), window_until=now - timedelta(days=1))
    late = api.sign(batch_id, "a1-acc", cert, key)
    assert (late.status_code, _reason(late)) == (422, "DELEGATE_OUTSIDE_WINDOW")
    ok = api.sign(batch_id, "a1-acc", *kit.pair(A1, "delegate"))
    assert ok.status_code == 200, ok.get_json()
    assert ok.get_json()["envelope"]["signatures"][0]["delegate"] is True


def test_paper_documents_stay_out_of_the_envelope(api, kit):
    docs = [json.loads(d.data) for d in generate_documents(A1, 2, seed=4, kinds=["payment_voucher"])]
    big = docs[0]
    big["payees"] = [{**big["payees"][0], "amount": 150_000_000}]
    big["total_amount"] = 150_000_000
    batch_id = api.submitted(docs)
    envelope = api.view(batch_id).get_json()["envelope"]
    assert envelope["document_count"] == 1 and envelope["total_amount"] < 150_000_000
    only_paper = api.create([big])
    r = api.post(only_paper, "submit", "a1-prep")
    assert (r.status_code, _reason(r)) == (409, "BATCH_ALL_PAPER")


def test_released_plaintext_is_purged(api, kit, app):
    batch_id = api.submitted()
    api.sign(batch_id, "a1-acc", *kit.pair(A1, "accountant"))
    api.sign(batch_id, "a1-head", *kit.pair(A1, "head"))
    sealed = api.get(batch_id, "sealed", "a1-rel").data
    assert api.post(batch_id, "release", "a1-rel", sign_new(sealed, *kit.pair(A1, "releaser")), CMS).status_code == 202
    workflow = app.extensions["tgw_outer"].workflow
    assert workflow.purge_plaintext() == 0  # kept for outer.batch_plaintext_hours (24)
    assert workflow.purge_plaintext(datetime.now(UTC) + timedelta(hours=25)) == 1
    view = api.view(batch_id).get_json()
    assert view["envelope"]["plaintext_purged"] and view["envelope"]["sealed_sha256"]
    assert view["history"][-1]["action"] == "purged"
    assert _reason(api.get(batch_id, "payload", "a1-acc")) == "BATCH_WRONG_STATE"


def test_release_of_other_bytes_is_refused(api, kit, envelopes):
    batch_id = api.submitted()
    api.sign(batch_id, "a1-acc", *kit.pair(A1, "accountant"))
    api.sign(batch_id, "a1-head", *kit.pair(A1, "head"))
    r = api.post(batch_id, "release", "a1-rel", envelopes.valid(), CMS)
    assert (r.status_code, _reason(r)) == (422, "RELEASE_WRONG_CONTENT")
    sealed = api.get(batch_id, "sealed", "a1-rel").data
    by_head = api.post(batch_id, "release", "a1-rel", sign_new(sealed, *kit.pair(A1, "head")), CMS)
    assert (by_head.status_code, _reason(by_head)) == (422, "SIGNER_WRONG_ROLE")
    assert api.state(batch_id) == "releaser"


def test_an_id_past_any_row_is_not_found(api):
    """A batch id beyond a 64-bit key cannot exist: 404, never an overflow in the database driver."""
    for batch_id in (2**63 - 1, 2**63, 10**30):
        assert api.view(batch_id).status_code == 404
        assert api.post(batch_id, "submit", "a1-prep").status_code == 404


def test_a_return_comment_body_is_small(api):
    batch_id = api.submitted()
    r = api.post(batch_id, "return", "a1-acc", json_={"comment": "x" * (300 * 1024)})
    assert r.status_code == 413
    assert api.state(batch_id) == "accountant"


def test_another_agencys_change_is_not_found_before_its_documents_are_read(api, client, env):
    batch_id = api.create(_docs())
    body = json.dumps(_docs(1, seed=9), ensure_ascii=False).encode()  # A10001's documents, valid for A10001
    r = client.put(f"/api/v1/batches/{batch_id}/documents", data=body,
                   headers=api._h("a2-rel", **{"Content-Type": "application/json"}))
    assert r.status_code == 404


def test_two_signers_at_once_are_refused(api, kit):
    from tgw_common.tpe import add_signature

    batch_id = api.submitted()
    payload = api.get(batch_id, "payload", "a1-acc").data
    both = add_signature(sign_new(payload, *kit.pair(A1, "accountant")), *kit.pair(A1, "head"))
    r = api.post(batch_id, "signatures", "a1-acc", both, CMS)
    assert (r.status_code, _reason(r)) == (422, "SIGNATURE_ONE_SIGNER")


def test_without_the_treasury_certificate_the_head_cannot_seal(env, kit, app_for):
    import yaml

    data = yaml.safe_load(env.config_path.read_text())
    del data["treasury"]
    env.config_path.write_text(yaml.safe_dump(data, allow_unicode=True))
    api = Api(app_for().test_client(), env)
    batch_id = api.submitted()
    assert api.sign(batch_id, "a1-acc", *kit.pair(A1, "accountant")).status_code == 200
    r = api.sign(batch_id, "a1-head", *kit.pair(A1, "head"))
    assert (r.status_code, _reason(r)) == (503, "BATCH_CANNOT_SEAL")
    assert api.state(batch_id) == "head"  # nothing half-done: the head may sign again once configured
