"""supervisord event listener: process exits and FATAL states into the zones' records.

supervisord restarts a program that exits unexpectedly; without a record nobody would
know it had died. This listener (after superlance's crashmail, but writing where the
monitor reads instead of mailing) keeps every PROCESS_STATE_EXITED and
PROCESS_STATE_FATAL, and on each TICK_5 writes the heartbeat of daemon `supervisor` into
each zone's database (and its monitor's feed), with the zone's program states and recent
exits in its state:

    programs        {program: supervisor state name}
    not_running     programs not RUNNING
    fatal           programs in FATAL
    exits_last_hour unexpected exits in the last hour
    last_exit       the latest exit or FATAL of the zone's programs
    revivals        FATAL programs it will start again or has just started (revive.py):
                    program, tries, due, last_start, last_error

The monitor already alerts on `supervisor_state` (a program not RUNNING) and on a daemon
whose heartbeat stops; this record adds the history and a heartbeat for the listener
itself (monitor.daemons lists `supervisor`). The exit log is kept in
DIR/state/supervisor-events.json, so a restarted listener still knows the last hour.

It also starts a FATAL program again, after a pause that grows with each FATAL in a row
(revive.py), so no program stays down for good without anyone doing anything.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import uuid
from datetime import datetime, timedelta
from typing import Any, TextIO

from tgw_common.config import load_config
from tgw_common.db import make_engine, utcnow
from tgw_common.events import Provenance
from tgw_common.spool import write_atomic

from .layout import Layout
from .programs import EVENT_LISTENER, zone_of
from .revive import Reviver

log = logging.getLogger(__name__)
DAEMON = "supervisor"
KEEP = 200  # exits kept in the state file


def parse_payload(payload: str) -> dict[str, str]:
    """`processname:x groupname:x from_state:RUNNING expected:0 pid:1` -> dict (first line only)."""
    head = payload.split("\n", 1)[0]
    return dict(token.split(":", 1) for token in head.split() if ":" in token)


class Recorder:
    """What the listener does with each event; separate from the protocol so tests can drive it."""

    def __init__(self, layout: Layout, *, rpc=None) -> None:
        self.layout = layout
        self.rpc = rpc
        self.session = uuid.uuid4().hex
        self.started_at = utcnow()
        self.state_file = layout.state_dir / "supervisor-events.json"
        self.exits: list[dict[str, Any]] = self._load()
        # Without supervisord's XML-RPC (tests driving the recorder) nothing can be started.
        self.reviver = Reviver(rpc, skip=(EVENT_LISTENER,)) if rpc is not None else None
        self.prov: dict[str, Provenance] = {}
        for zone, path in (("outer", layout.outer_config), ("inner", layout.inner_config)):
            config = load_config(path)
            self.prov[zone] = Provenance(make_engine(config.database.url), zone=zone, host=config.node.host,
                                         publish=config.events.publish)

    def _load(self) -> list[dict[str, Any]]:
        try:
            return list(json.loads(self.state_file.read_text(encoding="utf-8")).get("exits", []))[-KEEP:]
        except (FileNotFoundError, ValueError):
            return []

    def event(self, name: str, payload: str, now: datetime | None = None) -> dict[str, Any] | None:
        """Handle one event; returns the exit record for PROCESS_STATE_EXITED/FATAL."""
        now = now or utcnow()
        if name.startswith("TICK"):
            self.beat(now)
            return None
        if name not in ("PROCESS_STATE_EXITED", "PROCESS_STATE_FATAL"):
            return None
        fields = parse_payload(payload)
        program = fields.get("processname", "?")
        record = {"at": now.isoformat(), "program": program, "zone": zone_of(program),
                  "event": name.removeprefix("PROCESS_STATE_"), "from_state": fields.get("from_state"),
                  "expected": fields.get("expected") == "1", "pid": fields.get("pid")}
        self.exits = [*self.exits, record][-KEEP:]
        write_atomic(self.state_file, (json.dumps({"exits": self.exits}, indent=2) + "\n").encode())
        # A JSON log line per exit, so `tgw status` shows it and the log keeps it beyond the file.
        log.warning("program %s", record["event"].lower(), extra=record)
        if name == "PROCESS_STATE_FATAL" and self.reviver is not None:
            self.reviver.fatal(program, now)
        self.beat(now)
        return record

    def _states(self) -> dict[str, str] | None:
        if self.rpc is None:
            return None
        try:
            return {f"{p['name']}": p["statename"] for p in self.rpc.supervisor.getAllProcessInfo()}
        except Exception as exc:  # supervisord busy or shutting down: the next tick tries again
            log.info("cannot read process states", extra={"error": str(exc)})
            return None

    def beat(self, now: datetime) -> None:
        states = self._states()
        if self.reviver is not None:
            self.reviver.tick(now, states)
        revivals = self.reviver.summary() if self.reviver is not None else []
        hour_ago = now - timedelta(hours=1)
        for zone, prov in self.prov.items():
            mine = [e for e in self.exits if e["zone"] in (zone, "appliance")]
            recent = [e for e in mine if not e["expected"] and datetime.fromisoformat(e["at"]) > hour_ago]
            state: dict[str, Any] = {"exits_last_hour": len(recent), "last_exit": mine[-1] if mine else None,
                                     "pid": os.getpid(),
                                     "revivals": [r for r in revivals if zone_of(r["program"]) in (zone, "appliance")]}
            if states is not None:
                zone_states = {p: s for p, s in states.items() if zone_of(p) in (zone, "appliance")}
                state.update(programs=zone_states,
                             not_running=sorted(p for p, s in zone_states.items() if s != "RUNNING"),
                             fatal=sorted(p for p, s in zone_states.items() if s == "FATAL"))
            try:
                prov.heartbeat(DAEMON, session_id=self.session, started_at=self.started_at, at=now, **state)
            except Exception:  # a locked database must not stop the listener; the next tick retries
                log.exception("supervisor heartbeat failed", extra={"zone": zone})

    def close(self) -> None:
        for prov in self.prov.values():
            prov.close()


def _wait(stdin: TextIO, stdout: TextIO) -> tuple[dict[str, str], str] | None:
    """READY, then one event (header line and payload); None when supervisord closed the pipe."""
    stdout.write("READY\n")
    stdout.flush()
    line = stdin.readline()
    if not line:
        return None
    headers = parse_payload(line)
    return headers, stdin.read(int(headers.get("len", "0")))


def _ok(stdout: TextIO) -> None:
    stdout.write("RESULT 2\nOK")
    stdout.flush()


def run(layout: Layout, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> None:
    """The event listener protocol (READY, header, payload, RESULT), until stdin closes."""
    rpc = None
    if os.environ.get("SUPERVISOR_SERVER_URL"):
        from supervisor import childutils

        rpc = childutils.getRPCInterface(os.environ)
    recorder = Recorder(layout, rpc=rpc)
    # supervisord stops the listener with SIGTERM while it waits on stdin: leave cleanly (exit 0).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while (event := _wait(stdin, stdout)) is not None:
            headers, payload = event
            try:
                recorder.event(headers.get("eventname", ""), payload)
            except Exception:  # never leave supervisord waiting for a RESULT: it would stop sending events
                log.exception("event not recorded", extra={"event": headers.get("eventname")})
            _ok(stdout)
    finally:
        recorder.close()
