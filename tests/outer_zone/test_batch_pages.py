"""The portal's batch pages through the Flask test client: entry by form (every kind), errors at
their fields with every value kept, file import, the batch page with its history, the print
view, agency scoping, and the routing steps on the page with key-file signatures."""

from __future__ import annotations

import csv
import html
import io
import json
import re

import pytest
import yaml
from sqlalchemy import func, select

from outer_zone.batches.csvfile import HEADER_COLUMNS, LINE_COLUMNS, LINES_FIELD
from outer_zone.models import Batch, BatchDocument
from tests.agency_signer.conftest import cards, start_signer  # noqa: F401 - fixtures: demo IC cards, their signer
from tgw.demo.documents import generate_documents
from tgw_common.db import transaction
from tgw_common.documents import KINDS, document_amount
from tgw_common.tpe import sign_new

from .conftest import A1, A2, csrf_of, web_login

CMS = "application/pkcs7-mime"
ERROR_AT = re.compile(r'<p class="field-error" data-field="([^"]+)">([^<]*)</p>')


def _demo(count: int, seed: int = 7, kinds=("payment_voucher", "transfer_voucher")) -> list[dict]:
    return [json.loads(d.data) for d in generate_documents(A1, count, seed=seed, kinds=kinds)]


def _flat(doc: dict, prefix: str = "") -> dict[str, str]:
    """A document as the entry form posts it: d<N>.<JSON path> -> text."""
    out = {}
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, path + "."))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                out.update(_flat(item, f"{path}[{i}]."))
        else:
            out[path] = str(value)
    return out


def _form(docs: list[dict], **extra) -> dict[str, str]:
    data = {}
    for n, doc in enumerate(docs):
        data.update({f"d{n}.{k}": v for k, v in _flat(doc).items()})
    data.update(extra)
    return data


def _page(client, path: str) -> str:
    r = client.get(path)
    assert r.status_code == 200, (path, r.status_code)
    return r.get_data(as_text=True)


def _post_form(client, data: dict, path: str = "/batches/new"):
    token = csrf_of(_page(client, path))
    return client.post(path, data={**data, "csrf_token": token})


def _stored_batches(env) -> int:
    with transaction(env.engine()) as s:
        return s.scalar(select(func.count()).select_from(Batch))


def _errors(page: str) -> dict[str, str]:
    return {path: html.unescape(text) for path, text in ERROR_AT.findall(page)}


def _value(page: str, name: str) -> str | None:
    found = re.search(r'name="' + re.escape(name) + r'" value="([^"]*)"', page)
    return html.unescape(found.group(1)) if found else None


@pytest.fixture
def prep(client):
    assert web_login(client, "a1-prep").status_code == 302
    return client


def _csv(docs: list[dict]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*HEADER_COLUMNS, *LINE_COLUMNS])
    for doc in docs:
        for line in doc[LINES_FIELD[doc["kind"]]]:
            writer.writerow([doc.get(n, "") for n in HEADER_COLUMNS] + [line.get(f, "") for f in LINE_COLUMNS.values()])
    return out.getvalue().encode()


# --- entry by form
@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_has_a_form_from_its_schema(prep, kind):
    from tgw_common.documents.schema import fields

    page = _page(prep, f"/batches/new?kind={kind}")
    assert f'data-kind="{kind}"' in page and f'name="d0.kind" value="{kind}"' in page
    for field in fields(kind):
        if field.path == "$.kind":
            continue
        name = "d0." + field.path[2:].replace("[*]", "[0]")
        if field.type.startswith("array"):
            assert f'data-rows="{name}"' in page, name
        elif field.type != "object":
            assert f'name="{name}"' in page, name
    assert _value(page, "d0.agency_code") == A1
    # Each input is labelled with its schema's zh-TW title, or in English after the switch.
    labels = _labels(page)
    for field in fields(kind):
        name = "d0." + field.path[2:].replace("[*]", "[0]")
        if name in labels:
            assert labels[name] == field.title, name
    prep.get("/lang/en")
    english = _labels(_page(prep, f"/batches/new?kind={kind}"))
    assert english.keys() == labels.keys()
    assert all(text and not HAN.search(text) for text in english.values()), english


HAN = re.compile(r"[\u3400-\u9fff]")


def _labels(page: str) -> dict[str, str]:
    """Each input's label text (without the required mark), by the input's name."""
    found = re.findall(r'<label for="(d0\.[^"]+)"[^>]*>([^<]*)', page)
    return {name: html.unescape(text).strip() for name, text in found}


def test_form_entry_makes_a_draft_batch_through_the_validators(prep, env):
    docs = _demo(3, seed=31)
    r = _post_form(prep, _form(docs, op="save"))
    assert r.status_code == 302, _errors(r.get_data(as_text=True))
    batch_id = int(r.headers["Location"].rsplit("/", 1)[1])
    with transaction(env.engine()) as s:
        stored = s.scalars(select(BatchDocument).where(BatchDocument.batch_id == batch_id)
                           .order_by(BatchDocument.position)).all()
        assert [d.kind for d in stored] == [d["kind"] for d in docs]
        assert [document_amount(d.kind, d.document) for d in stored] == [document_amount(d["kind"], d) for d in docs]
        assert [d.document["voucher_no"] for d in stored] == [d["voucher_no"] for d in docs]
    page = _page(prep, f"/batches/{batch_id}")
    assert 'id="batch-state" data-state="draft"' in page
    total = sum(document_amount(d["kind"], d) for d in docs)
    assert f"NT$ {total:,}" in page
    assert page.count('<tr data-position=') == 3
    assert docs[0]["voucher_no"] in page
    history = page[page.index('id="history"'):]
    assert 'data-action="entered"' in history and "a1-prep" in history and "承辦人" in history
    listing = _page(prep, "/batches")
    assert f'data-batch-id="{batch_id}" data-state="draft"' in listing and f"{total:,}" in listing


def test_errors_stand_at_their_fields_and_every_value_is_kept(prep, env):
    docs = _demo(2, seed=32, kinds=["payment_voucher"])
    docs[0]["voucher_date"] = "1151340"  # month 13
    docs[0]["payees"][1 if len(docs[0]["payees"]) > 1 else 0]["bank_code"] = "9999999"
    bad_row = 1 if len(docs[0]["payees"]) > 1 else 0
    del docs[1]["budget_account"]
    docs[1]["purpose"] = "辦公用品 <採購>"
    r = _post_form(prep, _form(docs, op="save"))
    assert r.status_code == 422
    page = r.get_data(as_text=True)
    errors = _errors(page)
    assert "BAD_ROC_DATE" in errors["voucher_date"]
    assert "BAD_BANK_CODE" in errors[f"payees[{bad_row}].bank_code"]
    assert "DOCUMENT_INVALID" in errors["budget_account"]
    # The values come back as typed, escaped, in both documents.
    assert _value(page, "d0.voucher_date") == "1151340"
    assert _value(page, f"d0.payees[{bad_row}].bank_code") == "9999999"
    assert _value(page, "d1.purpose") == "辦公用品 <採購>"
    assert _value(page, "d1.voucher_no") == docs[1]["voucher_no"]
    assert 'id="form-errors"' in page
    # Errors in document 1 are shown in document 1's block, not in document 0's.
    second = page[page.index('id="doc-1"'):]
    assert 'data-field="budget_account"' in second and 'data-field="voucher_date"' not in second
    assert _stored_batches(env) == 0


def test_rows_and_documents_are_added_and_removed_without_script(prep):
    page = _page(prep, "/batches/new")
    base = {"d0.kind": "payment_voucher", "d0.voucher_no": "1150000001", "d0.payees[0].name": "甲"}
    r = _post_form(prep, {**base, "op": "add-row:0:payees"})
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and 'name="d0.payees[1].name"' in page
    assert _value(page, "d0.payees[0].name") == "甲" and _value(page, "d0.voucher_no") == "1150000001"
    # Removing row 0 moves row 1 up.
    r = _post_form(prep, {**base, "d0.payees[1].name": "乙", "op": "remove-row:0:payees:0"})
    page = r.get_data(as_text=True)
    assert _value(page, "d0.payees[0].name") == "乙" and 'name="d0.payees[1].name"' not in page
    # Another document of another kind, then away with the first.
    r = _post_form(prep, {**base, "op": "add-doc", "add_kind": "revenue_refund"})
    page = r.get_data(as_text=True)
    assert 'data-kind="revenue_refund"' in page and 'name="d1.payee.name"' in page
    r = _post_form(prep, {**base, "d1.kind": "revenue_refund", "d1.reason": "溢繳", "op": "remove-doc:0"})
    page = r.get_data(as_text=True)
    assert 'data-kind="payment_voucher"' not in page and _value(page, "d0.reason") == "溢繳"
    # A row numbering with gaps (the script's) is read in order; a stale button changes nothing.
    r = _post_form(prep, {**base, "d0.payees[7].name": "丙", "op": "remove-row:0:payees:9"})
    page = r.get_data(as_text=True)
    assert _value(page, "d0.payees[0].name") == "甲" and _value(page, "d0.payees[1].name") == "丙"


def test_blank_rows_are_dropped_and_an_empty_batch_is_refused(prep, env):
    docs = _demo(1, seed=33, kinds=["transfer_voucher"])
    data = _form(docs, op="save")
    data["d0.recipients[5].name"] = ""  # an added row left empty
    r = _post_form(prep, data)
    assert r.status_code == 302, _errors(r.get_data(as_text=True))
    r = _post_form(prep, {"op": "save"})
    assert r.status_code == 422 and "至少要有一筆文件" in r.get_data(as_text=True)
    prep.get("/lang/en")
    r = _post_form(prep, {"op": "save"})
    assert r.status_code == 422 and "a batch needs at least one document" in r.get_data(as_text=True)
    assert _stored_batches(env) == 1


# --- import by file
def test_file_import_lists_errors_per_row_and_column(prep, env):
    docs = _demo(2, seed=34, kinds=["payment_voucher"])
    docs[1]["payees"][-1]["bank_code"] = "9999999"
    token = csrf_of(_page(prep, "/batches/new"))
    r = prep.post("/batches/import", data={"csrf_token": token, "file": (io.BytesIO(_csv(docs)), "batch.csv")},
                  content_type="multipart/form-data")
    assert r.status_code == 422
    page = r.get_data(as_text=True)
    table = page[page.index('id="import-errors"'):]
    row = len(docs[0]["payees"]) + len(docs[1]["payees"]) + 1
    assert 'data-code="BAD_BANK_CODE"' in table and f"row {row}, column payee_bank_code" in table
    assert "第 2 筆" in table
    big5 = _csv(docs).decode().encode("big5", errors="replace")
    r = prep.post("/batches/import", data={"csrf_token": token, "file": (io.BytesIO(big5), "big5.csv")},
                  content_type="multipart/form-data")
    assert r.status_code == 422 and 'data-code="DOCUMENT_INVALID"' in r.get_data(as_text=True)
    assert _stored_batches(env) == 0
    good = json.dumps(_demo(2, seed=35), ensure_ascii=False).encode()
    r = prep.post("/batches/import", data={"csrf_token": token, "file": (io.BytesIO(good), "batch.json")},
                  content_type="multipart/form-data")
    assert r.status_code == 302 and _stored_batches(env) == 1
    r = prep.post("/batches/import", data={"csrf_token": token}, content_type="multipart/form-data")
    assert r.status_code == 422 and 'data-code="EMPTY_UPLOAD"' in r.get_data(as_text=True)


def test_import_needs_the_csrf_token(prep, env):
    r = prep.post("/batches/import", data={"file": (io.BytesIO(b"[]"), "x.json")}, content_type="multipart/form-data")
    assert r.status_code == 403 and _stored_batches(env) == 0


# --- who sees what
def test_any_officer_sees_only_a_preparer_creates(client, env):
    web_login(client, "a1-acc")
    assert client.get("/batches").status_code == 200
    assert 'id="new-batch"' not in client.get("/batches").get_data(as_text=True)
    r = client.get("/batches/new")
    assert r.status_code == 403 and 'data-reason="FORBIDDEN"' in r.get_data(as_text=True)
    token = csrf_of(client.get("/batches").get_data(as_text=True))
    assert client.post("/batches/new", data={"csrf_token": token, "op": "save"}).status_code == 403
    releaser = client.application.test_client()
    web_login(releaser, "a1-rel")
    assert releaser.get("/batches/new").status_code == 200


def test_another_agencys_batch_does_not_exist(prep, client, env):
    batch_id = int(_post_form(prep, _form(_demo(1, seed=36), op="save")).headers["Location"].rsplit("/", 1)[1])
    other = client.application.test_client()
    web_login(other, "a2-rel")
    for path in ("", "/print", "/edit", "/payload", "/sealed"):
        assert other.get(f"/batches/{batch_id}{path}").status_code == 404, path
    token = csrf_of(other.get("/batches").get_data(as_text=True))
    assert other.post(f"/batches/{batch_id}/submit", data={"csrf_token": token}).status_code == 404
    assert f'data-batch-id="{batch_id}"' not in other.get("/batches").get_data(as_text=True)
    assert other.get("/batches/999999").status_code == 404


# --- print view and paper
def _with_limit(env, limit: int) -> None:
    data = yaml.safe_load(env.config_path.read_text())
    data["documents"] = {"epayment_limit": limit}
    env.config_path.write_text(yaml.safe_dump(data, allow_unicode=True))


def test_print_view_shows_every_field_and_paper_vouchers_with_signature_lines(env, app_for):
    docs = _demo(4, seed=37)
    limit = sorted(document_amount(d["kind"], d) for d in docs)[1]  # two documents above it
    _with_limit(env, limit)
    client = app_for().test_client()
    web_login(client, "a1-prep")
    r = _post_form(client, _form(docs, op="save"))
    assert r.status_code == 302, _errors(r.get_data(as_text=True))
    batch_id = int(r.headers["Location"].rsplit("/", 1)[1])
    over = [n for n, d in enumerate(docs) if document_amount(d["kind"], d) > limit
            or any(int(p["amount"]) > limit for p in d[LINES_FIELD[d["kind"]]])]
    page = _page(client, f"/batches/{batch_id}")
    assert [int(p) for p in re.findall(r'data-position="(\d+)" data-kind="\w+" data-paper="yes"', page)] == over
    printed = _page(client, f"/batches/{batch_id}/print")
    assert "財政部示範機關" in printed and A1 in printed and f"#{batch_id}" in printed
    assert "文件批次" in printed and "Batch of documents" not in printed  # one language: zh-TW by default
    for doc in docs:
        assert doc["voucher_no"] in printed and doc["budget_account"] in printed
        for line in doc[LINES_FIELD[doc["kind"]]]:
            assert html.escape(line["name"]) in printed
    assert printed.count("data-paper-voucher") == len(over) and printed.count('class="sign-line"') == 8 * len(over)
    assert "主辦會計" in printed and "機關長官" in printed
    assert 'href="/static/batches.css"' in printed
    client.get("/lang/en")  # the paper follows the page's language
    printed = _page(client, f"/batches/{batch_id}/print")
    assert "Batch of documents" in printed and "文件批次" not in printed and "財政部示範機關" in printed
    assert printed.count("data-paper-voucher") == len(over) and "chief accountant" in printed and "agency head" in printed


# --- the routing steps on the page
def _login(app, user: str):
    client = app.test_client()
    assert web_login(client, user, agency=A1 if user.startswith("a1-") else A2).status_code == 302
    return client


def _csrf(client, batch_id: int) -> str:
    return csrf_of(_page(client, f"/batches/{batch_id}"))


def _sign(client, batch_id: int, cert, key):
    payload = client.get(f"/batches/{batch_id}/payload")
    assert payload.status_code == 200 and payload.mimetype == "application/zip"
    return client.post(f"/batches/{batch_id}/signatures", data=sign_new(payload.data, cert, key),
                       headers={"Content-Type": CMS, "X-CSRFToken": _csrf(client, batch_id),
                                "Accept": "application/json"})


def test_a_batch_goes_from_the_form_to_release_on_its_page(app, env, kit, opener):
    prep, acc, head, rel = (_login(app, u) for u in ("a1-prep", "a1-acc", "a1-head", "a1-rel"))
    docs = _demo(2, seed=38)
    batch_id = int(_post_form(prep, _form(docs, op="save")).headers["Location"].rsplit("/", 1)[1])
    page = _page(prep, f"/batches/{batch_id}")
    assert 'id="submit-button"' in page and 'id="sign-button"' not in page
    assert "connect-src 'self' http://127.0.0.1:*" in prep.get(f"/batches/{batch_id}").headers["Content-Security-Policy"]
    assert 'id="submit-button"' not in _page(acc, f"/batches/{batch_id}")
    r = prep.post(f"/batches/{batch_id}/submit", data={"csrf_token": _csrf(prep, batch_id)})
    assert r.status_code == 302
    page = _page(acc, f"/batches/{batch_id}")
    assert 'data-state="accountant"' in page and 'id="sign-button"' in page and 'id="return-form"' in page
    assert 'id="signer-url"' in page and f'data-source="/batches/{batch_id}/payload"' in page
    # A signature needs the CSRF token like any form; a wrong card is refused with its code.
    payload = acc.get(f"/batches/{batch_id}/payload").data
    r = acc.post(f"/batches/{batch_id}/signatures", data=sign_new(payload, *kit.pair(A1, "accountant")),
                 headers={"Content-Type": CMS, "Accept": "application/json"})
    assert r.status_code == 403
    r = _sign(acc, batch_id, *kit.pair(A1, "head"))
    assert (r.status_code, r.get_json()["reason"]) == (422, "SIGNER_WRONG_ROLE") and r.get_json()["reason_zh"]
    r = _sign(acc, batch_id, *kit.pair(A1, "accountant"))
    assert r.status_code == 200 and r.get_json()["state"] == "head"
    r = _sign(head, batch_id, *kit.pair(A1, "head"))
    assert r.status_code == 200 and r.get_json()["state"] == "releaser"
    page = _page(rel, f"/batches/{batch_id}")
    assert 'id="release-button"' in page and 'id="signatures"' in page
    sealed = rel.get(f"/batches/{batch_id}/sealed")
    assert sealed.status_code == 200 and sealed.mimetype == CMS
    r = rel.post(f"/batches/{batch_id}/release", data=sign_new(sealed.data, *kit.pair(A1, "releaser")),
                 headers={"Content-Type": CMS, "X-CSRFToken": _csrf(rel, batch_id), "Accept": "application/json"})
    assert r.status_code == 202, r.get_json()
    tracking_id = r.get_json()["tracking_id"]
    assert r.get_json()["status_url"] == f"/status?q={tracking_id}"
    page = _page(prep, f"/batches/{batch_id}")
    assert 'data-state="released"' in page and tracking_id in page and 'id="actions"' not in page
    history = page[page.index('id="history"'):]
    assert re.findall(r'data-action="(\w+)"', history) == ["entered", "submitted", "signed", "signed", "sealed",
                                                           "released"]
    [spooled] = env.outbound_files()
    assert opener.open(env.outbound / spooled).agency == A1
    r = prep.get(f"/batches/{batch_id}/edit")
    assert r.status_code == 409 and 'data-reason="BATCH_WRONG_STATE"' in r.get_data(as_text=True)


def test_return_needs_a_comment_and_shows_it_in_the_history(app, kit):
    prep, acc = _login(app, "a1-prep"), _login(app, "a1-acc")
    batch_id = int(_post_form(prep, _form(_demo(1, seed=39), op="save")).headers["Location"].rsplit("/", 1)[1])
    prep.post(f"/batches/{batch_id}/submit", data={"csrf_token": _csrf(prep, batch_id)})
    r = acc.post(f"/batches/{batch_id}/return", data={"csrf_token": _csrf(acc, batch_id), "comment": "  "})
    page = r.get_data(as_text=True)
    assert r.status_code == 400 and 'data-reason="RETURN_COMMENT_REQUIRED"' in page and "退回須附說明" in page
    # The preparer cannot return nor submit twice: refused on the page with the code.
    r = prep.post(f"/batches/{batch_id}/submit", data={"csrf_token": _csrf(prep, batch_id)})
    assert r.status_code == 409 and 'data-reason="BATCH_WRONG_STATE"' in r.get_data(as_text=True)
    r = acc.post(f"/batches/{batch_id}/return", data={"csrf_token": _csrf(acc, batch_id),
                                                        "comment": "預算科目有誤 <請更正>"})
    assert r.status_code == 302
    page = _page(prep, f"/batches/{batch_id}")
    assert 'data-state="returned"' in page
    assert '<td class="comment">預算科目有誤 &lt;請更正&gt;</td>' in page
    assert 'id="submit-button"' in page and 'id="edit-link"' in page


def test_editing_a_signed_batch_warns_then_discards_the_signatures(app, kit):
    prep, acc = _login(app, "a1-prep"), _login(app, "a1-acc")
    docs = _demo(2, seed=40)
    batch_id = int(_post_form(prep, _form(docs, op="save")).headers["Location"].rsplit("/", 1)[1])
    prep.post(f"/batches/{batch_id}/submit", data={"csrf_token": _csrf(prep, batch_id)})
    assert _sign(acc, batch_id, *kit.pair(A1, "accountant")).status_code == 200
    assert 'id="edit-note"' in _page(prep, f"/batches/{batch_id}")
    page = _page(prep, f"/batches/{batch_id}/edit")
    assert 'id="edit-warning"' in page and "作廢" in page and "data-confirm=" in page
    assert _value(page, "d0.voucher_no") == docs[0]["voucher_no"]
    assert _value(page, "d1.voucher_no") == docs[1]["voucher_no"]
    # An error keeps the batch as it was.
    form = _form(docs, op="save")
    form["d1.voucher_date"] = "1150230"
    r = _post_form(prep, form, f"/batches/{batch_id}/edit")
    assert r.status_code == 422 and "BAD_ROC_DATE" in _errors(r.get_data(as_text=True))["voucher_date"]
    assert 'data-state="head"' in _page(prep, f"/batches/{batch_id}")
    form["d1.voucher_date"] = docs[1]["voucher_date"]
    form["d0.purpose"] = "已更正 corrected"
    r = _post_form(prep, form, f"/batches/{batch_id}/edit")
    assert r.status_code == 302
    page = _page(prep, f"/batches/{batch_id}")
    assert 'data-state="draft"' in page and 'id="signatures"' not in page
    history = page[page.index('id="history"'):]
    assert re.findall(r'data-action="(\w+)"', history)[-2:] == ["signatures_discarded", "changed"]
    assert "已更正 corrected" in _page(prep, f"/batches/{batch_id}/print")


def test_an_all_paper_batch_cannot_be_submitted(env, app_for):
    _with_limit(env, 1)
    app = app_for()
    prep = _login(app, "a1-prep")
    batch_id = int(_post_form(prep, _form(_demo(1, seed=41), op="save")).headers["Location"].rsplit("/", 1)[1])
    r = prep.post(f"/batches/{batch_id}/submit", data={"csrf_token": _csrf(prep, batch_id)})
    assert r.status_code == 409 and 'data-reason="BATCH_ALL_PAPER"' in r.get_data(as_text=True)


@pytest.mark.parametrize("user", ["a2-rel"])
def test_the_other_agency_cannot_reach_a_batch_step(app, user):
    prep = _login(app, "a1-prep")
    batch_id = int(_post_form(prep, _form(_demo(1, seed=42), op="save")).headers["Location"].rsplit("/", 1)[1])
    other = _login(app, user)
    token = csrf_of(_page(other, "/batches"))
    for step in ("submit", "return", "signatures", "release"):
        r = other.post(f"/batches/{batch_id}/{step}", data=b"x",
                       headers={"Content-Type": CMS, "X-CSRFToken": token, "Accept": "application/json"})
        assert r.status_code == 404, step
    assert A2 not in _page(prep, f"/batches/{batch_id}")


# --- in a real browser (Debian chromium through Playwright) against a real gunicorn
CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    import os

    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield b
        b.close()


@pytest.fixture
def context(browser, served):
    context = browser.new_context(base_url=served.base, locale="zh-TW", viewport={"width": 1400, "height": 900})
    context.set_default_timeout(20_000)
    yield context
    context.close()


def _browser_page(context):
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.problems = problems
    return page


def _sign_in(context, username: str):
    from .conftest import PASSWORD

    page = _browser_page(context)
    page.goto("/login")
    page.fill("#agency", A1)
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_load_state()
    return page


def _voucher(seed: int, payees: int) -> dict:
    for doc in _demo(12, seed=seed, kinds=["payment_voucher"]):
        if len(doc["payees"]) >= payees:
            doc["payees"] = doc["payees"][:payees]
            doc["total_amount"] = sum(int(p["amount"]) for p in doc["payees"])
            return doc
    raise AssertionError("no demo voucher with enough payees")


def _fill(page, prefix: str, values: dict) -> None:
    for path, value in values.items():
        target = page.locator(f'[name="{prefix}{path}"]')
        if target.evaluate("e => e.tagName") == "SELECT":
            target.select_option(value)
        else:
            target.fill(value)


@pytest.mark.browser
def test_form_entry_in_the_browser_adds_rows_and_shows_errors_at_fields(context, artifacts):
    doc = _voucher(51, 2)
    page = _sign_in(context, "a1-prep")
    page.click("#nav-batches")
    page.click("#new-batch")
    assert page.locator('[name="d0.agency_code"]').input_value() == A1
    header = {k: str(v) for k, v in _flat(doc).items() if not k.startswith("payees") and k != "kind"}
    _fill(page, "d0.", header)
    _fill(page, "d0.", {k: v for k, v in _flat(doc).items() if k.startswith("payees[0].")})
    rows = page.locator('[data-rows="d0.payees"] tbody tr')
    page.click('[data-rows="d0.payees"] [data-add-row]')
    page.click('[data-rows="d0.payees"] [data-add-row]')
    assert rows.count() == 3  # added by the script: no round trip
    second = {k.replace("payees[1].", ""): v for k, v in _flat(doc).items() if k.startswith("payees[1].")}
    _fill(page, "d0.payees[1].", {**second, "bank_code": "9999999"})
    rows.nth(2).locator("[data-remove-row]").click()
    assert rows.count() == 2
    page.click("#entry-submit")
    page.wait_for_selector("#form-errors")
    error = page.locator('.field-error[data-field="payees[1].bank_code"]')
    assert "BAD_BANK_CODE" in error.inner_text()
    assert page.locator('[name="d0.payees[1].bank_code"]').get_attribute("aria-invalid") == "true"
    assert page.locator('[name="d0.payees[1].bank_code"]').input_value() == "9999999"
    assert page.locator('[name="d0.voucher_no"]').input_value() == doc["voucher_no"]
    page.screenshot(path=str(artifacts / "outer-batch-entry-errors.png"), full_page=True)
    page.fill('[name="d0.payees[1].bank_code"]', second["bank_code"])
    page.press('[name="d0.payees[1].bank_code"]', "Enter")  # Enter saves, it never removes a row
    page.wait_for_url(re.compile(r".*/batches/[0-9]+$"))
    assert page.get_attribute("#batch-state", "data-state") == "draft"
    assert page.locator("#documents tbody tr").count() == 1
    assert f"{doc['total_amount']:,}" in page.inner_text("#batch-total")
    page.screenshot(path=str(artifacts / "outer-batch-page.png"), full_page=True)
    # (The 422 of the refused entry is logged as a failed load; nothing else may be.)
    assert not [p for p in page.problems if "422" not in p], page.problems


@pytest.mark.browser
def test_print_view_hides_the_menu_and_prints_in_zh_tw(context, served, artifacts):
    page = _sign_in(context, "a1-prep")
    page.goto("/batches/new?kind=transfer_voucher")
    token = page.locator('#import-form input[name="csrf_token"]').input_value()
    docs = _demo(3, seed=52)
    page.set_input_files("#batch-file", files=[{"name": "batch.json", "mimeType": "application/json",
                                                "buffer": json.dumps(docs, ensure_ascii=False).encode()}])
    assert token
    page.click("#import-submit")
    page.wait_for_url(re.compile(r".*/batches/[0-9]+$"))
    page.click("#print-link")
    page.wait_for_url(re.compile(r".*/print$"))
    assert page.locator("header.top").is_visible() and page.locator("#print-button").is_visible()
    page.emulate_media(media="print")
    assert not page.locator("header.top").is_visible()
    assert not page.locator("#print-button").is_visible() and not page.locator("footer").is_visible()
    assert page.locator(".print-doc").count() == 3
    text = page.inner_text("main")
    assert "文件批次" in text and "Batch of documents" not in text and "財政部示範機關" in text
    pdf = page.pdf(path=str(artifacts / "outer-batch-print.pdf"), format="A4")
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
    page.screenshot(path=str(artifacts / "outer-batch-print.png"), full_page=True)
    assert not page.problems, page.problems


def _officer_page(browser, served, username: str):
    context = browser.new_context(base_url=served.base, locale="zh-TW", viewport={"width": 1400, "height": 900})
    context.set_default_timeout(20_000)
    return _sign_in(context, username)


def _card_step(page, service, pin: str, button: str, *, wrong_pin_first: bool = False):
    """Press the step's button; on the signer's own page (the popup) type the PIN and confirm."""
    expect = pytest.importorskip("playwright.sync_api").expect
    page.fill("#signer-url", service.origin)
    with page.context.expect_page() as opened:
        page.click(button)
    officer = opened.value
    officer.wait_for_load_state()
    assert page.get_attribute("#confirm-link", "href") == officer.url
    if wrong_pin_first:
        officer.fill("input[name=pin]", "00000000")
        officer.click("button[value=confirm]")
        officer.wait_for_load_state()
        expect(page.locator("#sign-progress")).to_contain_text("PIN_INCORRECT")
    officer.fill("input[name=pin]", pin)
    officer.click("button[value=confirm]")
    officer.wait_for_load_state()
    return officer


@pytest.mark.browser
def test_officers_sign_and_release_with_their_cards_on_the_batch_page(browser, served, start_signer, cards,  # noqa: F811
                                                                       artifacts):
    from tests.agency_signer.conftest import pin_of

    expect = pytest.importorskip("playwright.sync_api").expect
    services = {role: start_signer(f"{A1}-{role}", portal_origin=served.base)
                for role in ("accountant", "head", "releaser")}
    prep = _officer_page(browser, served, "a1-prep")
    prep.goto("/batches/new")
    prep.set_input_files("#batch-file", files=[{"name": "batch.json", "mimeType": "application/json",
                                                "buffer": json.dumps(_demo(2, seed=53), ensure_ascii=False).encode()}])
    prep.click("#import-submit")
    prep.wait_for_url(re.compile(r".*/batches/[0-9]+$"))
    batch_url = prep.url
    prep.click("#submit-button")
    prep.wait_for_selector("#batch-state[data-state=accountant]")

    accountant = _officer_page(browser, served, "a1-acc")
    accountant.goto(batch_url)
    _card_step(accountant, services["accountant"], pin_of(cards, f"{A1}-accountant"), "#sign-button",
               wrong_pin_first=True)
    accountant.wait_for_selector("#batch-state[data-state=head]")  # the page reloads once signed
    assert accountant.locator("#signatures tbody tr").count() == 1

    head = _officer_page(browser, served, "a1-head")
    head.goto(batch_url)
    _card_step(head, services["head"], pin_of(cards, f"{A1}-head"), "#sign-button")
    head.wait_for_selector("#batch-state[data-state=releaser]")

    releaser = _officer_page(browser, served, "a1-rel")
    releaser.goto(batch_url)
    _card_step(releaser, services["releaser"], pin_of(cards, f"{A1}-releaser"), "#release-button")
    expect(releaser.locator("#release-result")).to_be_visible()
    tracking_id = releaser.inner_text("#release-tracking").strip()
    assert f"{tracking_id}.p7m" in served.env.outbound_files()
    releaser.screenshot(path=str(artifacts / "outer-batch-released.png"), full_page=True)
    releaser.click("#release-tracking")
    releaser.wait_for_url("**/status?**")
    assert releaser.locator(f'#uploads tbody tr[data-tracking-id="{tracking_id}"]').count() == 1
    releaser.goto(batch_url)
    history = releaser.locator("#history tbody tr")
    assert [history.nth(i).get_attribute("data-action") for i in range(history.count())] == [
        "imported", "submitted", "signed", "signed", "sealed", "released"]
    for page in (prep, accountant, head, releaser):
        assert not [p for p in page.problems if "Content Security Policy" in p or "Refused to" in p], page.problems
        page.context.close()


@pytest.mark.postgres
def test_entry_and_the_batch_page_on_postgres(tmp_path, demo_pki, pg_url):
    from outer_zone.accounts import add_agency, add_user, allow_networks
    from outer_zone.web import create_app
    from tgw_common.config import load_config

    from .conftest import outer_config

    path = outer_config(tmp_path / "outer", demo_pki, tmp_path / "unused.db")
    data = yaml.safe_load(path.read_text())
    data["database"]["url"] = pg_url
    path.write_text(yaml.safe_dump(data))
    app = create_app(load_config(path))
    engine = app.extensions["tgw_outer"].engine
    for code, name in ((A1, "財政部示範機關"), (A2, "內政部示範機關")):
        add_agency(engine, code, name)
        allow_networks(engine, code, ["127.0.0.1/32"])
    with transaction(engine) as s:
        add_user(s, agency=A1, username="pg-prep", roles=["preparer"], password="Postgres-pass-1", must_change=False)
        add_user(s, agency=A2, username="pg-other", roles=["preparer"], password="Postgres-pass-1", must_change=False)
    try:
        prep, other = app.test_client(), app.test_client()
        assert web_login(prep, "pg-prep", agency=A1, password="Postgres-pass-1").status_code == 302
        assert web_login(other, "pg-other", agency=A2, password="Postgres-pass-1").status_code == 302
        docs = _demo(2, seed=61)
        bad = _form(docs, op="save") | {"d1.total_amount": "1"}
        r = _post_form(prep, bad)
        assert r.status_code == 422 and "VOUCHER_TOTAL_MISMATCH" in _errors(r.get_data(as_text=True))["total_amount"]
        r = _post_form(prep, _form(docs, op="save"))
        assert r.status_code == 302
        batch_id = int(r.headers["Location"].rsplit("/", 1)[1])
        page = _page(prep, f"/batches/{batch_id}")
        assert page.count("<tr data-position=") == 2 and 'data-action="entered"' in page
        assert f'data-batch-id="{batch_id}"' in _page(prep, "/batches")
        assert other.get(f"/batches/{batch_id}").status_code == 404
        assert f'data-batch-id="{batch_id}"' not in _page(other, "/batches")
    finally:
        app.extensions["tgw_outer"].close()


def test_with_a_reviewer_the_batch_is_reviewed_before_the_accountant(app, env):
    from outer_zone.accounts import add_user

    from .conftest import PASSWORD

    with transaction(env.engine()) as s:
        add_user(s, agency=A1, username="a1-rev", roles=["reviewer"], password=PASSWORD, must_change=False)
    prep, rev, acc = (_login(app, u) for u in ("a1-prep", "a1-rev", "a1-acc"))
    batch_id = int(_post_form(prep, _form(_demo(1, seed=43), op="save")).headers["Location"].rsplit("/", 1)[1])
    prep.post(f"/batches/{batch_id}/submit", data={"csrf_token": _csrf(prep, batch_id)})
    page = _page(rev, f"/batches/{batch_id}")
    assert 'data-state="review"' in page and "覆核通過並送出" in page and 'id="return-form"' in page
    assert 'id="actions"' not in _page(acc, f"/batches/{batch_id}")
    assert rev.post(f"/batches/{batch_id}/submit", data={"csrf_token": _csrf(rev, batch_id)}).status_code == 302
    page = _page(acc, f"/batches/{batch_id}")
    assert 'data-state="accountant"' in page and 'id="sign-button"' in page
    history = page[page.index('id="history"'):]
    assert re.findall(r'data-action="(\w+)"', history) == ["entered", "submitted", "reviewed"]
    assert "覆核人" in history
