"""Which envelopes are in which hop, built from provenance events (see hops.py for the rules).

Events may be read out of order (PostgreSQL commits ids out of order; a late row is re-read),
so presence is judged by times, not by arrival order: an envelope is in a hop while the
latest entering event there is later than the latest leaving one. Applying the same event
twice changes nothing, which lets the monitor replay the recent past after a restart.
"""

from __future__ import annotations

import bisect
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .hops import HOP_NAMES, entering, leaving

# Seconds; time in a hop runs from a second (portal to spool) to hours (a held envelope).
LATENCY_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 24 * 3600.0)


@dataclass
class Envelope:
    key: str
    sha256: str | None = None
    tracking_id: str | None = None
    envelope_id: str | None = None

    def names(self) -> dict[str, str | None]:
        return {"tracking_id": self.tracking_id, "sha256": self.sha256, "envelope_id": self.envelope_id}

    def label(self) -> str:
        """The stable name used as the alert's `subject` label."""
        return self.key


@dataclass
class Presence:
    entered_at: datetime | None = None
    enter_event: str | None = None
    left_at: datetime | None = None
    measured: bool = False

    @property
    def open(self) -> bool:
        return self.entered_at is not None and (self.left_at is None or self.entered_at > self.left_at)


@dataclass
class Histogram:
    """Cumulative-ready counts for Prometheus (live events only, so restarts do not inflate it)."""

    counts: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    total: float = 0.0
    n: int = 0

    def observe(self, seconds: float) -> None:
        i = bisect.bisect_left(LATENCY_BUCKETS, seconds)
        if i < len(self.counts):
            self.counts[i] += 1
        self.total += seconds
        self.n += 1


class EnvelopeTracker:
    def __init__(self, *, recent_latencies: int = 1000) -> None:
        self._alias: dict[str, str] = {}
        self._envelopes: dict[str, Envelope] = {}
        self._presence: dict[tuple[str, str], Presence] = {}
        self.event_counts: Counter[tuple[str, str]] = Counter()  # (recorded hop, event) -> total
        self.last_activity: dict[str, datetime] = {}
        self.latency: dict[str, Histogram] = {h: Histogram() for h in HOP_NAMES}
        self.recent_latencies: dict[str, deque[tuple[datetime, float]]] = {
            h: deque(maxlen=recent_latencies) for h in HOP_NAMES}
        self.recent_gaps: deque[dict[str, Any]] = deque(maxlen=50)

    # --- identity: the three names of one envelope are learnt as events carry them
    def _envelope(self, ev: dict[str, Any], *, create: bool = True) -> Envelope | None:
        names = [(p, ev.get(f)) for p, f in (("sha256:", "sha256"), ("tracking:", "tracking_id"),
                                                ("envelope:", "envelope_id")) if ev.get(f)]
        if not names:
            return None
        keys = [p + str(v) for p, v in names]
        canonical = next((self._alias[k] for k in keys if k in self._alias), None)
        if canonical is None:
            if not create:
                return None
            canonical = keys[0]
        for k in keys:
            self._alias.setdefault(k, canonical)
        env = self._envelopes.get(canonical)
        if env is None:
            env = self._envelopes[canonical] = Envelope(canonical)
        env.sha256 = env.sha256 or ev.get("sha256")
        env.tracking_id = env.tracking_id or ev.get("tracking_id")
        env.envelope_id = env.envelope_id or ev.get("envelope_id")
        return env

    def apply(self, ev: dict[str, Any], *, live: bool = True) -> None:
        """Take one provenance event (a provenance_events row as a dict, `at` a datetime).

        `live` is False while replaying the past at start-up: presence and recent latencies
        are rebuilt, but the Prometheus counters are not counted again.
        """
        at: datetime = ev["at"]
        event, recorded_by = ev["event"], ev.get("hop") or ""
        if live:
            self.event_counts[(recorded_by, event)] += 1
        if event == "gap":
            self.recent_gaps.append({"at": at.isoformat(), "hop": recorded_by, "detail": ev.get("detail") or {},
                                     "sha256": ev.get("sha256"), "tracking_id": ev.get("tracking_id")})
        into, out_of = entering(event), leaving(event, recorded_by)
        if not into and not out_of:
            # Events in between (claimed, decrypted, ...) still teach an envelope's other names.
            self._envelope(ev, create=False)
            return
        env = self._envelope(ev)
        if env is None:
            return
        for hop in out_of:
            p = self._presence.setdefault((env.key, hop), Presence())
            p.left_at = at if p.left_at is None else max(p.left_at, at)
            self._touch(hop, at)
            self._measure(hop, p, live)
        for hop in into:
            p = self._presence.setdefault((env.key, hop), Presence())
            if p.entered_at is None or at > p.entered_at:
                if p.left_at is not None and at > p.left_at:
                    p.measured = False  # entered again (an operator's retry): a new stay
                p.entered_at, p.enter_event = at, event
            self._touch(hop, at)
            self._measure(hop, p, live)

    def _touch(self, hop: str, at: datetime) -> None:
        if hop not in self.last_activity or at > self.last_activity[hop]:
            self.last_activity[hop] = at

    def _measure(self, hop: str, p: Presence, live: bool) -> None:
        if p.measured or p.entered_at is None or p.left_at is None or p.left_at < p.entered_at:
            return
        p.measured = True
        seconds = (p.left_at - p.entered_at).total_seconds()
        self.recent_latencies[hop].append((p.left_at, seconds))
        if live:
            self.latency[hop].observe(seconds)

    # --- questions the checks ask
    def open_in(self, hop: str) -> list[tuple[Envelope, Presence]]:
        """The envelopes in `hop` now, oldest first."""
        found = [(self._envelopes[k], p) for (k, h), p in self._presence.items() if h == hop and p.open]
        return sorted(found, key=lambda item: item[1].entered_at)

    def latency_quantiles(self, hop: str, since: datetime) -> dict[str, float | None]:
        values = sorted(s for at, s in self.recent_latencies[hop] if at >= since)
        if not values:
            return {"p50": None, "p95": None, "max": None, "n": 0}

        def q(f: float) -> float:
            return values[min(len(values) - 1, int(f * len(values)))]

        return {"p50": q(0.5), "p95": q(0.95), "max": values[-1], "n": len(values)}

    def prune(self, before: datetime) -> None:
        """Forget envelopes that left every hop before `before` (memory stays bounded)."""
        closed = {k for (k, _h), p in self._presence.items()
                  if not p.open and p.left_at is not None and p.left_at < before}
        still_open = {k for (k, _h), p in self._presence.items() if p.open}
        gone = closed - still_open
        if not gone:
            return
        self._presence = {kh: p for kh, p in self._presence.items() if kh[0] not in gone}
        self._alias = {a: k for a, k in self._alias.items() if k not in gone}
        for k in gone:
            self._envelopes.pop(k, None)

    def __len__(self) -> int:
        return len(self._envelopes)


def cutoff(now: datetime, hours: float) -> datetime:
    return now - timedelta(hours=hours)
