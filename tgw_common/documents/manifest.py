"""manifest.json of a TPE/1 payload: its schema check and its control totals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tgw_common.reasons import Layer, Refusal

from . import schema
from .checks import mask_ids_in, parse_amount
from .jsonparse import JsonProblem, parse_json_bytes
from .kinds import KINDS

PROFILE = "TPE/1"
MANIFEST_NAME = "manifest.json"


def _refuse(code: str, path: str, problem: str) -> Refusal:
    title = schema.title_of("manifest", path)
    where = f"{path} ({title})" if title else path
    return Refusal(code, Layer.PAYLOAD, mask_ids_in(f"{MANIFEST_NAME}: {where}: {problem}"),
                   file=MANIFEST_NAME, field=path)


def validate_manifest(obj: object) -> None:
    """Refuse (Layer.PAYLOAD) a parsed manifest that breaks the TPE/1 manifest rules.

    MANIFEST_INVALID for schema violations, duplicate paths or listing manifest.json itself;
    UNSUPPORTED_PROFILE for a profile other than TPE/1; UNKNOWN_DOCUMENT_KIND for a kind the
    gateway does not accept. The message names the JSON path of the field.
    """
    if not isinstance(obj, dict):
        raise _refuse("MANIFEST_INVALID", "$", "must be a JSON object")
    # The profile is judged first: a future profile may legitimately look different.
    profile = obj.get("profile")
    if isinstance(profile, str) and profile != PROFILE:
        raise _refuse("UNSUPPORTED_PROFILE", "$.profile",
                      f"{profile[:40]!r} is not supported; this gateway accepts {PROFILE!r}")
    finding = schema.first_problem("manifest", obj)
    if finding:
        raise _refuse("MANIFEST_INVALID", finding.path, finding.message)
    seen: dict[str, int] = {}
    for i, entry in enumerate(obj["documents"]):
        path = entry["path"]
        if path.lower() == MANIFEST_NAME:
            raise _refuse("MANIFEST_INVALID", f"$.documents[{i}].path", f"{path!r} may not be listed as a document")
        # Case-insensitive: two names differing only in case collide when unpacked on
        # some filesystems, and one file could then be checked in place of the other.
        if path.lower() in seen:
            raise _refuse("MANIFEST_INVALID", f"$.documents[{i}].path",
                          f"{path!r} is listed twice (first at $.documents[{seen[path.lower()]}], ignoring case)")
        seen[path.lower()] = i
        if entry["kind"] not in KINDS:
            raise _refuse("UNKNOWN_DOCUMENT_KIND", f"$.documents[{i}].kind",
                          f"{entry['kind']!r} is not an accepted kind ({', '.join(KINDS)})")


def load_manifest(data: bytes) -> dict[str, Any]:
    """Parse manifest.json bytes and validate them; MANIFEST_INVALID if not strict UTF-8 JSON."""
    try:
        obj = parse_json_bytes(data)
    except JsonProblem as exc:
        raise _refuse("MANIFEST_INVALID", "$", str(exc)) from None
    validate_manifest(obj)
    return obj


def check_control_totals(manifest: dict[str, Any], amounts: Sequence[int]) -> None:
    """Refuse (Layer.PAYLOAD) when the control totals differ from the documents.

    `amounts` holds document_amount() of every listed document (ValidDocument.amount).
    """
    control = manifest["control"]
    count = len(manifest["documents"])
    if control["document_count"] != count:
        raise _refuse("CONTROL_COUNT_MISMATCH", "$.control.document_count",
                      f"says {control['document_count']} but {count} documents are listed")
    total = sum(amounts)
    if parse_amount(control["total_amount"]) != total:
        raise _refuse("CONTROL_TOTAL_MISMATCH", "$.control.total_amount",
                      f"says {control['total_amount']} but the documents add up to {total}")
