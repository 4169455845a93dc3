"""Demo IC cards on SoftHSM2, fresh per test (own SOFTHSM2_CONF and token folder), and the
signing service run as the officer runs it: `tgw agency signer` under gunicorn."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest
import yaml

from tests.kit import free_port, stop_process, wait_until

SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"
PORTAL = "https://portal.example.gov.tw"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cards(demo_pki, tmp_path, monkeypatch) -> dict:
    """The A10001 officers' keys on three SoftHSM2 tokens; pins.json's content."""
    if not Path(SOFTHSM).is_file():
        if os.environ.get("CI"):
            pytest.fail("softhsm2 is not installed (apt-get install softhsm2)")
        pytest.skip("needs softhsm2 (apt-get install softhsm2)")
    from tgw.demo.softhsm import put_officers_on_tokens
    from tgw_common.pki.pkcs11key import reload_library

    summary = put_officers_on_tokens(demo_pki, tmp_path / "cards", ["A10001"])
    monkeypatch.setenv("SOFTHSM2_CONF", summary["softhsm2_conf"])
    reload_library(SOFTHSM)
    return summary


@dataclass
class Answer:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class SignerService:
    port: int
    process: subprocess.Popen

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, method: str, path: str, *, origin: str | None = PORTAL, body: bytes | None = None,
             headers: dict | None = None) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        sent = dict(headers or {})
        if origin is not None:
            sent["Origin"] = origin
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        answer = Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        conn.close()
        return answer

    def ask(self, role: str, given: str, data: bytes, origin: str = PORTAL) -> Answer:
        import base64

        body = json.dumps({"role": role, given: base64.b64encode(data).decode()}).encode()
        return self.call("POST", "/v1/sign", origin=origin, body=body, headers={"Content-Type": "application/json"})

    def status(self, request_id: str) -> dict:
        return self.call("GET", f"/v1/requests/{request_id}").json()

    def page(self, request_id: str) -> Answer:
        return self.call("GET", f"/confirm/{request_id}", origin=None)

    def confirm(self, request_id: str, *, pin: str | None = None, action: str = "confirm",
                origin: str | None = "own", token: str | None = None) -> Answer:
        if token is None:
            token = re.search(rb'name="token" value="([^"]+)"', self.page(request_id).body).group(1).decode()
        form = {"token": token, "action": action} | ({"pin": pin} if pin is not None else {})
        return self.call("POST", f"/confirm/{request_id}", origin=self.origin if origin == "own" else origin,
                         body=urlencode(form).encode(),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})

    def sign(self, role: str, given: str, data: bytes, pin: str | None) -> bytes:
        """The whole round: ask, confirm on the page, collect the result."""
        import base64

        asked = self.ask(role, given, data)
        assert asked.status == 202, asked.body
        request_id = asked.json()["request_id"]
        confirmed = self.confirm(request_id, pin=pin)
        assert confirmed.status == 200, confirmed.body.decode()
        done = self.status(request_id)
        assert done["state"] == "signed", done
        return base64.b64decode(done["result"])


def signer_config(folder: Path, port: int, token: str, **signer) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"signer-{token}.yaml"
    section = {"listen": f"127.0.0.1:{port}", "portal_origin": PORTAL, "pkcs11_module": SOFTHSM,
               "token_label": token, **signer}
    path.write_text(yaml.safe_dump({"node": {"zone": "outer", "data_dir": str(folder / "var")},
                                    "signer": section}))
    return path


@pytest.fixture
def start_signer(cards, tmp_path):
    """start_signer(token label, extra CLI args...) -> a running SignerService, stopped afterwards."""
    started: list[subprocess.Popen] = []

    def start(token: str, *args: str, **signer) -> SignerService:
        port = free_port()
        config = signer_config(tmp_path / "signer", port, token, **signer)
        process = subprocess.Popen([sys.executable, "-m", "tgw", "agency", "signer", "--config", str(config), *args],
                                   cwd=ROOT, env=os.environ.copy(), stdout=subprocess.DEVNULL,
                                   stderr=open(tmp_path / f"signer-{token}.log", "wb"))  # noqa: SIM115
        started.append(process)
        service = SignerService(port, process)
        portal = signer.get("portal_origin", PORTAL)  # the probe is refused from any other origin

        def answering():
            assert process.poll() is None, (tmp_path / f"signer-{token}.log").read_text()
            try:
                return service.call("GET", "/v1/requests/none", origin=portal).status == 404
            except OSError:
                return False

        wait_until(answering, 30, f"the signer for {token}")
        return service

    yield start
    for process in started:
        stop_process(process)


def pin_of(cards: dict, token: str) -> str:
    return cards["tokens"][token]["pin"]
