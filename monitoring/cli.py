"""`tgw monitor`: commands of the monitoring part (docs/monitoring.md)."""

from __future__ import annotations

import click

from tgw_common.cli_support import (
    EXIT_OK,
    EXIT_REFUSED,
    Failure,
    UsageProblem,
    config_option,
    emit_json,
    load,
    operational,
)


def _config(config_path: str):
    cfg = load(config_path, "monitor")
    from .engine import config_problems

    problems = config_problems(cfg)
    if problems:
        raise UsageProblem(f"config: {cfg.source}: " + "; ".join(problems))
    return cfg


@click.group(name="monitor")
def monitor() -> None:
    """監控：健康檢查、告警郵件、指標。Health checks, alert mail, metrics (docs/monitoring.md)."""


@monitor.command("run")
@config_option()
@click.option("--once", is_flag=True, help="執行一輪檢查後結束（不開 feed 與 /metrics）。Run one check cycle and exit.")
@operational
def run(config_path: str, once: bool) -> None:
    """執行本區監控程式（每區一個）。Run the zone's monitor daemon (one per zone).

    \b
    Binds monitor.listen (ZeroMQ SUB; publishers connect), serves /metrics on
    monitor.metrics_bind, reads the zone database, runs every check each
    monitor.interval_seconds and mails alerts to monitor.smtp.recipients.
    Stops cleanly on SIGTERM / SIGINT.
    """
    cfg = _config(config_path)
    from tgw_common.db import utcnow

    if once:
        from .engine import MonitorEngine

        engine = MonitorEngine(cfg, started_at=utcnow())
        now = utcnow()
        engine.start(now)
        result = engine.cycle(now)
        emit_json({"at": result.at.isoformat(), "alerts": result.alerts,
                   "transitions": [{"state": t.to_state, **t.alert.labels} for t in result.transitions],
                   "notices": [{"kind": n.kind, "group": n.group_key, "result": r} for n, r in result.delivered]})
        return

    from .daemon import MonitorRunner, StartupError

    runner = MonitorRunner(cfg)
    runner.install_signal_handlers()
    try:
        runner.run()
    except StartupError as exc:
        raise Failure(str(exc)) from None


@monitor.command("status")
@config_option()
@click.option("--json", "as_json", is_flag=True, help="輸出 JSON。Print JSON.")
@operational
def status(config_path: str, as_json: bool) -> None:
    """一覽本區狀態；有告警中（firing）或監控未執行時結束碼 1。At-a-glance status; exit 1 if any alert fires.

    Shows each hop's queue, age and latency, each daemon's heartbeat, and the
    pending and firing alerts, from what the running monitor last saved.
    """
    cfg = _config(config_path)
    from tgw_common.db import make_engine, utcnow

    from .status import print_status, status_data
    from .store import MonitorStore

    store = MonitorStore(make_engine(cfg.database.url), cfg.node.zone)
    data = status_data(store.snapshot(), store.current_alerts(), utcnow(), cfg.monitor.interval_seconds)
    if as_json:
        emit_json(data)
    else:
        print_status(data, zone=cfg.node.zone, display_tz=cfg.monitor.display_timezone)
    # A monitor that is not running cannot vouch for "nothing is wrong".
    raise SystemExit(EXIT_REFUSED if data["firing"] or not data["monitor"]["running"] else EXIT_OK)


@monitor.command("alerts")
@config_option()
@click.option("--since", default="24h", show_default=True,
              help="起始時間：30m、2h、7d 或 ISO 日期時間。From when: 30m, 2h, 7d or an ISO date/time.")
@click.option("--state", "states", multiple=True,
              type=click.Choice(["pending", "firing", "changed", "resolved", "cleared"]),
              help="只列出這些狀態（可重複）。Only these transitions (repeatable).")
@click.option("--notifications", is_flag=True, help="列出通知郵件紀錄。List the notices mailed instead.")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="輸出 JSON。Print JSON.")
@operational
def alerts(config_path: str, since: str, states: tuple[str, ...], notifications: bool, limit: int,
           as_json: bool) -> None:
    """列出告警歷史（狀態變化）。List the alert history (state changes), newest first."""
    cfg = _config(config_path)
    from tgw_common.db import make_engine, utcnow

    from .status import parse_since, print_history, print_notifications
    from .store import MonitorStore

    try:
        start = parse_since(since, utcnow(), cfg.monitor.display_timezone)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    store = MonitorStore(make_engine(cfg.database.url), cfg.node.zone)
    if notifications:
        rows = store.notifications(since=start, limit=limit)
        emit_json(rows) if as_json else print_notifications(rows, display_tz=cfg.monitor.display_timezone)
        return
    rows = store.history(since=start, limit=limit, states=states)
    emit_json(rows) if as_json else print_history(rows, display_tz=cfg.monitor.display_timezone)


@monitor.command("test-mail")
@config_option()
@operational
def test_mail(config_path: str) -> None:
    """寄一封測試信給 smtp.recipients。Send a test mail to smtp.recipients (checks SMTP settings)."""
    cfg = _config(config_path)
    from tgw_common.db import utcnow

    from . import mailer
    from .model import Alert, AlertState, Notice

    smtp = cfg.monitor.smtp
    if not smtp.recipients:
        raise UsageProblem("config: monitor.smtp.recipients is empty")
    now = utcnow()
    a = Alert(zone=cfg.node.zone, hop="monitor", check="monitor_check_error", host=cfg.node.host, subject="test-mail",
              summary_zh="這是一封測試信，不需處理", summary_en="this is a test mail; nothing to do")
    st = AlertState(fingerprint=a.fingerprint, labels=a.labels, group_key="test", state="firing", severity="warning",
                    summary_zh=a.summary_zh, summary_en=a.summary_en, facts={}, since=now, active_since=now)
    notice = Notice("test", {"zone": cfg.node.zone}, "firing", "new", (st,), (), now)
    msg = mailer.compose(notice, smtp, zone=cfg.node.zone, display_tz=cfg.monitor.display_timezone)
    try:
        refused = mailer.send(msg, smtp)
    except mailer.MailError as exc:
        raise Failure(str(exc)) from None
    click.echo(f"sent to {', '.join(r for r in smtp.recipients if r not in refused)}"
               + (f"; refused: {', '.join(refused)}" if refused else ""))
