"""A token bucket: the sender's only flow control, since nothing ever comes back."""

from __future__ import annotations

import time

MIN_SLEEP = 0.001  # time.sleep cannot resolve the 12 µs a datagram lasts at 1 Gbit/s


class TokenBucket:
    """Let `rate_bps` bits per second through, with bursts of at most `burst_bits`.

    A datagram always goes when asked and may leave the bucket in debt; the sender sleeps
    only once the debt is worth at least a millisecond. So it sleeps rarely and in steps
    the OS can keep, while the average stays exactly at the rate.
    """

    def __init__(self, rate_bps: float, *, burst_bits: float | None = None) -> None:
        self.rate = float(rate_bps)
        self.capacity = burst_bits if burst_bits is not None else max(self.rate * 0.002, 64 * 1500 * 8)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self, nbytes: int) -> None:
        """Spend the tokens for `nbytes`; sleep off the debt once it reaches MIN_SLEEP."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate) - nbytes * 8
        self.stamp = now
        if self.tokens < 0:
            wait = -self.tokens / self.rate
            if wait >= MIN_SLEEP:
                time.sleep(wait)
