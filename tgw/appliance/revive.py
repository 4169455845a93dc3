"""Starting a FATAL program again, later and later, so no daemon of the appliance stays down.

supervisord gives up on a program (FATAL) once it has died `startretries` times while
STARTING; after that nothing but a human would start it. The event listener hands each
FATAL to a Reviver, which asks supervisord (XML-RPC `supervisor.startProcess`) to start the
program again after a pause that doubles with every FATAL in a row: 5 s, 10 s, 20 s, ...
capped at 5 minutes, so a program that cannot start (a broken config) costs little while it
waits for the operator the monitor has mailed. A program that has stayed RUNNING for
RESET_SECONDS starts again from the shortest pause.

The listener sees states only on its TICK_5 events, so a start is at most 5 s late; a
FATAL it missed (the listener itself was restarting) is found in the states of the next tick.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)

FIRST_DELAY = 5.0
MAX_DELAY = 300.0
RESET_SECONDS = 600.0


def delay_for(tries: int) -> float:
    """The pause before start number `tries` (1 for the first after a FATAL)."""
    return min(MAX_DELAY, FIRST_DELAY * 2 ** max(0, tries - 1))


@dataclass
class Revival:
    program: str
    tries: int  # FATALs in a row
    due: datetime | None  # when to start it again; None: started, waiting to see it run
    last_start: datetime | None = None
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"program": self.program, "tries": self.tries, "due": _iso(self.due),
                "last_start": _iso(self.last_start), "last_error": self.last_error}


class Reviver:
    def __init__(self, rpc: Any, *, skip: tuple[str, ...] = ()) -> None:
        self.rpc = rpc
        self.skip = skip  # programs never started here (the listener itself)
        self.pending: dict[str, Revival] = {}
        self.starts = 0

    def fatal(self, program: str, now: datetime) -> Revival | None:
        """supervisord gave up on `program`: plan its next start."""
        if program in self.skip:
            return None
        rev = self.pending.get(program)
        if rev is None:
            rev = self.pending[program] = Revival(program, 0, None)
        elif rev.due is not None:
            return rev  # already planned (the FATAL event and a tick both saw it)
        rev.tries += 1
        rev.due = now + timedelta(seconds=delay_for(rev.tries))
        log.warning("program FATAL: starting it again later", extra={
            "program": program, "tries": rev.tries, "delay_seconds": delay_for(rev.tries), "due": _iso(rev.due)})
        return rev

    def tick(self, now: datetime, states: dict[str, str] | None) -> list[Revival]:
        """Start what is due; forget programs running for long enough. Returns the starts made."""
        if states is None:
            return []
        for program, state in states.items():
            if state == "FATAL":
                self.fatal(program, now)
        started = []
        for program, rev in list(self.pending.items()):
            state = states.get(program)
            if state is None:
                del self.pending[program]  # no longer configured
            elif state == "FATAL" and rev.due is not None and now >= rev.due:
                self._start(rev, now)
                started.append(rev)
            elif state != "FATAL" and rev.due is not None:
                rev.due, rev.last_start = None, now  # someone started it first (supervisorctl start)
            elif state == "RUNNING" and rev.due is None and rev.last_start is not None \
                    and (now - rev.last_start).total_seconds() >= RESET_SECONDS:
                del self.pending[program]
        return started

    def _start(self, rev: Revival, now: datetime) -> None:
        rev.last_start, rev.due = now, None
        try:
            # wait=False: the listener must answer supervisord's next event, not wait for startsecs.
            self.rpc.supervisor.startProcess(rev.program, False)
            rev.last_error = None
            self.starts += 1
            log.warning("FATAL program started again", extra={"program": rev.program, "tries": rev.tries})
        except Exception as exc:  # ALREADY_STARTED (someone was quicker), supervisord busy: the next tick sees
            rev.last_error = str(exc)[:300]
            log.warning("cannot start FATAL program", extra={"program": rev.program, "error": rev.last_error})

    def summary(self) -> list[dict[str, Any]]:
        return [rev.as_dict() for rev in self.pending.values()]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
