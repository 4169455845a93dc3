"""Slow clients against a real `tgw outer serve`: they must not take the portal offline.

With gthread workers (2 x 4 threads) eight connections that never finish their headers
made a normal GET /login time out. The portal now runs gevent workers with a header
deadline and a body read timeout (tgw_common/web/gevent_worker.py).
"""

from __future__ import annotations

import socket
import time
import urllib.request

import pytest

from .conftest import Server, free_port, make_env

HEADER_TIMEOUT = 2
BODY_TIMEOUT = 3


@pytest.fixture(scope="module")
def portal(tmp_path_factory, outer_template, demo_pki):
    """The portal as `tgw up` runs it (its default worker class), with short deadlines."""
    folder = tmp_path_factory.mktemp("slow")
    env = make_env(folder, outer_template, demo_pki, bind=f"127.0.0.1:{free_port()}", workers=2,
                   header_timeout_seconds=HEADER_TIMEOUT, body_timeout_seconds=BODY_TIMEOUT)
    server = Server(env, folder / "server.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _stalled(port: int, sent: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(sent)
    return sock


PARTIAL_LINE = b"GET /lo"
PARTIAL_HEADERS = b"GET /login HTTP/1.1\r\nHost: portal\r\nUser-Agent: slow"
PARTIAL_BODY = (b"POST /login HTTP/1.1\r\nHost: portal\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                b"Content-Length: 100000\r\n\r\nusername=a1-rel&password=")


def _slow_clients(port: int) -> dict[str, list[socket.socket]]:
    return {"line": [_stalled(port, PARTIAL_LINE) for _ in range(15)],
            "headers": [_stalled(port, PARTIAL_HEADERS) for _ in range(20)],
            "body": [_stalled(port, PARTIAL_BODY) for _ in range(15)]}


def _get_login(base: str) -> tuple[int, float]:
    started = time.monotonic()
    with urllib.request.urlopen(f"{base}/login", timeout=10) as r:
        return r.status, time.monotonic() - started


def _answer_or_close(sock: socket.socket) -> tuple[bytes, float]:
    """What the server does with a stalled client: what it sends before closing, and when."""
    started = time.monotonic()
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except ConnectionResetError:
        pass
    return received, time.monotonic() - started


def test_fifty_slow_clients_leave_the_portal_answering(portal):
    slow = _slow_clients(portal.port)
    try:
        time.sleep(0.5)  # every slow connection is accepted and stalled before the normal client comes
        for _ in range(3):
            status, took = _get_login(portal.base)
            assert status == 200
            assert took < 1.0, f"GET /login took {took:.2f} s with 50 slow clients"
    finally:
        for sock in (s for group in slow.values() for s in group):
            sock.close()


def test_stalled_headers_are_cut_off_after_the_header_timeout(portal):
    socks = [_stalled(portal.port, PARTIAL_LINE), _stalled(portal.port, PARTIAL_HEADERS)]
    try:
        for sock in socks:
            received, took = _answer_or_close(sock)
            assert received == b""  # closed without an answer, as for a client that went away
            assert took < HEADER_TIMEOUT + 5
    finally:
        for sock in socks:
            sock.close()


def test_trickled_headers_do_not_outlive_the_header_timeout(portal):
    """The deadline is for the whole header, not per read: a byte a second does not keep it open."""
    sock = _stalled(portal.port, b"GET /login HTTP/1.1\r\n")
    started = time.monotonic()
    try:
        with pytest.raises(OSError):
            while time.monotonic() - started < HEADER_TIMEOUT + 6:
                sock.sendall(b"X")
                time.sleep(0.5)
        assert time.monotonic() - started < HEADER_TIMEOUT + 6
    finally:
        sock.close()


def test_a_stalled_body_is_cut_off_after_the_body_timeout(portal):
    sock = _stalled(portal.port, PARTIAL_BODY)
    try:
        received, took = _answer_or_close(sock)
        # Answered as a bad request (the form never completed), then closed: never held.
        assert received.startswith(b"HTTP/1.1 4"), received[:200]
        assert took < BODY_TIMEOUT + 5
    finally:
        sock.close()
    assert "Traceback" not in portal.log.read_text()
