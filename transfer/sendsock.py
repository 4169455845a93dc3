"""The sender's socket: it sends, and it cannot read.

The socket is never connect()ed (sendto each datagram, so no ICMP error is ever reported
back to it), a socket filter that accepts nothing is attached and locked (the kernel
drops any datagram addressed to it before it is queued), its read side is shut down and
its receive buffer is the smallest the kernel allows; and the code never calls recv.
shutdown(SHUT_RD) alone is not enough: Linux still queues datagrams on an unconnected
UDP socket after it. Datagrams carry the Don't-Fragment bit
without relying on path-MTU discovery (which would need ICMP from the inner side): a
datagram larger than the interface MTU fails loudly with EMSGSIZE instead of being cut
into IP fragments, one of which lost would lose the whole datagram.
"""

from __future__ import annotations

import ctypes
import errno
import socket
import struct
import time

from .common import parse_address

_IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)
_IP_PMTUDISC_PROBE = getattr(socket, "IP_PMTUDISC_PROBE", 3)
_SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
_SO_LOCK_FILTER = getattr(socket, "SO_LOCK_FILTER", 44)


def attach_drop_all_filter(sock: socket.socket) -> None:
    """Attach the classic BPF program `ret #0` (accept 0 bytes of any packet) and lock it."""
    program = ctypes.create_string_buffer(struct.pack("HBBI", 0x06, 0, 0, 0))  # BPF_RET | BPF_K, k = 0
    fprog = struct.pack("HL", 1, ctypes.addressof(program))  # struct sock_fprog {len; *filter}
    sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
    sock.setsockopt(socket.SOL_SOCKET, _SO_LOCK_FILTER, 1)


class SendOnlySocket:
    def __init__(self, target: str, *, send_buffer: int = 4 * 1024 * 1024) -> None:
        family, self.address = parse_address(target)
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
        attach_drop_all_filter(self.sock)
        if family == socket.AF_INET:
            self.sock.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _IP_PMTUDISC_PROBE)
        try:
            self.sock.shutdown(socket.SHUT_RD)
        except OSError as exc:
            # Linux marks an unconnected UDP socket shut for reading and still says ENOTCONN.
            if exc.errno != errno.ENOTCONN:
                raise
        self.datagrams = 0
        self.bytes = 0

    def send(self, datagram: bytes) -> None:
        while True:
            try:
                self.sock.sendto(datagram, self.address)
            except (BlockingIOError, InterruptedError):
                time.sleep(0.0005)
                continue
            except OSError as exc:
                # ENOBUFS: the interface queue is full for a moment; the pacing keeps this rare.
                if exc.errno == errno.ENOBUFS:
                    time.sleep(0.001)
                    continue
                raise
            self.datagrams += 1
            self.bytes += len(datagram)
            return

    def close(self) -> None:
        self.sock.close()
