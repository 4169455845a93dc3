"""The Alertmanager-like notifier as a pure object: conditions and a clock in, notices out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from monitoring.model import Alert
from monitoring.notifier import Notifier, NotifierSettings
from monitoring.schedule import Window
from tgw_common.config import ScheduleConfig

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
ALL = {"daemon_down", "backlog_depth", "stuck", "idle", "disk", "cert_expiry"}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def alert(check="backlog_depth", hop="inner-runner", subject="", severity="warning", zone="inner") -> Alert:
    return Alert(zone=zone, hop=hop, check=check, host="h1", subject=subject, severity=severity,
                 summary_zh="中文", summary_en="english")


def run(n: Notifier, seconds: float, alerts, evaluated=ALL):
    now = at(seconds)
    n.update(now, alerts, evaluated)
    notices = n.plan(now)
    for notice in notices:
        n.sent(notice, now)
    return notices


def settings(**kw) -> NotifierSettings:
    base = {"pending_seconds": 60, "group_wait_seconds": 10, "group_interval_seconds": 300,
            "repeat_interval_seconds": 3600}
    return NotifierSettings(**{**base, **kw})


def test_pending_group_wait_repeat_and_one_resolved_notice():
    n = Notifier(settings())
    a = alert()
    assert run(n, 0, [a]) == []  # pending
    assert run(n, 59, [a]) == []
    assert run(n, 60, [a]) == []  # firing, group_wait starts
    [first] = run(n, 70, [a])
    assert (first.kind, first.reason, [x.fingerprint for x in first.firing]) == ("firing", "new", [a.fingerprint])
    assert run(n, 600, [a]) == []
    [again] = run(n, 70 + 3600, [a])
    assert again.reason == "repeat"
    [done] = run(n, 4000, [])
    assert (done.kind, [x.fingerprint for x in done.resolved]) == ("resolved", [a.fingerprint])
    assert run(n, 4100, []) == [] and run(n, 9000, []) == []


def test_a_flap_shorter_than_pending_is_never_mailed():
    n = Notifier(settings())
    transitions = n.update(at(0), [alert()], ALL)
    assert [t.to_state for t in transitions] == ["pending"]
    transitions = n.update(at(30), [], ALL)
    assert [t.to_state for t in transitions] == ["cleared"]
    assert n.plan(at(31)) == [] and n.alerts == {}


def test_alerts_of_one_group_share_a_mail_and_a_newcomer_waits_for_group_interval():
    n = Notifier(settings(pending_seconds=0, group_wait_seconds=10))
    depth, stuck1 = alert("backlog_depth"), alert("stuck", subject="sha256:aa")
    assert run(n, 0, [depth, stuck1]) == []
    [both] = run(n, 10, [depth, stuck1])
    assert {x.check for x in both.firing} == {"backlog_depth", "stuck"}
    other_hop = alert("backlog_depth", hop="transfer-send")
    stuck2 = alert("stuck", subject="sha256:bb")
    notices = run(n, 20, [depth, stuck1, stuck2, other_hop])
    assert notices == []  # new group waits group_wait; the known group waits group_interval
    notices = run(n, 30, [depth, stuck1, stuck2, other_hop])
    assert [x.group_labels["hop"] for x in notices] == ["transfer-send"]
    [changed] = run(n, 310, [depth, stuck1, stuck2, other_hop])
    assert changed.reason == "changed" and len(changed.firing) == 3


def test_severity_change_is_notified_but_text_changes_are_not():
    n = Notifier(settings(pending_seconds=0, group_wait_seconds=0, group_interval_seconds=0))
    assert len(run(n, 0, [alert(severity="warning")])) == 1
    assert run(n, 5, [Alert(zone="inner", hop="inner-runner", check="backlog_depth", host="h1", severity="warning",
                            summary_zh="不同", summary_en="different text")]) == []
    [esc] = run(n, 10, [alert(severity="critical")])
    assert esc.reason == "changed" and esc.firing[0].severity == "critical"


def test_hop_down_inhibits_symptoms_at_and_after_its_hop_only():
    n = Notifier(settings(pending_seconds=0, group_wait_seconds=0))
    down = alert("daemon_down", hop="transfer-send", subject="outer.transfer-send", severity="critical")
    idle_inner = alert("idle", hop="inner-runner")
    backlog_same = alert("backlog_depth", hop="transfer-send")
    upstream = alert("backlog_depth", hop="outer-web")
    disk = alert("disk", hop="host", subject="/var")
    other_zone = alert("idle", hop="inner-runner", zone="outer")
    notices = run(n, 0, [down, idle_inner, backlog_same, upstream, disk, other_zone])
    mailed = {x.fingerprint for notice in notices for x in notice.firing}
    assert mailed == {down.fingerprint, upstream.fingerprint, disk.fingerprint, other_zone.fingerprint}
    assert n.alerts[idle_inner.fingerprint].inhibited_by == down.fingerprint
    # While inhibited, a symptom neither fires a notice nor counts as resolved.
    notices = run(n, 100, [down, idle_inner, backlog_same])
    assert [x.kind for x in notices] == ["resolved", "resolved", "resolved"]  # upstream, disk, other zone
    assert {"zone": "inner", "hop": "inner-runner"} not in [x.group_labels for x in notices]
    # The cause goes away: the symptom still there is mailed now.
    notices = run(n, 200, [idle_inner, backlog_same])
    kinds = {(x.group_labels["zone"], x.group_labels["hop"], x.kind) for x in notices}
    assert ("inner", "inner-runner", "firing") in kinds


def test_muted_outside_the_schedule_nothing_is_mailed_then_held_notices_go_out():
    window = Window(ScheduleConfig(days=["mon", "tue", "wed", "thu", "fri"], start="08:00", end="18:00",
                                   timezone="Asia/Taipei"))
    n = Notifier(settings(pending_seconds=0, group_wait_seconds=0), windows={"backlog_depth": window})
    tpe = ZoneInfo("Asia/Taipei")

    def local(d, h, m=0):
        return (datetime(2026, 3, d, h, m, tzinfo=tpe) - T0).total_seconds()

    a = alert()
    assert run(n, local(2, 17, 0), [a])[0].kind == "firing"  # Monday 17:00: mailed
    assert run(n, local(2, 19, 0), []) == []  # resolved at 19:00: the resolved notice is held
    assert run(n, local(3, 2, 0), [a]) == []  # back at 02:00: muted, not mailed
    assert n.alerts[a.fingerprint].muted is True
    assert run(n, local(3, 7, 59), [a]) == []
    [opening] = run(n, local(3, 8, 0), [a])  # 08:00: the still-firing alert goes out
    assert opening.kind == "firing"


def test_a_check_that_was_not_evaluated_keeps_its_alerts():
    n = Notifier(settings(pending_seconds=0, group_wait_seconds=0))
    cert = alert("cert_expiry", hop="pki", subject="signer:abcd")
    assert len(run(n, 0, [cert])) == 1
    assert run(n, 10, [], evaluated=ALL - {"cert_expiry"}) == []  # the PKI files could not be read
    assert n.alerts[cert.fingerprint].state == "firing"
    [resolved] = run(n, 20, [], evaluated=ALL)
    assert resolved.kind == "resolved"


def test_state_survives_a_restart_through_the_stored_values():
    n = Notifier(settings(pending_seconds=0, group_wait_seconds=0))
    a = alert()
    assert len(run(n, 0, [a])) == 1
    again = Notifier(settings(pending_seconds=0, group_wait_seconds=0), alerts=n.alerts.values(),
                     groups=n.groups.values())
    assert run(again, 50, [a]) == []
    assert run(again, 60, [])[0].kind == "resolved"
