"""The OpenAPI 3.1 document of the agencies' API (outer_zone/web/openapi.yaml), kept true.

It is served without a token and passes openapi-spec-validator; then schemathesis runs every
operation it describes against a live `tgw outer serve` (gunicorn on a real port), with
inputs the document allows and inputs it forbids, as an officer holding every role of one
agency: no answer may be a 5xx, and each answer's status, content type, headers and body
must be the ones the document gives. Batches in every state up to release are seeded first
so that the workflow routes answer with more than 404.
"""

from __future__ import annotations

import csv
import io
import json
import re
import urllib.request
from pathlib import Path

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi import checks

from .conftest import A1, A2, PASSWORD, Server, make_env

DOCUMENT = Path(__file__).parents[2] / "outer_zone" / "web" / "openapi.yaml"
EVERY_ROLE = "a1-all"
ROLES = ["admin", "preparer", "reviewer", "accountant", "head", "releaser"]
# The answers a route gives must be the documented ones; "a valid-looking body is accepted"
# (positive_data_acceptance) cannot hold for signatures and envelopes, whose validity no
# schema can express.
CHECKS = [not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_headers_conformance, checks.response_schema_conformance, checks.negative_data_rejection,
          checks.ignored_auth]

schemathesis.serializer.alias("application/pkcs7-mime", "application/octet-stream")
schema = schemathesis.openapi.from_path(DOCUMENT)
# Unknown query parameters are ignored, as HTTP APIs do; the document cannot forbid them.
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], allow_extra_parameters=False)


def _request(base: str, method: str, path: str, token: str, body: bytes | None = None,
             content_type: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"}
    if content_type:
        headers["Content-Type"] = content_type
    req = urllib.request.Request(f"{base}{path}", data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Seeder:
    """Batches of A10001 at every step, made through the live API as the agency's officers would."""

    def __init__(self, base: str, token: str, kit) -> None:
        self.base, self.token, self.kit = base, token, kit

    def call(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
             expect: int = 200, token: str | None = None) -> bytes:
        status, data = _request(self.base, method, path, token or self.token, body, content_type)
        assert status == expect, (method, path, status, data[:500])
        return data

    def draft(self, seed: int, token: str | None = None) -> int:
        from tgw.demo.documents import generate_documents

        agency = A2 if token else A1
        docs = [json.loads(body) for _, _, body in generate_documents(agency, 2, seed=seed)]
        made = self.call("POST", "/api/v1/batches", json.dumps(docs).encode(), "application/json", 201, token)
        return json.loads(made)["batch_id"]

    def sign(self, batch_id: int, role: str) -> None:
        from tgw_common.tpe import sign_new

        payload = self.call("GET", f"/api/v1/batches/{batch_id}/payload")
        der = sign_new(payload, *self.kit.pair(A1, role))
        self.call("POST", f"/api/v1/batches/{batch_id}/signatures", der, "application/pkcs7-mime")

    def at(self, state: str, seed: int) -> int:
        """A new batch brought to `state` (the agency has a reviewer: submit goes to review)."""
        batch_id = self.draft(seed)
        steps = ["review", "accountant", "head", "releaser", "released"]
        if state == "returned":
            self.call("POST", f"/api/v1/batches/{batch_id}/submit")
            self.call("POST", f"/api/v1/batches/{batch_id}/return", json.dumps({"comment": "請更正 / fix"}).encode(),
                      "application/json")
            return batch_id
        if state == "draft":
            return batch_id
        for step in steps[: steps.index(state) + 1]:
            if step in ("review", "accountant"):
                self.call("POST", f"/api/v1/batches/{batch_id}/submit")
            elif step in ("head", "releaser"):
                self.sign(batch_id, "accountant" if step == "head" else "head")
            else:
                sealed = self.call("GET", f"/api/v1/batches/{batch_id}/sealed")
                self.call("POST", f"/api/v1/batches/{batch_id}/release", self.kit.release(sealed),
                          "application/pkcs7-mime", 202)
        return batch_id


def _start(tmp_path_factory, outer_template, demo_pki):
    from outer_zone.accounts import add_user, create_token
    from tests.kit import free_port
    from tgw_common.db import dispose_engines, transaction

    folder = tmp_path_factory.mktemp("openapi")
    env = make_env(folder, outer_template, demo_pki, bind=f"127.0.0.1:{free_port()}", workers=1, threads=4,
                   max_upload_bytes=64 * 1024, login_rate_per_minute=100000)
    data = yaml.safe_load(env.config_path.read_text())
    data["treasury"] = {"certificate": str(demo_pki / "treasury" / "envelope.pem")}
    env.config_path.write_text(yaml.safe_dump(data, allow_unicode=True))
    with transaction(env.engine()) as s:
        add_user(s, agency=A1, username=EVERY_ROLE, roles=ROLES, password=PASSWORD, must_change=False)
    token = create_token(env.engine(), EVERY_ROLE, "openapi")[1]
    dispose_engines()
    return env, token


@pytest.fixture(scope="module")
def portal_live(tmp_path_factory, outer_template, demo_pki, kit):
    env, token = _start(tmp_path_factory, outer_template, demo_pki)
    server = Server(env, env.folder / "server.log")
    try:
        server.wait_ready()
        seeder = Seeder(server.base, token, kit)
        for n, state in enumerate(["draft", "returned", "review", "accountant", "head", "releaser", "released"]):
            seeder.at(state, seed=100 + n)
        # Another agency's batch: A10001's officer must get 404 for it, as for none at all.
        env.extra["other_agency_batch"] = seeder.draft(seed=200, token=env.tokens["a2-rel"])
        yield server, token
    finally:
        server.stop()


def test_served_document_is_valid_openapi_31(portal_live):
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation import OpenAPIV31SpecValidator

    server, _ = portal_live
    with urllib.request.urlopen(f"{server.base}/api/v1/openapi.json", timeout=10) as answer:  # no token
        assert answer.status == 200 and answer.headers["Content-Type"].startswith("application/json")
        served = json.loads(answer.read())
    validate(served, cls=OpenAPIV31SpecValidator)
    assert served == yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    operations = {(method.upper(), path) for path, item in served["paths"].items() for method in item
                  if method != "parameters"}
    assert len(operations) == 16 and ("POST", "/api/v1/batches/{batch_id}/release") in operations


def test_every_route_of_the_api_is_described(portal_live):
    from outer_zone.web import create_app

    server, _ = portal_live
    app = create_app(server.env.config())
    try:
        routes = {(method, rule.rule) for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/")
                  for method in rule.methods - {"HEAD", "OPTIONS"}}
    finally:
        app.extensions["tgw_outer"].close()
    described = {(m.upper(), p) for p, item in yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))["paths"].items()
                 for m in item if m != "parameters"}
    assert {(method, re.sub(r"<(?:[^:>]+:)?(\w+)>", r"{\1}", rule)) for method, rule in routes} == described


def test_each_refusal_code_is_documented_at_its_status():
    """helpers.STATUS gives each code its HTTP status; the document must name the code there."""
    from outer_zone.web.helpers import STATUS

    doc = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    named: dict[int, set[str]] = {}
    for item in doc["paths"].values():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for status, answer in operation["responses"].items():
                if "$ref" in answer:
                    answer = doc["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
                for part in answer.get("content", {}).get("application/json", {}).get("schema", {}).get("allOf", []):
                    named.setdefault(int(status), set()).update(part.get("properties", {}).get("reason", {})
                                                                .get("enum", []))
    # ACCOUNT_LOCKED belongs to password sign-in; the API's bearer tokens are never locked.
    expected = {code: status for code, status in STATUS.items() if code != "ACCOUNT_LOCKED"}
    assert {code: status for status, codes in named.items() for code in codes} == expected


@schema.parametrize()
@settings(max_examples=25, deadline=None, database=None, derandomize=True,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case, portal_live):
    server, token = portal_live
    case.call_and_validate(base_url=server.base, headers={"Authorization": f"Bearer {token}"}, checks=CHECKS,
                           timeout=30)


def _csv(docs: list[dict]) -> str:
    """The documents as the CSV layout of docs/documents.md ("Batch files"): one row per payee line."""
    from outer_zone.batches.csvfile import HEADER_COLUMNS, LINE_COLUMNS, LINES_FIELD

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*HEADER_COLUMNS, *LINE_COLUMNS])
    for doc in docs:
        for line in doc[LINES_FIELD[doc["kind"]]]:
            writer.writerow([doc.get(name, "") for name in HEADER_COLUMNS]
                            + [line.get(field, "") for field in LINE_COLUMNS.values()])
    return out.getvalue()


def _caller(server, token):
    """One request the document describes, with chosen inputs, checked as the generated ones are."""

    def call(path: str, method: str, **kw):
        case = schema[path][method].Case(**kw)
        return case.call_and_validate(base_url=server.base, headers={"Authorization": f"Bearer {token}"},
                                      checks=CHECKS, timeout=30)

    return call


def test_a_batch_from_import_to_release_answers_as_documented(portal_live, kit):
    """Random inputs rarely succeed: the successful answers of every step, checked the same way."""
    from tgw.demo.documents import generate_documents
    from tgw_common.tpe import sign_new

    server, token = portal_live
    call = _caller(server, token)
    docs = [json.loads(d.data) for d in generate_documents(A1, 3, seed=300, kinds=("payment_voucher",
                                                                                     "transfer_voucher"))]
    made = call("/api/v1/batches", "POST", body=docs, media_type="application/json")
    assert made.status_code == 201
    batch = {"batch_id": made.json()["batch_id"]}
    changed = call("/api/v1/batches/{batch_id}/documents", "PUT", path_parameters=batch, body=_csv(docs[:2]),
                   media_type="text/csv")
    assert changed.status_code == 200 and changed.json()["document_count"] == 2
    for expected in ("review", "accountant"):
        assert call("/api/v1/batches/{batch_id}/submit", "POST", path_parameters=batch).json()["state"] == expected
    for role, expected in (("accountant", "head"), ("head", "releaser")):
        payload = call("/api/v1/batches/{batch_id}/payload", "GET", path_parameters=batch).content
        signed = call("/api/v1/batches/{batch_id}/signatures", "POST", path_parameters=batch,
                      body=sign_new(payload, *kit.pair(A1, role)), media_type="application/pkcs7-mime")
        assert signed.json()["state"] == expected
    sealed = call("/api/v1/batches/{batch_id}/sealed", "GET", path_parameters=batch).content
    released = call("/api/v1/batches/{batch_id}/release", "POST", path_parameters=batch,
                    body=kit.release(sealed), media_type="application/pkcs7-mime")
    assert released.status_code == 202
    tracking = {"tracking_id": released.json()["tracking_id"]}
    assert call("/api/v1/envelopes/{tracking_id}", "GET", path_parameters=tracking).json()["state"] == "accepted"
    assert call("/api/v1/batches/{batch_id}", "GET", path_parameters=batch).json()["state"] == "released"
    listed = call("/api/v1/batches", "GET", query={"state": "released"}).json()["batches"]
    assert batch["batch_id"] in [b["batch_id"] for b in listed]


def test_envelope_upload_and_return_answer_as_documented(portal_live, envelopes, kit):
    server, token = portal_live
    at_accountant = Seeder(server.base, token, kit).at("accountant", seed=400)
    call = _caller(server, token)
    uploaded = call("/api/v1/envelopes", "POST", body=envelopes.valid(), media_type="application/octet-stream")
    assert uploaded.status_code == 202
    tracking = {"tracking_id": uploaded.json()["tracking_id"]}
    assert call("/api/v1/envelopes/{tracking_id}", "GET", path_parameters=tracking).json()["state"] == "accepted"
    back = call("/api/v1/batches/{batch_id}/return", "POST", path_parameters={"batch_id": at_accountant},
                body={"comment": "金額有誤 / wrong amount"}, media_type="application/json")
    assert back.json()["state"] == "returned"
    other = {"batch_id": server.env.extra["other_agency_batch"]}
    for path, method in (("/api/v1/batches/{batch_id}", "GET"), ("/api/v1/batches/{batch_id}/submit", "POST")):
        assert call(path, method, path_parameters=other).status_code == 404
