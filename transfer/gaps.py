"""Finding files that never arrived: by sequence gaps and by the sender's ledger.

A number is *suspected* missing when a higher number shows up first (sequence) or when a
heartbeat lists a file as sent that is neither published nor being verified here
(ledger). A suspect becomes a *gap* (event "gap", row in transfer_gaps) only if it is still
missing `grace` seconds later: that absorbs datagrams reordered on the way without
delaying the report beyond one heartbeat window. A gap closes when the file arrives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# A sender that jumps this far ahead (state wiped, or a forged number) is not taken as
# that many missing files at once; the jump is logged and counted instead.
MAX_JUMP = 100_000


@dataclass(slots=True)
class Suspect:
    seq: int
    since: float
    source: str
    session: str | None = None
    name: str | None = None
    size: int | None = None
    sha256: str | None = None


class GapTracker:
    def __init__(self, *, max_seen: int, open_gaps: dict[int, bool], grace: float,
                 is_resolved: Callable[[int], bool]) -> None:
        self.max_seen = max_seen
        self.open = open_gaps  # seq -> whether the gap row already has the file's name
        self.grace = grace
        self.is_resolved = is_resolved
        self.suspects: dict[int, Suspect] = {}
        self.jumps = 0

    def saw(self, seq: int, session: str, now: float) -> None:
        """A datagram of `seq` arrived: lower numbers not seen yet are suspects."""
        sus = self.suspects.get(seq)
        if sus is not None and sus.source == "sequence":
            del self.suspects[seq]
        if seq > self.max_seen:
            self._suspect_range(self.max_seen + 1, seq - 1, session, now)
            self.max_seen = seq

    def _suspect_range(self, first: int, last: int, session: str, now: float) -> None:
        if last - first >= MAX_JUMP:
            self.jumps += 1
            first = last - MAX_JUMP + 1
        for s in range(first, last + 1):
            if s not in self.open and s not in self.suspects and not self.is_resolved(s):
                self.suspects[s] = Suspect(s, now, "sequence", session)

    def ledger(self, last_seq: int, entries: list, session: str, now: float,
               busy: set[int]) -> list[tuple[int, str, int, str]]:
        """Reconcile one heartbeat part; return ledger facts for open gaps that lack them.

        `last_seq` was sent completely, so every number up to it not seen yet is a suspect.
        """
        if last_seq > self.max_seen:
            self._suspect_range(self.max_seen + 1, last_seq, session, now)
            self.max_seen = last_seq
        fill = []
        for entry in entries:
            try:
                seq, name, size, sha = int(entry[0]), str(entry[1]), int(entry[2]), str(entry[3])
            except (TypeError, ValueError, IndexError):
                continue
            if seq in busy or self.is_resolved(seq):
                continue
            if seq in self.open:
                if not self.open[seq]:
                    fill.append((seq, name, size, sha))
                    self.open[seq] = True
                continue
            sus = self.suspects.get(seq)
            if sus is None:
                self.suspects[seq] = Suspect(seq, now, "ledger", session, name, size, sha)
            elif sus.name is None:
                sus.source, sus.name, sus.size, sus.sha256 = "ledger", name, size, sha
        return fill

    def due(self, now: float, busy: set[int]) -> list[Suspect]:
        """Suspects still missing after the grace time: these are gaps now."""
        ready = []
        for seq, sus in list(self.suspects.items()):
            if self.is_resolved(seq) or seq in self.open:
                del self.suspects[seq]
            elif now - sus.since >= self.grace and seq not in busy:
                del self.suspects[seq]
                self.open[seq] = sus.name is not None
                ready.append(sus)
        return ready

    def resolved(self, seq: int) -> None:
        self.suspects.pop(seq, None)
        self.open.pop(seq, None)
