"""The kernel's UDP drop counters, where the receiver's losses really happen.

/proc/net/udp has one line per socket with its own `drops` count (datagrams the kernel
threw away because the socket's receive buffer was full); /proc/net/snmp has the
host-wide Udp counters (RcvbufErrors, InErrors, ...). Both are read, never written.
"""

from __future__ import annotations

from pathlib import Path

PROC = Path("/proc/net")


def socket_counters(*, inode: int | None = None, port: int | None = None) -> dict[str, int] | None:
    """rx queue bytes and drops of one UDP socket, found by inode (exact) or local port."""
    for table in ("udp", "udp6"):
        try:
            lines = (PROC / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) < 13:
                continue
            local_port = int(f[1].rsplit(":", 1)[1], 16)
            if (inode is not None and int(f[9]) == inode) or (inode is None and local_port == port):
                rx_queue = int(f[4].split(":")[1], 16)
                return {"port": local_port, "rx_queue_bytes": rx_queue, "drops": int(f[12])}
    return None


def udp_snmp() -> dict[str, int]:
    """The host's Udp counters from /proc/net/snmp (names as the kernel spells them)."""
    try:
        lines = [line.split() for line in (PROC / "snmp").read_text().splitlines() if line.startswith("Udp:")]
    except OSError:
        return {}
    if len(lines) < 2:
        return {}
    return {k: int(v) for k, v in zip(lines[0][1:], lines[1][1:], strict=False)}


def kernel_counters(*, inode: int | None = None, port: int | None = None) -> dict[str, int | None]:
    snmp = udp_snmp()
    sock = socket_counters(inode=inode, port=port) or {}
    return {
        "socket_drops": sock.get("drops"),
        "socket_rx_queue_bytes": sock.get("rx_queue_bytes"),
        "udp_rcvbuf_errors": snmp.get("RcvbufErrors"),
        "udp_in_errors": snmp.get("InErrors"),
        "udp_in_datagrams": snmp.get("InDatagrams"),
        "udp_no_ports": snmp.get("NoPorts"),
    }
