"""Finding an envelope by any of its names and telling its whole story.

An envelope has three names (sha256 of the file, the outer zone's tracking id, the agency's
envelope id) and lives in one of three places in the inner zone: loaded (intake tables),
in quarantine or held (JSON files), or on its way (an `arrived` event and a file in the
inbound spool). The search looks in all three; the detail page is keyed by sha256, the only
name that never means two different files.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, or_, select

from tgw_common.db import transaction, utcnow
from tgw_common.events import EventRow
from tgw_common.pki.certs import common_name, fingerprint
from tgw_common.reasons import Layer, Refusal

from ..models import Document, Envelope, IssuedReceipt, LoadRecord, Payee
from ..quarantine import STATUSES
from .state import Console
from .timefmt import day_bounds

STATES = ("loaded", "parallel-test", "open", "held", "retried", "rejected", "in_progress")
STATE_TITLES = {
    "loaded": _l("loaded, live"), "parallel-test": _l("loaded, parallel-test"),
    "open": _l("in quarantine"), "held": _l("held for a CRL"),
    "retried": _l("retried"), "rejected": _l("rejected"),
    "in_progress": _l("on its way"),
}
# Where an operator fixes the cause of each kind of refusal (the detail page links there).
FIXES = {
    "registry": ("SIGNER_NOT_REGISTERED", "SIGNER_REGISTRATION_REVOKED", "SIGNER_WRONG_AGENCY", "SIGNER_WRONG_ROLE",
                 "DELEGATE_OUTSIDE_WINDOW", "SIGNER_CERT_MISSING"),
    "trust": ("CRL_STALE", "REVOCATION_UNKNOWN", "CERT_UNTRUSTED"),
    "agencies": ("OVER_EPAYMENT_LIMIT",),
}
HOP_ORDER = ("outer-web", "transfer-send", "transfer-receive", "inner-runner")
SHA256_HEX = set("0123456789abcdef")
MAX_INSPECT_BYTES = 64 * 1024 * 1024
MAX_RESULTS = 200


def fix_for(reason: str | None) -> str | None:
    for where, codes in FIXES.items():
        if reason in codes:
            return where
    return None


def is_sha256(value: str) -> bool:
    return len(value) == 64 and set(value.lower()) <= SHA256_HEX


# ------------------------------------------------------------------ search
def search(console: Console, *, q: str = "", agency: str = "", envelope_id: str = "", tracking_id: str = "",
           voucher_no: str = "", state: str = "", day_from: date | None = None, day_until: date | None = None
           ) -> list[dict[str, Any]]:
    """Matching envelopes, newest first; every filter given must hold. `q` matches any name."""
    since = day_bounds(day_from)[0] if day_from else None
    until = day_bounds(day_until)[1] if day_until else None
    q, agency = q.strip(), agency.strip().upper()
    envelope_id, tracking_id, voucher_no = envelope_id.strip(), tracking_id.strip(), voucher_no.strip()
    results: list[dict[str, Any]] = []
    if state in ("", "loaded", "parallel-test"):
        results += _loaded(console, q, agency, envelope_id, tracking_id, voucher_no, state, since, until)
    if state in ("", *STATUSES):
        results += _quarantined(console, q, agency, envelope_id, tracking_id, voucher_no, state, since, until)
    if state in ("", "in_progress") and not (agency or envelope_id or voucher_no):
        results += _on_the_way(console, q, tracking_id, since, until, known={r["sha256"] for r in results})
    results.sort(key=lambda r: r["at"] or "", reverse=True)
    return results[:MAX_RESULTS]


def _like(value: str) -> str:
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _loaded(console, q, agency, envelope_id, tracking_id, voucher_no, state, since, until) -> list[dict]:
    stmt = select(Envelope).order_by(Envelope.loaded_at.desc()).limit(MAX_RESULTS)
    if agency:
        stmt = stmt.where(Envelope.agency == agency)
    if envelope_id:
        stmt = stmt.where(Envelope.envelope_id.ilike(_like(envelope_id), escape="\\"))
    if tracking_id:
        stmt = stmt.where(Envelope.tracking_id.ilike(_like(tracking_id), escape="\\"))
    if voucher_no:
        stmt = stmt.where(Envelope.id.in_(select(Document.envelope_pk)
                                          .where(Document.voucher_no.ilike(_like(voucher_no), escape="\\"))))
    if state == "loaded":
        stmt = stmt.where(Envelope.is_test.is_(False))
    elif state == "parallel-test":
        stmt = stmt.where(Envelope.is_test.is_(True))
    if since:
        stmt = stmt.where(Envelope.loaded_at >= since)
    if until:
        stmt = stmt.where(Envelope.loaded_at < until)
    if q:
        pattern = _like(q)
        stmt = stmt.where(or_(Envelope.envelope_id.ilike(pattern, escape="\\"),
                              Envelope.tracking_id.ilike(pattern, escape="\\"),
                              Envelope.sha256 == q.lower(),
                              Envelope.id.in_(select(Document.envelope_pk)
                                              .where(Document.voucher_no.ilike(pattern, escape="\\")))))
    with transaction(console.engine) as s:
        return [{"sha256": e.sha256, "state": "parallel-test" if e.is_test else "loaded", "agency": e.agency,
                 "envelope_id": e.envelope_id, "tracking_id": e.tracking_id, "at": e.loaded_at.isoformat(),
                 "reason": None, "message": _("%(count)s documents, NT$ %(amount)s", count=e.document_count,
                                              amount=format(e.total_amount, ","))}
                for e in s.scalars(stmt)]


def release_agency(console: Console, entry: dict[str, Any]) -> str | None:
    """The agency of a quarantined envelope: from the entry, or (refused before the payload was
    opened) from the registry entry of its releaser's certificate, read from the release layer."""
    if entry.get("agency"):
        return entry["agency"]
    sha = entry.get("sha256")
    cache = console.release_agencies
    if sha in cache:
        return cache[sha]
    agency = None
    if entry.get("file") and entry.get("status") in ("open", "held", "rejected"):
        folder = console.quarantine.dirs["held" if entry["status"] == "held" else "quarantine"]
        path = folder / entry["file"]
        try:
            if path.stat().st_size <= MAX_INSPECT_BYTES:
                agency = _releaser_agency(console, path.read_bytes())
        except OSError:
            agency = None
    if len(cache) > 10000:
        cache.clear()
    cache[sha] = agency
    return agency


def _releaser_agency(console: Console, data: bytes) -> str | None:
    from asn1crypto import cms

    from tgw_common.tpe.cms import embedded_certificates

    try:
        sd = cms.ContentInfo.load(data)["content"]
        certs = embedded_certificates(sd)
        for si in sd["signer_infos"]:
            sid = si["sid"]
            if sid.name != "issuer_and_serial_number":
                continue
            for c in certs:
                if c.serial_number == sid.chosen["serial_number"].native:
                    entry = console.registry.get(fingerprint(c))
                    if entry is not None:
                        return entry.agency
    except Exception:  # a damaged file: no agency can be told
        return None
    return None


def _quarantined(console, q, agency, envelope_id, tracking_id, voucher_no, state, since, until) -> list[dict]:
    out = []
    for e in console.quarantine.list(statuses=(state,) if state else STATUSES):
        e["agency"] = release_agency(console, e)
        names = [e.get("envelope_id") or "", e.get("tracking_id") or "", e["id"], str(e.get("detail", {}).get(
            "voucher_no") or "")]
        at = e.get("quarantined_at") or e.get("first_seen_at") or ""
        if agency and (e.get("agency") or "") != agency:
            continue
        if envelope_id and envelope_id.lower() not in (e.get("envelope_id") or "").lower():
            continue
        if tracking_id and tracking_id.lower() not in (e.get("tracking_id") or e["id"]).lower():
            continue
        if voucher_no and voucher_no.lower() not in names[3].lower():
            continue
        if q and not (q.lower() == e.get("sha256") or any(q.lower() in n.lower() for n in names if n)):
            continue
        if since and (not at or datetime.fromisoformat(at) < since):
            continue
        if until and (not at or datetime.fromisoformat(at) >= until):
            continue
        out.append({"sha256": e["sha256"], "state": e["status"], "agency": e.get("agency"),
                    "envelope_id": e.get("envelope_id"), "tracking_id": e.get("tracking_id"), "at": at,
                    "reason": e.get("reason"), "message": e.get("message"), "quarantine_id": e["id"]})
    return out


def _on_the_way(console, q, tracking_id, since, until, *, known: set[str]) -> list[dict]:
    """Arrived files that are neither loaded nor in quarantine: in the inbound spool or being processed."""
    stmt = select(EventRow).where(EventRow.event == "arrived").order_by(EventRow.id.desc()).limit(500)
    if tracking_id:
        stmt = stmt.where(EventRow.tracking_id.ilike(_like(tracking_id), escape="\\"))
    if q:
        stmt = stmt.where(or_(EventRow.tracking_id.ilike(_like(q), escape="\\"), EventRow.sha256 == q.lower()))
    if since:
        stmt = stmt.where(EventRow.at >= since)
    if until:
        stmt = stmt.where(EventRow.at < until)
    with transaction(console.engine) as s:
        arrived = [(r.sha256, r.tracking_id, r.at) for r in s.scalars(stmt) if r.sha256 and r.sha256 not in known]
        if not arrived:
            return []
        shas = list({a[0] for a in arrived})
        loaded = set(s.scalars(select(Envelope.sha256).where(Envelope.sha256.in_(shas))))
        settled = set(s.scalars(select(EventRow.sha256).where(
            EventRow.sha256.in_(shas), EventRow.hop == "inner-runner",
            EventRow.event.in_(("duplicate", "quarantined", "rejected")))))
    in_quarantine = {e["sha256"] for e in console.quarantine.list(statuses=("open", "held", "rejected"))}
    out, seen = [], set()
    for sha, tid, at in arrived:
        if sha in loaded or sha in seen or sha in in_quarantine:
            continue
        if sha in settled and not _retried_since(console, sha):
            continue
        seen.add(sha)
        out.append({"sha256": sha, "state": "in_progress", "agency": None, "envelope_id": None, "tracking_id": tid,
                    "at": at.isoformat(), "reason": None, "message": _("arrived, waiting for the runner")})
    return out


def _retried_since(console: Console, sha: str) -> bool:
    with transaction(console.engine) as s:
        last = s.scalars(select(EventRow.event).where(EventRow.sha256 == sha, EventRow.hop == "inner-runner")
                         .order_by(EventRow.at.desc(), EventRow.id.desc()).limit(1)).first()
    return last == "retried"


# ------------------------------------------------------------------ detail
def resolve(console: Console, name: str) -> str | None:
    """The sha256 of the envelope a name (sha256, tracking id, envelope id, quarantine id) stands for."""
    name = name.strip()
    if not name:
        return None
    if is_sha256(name):
        return name.lower()
    with transaction(console.engine) as s:
        sha = s.scalar(select(Envelope.sha256).where(or_(Envelope.envelope_id == name, Envelope.tracking_id == name)))
        if sha:
            return sha
        sha = s.scalar(select(EventRow.sha256).where(
            or_(EventRow.tracking_id == name, EventRow.envelope_id == name), EventRow.sha256.is_not(None))
            .order_by(EventRow.id.desc()).limit(1))
        if sha:
            return sha
    for e in console.quarantine.list(statuses=STATUSES):
        if name in (e["id"], e.get("tracking_id"), e.get("envelope_id")):
            return e["sha256"]
    return None


def detail(console: Console, sha: str) -> dict[str, Any] | None:
    sha = sha.lower()
    loaded = _loaded_detail(console, sha)
    entries = [e for e in console.quarantine.list(statuses=STATUSES) if e.get("sha256") == sha]
    for e in entries:
        e.update(console.quarantine.get(e["id"]))
        e["agency"] = release_agency(console, e)
    events = timeline(console, sha)
    if loaded is None and not entries and not events:
        return None
    names = {"sha256": sha, "tracking_id": None, "envelope_id": None, "agency": None}
    for source in ([loaded] if loaded else []) + entries + events:
        for key in ("tracking_id", "envelope_id", "agency"):
            names[key] = names[key] or source.get(key)
    for ev in events:
        names["agency"] = names["agency"] or (ev.get("detail") or {}).get("agency")
    active = next((e for e in entries if e["status"] in ("open", "held")), None)
    if loaded:
        state = "parallel-test" if loaded["is_test"] else "loaded"
    elif active:
        state = active["status"]
    elif entries and entries[-1]["status"] == "rejected":
        state = "rejected"
    else:
        state = "in_progress"
    last_refusal = next((ev for ev in reversed(events) if ev["event"] == "refused"), None)
    out = {**names, "state": state, "loaded": loaded, "quarantine": entries, "active_entry": active,
           "events": events, "hops": hop_summary(events), "last_refusal": last_refusal,
           "related": related(console, names["envelope_id"], sha)}
    if loaded:
        out["layers"] = layers_of_loaded(loaded)
        out["signers"] = [signer_status(console, s, layer) for layer, s in
                          [("release", loaded["releaser"])] + [("approval", a) for a in loaded["approvals"]]]
    else:
        file = _envelope_file(entries)
        out["layers"], out["signers"] = layers_of_file(console, file) if file else ([], [])
    out["fix"] = fix_for((active or {}).get("reason"))
    out["receipts"] = receipts_of(console, sha)
    return out


def receipts_of(console: Console, sha: str) -> list[dict[str, Any]]:
    """The receipts signed for this envelope (docs/receipts.md): state, when signed and
    published for the return link, and whom a refusal was mailed to."""
    with transaction(console.engine) as s:
        rows = s.scalars(select(IssuedReceipt).where(IssuedReceipt.sha256 == sha).order_by(IssuedReceipt.id)).all()
        return [{"id": r.id, "state": r.state, "issued_at": r.issued_at, "published_at": r.published_at,
                 "mailed_at": r.mailed_at, "mailed_to": r.mailed_to} for r in rows]


def _loaded_detail(console: Console, sha: str) -> dict[str, Any] | None:
    with transaction(console.engine) as s:
        env = s.scalar(select(Envelope).where(Envelope.sha256 == sha))
        if env is None:
            return None
        load = s.scalar(select(LoadRecord).where(LoadRecord.envelope_pk == env.id))
        docs = s.scalars(select(Document).where(Document.envelope_pk == env.id).order_by(Document.seq)).all()
        payee_counts = dict(s.execute(select(Payee.document_pk, func.count()).where(
            Payee.document_pk.in_([d.id for d in docs])).group_by(Payee.document_pk)).all()) if docs else {}
        payees = s.scalars(select(Payee).where(Payee.document_pk.in_([d.id for d in docs]))
                           .order_by(Payee.document_pk, Payee.seq).limit(500)).all() if docs else []
        by_doc: dict[int, list[dict]] = {}
        for p in payees:
            by_doc.setdefault(p.document_pk, []).append(
                {"seq": p.seq, "name": p.name, "id_number": p.id_number, "bank_code": p.bank_code,
                 "account_no": p.account_no, "amount": p.amount})
        return {
            **env.as_dict(), "release_digest": env.release_digest, "size_bytes": env.size_bytes,
            "created_at": env.created_at, "releaser": env.releaser, "approvals": env.approvals, "seal": env.seal,
            "manifest": env.manifest,
            "load": None if load is None else {"via": load.via, "host": load.host, "tries": load.tries,
                                               "claimed_at": load.claimed_at, "loaded_at": load.loaded_at,
                                               "archive_path": load.archive_path, "archived_at": load.archived_at},
            "documents": [{"seq": d.seq, "path": d.path, "kind": d.kind, "fiscal_year": d.fiscal_year,
                           "document_no": d.document_no, "voucher_no": d.voucher_no, "ledger": d.ledger,
                           "amount": d.amount, "payee_count": payee_counts.get(d.id, 0),
                           "payees": by_doc.get(d.id, [])} for d in docs],
        }


def timeline(console: Console, sha: str) -> list[dict[str, Any]]:
    """Every event of this file, oldest first: by sha256, and by its tracking ids for events
    recorded before the hash was known (none today, but a gap names only what the ledger said)."""
    with transaction(console.engine) as s:
        tids = set(s.scalars(select(EventRow.tracking_id).where(EventRow.sha256 == sha,
                                                                 EventRow.tracking_id.is_not(None))))
        conds = [EventRow.sha256 == sha]
        if tids:
            conds.append((EventRow.sha256.is_(None)) & EventRow.tracking_id.in_(tids))
        rows = s.scalars(select(EventRow).where(or_(*conds)).order_by(EventRow.at, EventRow.id)).all()
        events = [r.as_dict() for r in rows]
    previous = None
    for ev in events:
        at = datetime.fromisoformat(ev["at"])
        ev["since_previous"] = (at - previous).total_seconds() if previous else None
        previous = at
    return events


def hop_summary(events: list[dict]) -> list[dict[str, Any]]:
    """Per hop, in envelope order: first and last event and the time spent there."""
    hops: dict[str, dict[str, Any]] = {}
    for ev in events:
        h = hops.setdefault(ev["hop"], {"hop": ev["hop"], "zone": ev["zone"], "first": ev["at"], "last": ev["at"],
                                        "events": []})
        h["last"] = ev["at"]
        h["events"].append(ev["event"])
    order = {name: i for i, name in enumerate(HOP_ORDER)}
    out = sorted(hops.values(), key=lambda h: (order.get(h["hop"], 99), h["first"]))
    for h in out:
        h["seconds"] = (datetime.fromisoformat(h["last"]) - datetime.fromisoformat(h["first"])).total_seconds()
    return out


def related(console: Console, envelope_id: str | None, sha: str) -> list[dict[str, Any]]:
    """Other files that carried the same envelope id (a refused envelope the agency corrected and sent again)."""
    if not envelope_id:
        return []
    with transaction(console.engine) as s:
        rows = s.execute(select(EventRow.sha256, func.max(EventRow.at)).where(
            EventRow.envelope_id == envelope_id, EventRow.sha256.is_not(None), EventRow.sha256 != sha)
            .group_by(EventRow.sha256)).all()
    return [{"sha256": r[0], "at": r[1].isoformat()} for r in rows]


# ------------------------------------------------------------------ layers and signers
def layers_of_loaded(loaded: dict[str, Any]) -> list[dict[str, Any]]:
    r, seal = loaded["releaser"], loaded["seal"]
    manifest = loaded.get("manifest") or {}
    return [
        {"layer": "release", "title": _l("layer 1, release signature"), "type": "SignedData",
         "algorithms": f"{r.get('digest')} / {r.get('signature')}", "signers": 1},
        {"layer": "seal", "title": _l("layer 2, sealed envelope"), "type": seal.get("content_type"),
         "algorithms": f"{seal.get('cipher')} / {seal.get('key_transport')}", "recipients": seal.get("recipients")},
        {"layer": "approval", "title": _l("layer 3, approval signatures"), "type": "SignedData",
         "algorithms": ", ".join(sorted({f"{a.get('digest')} / {a.get('signature')}" for a in loaded["approvals"]})),
         "signers": len(loaded["approvals"])},
        {"layer": "payload", "title": _l("layer 4, document package"), "type": "ZIP + manifest.json",
         "algorithms": f"profile {manifest.get('profile', '-')}", "documents": len(manifest.get("documents", []))},
    ]


def signer_status(console: Console, signer: dict[str, Any], layer: str) -> dict[str, Any]:
    """A signer as recorded at loading, and its certificate's standing now: registry and trust."""
    out = {**signer, "layer": layer}
    entry = console.registry.get(signer.get("fingerprint") or "")
    out.update(_standing(console, entry.certificate if entry else None, entry, layer))
    return out


def _standing(console: Console, cert, entry, layer: str) -> dict[str, Any]:
    now = utcnow()
    out: dict[str, Any] = {"registered": entry is not None, "registry_revoked_at": entry.revoked_at if entry else None,
                           "registered_agency": entry.agency if entry else None,
                           "registered_role": entry.role if entry else None}
    if cert is None:
        out.update(trust="unknown", trust_message=_l("certificate not in the registry"))
        return out
    out["not_after_dt"] = cert.not_valid_after_utc
    out["days_left"] = (cert.not_valid_after_utc - now).days
    try:
        console.trust().validate(cert, layer=Layer.RELEASE if layer == "release" else Layer.APPROVAL, moment=now,
                                 signing_time=now)
        out.update(trust="valid", trust_message=_l("valid now"))
    except Refusal as refusal:
        out.update(trust=refusal.code, trust_message=refusal.message)
    return out


def _envelope_file(entries: list[dict]) -> Path | None:
    for e in reversed(entries):
        if e.get("file") and e.get("file_present"):
            return Path(e["folder"]) / e["file"]
    return None


def layers_of_file(console: Console, path: Path) -> tuple[list[dict], list[dict]]:
    """What can be read without the treasury's key: the release layer and the seal."""
    from asn1crypto import cms

    from tgw_common.tpe.cms import embedded_certificates
    from tgw_common.tpe.inspect import describe

    try:
        if path.stat().st_size > MAX_INSPECT_BYTES:
            return [], []
        data = path.read_bytes()
    except OSError:
        return [], []
    info = describe(data)
    layers = []
    for layer in info.get("layers", []):
        if layer["layer"] == "release":
            algs = ", ".join(sorted({f"{s['digest']} / {s['signature']}" for s in layer.get("signers", [])}))
            layers.append({"layer": "release", "title": _l("layer 1, release signature"), "type": layer["type"],
                           "algorithms": algs,
                           "signers": len(layer.get("signers", []))})
        elif layer["layer"] == "seal":
            kt = ", ".join(sorted({r.get("key_transport", r["type"]) for r in layer.get("recipients", [])}))
            layers.append({"layer": "seal", "title": _l("layer 2, sealed envelope"), "type": layer["type"],
                           "algorithms": f"{layer.get('cipher')} / {kt}", "recipients": len(layer.get("recipients", []))})
    if "note" in info:
        layers.append({"layer": "approval", "title": _l("layers 3 and 4"), "type": _l("(encrypted)"),
                       "algorithms": _l("not loaded: only the runner can decrypt these")})
    if "error" in info:
        layers.append({"layer": "error", "title": _l("not readable"), "type": "-", "algorithms": info["error"]})
    signers = []
    try:
        sd = cms.ContentInfo.load(data)["content"]
        certs = embedded_certificates(sd)
        for si in sd["signer_infos"]:
            sid = si["sid"]
            match = None
            if sid.name == "issuer_and_serial_number":
                match = next((c for c in certs if c.serial_number == sid.chosen["serial_number"].native), None)
            attrs = {a["type"].native: a["values"][0].native for a in (si["signed_attrs"] or [])}
            fp = fingerprint(match) if match else None
            entry = console.registry.get(fp) if fp else None
            s = {"role": entry.role if entry else "releaser", "agency": entry.agency if entry else None,
                 "delegate": entry.delegate if entry else False, "fingerprint": fp,
                 "subject": common_name(match.subject) if match else None,
                 "signing_time": attrs["signing_time"].isoformat() if "signing_time" in attrs else None,
                 "digest": si["digest_algorithm"]["algorithm"].native,
                 "signature": si["signature_algorithm"]["algorithm"].native, "layer": "release"}
            s.update(_standing(console, match, entry, "release"))
            signers.append(s)
    except Exception:  # a damaged file: the layers above already say where parsing stopped
        signers = []
    del data
    return layers, signers

