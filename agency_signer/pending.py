"""The requests waiting for the officer, kept in memory (the service is one process, one user).

A request is created by the portal page and can be signed only through its confirmation
step: `confirm_token` is put in the service's own page and never given to the portal, so a
page that knows the request id still cannot confirm it.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

from .summary import ToSign

PENDING, SIGNED, DECLINED, EXPIRED = "pending", "signed", "declined", "expired"
MAX_OPEN = 8  # a page that keeps asking cannot fill the memory


class TooManyRequests(RuntimeError):
    pass


@dataclass
class Request:
    id: str
    confirm_token: str
    to_sign: ToSign
    created: float
    state: str = PENDING
    result: bytes | None = None
    signer_subject: str | None = None
    last_error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class Requests:
    def __init__(self, ttl_seconds: int) -> None:
        self._ttl = ttl_seconds
        self._all: dict[str, Request] = {}
        self._lock = threading.Lock()

    def add(self, to_sign: ToSign) -> Request:
        with self._lock:
            self._expire()
            if sum(r.state == PENDING for r in self._all.values()) >= MAX_OPEN:
                raise TooManyRequests(f"{MAX_OPEN} requests are waiting for the officer already")
            request = Request(id=secrets.token_urlsafe(16), confirm_token=secrets.token_urlsafe(24),
                              to_sign=to_sign, created=time.monotonic())
            self._all[request.id] = request
            return request

    def get(self, request_id: str) -> Request | None:
        with self._lock:
            self._expire()
            return self._all.get(request_id)

    def _expire(self) -> None:
        now = time.monotonic()
        for rid, request in list(self._all.items()):
            age = now - request.created
            if request.state == PENDING and age > self._ttl:
                request.state, request.to_sign = EXPIRED, _forgotten(request.to_sign)
            if age > 4 * self._ttl:
                del self._all[rid]


def _forgotten(to_sign: ToSign) -> ToSign:
    """An expired request keeps its summary, not the bytes."""
    from dataclasses import replace

    return replace(to_sign, data=b"", content=b"")
