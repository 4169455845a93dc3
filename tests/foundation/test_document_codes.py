"""The documents' reason codes, each triggered through a whole signed and sealed envelope."""

from __future__ import annotations

import pytest

from tgw.demo.documents import BAD_DOCUMENT_CODES, bad_documents
from tgw_common.reasons import REASONS

A = "A10001"
DOCUMENT_SCENARIOS = tuple(BAD_DOCUMENT_CODES)
TRIGGERED = set(DOCUMENT_SCENARIOS)


@pytest.mark.parametrize("code", DOCUMENT_SCENARIOS)
def test_bad_documents_refused_with_their_code(code, kit, opener):
    docs = [(f"documents/{d.path}", d.kind, d.data) for d in bad_documents(code, A, seed=3, limits=opener.documents)]
    verdict = opener.verdict(kit.envelope(A, payload=kit.payload(A, docs=docs)))
    assert verdict["accepted"] is False
    assert verdict["reason"] == code, verdict["message"]
    assert verdict["layer"] in [str(layer) for layer in REASONS[code].layers]


def test_national_ids_are_masked_in_messages(kit, opener):
    docs = [(f"documents/{d.path}", d.kind, d.data) for d in bad_documents("BAD_NATIONAL_ID", A, seed=5)]
    verdict = opener.verdict(kit.envelope(A, payload=kit.payload(A, docs=docs)))
    import json
    import re

    for _path, _kind, data in docs:
        for payee in json.loads(data).get("payees", []):
            ident = str(payee.get("id_number") or payee.get("id_no") or "")
            if re.fullmatch(r"[A-Z][0-9A-Z]\d{8}", ident):
                assert ident not in verdict["message"]
