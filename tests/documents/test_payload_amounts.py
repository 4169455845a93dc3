"""A document too malformed to add to the control total is refused with its schema finding.

The payload layer adds up the documents' amounts before the documents layer judges them,
so a voucher without total_amount must not escape as a KeyError (the runner would spend
its tries on it and quarantine it as POISON instead of naming the missing field).
"""

from __future__ import annotations

import json

import pytest

from tests.kit import manifest_for, payload_zip
from tgw.demo.documents import generate_documents
from tgw_common.config import LimitsConfig
from tgw_common.reasons import Refusal
from tgw_common.tpe.payload import unpack_payload


def _voucher(**changes) -> tuple[str, str, bytes]:
    path, kind, data = next(d for d in generate_documents("A10001", count=1, seed=3, kinds=["payment_voucher"]))
    doc = json.loads(data)
    for key, value in changes.items():
        if value is None:
            doc.pop(key)
        else:
            doc[key] = value
    return path, kind, json.dumps(doc, ensure_ascii=False).encode()


@pytest.mark.parametrize(("changes", "field"), [
    ({"total_amount": None}, "$.total_amount"),
    ({"total_amount": {"value": 5}}, "$.total_amount"),
    ({"total_amount": "12x"}, "$.total_amount"),
])
def test_unreadable_amount_is_document_invalid(changes, field):
    docs = [_voucher(**changes)]
    manifest = manifest_for("A10001", docs, control={"document_count": 1, "total_amount": 0})
    with pytest.raises(Refusal) as caught:
        unpack_payload(payload_zip(manifest, docs), LimitsConfig())
    assert caught.value.code == "DOCUMENT_INVALID"
    assert caught.value.detail["field"] == field
    assert docs[0][0] in caught.value.message


def test_documents_are_read_once_and_handed_on():
    docs = [_voucher()]
    payload = unpack_payload(payload_zip(manifest_for("A10001", docs), docs), LimitsConfig())
    assert payload.documents[docs[0][0]] == json.loads(docs[0][2])
