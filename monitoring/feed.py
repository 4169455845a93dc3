"""The live feed: one ZeroMQ SUB socket the zone's publishers connect to.

The monitor BINDs (it is the fixed point; daemons come and go and CONNECT their PUB
sockets to it). The feed is fast but lossy (a slow joiner misses the first messages, a full
queue drops), so it is only ever an addition to the zone database, never the record.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import Any

import zmq

log = logging.getLogger(__name__)

TOPICS = ("event", "heartbeat")


class FeedError(Exception):
    pass


class Feed:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.counts: Counter[str] = Counter()  # topic (or "bad") -> messages taken
        self._socket = zmq.Context.instance().socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.RCVHWM, 100_000)
        for topic in TOPICS:
            self._socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        try:
            self._socket.bind(endpoint)
        except zmq.ZMQError as exc:
            self._socket.close()
            raise FeedError(f"monitor.listen {endpoint}: cannot bind: {exc}") from None

    def poll(self, timeout_seconds: float, *, limit: int = 10_000) -> list[tuple[str, dict[str, Any]]]:
        """Wait up to `timeout_seconds` for messages, then take all that are queued (up to `limit`)."""
        out: list[tuple[str, dict[str, Any]]] = []
        if not self._socket.poll(int(max(0.0, timeout_seconds) * 1000)):
            return out
        while len(out) < limit:
            try:
                parts = self._socket.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                break
            message = _parse(parts)
            if message is None:
                self.counts["bad"] += 1
                continue
            self.counts[message[0]] += 1
            out.append(message)
        return out

    def close(self) -> None:
        self._socket.close()


def _parse(parts: list[bytes]) -> tuple[str, dict[str, Any]] | None:
    # Anyone on the zone network can connect a PUB socket: take only well-formed messages.
    if len(parts) != 2:
        return None
    try:
        topic = parts[0].decode("ascii")
        body = json.loads(parts[1])
    except (UnicodeDecodeError, ValueError):
        return None
    if topic not in TOPICS or not isinstance(body, dict):
        return None
    return topic, body
