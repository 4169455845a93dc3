"""The agency workflow end to end (issue 15): Debian chromium driven by Playwright against `tgw up`.

One appliance for the module, and the A10001 officers' local signing services (`tgw agency
signer`) started from the appliance's own signer configs on its SoftHSM2 cards: the head's
and the releaser's with --pin-file, the accountant's asking the PIN on its confirmation page.
A preparer enters three documents with the form and imports a CSV file; the accountant returns
one batch with a comment; the preparer fixes it; accountant and head sign with their cards
through the signer's confirmation page; the releaser releases; the inner zone loads it and the
portal shows it released and sent. Then: a wrong PIN is reported and the right one still
works; a change after a signature discards it; another agency's officer finds no such batch;
an over-limit document is printed on paper, never sent.
"""

from __future__ import annotations

import base64
import csv
import http.client
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from outer_zone.batches.csvfile import HEADER_COLUMNS, LINE_COLUMNS, LINES_FIELD
from tests.agency_signer.conftest import SOFTHSM, SignerService
from tests.e2e.conftest import ARTIFACTS, REPO, free_port_base, tgw
from tests.kit import stop_process, wait_until
from tgw.demo.documents import generate_documents
from tgw_common.config import load_config
from tgw_common.db import make_engine, transaction
from tgw_common.documents import KINDS, document_amount
from tgw_common.events import EventRow

pytestmark = [pytest.mark.slow, pytest.mark.browser]

A1, A2 = "A10001", "A10002"
CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"]
CMS = "application/pkcs7-mime"
LOADED_WITHIN = 120  # seconds from release to the inner zone's database
WRONG_PIN = "00000000"
# Each test's documents come from their own seeds: the inner zone refuses a voucher number twice.
SEEDS = {"form": 310, "csv": 320, "pin": 330, "discard": 340, "paper": 350, "other": 360}


def _needs(what: str, present: bool, hint: str) -> None:
    if not present:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is not installed ({hint})")
        pytest.skip(f"needs {what} ({hint})")


# --- the appliance and the officers' signers
@dataclass
class Appliance:
    folder: Path
    creds: dict[str, Any]
    signers: dict[str, SignerService] = field(default_factory=dict)

    @property
    def portal(self) -> str:
        return self.creds["portal"]

    def officer(self, role: str, agency: str = A1) -> dict[str, str]:
        return self.creds["agencies"][agency]["officers"][role]

    def card(self, role: str) -> dict[str, str]:
        return self.creds["agencies"][A1]["cards"][role]

    def engine(self, zone: str = "inner"):
        return make_engine(load_config(self.folder / "config" / f"{zone}.yaml").database.url)


def _start_signer(app: Appliance, role: str, pin_file: Path | None, log: Path) -> SignerService:
    card = app.card(role)
    args = [sys.executable, "-m", "tgw", "agency", "signer", "--config", card["signer_config"]]
    if pin_file is not None:
        pin_file.write_text(card["pin"] + "\n", encoding="utf-8")
        pin_file.chmod(0o600)
        args += ["--pin-file", str(pin_file)]
    env = {**os.environ, "SOFTHSM2_CONF": app.creds["softhsm2_conf"]}
    with open(log, "wb") as err:
        process = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err)
    service = SignerService(int(card["signer_url"].rsplit(":", 1)[1]), process)
    assert service.origin == card["signer_url"]

    def answering():
        assert process.poll() is None, log.read_text()
        try:
            return service.call("GET", "/v1/requests/none", origin=app.portal).status == 404
        except OSError:
            return False

    wait_until(answering, 30, f"the {role}'s signer", step=0.2)
    return service


def _port_base() -> int:
    """A free port base whose A10001 signer ports are free too (`tgw up` checks only its daemons')."""
    from tgw.appliance.layout import signer_port

    for _ in range(20):
        base = free_port_base()
        try:
            for role_index in range(3):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", signer_port(base, 0, role_index)))
        except OSError:
            continue
        return base
    raise RuntimeError("no port base with free signer ports")


@pytest.fixture(scope="module")
def appliance(tmp_path_factory, request):
    """`tgw up` once for the module, the three signers beside it; `tgw down` at the end, the
    appliance's and the signers' logs kept in test-artifacts/ when a test of the module failed."""
    _needs("softhsm2", Path(SOFTHSM).is_file(), "apt-get install softhsm2")
    _needs("Debian chromium", CHROMIUM.exists(), "apt-get install chromium")
    base = tmp_path_factory.mktemp("agency-workflow")
    folder = base / "app"
    failed_before, ready = request.session.testsfailed, False
    app = Appliance(folder, {})
    try:
        tgw("up", "--dir", folder, "--port-base", str(_port_base()), timeout=300)
        app.creds = json.loads((folder / "credentials.json").read_text(encoding="utf-8"))
        for role, pin_file in (("accountant", None), ("head", base / "head.pin"), ("releaser", base / "releaser.pin")):
            app.signers[role] = _start_signer(app, role, pin_file, folder / "log" / f"signer-{role}.log")
        ready = True
        yield app
    finally:
        for service in app.signers.values():
            stop_process(service.process)
        tgw("down", "--dir", folder, check=None, timeout=660)
        if (not ready or request.session.testsfailed > failed_before) and (folder / "log").is_dir():
            dest = ARTIFACTS / "e2e-agency-workflow-browser"
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(folder / "log", dest / "log")


@pytest.fixture(scope="module")
def browser(appliance):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS, headless=True)
        yield b
        b.close()


# --- the portal's API, for the steps where a browser adds nothing
@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str

    def json(self) -> Any:
        return json.loads(self.body)


def _api(app: Appliance, method: str, path: str, token: str, body: bytes | None = None,
         content_type: str | None = None) -> Reply:
    host, port = app.portal.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    headers = {"Authorization": f"Bearer {token}"} | ({"Content-Type": content_type} if content_type else {})
    try:
        conn.request(method, path, body=body, headers=headers)
        answer = conn.getresponse()
        return Reply(answer.status, answer.read(), answer.getheader("Content-Type", ""))
    finally:
        conn.close()


def _token(app: Appliance, role: str, agency: str = A1) -> str:
    return app.officer(role, agency)["token"]


def _new_batch(app: Appliance, docs: list[dict], *, submit: bool = True) -> int:
    made = _api(app, "POST", "/api/v1/batches", _token(app, "preparer"),
                json.dumps(docs, ensure_ascii=False).encode(), "application/json")
    assert made.status == 201, made.body
    batch_id = made.json()["batch_id"]
    if submit:
        submitted = _api(app, "POST", f"/api/v1/batches/{batch_id}/submit", _token(app, "preparer"))
        assert submitted.status == 200 and submitted.json()["state"] == "accountant", submitted.body
    return batch_id


def _view(app: Appliance, batch_id: int, role: str = "preparer") -> dict[str, Any]:
    answer = _api(app, "GET", f"/api/v1/batches/{batch_id}", _token(app, role))
    assert answer.status == 200, answer.body
    return answer.json()


def _card_sign(app: Appliance, role: str, given: str, data: bytes) -> bytes:
    """A signature from the officer's signer without the browser: ask as the portal page does,
    confirm on the service's page (typing the PIN where the service has none)."""
    service = app.signers[role]
    asked = service.ask(role, given, data, origin=app.portal)
    assert asked.status == 202, asked.body
    request_id = asked.json()["request_id"]
    pin = app.card(role)["pin"] if role == "accountant" else None
    confirmed = service.confirm(request_id, pin=pin)
    assert confirmed.status == 200, confirmed.body.decode()
    done = service.call("GET", f"/v1/requests/{request_id}", origin=app.portal).json()
    assert done["state"] == "signed", done
    return base64.b64decode(done["result"])


def _api_signature(app: Appliance, batch_id: int, role: str) -> dict[str, Any]:
    payload = _api(app, "GET", f"/api/v1/batches/{batch_id}/payload", _token(app, role))
    assert payload.status == 200, payload.body
    der = _card_sign(app, role, "payload", payload.body)
    signed = _api(app, "POST", f"/api/v1/batches/{batch_id}/signatures", _token(app, role), der, CMS)
    assert signed.status == 200, signed.body
    return signed.json()


def _loaded(app: Appliance, tracking_id: str) -> dict[str, Any]:
    """The envelope in the inner zone's payment database (waited for), with its documents' numbers."""
    from inner_zone.models import Document, Envelope

    inner, outer = app.engine("inner"), app.engine("outer")

    def found():
        with transaction(inner) as s:
            row = s.scalars(select(Envelope).where(Envelope.tracking_id == tracking_id)).one_or_none()
            if row is None:
                return None
            numbers = list(s.scalars(select(Document.voucher_no).where(Document.envelope_pk == row.id)
                                     .order_by(Document.seq)))
            return {**row.as_dict(), "voucher_nos": numbers}

    loaded = wait_until(found, LOADED_WITHIN, f"{tracking_id} loaded by the inner zone", step=1)
    loaded["events"] = set()  # (hop, event) of its provenance, from both zones' records
    for engine in (outer, inner):
        with transaction(engine) as s:
            loaded["events"] |= {tuple(row) for row in s.execute(select(EventRow.hop, EventRow.event)
                                                                 .where(EventRow.tracking_id == tracking_id))}
    return loaded


# --- documents
def _demo(seed: int, count: int, kinds=("payment_voucher", "transfer_voucher")) -> list[dict]:
    return [json.loads(d.data) for d in generate_documents(A1, count, seed=seed, kinds=kinds)]


def _trimmed(doc: dict, lines: int) -> dict:
    """`doc` with its first `lines` payee lines only, its total made to match."""
    field_name = KINDS[doc["kind"]].payees_field
    doc = {**doc, field_name: doc[field_name][:lines]}
    doc["total_amount"] = sum(int(line["amount"]) for line in doc[field_name])
    return doc


def _csv(docs: list[dict]) -> bytes:
    """Vouchers in the CSV layout of docs/documents.md ("Batch files"): a row per payee line."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*HEADER_COLUMNS, *LINE_COLUMNS])
    for doc in docs:
        for n, line in enumerate(doc[LINES_FIELD[doc["kind"]]]):
            header = [doc.get(name, "") if n == 0 else "" for name in HEADER_COLUMNS]
            header[:2] = [doc["kind"], doc["voucher_no"]]
            writer.writerow([*header, *(line.get(key, "") for key in LINE_COLUMNS.values())])
    return out.getvalue().encode("utf-8")


def _flat(doc: dict, prefix: str = "") -> dict[str, str]:
    """A document as its form inputs: JSON path without `$.` -> the text typed."""
    out: dict[str, str] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                out.update(_flat(item, f"{prefix}{key}[{i}]."))
        elif key != "kind":
            out[f"{prefix}{key}"] = str(value)
    return out


# --- the browser
def _sign_in(browser, app: Appliance, role: str, agency: str = A1):
    context = browser.new_context(base_url=app.portal, locale="zh-TW", viewport={"width": 1400, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.problems = problems
    officer = app.officer(role, agency)
    page.goto("/login")
    page.fill("#agency", agency)
    page.fill("#username", officer["user"])
    page.fill("#password", officer["password"])
    page.click("#login-submit")
    page.wait_for_load_state()
    assert "/login" not in page.url, page.inner_text("main")
    return page


def _no_script_problems(*pages) -> None:
    for page in pages:
        assert not [p for p in page.problems if "Content Security Policy" in p or "Refused to" in p
                    or "Uncaught" in p], page.problems


def _state(page) -> str:
    return page.get_attribute("#batch-state", "data-state")


def _history(page) -> list[str]:
    rows = page.locator("#history tbody tr")
    return [rows.nth(i).get_attribute("data-action") for i in range(rows.count())]


def _fill_document(page, index: int, doc: dict) -> None:
    """Type a document into the form's document `index`, adding its payee rows (by script)."""
    lines = KINDS[doc["kind"]].payees_field
    group = page.locator(f'[data-rows="d{index}.{lines}"]')
    for _ in range(len(doc[lines]) - group.locator("tbody tr").count()):
        group.locator("[data-add-row]").click()
    for path, value in _flat(doc).items():
        target = page.locator(f'[name="d{index}.{path}"]')
        if target.evaluate("e => e.tagName") == "SELECT":
            target.select_option(value)
        else:
            target.fill(value)


def _enter_batch(page, docs: list[dict]) -> int:
    """The preparer's form: the documents typed one after another, saved as a draft batch."""
    page.goto("/batches/new")
    for index, doc in enumerate(docs):
        if index:
            page.select_option("#add_kind", doc["kind"])
            page.click("#add-doc")  # a round trip that keeps what was typed
            page.wait_for_selector(f"#doc-{index}")
        assert page.get_attribute(f"#doc-{index}", "data-kind") == doc["kind"]
        _fill_document(page, index, doc)
    page.click("#entry-submit")
    page.wait_for_url(re.compile(r".*/batches/[0-9]+$"))
    return int(page.url.rsplit("/", 1)[1])


def _import_csv(page, data: bytes) -> int:
    page.goto("/batches/new")
    page.set_input_files("#batch-file", files=[{"name": "vouchers.csv", "mimeType": "text/csv", "buffer": data}])
    page.click("#import-submit")
    page.wait_for_url(re.compile(r".*/batches/[0-9]+$"))
    return int(page.url.rsplit("/", 1)[1])


def _submit(page, batch_id: int, then: str = "accountant") -> None:
    page.goto(f"/batches/{batch_id}")
    page.click("#submit-button")
    page.wait_for_selector(f"#batch-state[data-state={then}]")


def _card_step(page, service: SignerService, button: str, *, pin: str | None, wrong_pin_first: bool = False):
    """Press the step's card button; on the signer's own page (the popup) type the PIN where the
    signer holds none, and confirm. The signer's page is returned."""
    expect = pytest.importorskip("playwright.sync_api").expect
    page.fill("#signer-url", service.origin)
    with page.context.expect_page() as opened:
        page.click(button)
    officer = opened.value
    officer.wait_for_load_state()
    assert officer.url.startswith(service.origin + "/confirm/")
    assert page.get_attribute("#confirm-link", "href") == officer.url
    assert (officer.locator("input[name=pin]").count() == 1) == (pin is not None)
    if wrong_pin_first:
        officer.fill("input[name=pin]", WRONG_PIN)
        officer.click("button[value=confirm]")
        officer.wait_for_load_state()
        assert "CKR_PIN_INCORRECT" in officer.inner_text(".problem[role=alert]")
        expect(page.locator("#sign-progress")).to_contain_text("PIN_INCORRECT")
        assert page.get_attribute("#sign-progress", "data-state") == "pending"
    if pin is not None:
        officer.fill("input[name=pin]", pin)
    officer.click("button[value=confirm]")
    officer.wait_for_load_state()
    assert "已簽章" in officer.inner_text(".done")
    return officer


# --- the test
def _form_documents() -> list[dict]:
    """付款憑單 with two payees, 轉帳憑單 with one line, 付款憑單 with one payee: typed in the form."""
    vouchers = _demo(SEEDS["form"], 12, kinds=["payment_voucher"])
    two = next(d for d in vouchers if len(d["payees"]) >= 2)
    one = next(d for d in vouchers if d is not two)
    transfer = _demo(SEEDS["form"] + 1, 1, kinds=["transfer_voucher"])[0]
    return [_trimmed(two, 2), _trimmed(transfer, 1), _trimmed(one, 1)]


@pytest.mark.timeout(300)
def test_two_batches_from_the_form_and_a_csv_to_the_inner_zone(appliance, browser):
    app = appliance
    form_docs = _form_documents()
    csv_docs = _demo(SEEDS["csv"], 3)

    # 1. The preparer types three documents, imports a CSV file, submits both.
    prep = _sign_in(browser, app, "preparer")
    first = _enter_batch(prep, form_docs)
    assert _state(prep) == "draft" and prep.locator("#documents tbody tr").count() == 3
    total = sum(document_amount(d["kind"], d) for d in form_docs)
    assert prep.inner_text("#batch-total") == f"NT$ {total:,}"
    second = _import_csv(prep, _csv(csv_docs))
    assert prep.locator("#documents tbody tr").count() == len(csv_docs)
    assert _history(prep) == ["imported"]
    _submit(prep, first)
    _submit(prep, second)

    # 2. The accountant returns the first with a comment; the preparer reads it, fixes a field, submits.
    accountant = _sign_in(browser, app, "accountant")
    accountant.goto(f"/batches/{first}")
    comment = "第 2 筆用途請寫明月份 / document 2: name the month in the purpose"
    accountant.fill("#return-comment", comment)
    accountant.click("#return-button")
    accountant.wait_for_selector("#batch-state[data-state=returned]")
    prep.goto(f"/batches/{first}")
    assert _state(prep) == "returned"
    assert comment in prep.inner_text('#history tr[data-action="returned"] .comment')
    prep.click("#edit-link")
    prep.wait_for_url(re.compile(r".*/edit$"))
    fixed = form_docs[1]["purpose"][:40] + "（115年11月）"
    prep.fill('[name="d1.purpose"]', fixed)
    prep.click("#entry-submit")
    prep.wait_for_url(re.compile(rf".*/batches/{first}$"))
    assert _state(prep) == "draft" and _history(prep)[-1] == "changed"
    _submit(prep, first)
    view = _view(app, first)
    assert view["envelope"]["document_count"] == 3 and view["envelope"]["total_amount"] == total

    # 3. Accountant (PIN typed on the signer's page) and head (PIN held by the signer) sign with their cards.
    accountant.goto(f"/batches/{first}")
    _card_step(accountant, app.signers["accountant"], "#sign-button", pin=app.card("accountant")["pin"])
    accountant.wait_for_selector("#batch-state[data-state=head]")  # the page reloads once signed
    assert accountant.locator("#signatures tbody tr").count() == 1
    head = _sign_in(browser, app, "head")
    head.goto(f"/batches/{first}")
    _card_step(head, app.signers["head"], "#sign-button", pin=None)
    head.wait_for_selector("#batch-state[data-state=releaser]")
    assert [head.locator("#signatures tbody tr").nth(i).get_attribute("data-role") for i in range(2)] == [
        "accountant", "head"]

    # 4. The releaser releases; the inner zone loads it; the portal shows it released and sent.
    releaser = _sign_in(browser, app, "releaser")
    _release_and_follow(app, releaser, first, form_docs, fixed)
    _no_script_problems(prep, accountant, head, releaser)
    for page in (prep, accountant, head, releaser):
        page.context.close()


def _release_and_follow(app: Appliance, releaser, batch_id: int, docs: list[dict], fixed_purpose: str) -> None:
    expect = pytest.importorskip("playwright.sync_api").expect
    releaser.goto(f"/batches/{batch_id}")
    _card_step(releaser, app.signers["releaser"], "#release-button", pin=None)
    expect(releaser.locator("#release-result")).to_be_visible()
    tracking_id = releaser.inner_text("#release-tracking").strip()
    assert tracking_id

    loaded = _loaded(app, tracking_id)
    assert loaded["agency"] == A1 and loaded["document_count"] == 3
    assert loaded["voucher_nos"] == [d["voucher_no"] for d in docs]
    assert loaded["total_amount"] == sum(document_amount(d["kind"], d) for d in docs)
    assert {("outer-web", "received"), ("outer-web", "spooled"), ("transfer-send", "sent"),
            ("transfer-receive", "arrived"), ("inner-runner", "loaded")} <= loaded["events"]
    with transaction(app.engine()) as s:
        from inner_zone.models import Document

        fixed_doc = s.scalars(select(Document.data).where(Document.voucher_no == docs[1]["voucher_no"])).one()
    assert fixed_doc["purpose"] == fixed_purpose  # the preparer's fix is what was paid

    releaser.goto(f"/batches/{batch_id}")
    ARTIFACTS.mkdir(exist_ok=True)
    releaser.screenshot(path=str(ARTIFACTS / "e2e-agency-batch-released.png"), full_page=True)
    assert _state(releaser) == "released"
    assert releaser.inner_text("#batch-tracking").strip() == tracking_id
    history = _history(releaser)
    assert history[0] in ("entered", "imported")  # the form's documents go through the file import's code
    assert history[1:] == ["submitted", "returned", "changed", "submitted", "signed", "signed", "sealed", "released"]
    releaser.click("#batch-tracking a")
    releaser.wait_for_url("**/status?**")
    row = releaser.locator(f'#uploads tbody tr[data-tracking-id="{tracking_id}"]')
    # The inner zone's receipt comes back over the return link: the portal then shows the load.
    deadline = time.monotonic() + 60
    while row.get_attribute("data-state") != "loaded" and time.monotonic() < deadline:
        time.sleep(0.5)
        releaser.reload()
    assert row.count() == 1 and row.get_attribute("data-state") == "loaded"
    assert "已入庫" in row.inner_text()
    row.locator("a").first.click()
    releaser.wait_for_url(f"**/status/{tracking_id}")
    assert releaser.locator("#envelope").get_attribute("data-state") == "loaded"
    assert releaser.locator("#documents tbody tr").count() == len(docs)
    assert releaser.locator("#receipt-download").count() == 1


# --- further tests
@pytest.mark.timeout(120)
def test_a_wrong_pin_is_reported_and_the_card_still_signs(appliance, browser):
    app = appliance
    batch_id = _new_batch(app, _demo(SEEDS["pin"], 2))
    accountant = _sign_in(browser, app, "accountant")
    accountant.goto(f"/batches/{batch_id}")
    _card_step(accountant, app.signers["accountant"], "#sign-button", pin=app.card("accountant")["pin"],
               wrong_pin_first=True)
    accountant.wait_for_selector("#batch-state[data-state=head]")
    # Not locked: the same card signs the next request with the right PIN at the first try.
    again = _new_batch(app, _demo(SEEDS["pin"] + 100, 1))
    assert _api_signature(app, again, "accountant")["state"] == "head"
    _no_script_problems(accountant)
    accountant.context.close()


@pytest.mark.timeout(120)
def test_a_change_after_a_signature_discards_it(appliance, browser):
    app = appliance
    docs = _demo(SEEDS["discard"], 2, kinds=["payment_voucher"])
    batch_id = _new_batch(app, docs)
    assert _api_signature(app, batch_id, "accountant")["state"] == "head"
    assert len(_view(app, batch_id)["envelope"]["signatures"]) == 1

    prep = _sign_in(browser, app, "preparer")
    prep.goto(f"/batches/{batch_id}")
    assert prep.locator("#edit-note").is_visible()
    prep.click("#edit-link")
    assert "作廢" in prep.inner_text("#edit-warning")
    prep.fill('[name="d0.purpose"]', docs[0]["purpose"][:40] + "（更正）")
    asked: list[str] = []
    prep.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    prep.click("#entry-submit")
    prep.wait_for_url(re.compile(rf".*/batches/{batch_id}$"))
    assert asked and "作廢" in asked[0]
    assert _state(prep) == "draft" and prep.locator("#signatures").count() == 0
    assert _history(prep)[1:] == ["submitted", "signed", "signatures_discarded", "changed"]
    assert "accountant" in prep.inner_text('#history tr[data-action="signatures_discarded"] .comment')
    view = _view(app, batch_id)
    assert view["state"] == "draft" and view["envelope"] is None
    stale = _api(app, "GET", f"/api/v1/batches/{batch_id}/payload", _token(app, "accountant"))
    assert stale.status == 409 and stale.json()["reason"] == "BATCH_WRONG_STATE"
    prep.context.close()


@pytest.mark.timeout(120)
def test_an_officer_of_another_agency_finds_no_such_batch(appliance, browser):
    app = appliance
    batch_id = _new_batch(app, _demo(SEEDS["other"], 1))
    theirs = [json.loads(d.data) for d in generate_documents(A2, 1, seed=SEEDS["other"] + 100)]
    for role, method, path, body, ctype in (
            ("preparer", "GET", "", None, None),
            ("preparer", "PUT", "/documents", json.dumps(theirs).encode(), "application/json"),
            ("accountant", "GET", "/payload", None, None),
            ("accountant", "POST", "/return", json.dumps({"comment": "不是我們的"}).encode(), "application/json"),
            ("accountant", "POST", "/signatures", b"0\x00", CMS),
            ("releaser", "GET", "/sealed", None, None)):
        answer = _api(app, method, f"/api/v1/batches/{batch_id}{path}", _token(app, role, A2), body, ctype)
        assert answer.status == 404, (role, method, path, answer.status, answer.body)
    listed = _api(app, "GET", "/api/v1/batches", _token(app, "accountant", A2)).json()["batches"]
    assert batch_id not in [b["batch_id"] for b in listed]

    other = _sign_in(browser, app, "accountant", A2)
    assert other.goto(f"/batches/{batch_id}").status == 404
    assert other.goto(f"/batches/{batch_id}/payload").status == 404
    other.context.close()
    view = _view(app, batch_id)
    assert view["state"] == "accountant" and [e["action"] for e in view["history"]] == ["imported", "submitted"]


def _over_limit(doc: dict, limit: int) -> dict:
    doc = _trimmed(doc, 1)
    doc["payees"][0]["amount"] = limit + 1
    doc["total_amount"] = limit + 1
    return doc


@pytest.mark.timeout(180)
def test_an_over_limit_document_is_paper_and_never_sent(appliance, browser):
    app = appliance
    limit = load_config(app.folder / "config" / "outer.yaml").documents.epayment_limit
    docs = _demo(SEEDS["paper"], 4, kinds=["payment_voucher"])[:2]
    docs[1] = _over_limit(docs[1], limit)
    batch_id = _new_batch(app, docs, submit=False)

    prep = _sign_in(browser, app, "preparer")
    prep.goto(f"/batches/{batch_id}")
    paper = prep.locator('#documents tbody tr[data-paper="yes"]')
    assert paper.count() == 1 and paper.get_attribute("data-position") == "1" and "紙本" in paper.inner_text()
    assert prep.inner_text("#batch-paper").startswith("1")
    _submit(prep, batch_id)
    prep.context.close()

    payload = _api(app, "GET", f"/api/v1/batches/{batch_id}/payload", _token(app, "accountant"))
    with zipfile.ZipFile(io.BytesIO(payload.body)) as z:
        manifest = json.loads(z.read("manifest.json"))
        inside = b"".join(z.read(n) for n in z.namelist())
    assert len(manifest["documents"]) == 1 and docs[1]["voucher_no"].encode() not in inside
    _api_signature(app, batch_id, "accountant")
    assert _api_signature(app, batch_id, "head")["state"] == "releaser"
    sealed = _api(app, "GET", f"/api/v1/batches/{batch_id}/sealed", _token(app, "releaser"))
    assert sealed.status == 200, sealed.body
    envelope = _card_sign(app, "releaser", "sealed", sealed.body)
    released = _api(app, "POST", f"/api/v1/batches/{batch_id}/release", _token(app, "releaser"), envelope, CMS)
    assert released.status == 202, released.body
    loaded = _loaded(app, released.json()["tracking_id"])
    assert loaded["voucher_nos"] == [docs[0]["voucher_no"]]
    assert loaded["total_amount"] == document_amount("payment_voucher", docs[0])

    # A batch of paper vouchers only has nothing to send: it cannot be submitted.
    only_paper = _new_batch(app, [_over_limit(_demo(SEEDS["paper"] + 100, 1, kinds=["payment_voucher"])[0], limit)],
                            submit=False)
    refused = _api(app, "POST", f"/api/v1/batches/{only_paper}/submit", _token(app, "preparer"))
    assert refused.status == 409 and refused.json()["reason"] == "BATCH_ALL_PAPER", refused.body
    assert _view(app, only_paper)["state"] == "draft"
