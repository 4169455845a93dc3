"""manifest.json as an agency's tool writes it: the documents' SHA-256s and control totals.

Used to build payloads (`tgw agency`, tgw_common.tpe.build_payload) as well as demo and
test envelopes, so it lives with the manifest rules rather than with the demo documents.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from typing import Any

from .manifest import PROFILE
from .validate import document_amount


def build_manifest(envelope_id: str, agency: str, created_at: dt.datetime | str,
                   docs: Iterable[tuple[str, str, bytes]]) -> dict[str, Any]:
    """manifest.json (as a dict) for `docs` (path, kind, bytes): SHA-256s and control totals.

    A document of a kind the gateway does not know, or that is not JSON, counts 0 towards
    the total, so deliberately bad test envelopes can still be built.
    """
    if isinstance(created_at, dt.datetime):
        if created_at.tzinfo is None:
            raise ValueError("created_at needs a UTC offset")
        created_at = created_at.isoformat(timespec="seconds")
    entries, total = [], 0
    for path, kind, data in docs:
        entries.append({"path": path, "kind": kind, "sha256": hashlib.sha256(data).hexdigest()})
        with contextlib.suppress(KeyError, ValueError, TypeError):
            total += document_amount(kind, json.loads(data))
    return {"profile": PROFILE, "envelope_id": envelope_id, "agency": agency, "created_at": created_at,
            "documents": entries,
            "control": {"document_count": len(entries), "total_amount": total}}
