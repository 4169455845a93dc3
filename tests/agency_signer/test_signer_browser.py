"""`tgw agency signer` in a real browser (Debian chromium driven by Playwright): a stand-in portal
page calls the service with fetch() under the browser's own CORS rules, and the officer confirms
on the service's page with the card's PIN."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.kit import free_port
from tgw_common.reasons import Layer
from tgw_common.tpe.cms import load_content_info

from .conftest import pin_of

pytestmark = pytest.mark.browser
pytest.importorskip("playwright.sync_api")

A = "A10001"
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

# The portal's side of the protocol, as a portal page would run it: ask, then poll until the
# officer has answered on the service's own page. Failures are returned, not thrown, so the
# test sees what the page could (or could not) read.
PORTAL_PAGE = """<!doctype html>
<html lang="zh-Hant-TW"><head><meta charset="utf-8"><title>入口網站 Portal</title></head>
<body><h1>入口網站 stand-in portal</h1><pre id="result"></pre>
<script>
async function call(url, init) {
  try {
    const response = await fetch(url, init);
    return {status: response.status, body: await response.json()};
  } catch (error) {
    return {failed: String(error)};
  }
}
window.askSigner = (signer, role, given, data) => call(signer + "/v1/sign", {
  method: "POST", headers: {"Content-Type": "application/json"},
  body: JSON.stringify({role: role, [given]: data}),
});
window.requestState = (signer, id) => call(signer + "/v1/requests/" + encodeURIComponent(id));
window.pollSigner = async (signer, id) => {
  const shown = document.getElementById("result");
  shown.dataset.polls = "0";
  for (;;) {
    const answer = await requestState(signer, id);
    shown.dataset.polls = String(Number(shown.dataset.polls) + 1);
    if (answer.failed || answer.body.state !== "pending") {
      shown.dataset.state = answer.failed ? "failed" : answer.body.state;
      shown.textContent = JSON.stringify(answer);
      return;
    }
    await new Promise(done => setTimeout(done, 200));
  }
};
</script></body></html>
""".encode()


class _PortalPage(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PORTAL_PAGE)))
        self.end_headers()
        self.wfile.write(PORTAL_PAGE)

    def log_message(self, *args):
        pass


@pytest.fixture
def sites():
    """sites() -> the origin of a new little web site serving the portal page."""
    servers: list[ThreadingHTTPServer] = []

    def start() -> str:
        server = ThreadingHTTPServer(("127.0.0.1", free_port()), _PortalPage)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def playwright():
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
    yield b
    b.close()


@pytest.fixture
def context(browser):
    context = browser.new_context(locale="zh-TW", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    yield context
    context.close()


def _open(context, url: str):
    page = context.new_page()
    page.goto(url)
    return page


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _ask(portal_page, service, role: str, given: str, data: bytes) -> dict:
    return portal_page.evaluate("([s, r, g, d]) => askSigner(s, r, g, d)", [service.origin, role, given, _b64(data)])


def _state(portal_page, service, request_id: str) -> dict:
    return portal_page.evaluate("([s, id]) => requestState(s, id)", [service.origin, request_id])


def _start_polling(portal_page, service, request_id: str) -> None:
    portal_page.evaluate("([s, id]) => { pollSigner(s, id); }", [service.origin, request_id])


def _polled(portal_page) -> dict:
    portal_page.wait_for_selector("#result[data-state]:not([data-state=pending])")
    return json.loads(portal_page.inner_text("#result"))


def _off_the_browser_thread(call, *args):
    """Path validation runs asyncio.run(), which cannot run in the thread Playwright's loop runs in."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call, *args).result()


def _type_pin_and_sign(officer_page, pin: str) -> None:
    officer_page.fill("input[name=pin]", pin)
    officer_page.click("button[value=confirm]")
    officer_page.wait_for_load_state()


def test_only_the_portal_origin_can_read_the_service_in_a_browser(start_signer, sites, context, kit):
    portal, third = sites(), sites()
    service = start_signer(f"{A}-accountant", portal_origin=portal)
    payload = kit.payload(A)

    portal_page = _open(context, portal + "/")
    asked = _ask(portal_page, service, "accountant", "payload", payload)
    assert asked.get("status") == 202, asked
    request_id = asked["body"]["request_id"]
    assert asked["body"]["state"] == "pending" and asked["body"]["summary"]["agency"] == A
    assert asked["body"]["confirm_url"] == f"{service.origin}/confirm/{request_id}"
    assert _state(portal_page, service, request_id)["body"]["state"] == "pending"

    # The same script from a third origin: the preflight is refused, and the simple GET's
    # answer is not the page's to read.
    other_page = _open(context, third + "/")
    refused = _ask(other_page, service, "accountant", "payload", payload)
    assert "failed" in refused, refused
    assert "failed" in _state(other_page, service, request_id)
    assert service.call("GET", f"/v1/requests/{request_id}", origin=portal).json()["state"] == "pending"


def test_the_officer_confirms_on_the_page_and_the_portal_polls_the_result(start_signer, sites, context, cards, kit,
                                                                           opener):
    portal = sites()
    service = start_signer(f"{A}-head", portal_origin=portal)
    payload = kit.payload(A)
    by_accountant = kit.approve(payload, A, roles=("accountant",))

    portal_page = _open(context, portal + "/")
    asked = _ask(portal_page, service, "head", "approval", by_accountant)
    assert asked.get("status") == 202, asked
    request_id = asked["body"]["request_id"]
    _start_polling(portal_page, service, request_id)

    officer_page = _open(context, asked["body"]["confirm_url"])
    shown = officer_page.inner_text("main")
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(payload)).read("manifest.json"))
    total = int(manifest["control"]["total_amount"])
    assert "確認簽章" in shown and "機關代碼" in shown and "文件數" in shown and "總金額" in shown
    assert officer_page.inner_text("tr:has(th:text('機關代碼')) td") == A
    assert officer_page.inner_text("tr:has(th:text('文件數')) td") == str(len(manifest["documents"]))
    assert officer_page.inner_text("tr:has(th:text('總金額')) td") == f"NT$ {total:,}"
    assert officer_page.inner_text("tr:has(th:text('SHA-256')) td") == hashlib.sha256(payload).hexdigest()
    assert officer_page.inner_text("tr:has(th:text('已有簽章')) td") == "1"
    assert f"{A}-head" in officer_page.inner_text(".card")

    _type_pin_and_sign(officer_page, pin_of(cards, f"{A}-head"))
    assert "已簽章" in officer_page.inner_text(".done")

    done = _polled(portal_page)
    assert done["status"] == 200 and done["body"]["state"] == "signed", done
    assert int(portal_page.get_attribute("#result", "data-polls")) >= 1
    approved = base64.b64decode(done["body"]["result"])
    opened = _off_the_browser_thread(opener.open, kit.wrap(approved, A))
    by_file = _off_the_browser_thread(opener.open, kit.envelope(A, payload=payload))
    assert sorted(s.role for s in opened.approvals) == ["accountant", "head"]
    assert sorted(s.fingerprint for s in opened.approvals) == sorted(s.fingerprint for s in by_file.approvals)
    assert opened.envelope_id == by_file.envelope_id and len(opened.documents) == len(by_file.documents)


def test_a_wrong_pin_on_the_page_is_shown_and_the_request_stays_pending(start_signer, sites, context, cards, kit):
    portal = sites()
    service = start_signer(f"{A}-accountant", portal_origin=portal)
    payload = kit.payload(A)
    portal_page = _open(context, portal + "/")
    asked = _ask(portal_page, service, "accountant", "payload", payload)
    request_id = asked["body"]["request_id"]

    officer_page = _open(context, asked["body"]["confirm_url"])
    _type_pin_and_sign(officer_page, "00000000")
    problem = officer_page.inner_text(".problem[role=alert]")
    assert "CKR_PIN_INCORRECT" in problem, problem
    still = _state(portal_page, service, request_id)["body"]
    assert still["state"] == "pending" and still["last_error"] == "PIN_INCORRECT" and "result" not in still

    _type_pin_and_sign(officer_page, pin_of(cards, f"{A}-accountant"))
    assert "已簽章" in officer_page.inner_text(".done")
    assert officer_page.locator(".problem").count() == 0
    _start_polling(portal_page, service, request_id)
    done = _polled(portal_page)["body"]
    assert done["state"] == "signed" and "last_error" not in done
    signed = load_content_info(base64.b64decode(done["result"]), Layer.APPROVAL, ("signed_data",))["content"]
    assert signed["encap_content_info"]["content"].native == payload
    assert len(signed["signer_infos"]) == 1


def test_a_portal_on_the_public_internet_reaches_the_service_once_the_officer_allows_it(start_signer, sites,
                                                                                       playwright, kit):
    # The real portal is a public address calling 127.0.0.1: Chromium gates that (Local Network
    # Access, formerly Private Network Access) on top of CORS. The stand-in portal is made to
    # count as public, and the officer's "allow" is the granted permission.
    portal = sites()
    service = start_signer(f"{A}-accountant", portal_origin=portal)
    public = f"--ip-address-space-overrides={portal.removeprefix('http://')}=public"
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[*ARGS, public])
    try:
        context = browser.new_context(locale="zh-TW")
        context.grant_permissions(["local-network-access"])
        portal_page = _open(context, portal + "/")
        asked = _ask(portal_page, service, "accountant", "payload", kit.payload(A))
        assert asked.get("status") == 202, asked
        assert _state(portal_page, service, asked["body"]["request_id"])["body"]["state"] == "pending"
    finally:
        browser.close()
