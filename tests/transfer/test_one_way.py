"""One way only: the receiver never sends a packet, the sender never reads one.

The wire proof runs each end in its own network namespace, joined by a veth pair. The
inner side has ARP switched off and the outer side knows the inner MAC address
statically, so the outer side needs nothing back; whatever the inner side might emit
reaches the outer interface addressed to a MAC that is not the outer's and is dropped
there, but the interface still counts it. After a transfer the outer interface must
have received exactly zero packets. A control packet sent from the inner namespace at
the end shows that the counter does see inner-to-outer traffic.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess

import pytest

from transfer.receiver import ReceiveOnlySocket
from transfer.sendsock import SendOnlySocket

from .conftest import Link, check_inbound, make_files, wait_until


def test_receiver_socket_cannot_send():
    rs = ReceiveOnlySocket("127.0.0.1:0", 1 << 20)
    try:
        with pytest.raises(BrokenPipeError):
            rs.sock.sendto(b"x", ("127.0.0.1", 9))
        assert rs.granted >= 1 << 20
    finally:
        rs.sock.close()


def test_sender_socket_reads_nothing_even_when_something_arrives():
    ss = SendOnlySocket("127.0.0.1:9")
    ss.send(b"x")  # binds an ephemeral port
    port = ss.sock.getsockname()[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.sendto(b"back-channel", ("127.0.0.1", port))
    ss.sock.settimeout(0.3)
    try:
        got = ss.sock.recv(100)
    except (TimeoutError, BlockingIOError):
        got = b""
    assert got == b""
    ss.close()


def _sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=20)


def _counters(ns: str, dev: str) -> dict:
    out = subprocess.run(["ip", "-j", "-s", "-n", ns, "link", "show", "dev", dev], check=True,
                         capture_output=True, text=True, timeout=10).stdout
    stats = json.loads(out)[0]["stats64"]
    return {"rx": stats["rx"]["packets"], "tx": stats["tx"]["packets"]}


@pytest.fixture
def namespaces():
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("network namespaces need root and iproute2")
    tag = f"{os.getpid() % 100000}"
    outer, inner = f"tgwo{tag}", f"tgwi{tag}"
    vo, vi = f"tgwvo{tag}", f"tgwvi{tag}"
    try:
        _sh("ip", "netns", "add", outer)
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f"ip netns add does not work here: {exc}")
    try:
        _sh("ip", "netns", "add", inner)
        for ns in (outer, inner):
            # No IPv6: its neighbour discovery would put packets on the wire by itself.
            for key in ("all", "default"):
                subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1"],
                               capture_output=True, timeout=10)
        _sh("ip", "link", "add", vo, "type", "veth", "peer", "name", vi)
        _sh("ip", "link", "set", vo, "netns", outer)
        _sh("ip", "link", "set", vi, "netns", inner)
        for ns, dev in ((outer, vo), (inner, vi)):
            subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1"],
                           capture_output=True, timeout=10)
        _sh("ip", "-n", outer, "addr", "add", "10.199.0.1/24", "dev", vo)
        _sh("ip", "-n", inner, "addr", "add", "10.199.0.2/24", "dev", vi)
        # The inner side neither asks nor answers ARP; the outer side knows its MAC.
        _sh("ip", "-n", inner, "link", "set", vi, "arp", "off")
        mac = json.loads(subprocess.run(["ip", "-j", "-n", inner, "link", "show", "dev", vi], check=True,
                                        capture_output=True, text=True).stdout)[0]["address"]
        _sh("ip", "-n", outer, "neigh", "replace", "10.199.0.2", "lladdr", mac, "dev", vo, "nud", "permanent")
        for ns, dev in ((outer, vo), (inner, vi)):
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
            _sh("ip", "-n", ns, "link", "set", dev, "up")
        yield outer, inner, vo, vi
    finally:
        subprocess.run(["ip", "netns", "del", inner], capture_output=True, timeout=20)
        subprocess.run(["ip", "netns", "del", outer], capture_output=True, timeout=20)


@pytest.mark.netns
def test_nothing_goes_from_inner_to_outer_on_the_wire(tmp_path, namespaces):
    outer, inner, vo, vi = namespaces
    link = Link(tmp_path, 7700, 7700)
    link.write_configs(send={"target": "10.199.0.2:7700", "rate_bps": 200_000_000},
                       recv={"listen": "10.199.0.2:7700"})
    rng = random.Random(2)
    files = make_files(rng, [rng.randrange(100, 200_000) for _ in range(20)] + [2 << 20])
    try:
        link.receiver(prefix=["ip", "netns", "exec", inner])
        assert _counters(outer, vo)["rx"] == 0
        link.sender(prefix=["ip", "netns", "exec", outer])
        for name, data in files.items():
            link.publish(name, data)
        wait_until(lambda: link.all_sent_once(len(files), 2) and len(list(link.inbound.iterdir())) == len(files),
                   60, "the files across the namespaces")
        # A few more heartbeats, during which the receiver would answer if it ever did.
        wait_until(lambda: link.inner_rows("select count(*) from daemon_status where daemon='outer.transfer-send'")
                   [0][0], 10, "a sender heartbeat recorded in the inner zone")
        check_inbound(link, files)
        outer_side, inner_side = _counters(outer, vo), _counters(inner, vi)
        assert inner_side["rx"] > 1000, "the transfer went over this veth pair"
        assert outer_side["rx"] == 0, f"{outer_side['rx']} packet(s) came back from the inner side"
        assert inner_side["tx"] == 0
    finally:
        link.stop_all()
    # Control: a packet from the inner namespace IS counted at the outer end (and dropped there).
    subprocess.run(["ip", "netns", "exec", inner, link_python(), "-c",
                    "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
                    ".sendto(b'leak', ('10.199.0.1', 9))"], check=True, timeout=20)
    wait_until(lambda: _counters(outer, vo)["rx"] >= 1, 5, "the control packet to be counted")


def link_python() -> str:
    import sys

    return sys.executable
