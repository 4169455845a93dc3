"""A demo batch of envelopes, valid ones and a mix of bad ones, with the outcome each must get.

`tgw demo-data envelopes` writes the files and `expected.json`; the end-to-end test and the
benchmark upload them through the appliance and compare. Every envelope is built with the
production builders of tgw_common.tpe (an agency's tools would do the same); the bad ones
differ from a valid one in exactly one way, so each is refused for one known reason, by one
known zone: the outer zone at upload (HTTP 4xx, release layer and upload checks) or the
inner zone into quarantine (everything under the seal, and the payment database's
replay and duplicate-voucher checks).

Some bad envelopes only make sense after another one is loaded (a replayed envelope id, a
voucher loaded before, the very same file uploaded twice): their entry names that file in
`after`, and whoever uploads the batch sends them once it is loaded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tgw.demo.documents import BAD_DOCUMENT_CODES, bad_documents, generate_documents
from tgw_common.pki.certs import load_certificate_file, load_private_key_file
from tgw_common.spool import write_atomic
from tgw_common.tpe import add_signature, build_payload, make_seal, sign_new

TAIPEI = dt.timezone(dt.timedelta(hours=8))
EXPECTED = "expected.json"
FORMAT = "tgw-demo-envelopes/1"


@dataclass(frozen=True)
class BadKind:
    """One way an envelope can be wrong, and who must refuse it with what."""

    name: str
    zone: str  # "outer" (refused at upload) or "inner" (quarantined)
    reason: str
    layer: str
    what: str
    http_status: int | None = None  # the outer zone's answer
    needs_original: bool = False  # built from a valid envelope of the batch, uploaded after it is loaded
    needs_extra: str | None = None  # a certificate of the demo PKI's extra/ folder
    needs_other_agency: bool = False


# The order is the order kinds are handed out, so a small batch still gets a broad mix.
_KINDS: tuple[BadKind, ...] = (
    BadKind("tampered", "outer", "DIGEST_MISMATCH", "release", "one byte of the sealed content flipped", 422),
    BadKind("bad-document", "inner", "", "documents", "documents that break one business rule"),
    BadKind("revoked-releaser", "outer", "CERT_REVOKED", "release", "released by a certificate revoked in the CRL",
            422, needs_extra="revoked-releaser"),
    BadKind("expired-signer", "inner", "CERT_EXPIRED", "approval", "approved by an expired accountant certificate",
            needs_extra="expired-accountant"),
    BadKind("wrong-agency-releaser", "outer", "SIGNER_WRONG_AGENCY", "release",
            "another agency's envelope, uploaded with this agency's token", 422, needs_other_agency=True),
    BadKind("unregistered-signer", "inner", "SIGNER_NOT_REGISTERED", "approval",
            "approved by a valid certificate that is not in the registry", needs_extra="unregistered-releaser"),
    BadKind("unregistered-releaser", "outer", "SIGNER_NOT_REGISTERED", "release",
            "released by a valid certificate that is not in the registry", 422, needs_extra="unregistered-releaser"),
    BadKind("replayed-envelope-id", "inner", "REPLAY", "intake",
            "new documents under the envelope id of a loaded envelope", needs_original=True),
    BadKind("resubmitted", "outer", "REPLAY", "upload", "the very same file as a loaded envelope, uploaded again",
            409, needs_original=True),
    BadKind("duplicate-voucher", "inner", "DUPLICATE_VOUCHER", "intake",
            "a new envelope carrying a voucher already loaded", needs_original=True),
    BadKind("untrusted-releaser", "outer", "CERT_UNTRUSTED", "release", "released by a certificate of a rogue CA",
            422, needs_extra="untrusted-releaser"),
    BadKind("wrong-agency-signer", "inner", "SIGNER_WRONG_AGENCY", "approval",
            "the head of another agency approved", needs_other_agency=True),
    BadKind("wrong-role-releaser", "outer", "SIGNER_WRONG_ROLE", "release", "the agency head signed the release",
            422),
    BadKind("one-approval", "inner", "APPROVALS_MISSING", "approval", "only the accountant approved"),
    BadKind("truncated", "outer", "MALFORMED_DER", "release", "the last 64 bytes cut off", 422),
    BadKind("same-cert-twice", "inner", "APPROVALS_SAME_CERT", "approval", "the accountant approved twice"),
    BadKind("trailing-bytes", "outer", "TRAILING_DATA", "release", "a zero byte appended", 422),
    BadKind("wrong-usage-signer", "inner", "CERT_KEY_USAGE", "approval",
            "approved by a head certificate without a signing key usage", needs_extra="wrong-usage-head"),
    BadKind("future-release", "outer", "SIGNING_TIME_FUTURE", "release", "release signing time one day ahead", 422),
    BadKind("not-for-treasury", "inner", "NOT_FOR_TREASURY", "seal",
            "sealed for another certificate than the treasury's"),
    BadKind("empty", "outer", "EMPTY_UPLOAD", "upload", "a file of zero bytes", 400),
)
BAD_KINDS = {k.name: k for k in _KINDS}
# Bad documents have eleven codes of their own: they come round three times as often.
_ROTATION = [k for k in _KINDS for _ in range(3 if k.name == "bad-document" else 1)]


@dataclass
class Item:
    """One file of the batch and what must happen to it."""

    name: str
    data: bytes
    expect: dict[str, Any]


@dataclass
class _Pki:
    folder: Path
    agencies: list[str]
    extras_agency: str | None
    treasury: Any = field(init=False)

    def __post_init__(self) -> None:
        self.treasury = load_certificate_file(self.folder / "treasury" / "envelope.pem")
        self._cache: dict[Path, tuple] = {}

    def _load(self, stem: Path) -> tuple:
        if stem not in self._cache:
            self._cache[stem] = (load_certificate_file(stem.with_suffix(".pem")),
                                 load_private_key_file(stem.with_suffix(".key")))
        return self._cache[stem]

    def pair(self, agency: str, role: str) -> tuple:
        return self._load(self.folder / "agencies" / agency / role)

    def extra_pair(self, name: str) -> tuple:
        return self._load(self.folder / "extra" / name)


def read_pki(folder: Path) -> _Pki:
    """The demo PKI's agencies, and which agency its extra/ certificates are registered to."""
    try:
        summary = json.loads((folder / "pki.json").read_text(encoding="utf-8"))
        registry = yaml.safe_load((folder / "registry.yaml").read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"{folder} is not a demo PKI written by `tgw pki demo` ({exc})") from None
    extras = {e["agency"] for e in registry.get("signers", []) if str(e.get("certificate", "")).startswith("extra/")}
    return _Pki(folder, sorted(summary.get("agencies", {})), next(iter(extras)) if len(extras) == 1 else None)


def _docs(generated) -> list[tuple[str, str, bytes]]:
    return [(f"documents/{d.path}", d.kind, d.data) for d in generated]


class _Builder:
    """Builds envelopes the way an agency would, with one thing changed on request."""

    def __init__(self, pki: _Pki) -> None:
        self.pki = pki

    def build(self, agency: str, envelope_id: str, docs, *, approvers=None, releaser=None, recipients=None,
              release_time: dt.datetime | None = None) -> bytes:
        payload = build_payload(envelope_id, agency, docs)
        approvers = approvers or [self.pki.pair(agency, "accountant"), self.pki.pair(agency, "head")]
        approved = sign_new(payload, *approvers[0])
        for cert, key in approvers[1:]:
            approved = add_signature(approved, cert, key)
        sealed = make_seal(approved, recipients or [self.pki.treasury])
        return sign_new(sealed, *(releaser or self.pki.pair(agency, "releaser")), signing_time=release_time)


def _flip_in_sealed_content(envelope: bytes) -> bytes:
    """Flip one byte inside the sealed blob the releaser signed: the DER stays well-formed,
    only the release layer's messageDigest no longer matches (a transport corruption)."""
    from asn1crypto import cms

    sealed = cms.ContentInfo.load(envelope)["content"]["encap_content_info"]["content"].contents
    start = envelope.find(sealed)
    where = start + len(sealed) // 2
    return envelope[:where] + bytes([envelope[where] ^ 0x5A]) + envelope[where + 1:]


def _plan(count: int, bad_fraction: float, kinds: list[BadKind], rng: random.Random) -> list[str]:
    """Which slot gets which kind: 'valid' or a bad kind's name, kinds taken in turn."""
    n_bad = round(count * bad_fraction) if kinds else 0
    n_bad = min(n_bad, count - 1) if count > 1 else 0
    # Kinds that need a loaded original need at least one valid envelope; there is one (count - 1 cap).
    bad = [kinds[i % len(kinds)].name for i in range(n_bad)]
    plan = ["valid"] * (count - n_bad) + bad
    rng.shuffle(plan)
    return plan


def build_batch(pki_dir: Path, count: int, *, agency: str | None = None, bad_fraction: float = 0.3,
                seed: int = 1, today: dt.date | None = None) -> list[Item]:
    """`count` envelopes (valid and bad) in upload order; bad ones that need an original come last."""
    pki = read_pki(pki_dir)
    if not pki.agencies:
        raise ValueError(f"{pki_dir}: the demo PKI has no agencies")
    if agency is not None and agency not in pki.agencies:
        raise ValueError(f"agency {agency} is not in {pki_dir} (it has {', '.join(pki.agencies)})")
    uploaders = [agency] if agency else pki.agencies
    rng = random.Random(seed)
    today = today or dt.datetime.now(TAIPEI).date()
    builder = _Builder(pki)

    def usable(kind: BadKind, code: str) -> bool:
        if kind.needs_extra and pki.extras_agency != code:
            return False
        return not (kind.needs_other_agency and len(pki.agencies) < 2)

    plan = _plan(count, bad_fraction, _ROTATION, rng)
    # One generator run per agency gives every valid voucher its own number (the runs of one
    # context never repeat a serial); envelopes take 1-4 documents each from it, and a
    # replayed envelope id takes one more.
    per_envelope = [rng.randint(1, 4) for _ in plan]
    pools = {code: iter(_docs(generate_documents(code, sum(per_envelope) + count, seed=seed * 1000 + i, today=today)))
             for i, code in enumerate(pki.agencies)}
    bad_codes = iter(BAD_DOCUMENT_CODES * (count // len(BAD_DOCUMENT_CODES) + 1))
    stamp = dt.datetime.now(TAIPEI).strftime("%Y%m%d%H%M%S")

    fallback: dict[str, Iterator[BadKind]] = {}
    items: list[Item] = []
    later: list[tuple[int, BadKind, str]] = []
    loaded: list[tuple[Item, list]] = []  # valid envelopes, with their documents
    for index, slot in enumerate(plan, start=1):
        kind = BAD_KINDS.get(slot)
        code = uploaders[index % len(uploaders)]
        if kind is not None and kind.needs_extra and pki.extras_agency in uploaders:
            code = pki.extras_agency  # the extra certificates are registered to that agency only
        envelope_id = f"{code}-DEMO{seed}-{stamp}-{index:05d}"
        docs = [next(pools[code]) for _ in range(per_envelope[index - 1])]
        if kind is not None and not usable(kind, code):
            # This agency cannot show that fault (the extra certificates belong to another
            # agency, or there is only one agency): the next kind in turn that it can show.
            if code not in fallback:
                fallback[code] = itertools.cycle([k for k in _ROTATION if usable(k, code) and not k.needs_original])
            kind = next(fallback[code])
        if kind is None:
            item = _valid(builder, index, code, envelope_id, docs)
            loaded.append((item, docs))
            items.append(item)
        elif kind.needs_original:
            later.append((index, kind, code))
        else:
            items.append(_bad(builder, pki, index, kind, code, envelope_id, docs, bad_codes, seed))
    for index, kind, code in later:
        originals = [(it, d) for it, d in loaded if it.expect["agency"] == code] or loaded
        original, docs = originals[index % len(originals)]
        items.append(_after(builder, index, kind, original, docs, pools[code]))
    return items


def _valid(builder: _Builder, index: int, code: str, envelope_id: str, docs) -> Item:
    data = builder.build(code, envelope_id, docs)
    return Item(f"{index:05d}-valid.p7m", data, {
        "kind": "valid", "expect": "loaded", "agency": code, "upload_as": code, "envelope_id": envelope_id,
        "documents": len(docs), "what": "a valid envelope"})


def _refused(kind: BadKind, index: int, code: str, data: bytes, *, upload_as: str | None = None,
             envelope_id: str | None = None, reason: str | None = None, layer: str | None = None,
             what: str | None = None, after: str | None = None) -> Item:
    expect = {"kind": kind.name, "expect": "refused", "zone": kind.zone, "reason": reason or kind.reason,
              "layer": layer or kind.layer, "agency": code, "upload_as": upload_as or code,
              "envelope_id": envelope_id, "what": what or kind.what}
    if kind.http_status:
        expect["http_status"] = kind.http_status
    if after:
        expect["after"] = after
    return Item(f"{index:05d}-{kind.name}.p7m", data, expect)


def _bad(builder: _Builder, pki: _Pki, index: int, kind: BadKind, code: str, envelope_id: str, docs,
         bad_codes, seed: int) -> Item:
    b, n = builder, kind.name
    other = next((a for a in pki.agencies if a != code), None)
    simple: dict[str, Callable[[], bytes]] = {
        "tampered": lambda: _flip_in_sealed_content(b.build(code, envelope_id, docs)),
        "truncated": lambda: b.build(code, envelope_id, docs)[:-64],
        "trailing-bytes": lambda: b.build(code, envelope_id, docs) + b"\x00",
        "empty": lambda: b"",
        "revoked-releaser": lambda: b.build(code, envelope_id, docs, releaser=pki.extra_pair("revoked-releaser")),
        "unregistered-releaser": lambda: b.build(code, envelope_id, docs,
                                                 releaser=pki.extra_pair("unregistered-releaser")),
        "untrusted-releaser": lambda: b.build(code, envelope_id, docs, releaser=pki.extra_pair("untrusted-releaser")),
        "wrong-role-releaser": lambda: b.build(code, envelope_id, docs, releaser=pki.pair(code, "head")),
        "future-release": lambda: b.build(code, envelope_id, docs,
                                          release_time=dt.datetime.now(dt.UTC) + dt.timedelta(days=1)),
        "expired-signer": lambda: b.build(code, envelope_id, docs, approvers=[
            pki.extra_pair("expired-accountant"), pki.pair(code, "head")]),
        "unregistered-signer": lambda: b.build(code, envelope_id, docs, approvers=[
            pki.extra_pair("unregistered-releaser"), pki.pair(code, "head")]),
        "wrong-usage-signer": lambda: b.build(code, envelope_id, docs, approvers=[
            pki.pair(code, "accountant"), pki.extra_pair("wrong-usage-head")]),
        "wrong-agency-signer": lambda: b.build(code, envelope_id, docs, approvers=[
            pki.pair(code, "accountant"), pki.pair(other, "head")]),
        "one-approval": lambda: b.build(code, envelope_id, docs, approvers=[pki.pair(code, "accountant")]),
        "same-cert-twice": lambda: b.build(code, envelope_id, docs, approvers=[
            pki.pair(code, "accountant"), pki.pair(code, "accountant")]),
        "not-for-treasury": lambda: b.build(code, envelope_id, docs, recipients=[pki.pair(code, "releaser")[0]]),
    }
    if n == "wrong-agency-releaser":
        # Entirely the other agency's envelope (valid for it), uploaded with this agency's token.
        other_docs = _docs(generate_documents(other, 1, seed=seed * 1000 + 500 + index))
        data = b.build(other, f"{other}-DEMO{seed}-X{index:05d}", other_docs)
        return _refused(kind, index, other, data, upload_as=code, envelope_id=f"{other}-DEMO{seed}-X{index:05d}")
    if n == "bad-document":
        reason = next(bad_codes)
        bad = _docs(bad_documents(reason, code, seed=seed * 1000 + index))
        layer = "payload" if reason == "UNKNOWN_DOCUMENT_KIND" else "documents"
        return _refused(kind, index, code, b.build(code, envelope_id, bad), envelope_id=envelope_id,
                        reason=reason, layer=layer, what=f"documents refused as {reason}")
    return _refused(kind, index, code, simple[n](), envelope_id=None if n == "empty" else envelope_id)


def _after(builder: _Builder, index: int, kind: BadKind, original: Item, docs, pool) -> Item:
    first = original.expect
    if kind.name == "resubmitted":
        data = original.data
        envelope_id = first["envelope_id"]
    elif kind.name == "replayed-envelope-id":
        envelope_id = first["envelope_id"]
        data = builder.build(first["agency"], envelope_id, [next(pool)])
    else:  # duplicate-voucher: a fresh id, one of the loaded envelope's documents again
        envelope_id = f"{first['agency']}-DUP-{index:05d}-{hashlib.sha256(original.data).hexdigest()[:8]}"
        data = builder.build(first["agency"], envelope_id, docs[:1])
    return _refused(kind, index, first["agency"], data, upload_as=first["upload_as"], envelope_id=envelope_id,
                    after=original.name)


def write_batch(items: list[Item], out: Path, *, seed: int, pki_dir: Path) -> Path:
    """The files, then expected.json (last, so a complete expected.json means a complete batch)."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for item in items:
        write_atomic(out / item.name, item.data)
        files.append({"file": item.name, "sha256": hashlib.sha256(item.data).hexdigest(), "size": len(item.data),
                      **item.expect})
    summary = {
        "format": FORMAT, "seed": seed, "pki": str(pki_dir.resolve()),
        "created_at": dt.datetime.now(TAIPEI).isoformat(timespec="seconds"),
        "counts": {"files": len(items), "loaded": sum(i.expect["expect"] == "loaded" for i in items),
                   "refused_outer": sum(i.expect.get("zone") == "outer" for i in items),
                   "refused_inner": sum(i.expect.get("zone") == "inner" for i in items)},
        "files": files,
    }
    path = out / EXPECTED
    write_atomic(path, (json.dumps(summary, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))
    return path
