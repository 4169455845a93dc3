"""A gunicorn worker's background thread: one call every few seconds until the worker stops.

Used for heartbeats and housekeeping. A failing call is logged and tried again next time:
the thread must outlive a database hiccup, or the monitor would see a live worker as dead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable


class Ticker:
    def __init__(self, name: str, tick: Callable[[], object], every_seconds: float, *, log: logging.Logger,
                 failure: str) -> None:
        self.name = name
        self.tick = tick
        self.every_seconds = every_seconds
        self.log, self.failure = log, failure  # the app's logger, and what it says when a tick fails
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                self.log.exception(self.failure)
            self._stop.wait(self.every_seconds)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
