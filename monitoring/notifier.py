"""Alertmanager's notification rules, as a pure object: alert conditions + time in, notices out.

- An alert is *pending* from the first cycle its condition holds, and *firing* once it has
  held for `pending_seconds`; a condition that goes away while pending is forgotten quietly.
- Alerts are grouped by the labels in `group_by`. A group's first notice waits
  `group_wait_seconds` after its first firing alert (so alerts that fire together go in one
  mail); a new alert or a severity change in an already notified group is sent no sooner than
  `group_interval_seconds` after the last notice; an unchanged group is re-sent every
  `repeat_interval_seconds`; and one resolved notice goes out when every alert of the last
  firing notice has resolved.
- A firing hop-down alert inhibits the symptom alerts of its zone at its hop and downstream
  (catalog.py). A check with an operating schedule is muted outside it: nothing about it is
  mailed then, neither firing nor resolved; it is kept and mailed when the window opens.
- Inhibited and muted alerts are still alerts: they neither fire a notice nor count as
  resolved, so a muted alert cannot trigger a false "resolved" mail.

Nothing here reads a clock or a database: `now` comes in, and the daemon keeps the state in
the zone database (store.py) so a restart neither forgets nor re-sends.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from .catalog import HOP_DOWN_CHECKS, SYMPTOM_CHECKS
from .hops import at_or_downstream
from .model import Alert, AlertState, GroupEntry, Notice, Transition
from .schedule import Window


@dataclass(frozen=True)
class NotifierSettings:
    pending_seconds: float = 60.0
    group_by: tuple[str, ...] = ("zone", "hop")
    group_wait_seconds: float = 10.0
    group_interval_seconds: float = 300.0
    repeat_interval_seconds: float = 4 * 3600.0
    # A resolved alert nobody needs any more is dropped from memory after this long.
    forget_resolved_seconds: float = 3600.0

    @classmethod
    def from_config(cls, monitor) -> NotifierSettings:  # monitor: tgw_common.config.MonitorConfig
        return cls(pending_seconds=monitor.pending_seconds, group_by=tuple(monitor.group_by),
                   group_wait_seconds=monitor.group_wait_seconds,
                   group_interval_seconds=monitor.group_interval_seconds,
                   repeat_interval_seconds=monitor.repeat_interval_seconds)


def inhibits(source: AlertState, target: AlertState) -> bool:
    return (source.check in HOP_DOWN_CHECKS and target.check in SYMPTOM_CHECKS
            and source.labels["zone"] == target.labels["zone"]
            and at_or_downstream(source.labels["hop"], target.labels["hop"]))


class Notifier:
    def __init__(self, settings: NotifierSettings, *, windows: dict[str, Window] | None = None,
                 alerts: Iterable[AlertState] = (), groups: Iterable[GroupEntry] = ()) -> None:
        self.settings = settings
        self.windows = windows or {}
        self.alerts: dict[str, AlertState] = {a.fingerprint: a for a in alerts}
        self.groups: dict[str, GroupEntry] = {g.key: g for g in groups}
        self.forgotten: set[str] = set()  # fingerprints dropped since the store last saved

    def group_labels(self, labels: dict[str, str]) -> dict[str, str]:
        return {k: labels.get(k, "") for k in self.settings.group_by}

    def group_key(self, labels: dict[str, str]) -> str:
        return "{" + ",".join(f'{k}="{v}"' for k, v in self.group_labels(labels).items()) + "}"

    # --- step 1: conditions -> alert states
    def update(self, now: datetime, current: Iterable[Alert], evaluated: set[str]) -> list[Transition]:
        """Apply this cycle's conditions; checks not in `evaluated` keep their alerts as they were."""
        changes: list[Transition] = []
        seen: set[str] = set()
        for a in current:
            fp = a.fingerprint
            if fp in seen:
                continue  # two checks never share labels; guard anyway
            seen.add(fp)
            st = self.alerts.get(fp)
            if st is None or st.state == "resolved":
                st = AlertState(fingerprint=fp, labels=a.labels, group_key=self.group_key(a.labels),
                                state="pending", severity=a.severity, summary_zh=a.summary_zh,
                                summary_en=a.summary_en, facts=a.facts, since=a.since, active_since=now)
                self.alerts[fp] = st
                changes.append(Transition(now, dataclasses.replace(st), "pending"))
            else:
                changed = st.state == "firing" and st.severity != a.severity
                st.severity, st.summary_zh, st.summary_en, st.facts = a.severity, a.summary_zh, a.summary_en, a.facts
                st.since = a.since or st.since
                if changed:
                    changes.append(Transition(now, dataclasses.replace(st), "changed"))
            if st.state == "pending" and (now - st.active_since).total_seconds() >= self.settings.pending_seconds:
                st.state, st.firing_since = "firing", now
                changes.append(Transition(now, dataclasses.replace(st), "firing"))
        for fp, st in list(self.alerts.items()):
            if fp in seen or st.check not in evaluated or st.state == "resolved":
                continue
            if st.state == "pending":
                del self.alerts[fp]
                self.forgotten.add(fp)
                changes.append(Transition(now, dataclasses.replace(st), "cleared"))
            else:
                st.state, st.resolved_at = "resolved", now
                changes.append(Transition(now, dataclasses.replace(st), "resolved"))
        self._inhibit_and_mute(now)
        return changes

    def _inhibit_and_mute(self, now: datetime) -> None:
        sources = [s for s in self.alerts.values() if s.state == "firing" and s.check in HOP_DOWN_CHECKS]
        for st in self.alerts.values():
            window = self.windows.get(st.check)
            st.muted = window is not None and not window.is_open(now)
            src = next((s for s in sources if s is not st and inhibits(s, st)), None) if st.state == "firing" else None
            st.inhibited_by = src.fingerprint if src else None

    # --- step 2: alert states -> notices
    def plan(self, now: datetime) -> list[Notice]:
        s = self.settings
        members: dict[str, list[AlertState]] = {}
        for st in self.alerts.values():
            members.setdefault(st.group_key, []).append(st)
        notices = []
        for key in sorted(set(members) | {k for k, g in self.groups.items() if g.notified}):
            group = members.get(key, [])
            entry = self.groups.get(key)
            if entry is None:
                entry = self.groups[key] = GroupEntry(key, self.group_labels(group[0].labels))
            visible = [a for a in group if a.state == "firing" and not a.inhibited_by and not a.muted]
            if not entry.notified:
                if not visible:
                    entry.waiting_since = None
                    continue
                if entry.waiting_since is None:
                    entry.waiting_since = now
                if (now - entry.waiting_since).total_seconds() >= s.group_wait_seconds:
                    notices.append(self._notice(entry, "firing", "new", visible, now))
                continue
            since_last = (now - entry.last_sent_at).total_seconds() if entry.last_sent_at else float("inf")
            if visible:
                changed = any(entry.notified.get(a.fingerprint) != a.severity for a in visible)
                if changed and since_last >= s.group_interval_seconds:
                    notices.append(self._notice(entry, "firing", "changed", visible, now))
                elif since_last >= s.repeat_interval_seconds:
                    notices.append(self._notice(entry, "firing", "repeat", visible, now))
                continue
            if all(self._resolved_and_sendable(fp, now) for fp in entry.notified):
                notices.append(self._notice(entry, "resolved", "resolved", [], now))
        return notices

    def _resolved_and_sendable(self, fp: str, now: datetime) -> bool:
        st = self.alerts.get(fp)
        if st is None:
            return True
        if st.state != "resolved":
            return False  # still firing but inhibited or muted, or pending again after a flap
        window = self.windows.get(st.check)
        return window is None or window.is_open(now)

    def _notice(self, entry: GroupEntry, kind: str, reason: str, firing: list[AlertState], now: datetime) -> Notice:
        resolved = [self.alerts[fp] for fp in entry.notified
                    if fp in self.alerts and self.alerts[fp].state == "resolved"]
        return Notice(group_key=entry.key, group_labels=dict(entry.labels), kind=kind, reason=reason,
                      firing=tuple(dataclasses.replace(a) for a in sorted(firing, key=_order)),
                      resolved=tuple(dataclasses.replace(a) for a in sorted(resolved, key=_order)), at=now)

    # --- step 3: after a notice went out
    def sent(self, notice: Notice, now: datetime) -> GroupEntry:
        entry = self.groups[notice.group_key]
        entry.notified = {a.fingerprint: a.severity for a in notice.firing} if notice.kind == "firing" else {}
        entry.last_sent_at = now
        entry.waiting_since = None
        return entry

    def prune(self, now: datetime) -> list[str]:
        """Drop resolved alerts no group still refers to; return their fingerprints."""
        referenced = {fp for g in self.groups.values() for fp in g.notified}
        dropped = [fp for fp, st in self.alerts.items()
                   if st.state == "resolved" and fp not in referenced and st.resolved_at is not None
                   and (now - st.resolved_at).total_seconds() >= self.settings.forget_resolved_seconds]
        for fp in dropped:
            del self.alerts[fp]
        self.forgotten.update(dropped)
        return dropped

    def firing(self) -> list[AlertState]:
        return sorted((a for a in self.alerts.values() if a.state == "firing"), key=_order)


def _order(a: AlertState) -> tuple:
    return (0 if a.severity == "critical" else 1, a.labels.get("hop", ""), a.check, a.labels.get("subject", ""))
