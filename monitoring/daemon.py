"""`tgw monitor run`: the monitor as a Runner (sd_notify, watchdog, heartbeat, SIGTERM).

The loop waits on the ZeroMQ feed instead of sleeping, so a heartbeat is taken the moment it
arrives; a check cycle runs every `interval_seconds`, or sooner (at most every
`EARLY_CYCLE_SECONDS`) when the feed reports envelope events, so counters and stuck
envelopes follow the traffic closely without a cycle per event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from tgw_common.config import Config
from tgw_common.db import make_engine, utcnow
from tgw_common.events import Provenance
from tgw_common.runner import Runner

from .engine import MonitorEngine
from .feed import Feed, FeedError
from .metrics import serve

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The monitor cannot start; the message names the config key concerned."""

EARLY_CYCLE_SECONDS = 2.0
POLL_CAP_SECONDS = 0.5  # how long one wait on the feed may last (bounds reaction to SIGTERM)


class MonitorRunner(Runner):
    name = "monitor"
    rescan_seconds = 3600.0  # periodic(): prune history and the envelope tracker

    def __init__(self, config: Config, *, clock: Callable[[], datetime] = utcnow) -> None:
        config.need("monitor")
        db = make_engine(config.database.url, echo=config.database.echo)
        # The monitor's own heartbeat goes to the zone database (daemon_status "monitor") so
        # `tgw monitor status` can tell a live monitor from a stale picture; it is not published.
        super().__init__(Provenance(db, zone=config.node.zone, host=config.node.host))
        self.config = config
        self.clock = clock
        self.engine = MonitorEngine(config, engine=db, started_at=clock())
        self.interval = config.monitor.interval_seconds
        self.feed: Feed | None = None
        self.metrics_server = None
        self._next_cycle: datetime | None = None

    def startup(self) -> None:
        try:
            self.feed = Feed(self.config.monitor.listen)
        except FeedError as exc:
            raise StartupError(str(exc)) from None
        self.engine.start(self.clock())
        bind = self.config.monitor.metrics_bind
        if bind:
            try:
                self.metrics_server = serve(bind, self._metrics_source)
            except (OSError, ValueError) as exc:
                self.feed.close()
                raise StartupError(f"monitor.metrics_bind {bind}: cannot serve /metrics: {exc}") from None
        self._next_cycle = self.clock()
        log.info("monitor listening", extra={"listen": self.config.monitor.listen,
                                             "metrics": self.config.monitor.metrics_bind})

    def _metrics_source(self) -> tuple[dict[str, Any], dict[str, Any]]:
        e = self.engine
        with e.lock:
            return e.view, {"cycles": e.cycles, "cycle_errors": e.cycle_errors,
                            "feed": dict(self.feed.counts) if self.feed else {}}

    def one_iteration(self) -> int:
        now = self.clock()
        wait = min(POLL_CAP_SECONDS, max(0.0, (self._next_cycle - now).total_seconds()))
        messages = self.feed.poll(wait)
        now = self.clock()
        for topic, body in messages:
            self.engine.take(topic, body, now)
        if any(topic == "event" for topic, _ in messages):
            self._next_cycle = min(self._next_cycle, now + timedelta(seconds=min(self.interval, EARLY_CYCLE_SECONDS)))
        if now >= self._next_cycle:
            self._next_cycle = now + timedelta(seconds=self.interval)
            try:
                self.engine.cycle(now)
            except Exception:  # a database hiccup must not end monitoring; the next cycle retries
                self.engine.cycle_errors += 1
                log.exception("monitor cycle failed")
        # Always "did work": the wait happened in the feed poll, the base loop must not sleep again.
        return 1

    def periodic(self) -> None:
        try:
            self.engine.housekeeping(self.clock())
        except Exception:
            log.exception("monitor housekeeping failed")

    def health(self) -> dict[str, Any]:
        firing = [a for a in self.engine.notifier.alerts.values() if a.state == "firing"]
        return {"alerts_firing": len(firing), "cycles": self.engine.cycles, "cycle_errors": self.engine.cycle_errors}

    def shutdown(self) -> None:
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()
        if self.feed is not None:
            self.feed.close()
        if self.provenance is not None:
            self.provenance.close()
