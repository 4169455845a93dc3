"""The login, upload and status pages in a real browser (Debian chromium driven by Playwright)
against a real gunicorn: the drag-and-drop script must work under the strict CSP."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from .conftest import PASSWORD

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, served):
    context = browser.new_context(base_url=served.base, locale="zh-TW", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.problems = problems
    yield page
    context.close()


def _login(page, username: str, agency: str = "A10001", password: str = PASSWORD) -> None:
    page.goto("/login")
    page.fill("#agency", agency)
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login-submit")


def test_login_upload_and_status(page, served, envelopes, kit, artifacts):
    _login(page, "a1-rel", password="not-the-password")
    assert page.locator("#login-error").get_attribute("data-reason") == "UNAUTHENTICATED"
    page.screenshot(path=str(artifacts / "outer-login-refused.png"), full_page=True)
    _login(page, "a1-rel")
    page.wait_for_url("**/upload")
    assert "上傳信封" in page.inner_text("h1")

    # Choose a file with the file input; the script posts it and shows the answer.
    page.set_input_files("#envelope", files=[{"name": "envelope.p7m", "mimeType": "application/pkcs7-mime",
                                              "buffer": envelopes.valid()}])
    assert "envelope.p7m" in page.inner_text("#chosen-file")
    page.click("#upload-submit")
    page.wait_for_selector(".result[data-state=accepted]")
    first = page.inner_text("#tracking-id").strip()
    assert page.inner_text(".result[data-state=accepted] h2") == "已收件"
    assert f"{first}.p7m" in served.env.outbound_files()
    page.screenshot(path=str(artifacts / "outer-upload-accepted.png"), full_page=True)

    # Drop a file on the drop zone, the way a user drags it from the desktop.
    payload = base64.b64encode(envelopes.valid()).decode()
    transfer = page.evaluate_handle("""(b64) => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], "dropped.p7m", {type: "application/pkcs7-mime"}));
        return dt;
    }""", payload)
    page.dispatch_event("#drop-zone", "dragover", {"dataTransfer": transfer})
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": transfer})
    assert "dropped.p7m" in page.inner_text("#chosen-file")
    page.click("#upload-submit")
    # (No wait_for_function: the page's CSP forbids eval, even Playwright's.)
    expect(page.locator("#tracking-id")).not_to_have_text(first)
    second = page.inner_text("#tracking-id").strip()
    assert f"{second}.p7m" in served.env.outbound_files()

    # A refused envelope shows its reason code.
    revoked = envelopes.signed_by(*kit.extra("revoked-releaser"))
    page.set_input_files("#envelope", files=[{"name": "revoked.p7m", "mimeType": "application/pkcs7-mime",
                                              "buffer": revoked}])
    page.click("#upload-submit")
    page.wait_for_selector(".result[data-state=refused]")
    assert page.get_attribute(".result[data-state=refused]", "data-reason") == "CERT_REVOKED"
    page.screenshot(path=str(artifacts / "outer-upload-refused.png"), full_page=True)

    page.click("#nav-status")
    page.wait_for_url("**/status")
    rows = page.locator("#uploads tbody tr")
    states = {rows.nth(i).get_attribute("data-tracking-id"): rows.nth(i).get_attribute("data-state")
              for i in range(rows.count())}
    assert states[first] == states[second] == "accepted"
    assert "refused" in states.values()
    page.fill("#q", first[:26])
    page.click("#search-submit")
    page.wait_for_url("**/status?**")
    assert page.locator("#uploads tbody tr").count() == 1
    page.screenshot(path=str(artifacts / "outer-status.png"), full_page=True)
    assert not [p for p in page.problems if "Content Security Policy" in p or "Refused to" in p], page.problems


def test_admin_pages_render_in_the_browser(page, artifacts):
    _login(page, "a1-admin")
    page.wait_for_url("**/status")
    page.click("#nav-users")
    page.fill("#new-username", "a1-browser")
    page.check("input[name=roles][value=reviewer]")
    page.click("#user-submit")
    assert len(page.inner_text("#new-password").strip()) >= 12
    page.screenshot(path=str(artifacts / "outer-admin-users.png"), full_page=True)
    page.click("#nav-delegations")
    assert "代理設定" in page.inner_text("h1")
    page.click("#logout")
    page.wait_for_url("**/login")
    assert not page.problems, page.problems


def test_the_upload_script_speaks_the_pages_language(page, served):
    """The script's words come from the page's JSON block: English once the user switched."""
    page.context.add_cookies([{"name": "tgw_lang", "value": "en", "url": served.base}])
    _login(page, "a1-rel")
    page.wait_for_url("**/upload")
    assert page.inner_text("h1") == "Upload an envelope"
    page.click("#upload-submit")  # no file chosen: the script answers by itself
    page.wait_for_selector(".result[data-state=refused]")
    assert page.get_attribute(".result[data-state=refused]", "data-reason") == "EMPTY_UPLOAD"
    assert page.inner_text(".result[data-state=refused] h2").startswith("Refused")
    assert page.inner_text(".result[data-state=refused] p") == "choose a file first"
    assert not page.problems, page.problems
