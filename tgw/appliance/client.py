"""Talking to a running appliance as an agency and as an operator would.

`upload()` is an agency's API call (bearer token, the envelope as the body); `trace()`
reads one envelope's provenance from both zones' databases, which on one box are both at
hand; `outcome()` says where an envelope ended up: loaded, quarantined, or still on its way.
The end-to-end test and the benchmark use these, and so does `tgw appliance upload`.
"""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import or_, select

from tgw_common.config import load_config
from tgw_common.db import make_engine, transaction
from tgw_common.events import EventRow

from .layout import Layout
from .provision import read_credentials

# Where an envelope stops: the inner runner's last word on it.


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    seconds: float

    @property
    def tracking_id(self) -> str | None:
        return self.body.get("tracking_id")


class Portal:
    """A keep-alive HTTP connection to the outer API, one per thread."""

    def __init__(self, url: str, token: str, *, timeout: float = 60) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.token = token
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def _request(self, method: str, path: str, *, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, bytes, float]:
        """(status, body, seconds); a connection the server closes is dropped after the answer."""
        headers = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        for attempt in (1, 2):  # a keep-alive connection the server closed meanwhile is opened again once
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            started = time.monotonic()
            try:
                self._conn.request(method, path, body=body, headers=headers)
                answer = self._conn.getresponse()
                raw = answer.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt == 2:
                    raise
                continue
            if answer.getheader("Connection", "").lower() == "close":
                self.close()
            return answer.status, raw, time.monotonic() - started
        raise AssertionError("unreachable")

    def upload(self, data: bytes) -> Answer:
        status, raw, seconds = self._request(
            "POST", "/api/v1/envelopes", body=data,
            headers={"Content-Type": "application/pkcs7-mime", "Content-Length": str(len(data))})
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"raw": raw[:500].decode("utf-8", "replace")}
        return Answer(status, body, seconds)

    def fate(self, tracking_id: str) -> Answer:
        """GET /api/v1/envelopes/<tracking_id>: the upload's state as the agency sees it."""
        status, raw, seconds = self._request("GET", f"/api/v1/envelopes/{tracking_id}")
        return Answer(status, json.loads(raw) if raw else {}, seconds)

    def receipt(self, tracking_id: str) -> bytes | None:
        """The newest signed receipt (DER), or None before the first one."""
        status, raw, _seconds = self._request("GET", f"/api/v1/envelopes/{tracking_id}/receipt")
        return raw if status == 200 else None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def portal_for(layout: Layout, agency: str) -> Portal:
    creds = read_credentials(layout)
    try:
        token = creds["agencies"][agency]["token"]
    except KeyError:
        raise KeyError(f"{layout.credentials_file} has no token for agency {agency}") from None
    return Portal(creds["portal"], token)


class Zones:
    """Both zones' databases of one appliance, for reading provenance."""

    def __init__(self, layout: Layout) -> None:
        self.engines = {zone: make_engine(load_config(path).database.url)
                        for zone, path in (("outer", layout.outer_config), ("inner", layout.inner_config))}

    def trace(self, *, sha256: str | None = None, tracking_id: str | None = None) -> list[dict[str, Any]]:
        """Every event of one envelope in both zones, in time order."""
        conds = []
        if sha256:
            conds.append(EventRow.sha256 == sha256)
        if tracking_id:
            conds.append(EventRow.tracking_id == tracking_id)
        if not conds:
            return []
        events = []
        for engine in self.engines.values():
            with transaction(engine) as s:
                events += [r.as_dict() for r in s.scalars(select(EventRow).where(or_(*conds)))]
        return sorted(events, key=lambda e: e["at"])


# The states after which an upload's fate is settled (held waits for a fresh CRL: not final).
FINAL_STATES = {"loaded": "loaded", "refused": "quarantined"}


class Fates:
    """Each upload's fate as its agency sees it through the portal's API (the receipts)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.portals: dict[str, Portal] = {}

    def final(self, tracking_id: str, agency: str) -> dict[str, Any] | None:
        if agency not in self.portals:
            self.portals[agency] = portal_for(self.layout, agency)
        view = self.portals[agency].fate(tracking_id)
        if view.status != 200 or view.body.get("state") not in FINAL_STATES:
            return None
        return {"event": FINAL_STATES[view.body["state"]], "state": view.body["state"],
                "reason": view.body.get("reason"), "layer": view.body.get("layer")}

    def wait(self, uploads: dict[str, str], *, timeout: float, poll: float = 0.5) -> dict[str, dict[str, Any]]:
        """Until every tracking id (-> its agency) has a final fate, or the timeout; returns those found."""
        deadline = time.monotonic() + timeout
        found: dict[str, dict[str, Any]] = {}
        while True:
            for tid in [t for t in uploads if t not in found]:
                final = self.final(tid, uploads[tid])
                if final is not None:
                    found[tid] = final
            if len(found) == len(uploads) or time.monotonic() > deadline:
                return found
            time.sleep(poll)

    def close(self) -> None:
        for portal in self.portals.values():
            portal.close()


def describe(events: list[dict[str, Any]]) -> list[str]:
    return [f"{e['at'][11:23]}  {e['zone']:<5} {e['hop']:<17} {e['event']:<11} {e.get('reason') or ''}".rstrip()
            for e in events]


def read_expected(folder: Path) -> dict[str, dict[str, Any]]:
    """expected.json of a `tgw demo-data envelopes` folder, by file name ({} when there is none)."""
    try:
        data = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return {f["file"]: f for f in data.get("files", [])}


def judge(expect: dict[str, Any], answer: Answer, final: dict[str, Any] | None, reason: str | None) -> str | None:
    """None when an envelope ended as expected.json says, else what differs."""
    if expect["expect"] == "loaded":
        if answer.status != 202:
            return f"expected loaded, refused at upload {answer.status} {answer.body.get('reason')}"
        if final is None or final["event"] != "loaded":
            return f"expected loaded, got {final['event'] if final else 'nothing yet'} {reason or ''}".rstrip()
        return None
    if expect["zone"] == "outer":
        if answer.status != expect["http_status"] or answer.body.get("reason") != expect["reason"]:
            return (f"expected {expect['http_status']} {expect['reason']} at upload, "
                    f"got {answer.status} {answer.body.get('reason')}")
        return None
    if answer.status != 202:
        return f"expected quarantine {expect['reason']}, refused at upload {answer.status} {answer.body.get('reason')}"
    if final is None or final["event"] != "quarantined" or reason != expect["reason"]:
        return f"expected quarantine {expect['reason']}, got {final['event'] if final else 'nothing yet'} {reason or ''}"
    return None
