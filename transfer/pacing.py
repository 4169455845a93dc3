"""A token bucket: the sender's only flow control, since nothing ever comes back."""

from __future__ import annotations

import time


class TokenBucket:
    """Let `rate_bps` bits per second through, with bursts of at most `burst_bits`.

    The burst allowance lets the sender sleep in steps of a millisecond or more instead of
    once per datagram (a 1,476-byte datagram lasts 12 µs at 1 Gbit/s, far below what
    time.sleep can resolve), while the average stays at the rate.
    """

    def __init__(self, rate_bps: float, *, burst_bits: float | None = None) -> None:
        self.rate = float(rate_bps)
        self.capacity = burst_bits if burst_bits is not None else max(self.rate * 0.002, 64 * 1500 * 8)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self, nbytes: int) -> None:
        """Spend the tokens for `nbytes`, sleeping first if the bucket is short."""
        bits = nbytes * 8
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < bits:
            time.sleep((bits - self.tokens) / self.rate)
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        self.tokens -= bits
