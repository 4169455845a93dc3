"""Batches imported from a JSON or CSV file: POST /api/v1/batches and GET /api/v1/batches/<id>."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from sqlalchemy import func, select

from outer_zone.batches.csvfile import HEADER_COLUMNS, LINE_COLUMNS, LINES_FIELD
from outer_zone.models import Batch, BatchDocument, BatchEvent
from tgw.demo.documents import generate_documents
from tgw_common.db import transaction
from tgw_common.documents import document_amount

from .conftest import A1, A2

CSV_COLUMNS = [*HEADER_COLUMNS, *LINE_COLUMNS]


def _demo(count: int, seed: int = 7, kinds=("payment_voucher", "transfer_voucher")) -> list[dict]:
    return [json.loads(d.data) for d in generate_documents(A1, count, seed=seed, kinds=kinds)]


ZH_KINDS = {"payment_voucher": "付款憑單", "transfer_voucher": "轉帳憑單"}


def _csv(docs: list[dict], *, bom: bool = False, zh_kinds: bool = False) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for doc in docs:
        for line in doc[LINES_FIELD[doc["kind"]]]:
            row = [doc.get(name, "") for name in HEADER_COLUMNS]
            if zh_kinds:
                row[0] = ZH_KINDS[doc["kind"]]
            row += [line.get(field, "") for field in LINE_COLUMNS.values()]
            writer.writerow(row)
    return (b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode("utf-8")


def _post(client, env, body: bytes, content_type: str, user: str = "a1-rel"):
    return client.post("/api/v1/batches", data=body,
                       headers={"Authorization": f"Bearer {env.tokens[user]}", "Content-Type": content_type})


def _get(client, env, batch_id: int, user: str = "a1-rel"):
    return client.get(f"/api/v1/batches/{batch_id}", headers={"Authorization": f"Bearer {env.tokens[user]}"})


def _stored(env) -> tuple[int, int, int]:
    with transaction(env.engine()) as s:
        return tuple(s.scalar(select(func.count()).select_from(t)) for t in (Batch, BatchDocument, BatchEvent))


def test_json_import_stores_a_draft_with_its_history(env, client):
    docs = _demo(6)
    r = _post(client, env, json.dumps(docs, ensure_ascii=False).encode(), "application/json")
    assert r.status_code == 201, r.get_json()
    answer = r.get_json()
    assert answer["state"] == "draft" and answer["errors"] == []
    assert r.headers["Location"] == f"/api/v1/batches/{answer['batch_id']}"
    view = _get(client, env, answer["batch_id"]).get_json()
    assert (view["state"], view["agency"], view["document_count"], view["paper_count"]) == ("draft", A1, 6, 0)
    assert view["total_amount"] == sum(document_amount(d["kind"], d) for d in docs)
    assert [(h["actor"], h["role"], h["action"]) for h in view["history"]] == [("a1-rel", "releaser", "imported")]
    with transaction(env.engine()) as s:
        stored = s.scalars(select(BatchDocument).order_by(BatchDocument.position)).all()
        assert [d.document for d in stored] == docs


@pytest.mark.parametrize(("bom", "zh_kinds"), [(False, False), (True, True)])
def test_csv_import_builds_the_same_vouchers(env, client, bom, zh_kinds):
    docs = _demo(4, seed=11)
    r = _post(client, env, _csv(docs, bom=bom, zh_kinds=zh_kinds), "text/csv; charset=utf-8")
    assert r.status_code == 201, r.get_json()
    view = _get(client, env, r.get_json()["batch_id"]).get_json()
    assert view["document_count"] == 4
    assert view["total_amount"] == sum(document_amount(d["kind"], d) for d in docs)
    assert [d["kind"] for d in view["documents"]] == [d["kind"] for d in docs]


def test_every_error_is_reported_at_its_field_and_nothing_is_stored(env, client):
    docs = _demo(4, seed=5, kinds=["payment_voucher"])
    docs[0]["voucher_date"] = "1151340"  # month 13
    docs[0]["payees"][0]["bank_code"] = "9999999"
    docs[1]["total_amount"] = int(docs[1]["total_amount"]) + 1
    del docs[2]["budget_account"]
    docs[3]["agency_code"] = A2
    r = _post(client, env, json.dumps(docs, ensure_ascii=False).encode(), "application/json")
    assert r.status_code == 422, r.get_json()
    found = {(e["document"], e["field"], e["code"]) for e in r.get_json()["errors"]}
    assert found == {
        (0, "$.voucher_date", "BAD_ROC_DATE"), (0, "$.payees[0].bank_code", "BAD_BANK_CODE"),
        (1, "$.total_amount", "VOUCHER_TOTAL_MISMATCH"), (2, "$.budget_account", "DOCUMENT_INVALID"),
        (3, "$.agency_code", "AGENCY_MISMATCH"),
    }
    assert all(e["message"] for e in r.get_json()["errors"])
    assert _stored(env) == (0, 0, 0)


def test_csv_errors_name_the_row_and_column(env, client):
    docs = _demo(2, seed=9, kinds=["payment_voucher"])
    docs[1]["payees"][-1]["bank_code"] = "9999999"
    rows_before = len(docs[0]["payees"]) + len(docs[1]["payees"])  # header is row 1
    r = _post(client, env, _csv(docs), "text/csv")
    assert r.status_code == 422, r.get_json()
    (error,) = r.get_json()["errors"]
    assert (error["document"], error["field"], error["code"], error["path"]) == (
        1, f"row {rows_before + 1}, column payee_bank_code", "BAD_BANK_CODE",
        f"$.payees[{len(docs[1]['payees']) - 1}].bank_code")
    assert _stored(env) == (0, 0, 0)


def test_big5_csv_is_refused_clearly(env, client):
    docs = _demo(1, seed=2, kinds=["payment_voucher"])
    body = _csv(docs).decode("utf-8").encode("big5", errors="replace")
    r = _post(client, env, body, "text/csv")
    assert r.status_code == 422
    (error,) = r.get_json()["errors"]
    assert error["code"] == "DOCUMENT_INVALID" and "Big5" in error["message"] and "UTF-8" in error["message"]
    assert _stored(env) == (0, 0, 0)


def test_another_agency_gets_404(env, client):
    r = _post(client, env, json.dumps(_demo(1)).encode(), "application/json")
    batch_id = r.get_json()["batch_id"]
    assert _get(client, env, batch_id).status_code == 200
    other = _get(client, env, batch_id, user="a2-rel")
    assert other.status_code == 404 and "batch_id" not in other.get_json()
    assert _get(client, env, batch_id + 1000).status_code == 404


def test_over_limit_document_is_flagged_for_paper(env, client):
    docs = _demo(2, seed=4, kinds=["payment_voucher"])
    big = docs[0]
    big["payees"] = [{**big["payees"][0], "amount": 150_000_000}]
    big["total_amount"] = 150_000_000
    r = _post(client, env, json.dumps(docs, ensure_ascii=False).encode(), "application/json")
    assert r.status_code == 201, r.get_json()
    view = _get(client, env, r.get_json()["batch_id"]).get_json()
    assert [d["paper"] for d in view["documents"]] == [True, False] and view["paper_count"] == 1


def test_unsupported_type_and_role(env, client):
    r = _post(client, env, b"<xml/>", "application/xml")
    assert r.status_code == 422 and r.get_json()["errors"][0]["code"] == "DOCUMENT_INVALID"
    assert client.post("/api/v1/batches", data=b"[]", headers={"Content-Type": "application/json"}).status_code == 401


@pytest.mark.postgres
def test_import_and_view_on_postgres(pg_url):
    from outer_zone import models  # noqa: F401 - registers the tables
    from outer_zone.accounts import add_agency
    from outer_zone.batches import BatchAuthor, batch_view, import_documents
    from tgw_common.config import DocumentsConfig
    from tgw_common.db import create_tables, make_engine

    engine = make_engine(pg_url)
    create_tables(engine)
    add_agency(engine, A1, "財政部示範機關")
    docs = _demo(3, seed=8)
    result = import_documents(engine, _csv(docs, bom=True), "text/csv", who=BatchAuthor("pg-prep", A1, "preparer"),
                              limits=DocumentsConfig(), today=dt.date.today())
    assert result.errors == [] and result.batch_id is not None
    view = batch_view(engine, A1, result.batch_id)
    assert view["document_count"] == 3 and view["history"][0]["role"] == "preparer"
    assert batch_view(engine, A2, result.batch_id) is None
    bad = import_documents(engine, json.dumps([{**docs[0], "fiscal_year": 1}]).encode(), "application/json",
                           who=BatchAuthor("pg-prep", A1, "preparer"), limits=DocumentsConfig(), today=dt.date.today())
    assert [e.code for e in bad.errors] == ["BAD_FISCAL_YEAR"]


def test_unknown_kind_and_unreadable_json(env, client):
    r = _post(client, env, json.dumps([{"kind": "love_letter"}]).encode(), "application/json")
    assert r.status_code == 422
    assert [(e["document"], e["field"], e["code"]) for e in r.get_json()["errors"]] == [
        (0, "$.kind", "UNKNOWN_DOCUMENT_KIND")]
    r = _post(client, env, b'{"not": "an array"}', "application/json")
    assert r.status_code == 422 and r.get_json()["errors"][0]["document"] is None
    assert _stored(env) == (0, 0, 0)


def test_every_problem_of_a_document_is_reported_at_once(env, client):
    """A form shows each error at its field: a missing field, a bad ID check digit and a bad
    bank code in one document are three errors, not one per attempt."""
    doc = _demo(1, seed=3, kinds=["payment_voucher"])[0]
    del doc["budget_account"]
    payee_id = doc["payees"][0]["id_number"]
    doc["payees"][0]["id_number"] = payee_id[:-1] + str((int(payee_id[-1]) + 1) % 10)
    doc["payees"][1]["bank_code"] = "9999999"
    r = _post(client, env, json.dumps([doc], ensure_ascii=False).encode(), "application/json")
    assert r.status_code == 422
    found = {(e["field"], e["code"]) for e in r.get_json()["errors"]}
    assert {("$.budget_account", "DOCUMENT_INVALID"), ("$.payees[0].id_number", "BAD_NATIONAL_ID"),
            ("$.payees[1].bank_code", "BAD_BANK_CODE")} <= found
    assert _stored(env) == (0, 0, 0)
