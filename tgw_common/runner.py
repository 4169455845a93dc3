"""The daemon loop every hop shares, after Mailman's Runner.

A subclass implements `one_iteration()` (do what is ready, return how much was done) and
optionally `periodic()` and `startup()`. The loop:
- runs `startup()` (crash recovery) before telling systemd READY=1;
- sends WATCHDOG=1 and a heartbeat from the main loop, so a hung loop is noticed; a
  subclass whose pass handles many slow items calls `keep_alive()` per item too, so a busy
  pass is not taken for a hung one;
- sleeps only when there was nothing to do, and wakes early on a watchdog (inotify) event
  for its folder; the event is a hint only, a full rescan runs every `rescan_seconds`;
- stops cleanly on SIGTERM/SIGINT after the current item.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .db import utcnow
from .events import Provenance

log = logging.getLogger(__name__)


class _Notifier:
    """sd_notify when run by systemd; silent otherwise."""

    def __init__(self) -> None:
        self._n = None
        if os.environ.get("NOTIFY_SOCKET"):
            import sdnotify

            self._n = sdnotify.SystemdNotifier()

    def __call__(self, msg: str) -> None:
        if self._n is not None:
            self._n.notify(msg)


class _WakeOnChange:
    """A watchdog observer that sets an Event when anything changes in the given folders."""

    def __init__(self, folders: Iterable[Path], wake: threading.Event) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event):
                wake.set()

        self._observer = Observer()
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
            self._observer.schedule(Handler(), str(folder), recursive=False)
        self._observer.daemon = True
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()


class Runner:
    name = "runner"
    rescan_seconds: float = 30.0
    heartbeat_seconds: float = 5.0
    idle_sleep_seconds: float = 1.0
    # Least time between two WATCHDOG=1: far below any WatchdogSec, and it keeps a per-item
    # keep_alive() to a clock read for all but one item a second.
    watchdog_seconds: float = 1.0

    def __init__(self, provenance: Provenance | None, *, watch: Iterable[Path] = ()) -> None:
        self.provenance = provenance
        self.session_id = uuid.uuid4().hex
        self.started_at = utcnow()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._watch = list(watch)
        self._notify = _Notifier()
        self._last_heartbeat = 0.0
        self._last_periodic = 0.0
        self._last_watchdog = float("-inf")

    # --- for subclasses
    def startup(self) -> None:
        """Recover from a crash before READY=1."""

    def one_iteration(self) -> int:
        """Do the work that is ready; return how many items were handled."""
        raise NotImplementedError

    def periodic(self) -> None:
        """Housekeeping every `rescan_seconds`."""

    def health(self) -> dict[str, Any]:
        """What the heartbeat tells the monitor (queue depth and the like)."""
        return {}

    def shutdown(self) -> None:
        """Release resources after the loop ends."""

    def heartbeat(self) -> None:
        """Tell the zone this loop is alive, with `health()`; a subclass may tell more."""
        if self.provenance is not None:
            self.provenance.heartbeat(self.name, session_id=self.session_id, started_at=self.started_at,
                                      pid=os.getpid(), **self.health())

    def keep_alive(self) -> None:
        """Tell systemd's watchdog the loop is alive (WATCHDOG=1, at most once per
        `watchdog_seconds`); cheap enough to call for every item."""
        now = time.monotonic()
        if now - self._last_watchdog >= self.watchdog_seconds:
            self._last_watchdog = now
            self._notify("WATCHDOG=1")

    # --- the loop
    def stop(self, *_: object) -> None:
        self._stop.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self, *, until_idle: bool = False) -> None:
        """Loop until stopped; with until_idle, return once nothing is left (for tests and CLIs)."""
        self.startup()
        watcher = _WakeOnChange(self._watch, self._wake) if self._watch and not until_idle else None
        self._notify("READY=1")
        log.info("started", extra={"runner": self.name, "session": self.session_id})
        try:
            while not self._stop.is_set():
                done = self.one_iteration()
                self._tick()
                if done:
                    continue
                if until_idle:
                    break
                self._wake.wait(self.idle_sleep_seconds)
                self._wake.clear()
        finally:
            self._notify("STOPPING=1")
            if watcher:
                watcher.stop()
            self.shutdown()
            log.info("stopped", extra={"runner": self.name})

    def _tick(self) -> None:
        self.keep_alive()
        now = time.monotonic()
        if now - self._last_heartbeat >= self.heartbeat_seconds:
            self._last_heartbeat = now
            try:
                self.heartbeat()
            except Exception:  # a busy database must not stop the hop; the next beat retries
                log.exception("heartbeat failed")
        if now - self._last_periodic >= self.rescan_seconds:
            self._last_periodic = now
            self.periodic()
