"""Pending requests: they expire unsigned, let go of their bytes, and cannot pile up."""

from __future__ import annotations

import pytest

from agency_signer.pending import EXPIRED, MAX_OPEN, PENDING, Requests, TooManyRequests
from agency_signer.summary import NotSignable, read_request


def test_requests_expire_and_forget_their_bytes(kit):
    to_sign = read_request("accountant", "payload", kit.payload("A10001"))
    requests = Requests(ttl_seconds=1)
    request = requests.add(to_sign)
    assert requests.get(request.id).state == PENDING
    request.created -= 2
    expired = requests.get(request.id)
    assert expired.state == EXPIRED and expired.to_sign.data == b"" and expired.to_sign.sha256 == to_sign.sha256
    request.created -= 10
    assert requests.get(request.id) is None


def test_at_most_a_few_wait_at_once(kit):
    to_sign = read_request("head", "payload", kit.payload("A10001"))
    requests = Requests(ttl_seconds=600)
    for _ in range(MAX_OPEN):
        requests.add(to_sign)
    with pytest.raises(TooManyRequests):
        requests.add(to_sign)


def test_the_summary_comes_from_the_documents(kit):
    payload = kit.payload("A10001")
    approval = kit.approve(payload, roles=("accountant",))
    summary = read_request("head", "approval", approval)
    assert summary.content == payload and summary.signatures_so_far == 1 and summary.agency == "A10001"
    sealed = read_request("releaser", "sealed", kit.seal(approval))
    assert sealed.recipients and sealed.agency is None
    with pytest.raises(NotSignable, match="does not sign"):
        read_request("head", "sealed", kit.seal(approval))
