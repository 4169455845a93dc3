"""`tgw up`, `tgw down`, `tgw status` and `tgw appliance ...`: the gateway on one machine."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

import click

from tgw_common.cli_support import EXIT_OK, EXIT_REFUSED, Failure, UsageProblem, emit_json, operational
from tgw_common.spool import write_atomic

from .layout import DEFAULT_DIR, DEFAULT_PORT_BASE, PORT_OFFSETS, Layout, Settings, ports

DIR_OPTION = click.option(
    "--dir", "folder", default=str(DEFAULT_DIR), show_default=True, envvar="TGW_APPLIANCE_DIR", show_envvar=True,
    type=click.Path(file_okay=False, path_type=Path), help="裝置資料夾 / the appliance's folder (everything lives here).")


def _layout(folder: Path) -> Layout:
    layout = Layout.at(folder)
    problems = layout.socket_problems()
    if problems:
        raise UsageProblem("; ".join(problems))
    return layout


def _schedule_option(_ctx, _param, value: str | None) -> list[float] | None:
    """`0,5,60,300` -> [0.0, 5.0, 60.0, 300.0], checked as transfer_send checks it."""
    if value is None:
        return None
    from pydantic import ValidationError

    from tgw_common.config import TransferSendConfig

    try:
        offsets = [float(x) for x in value.split(",")]
        return TransferSendConfig(repeat_schedule_seconds=offsets).repeat_schedule_seconds
    except (ValueError, ValidationError) as exc:
        errors = exc.errors() if isinstance(exc, ValidationError) else [{"msg": str(exc)}]
        raise click.BadParameter("; ".join(e["msg"] for e in errors)) from None


@click.command("up")
@DIR_OPTION
@click.option("--loss", type=click.FloatRange(0, 0.5), default=None,
              help="在單向鏈路中加入有損耗的中繼 / put the lossy relay in the link with this loss per datagram "
                   "(e.g. 0.05); without it the sender sends straight to the receiver.")
@click.option("--port-base", type=click.IntRange(1024, 65535 - max(PORT_OFFSETS.values())), default=None,
              help=f"埠號基準 / ports are this plus fixed offsets (default {DEFAULT_PORT_BASE}: portal "
                   f"{DEFAULT_PORT_BASE + PORT_OFFSETS['web']}); kept for later runs. Keep it at most "
                   "32000 (above, the kernel's ephemeral ports).")
@click.option("--agencies", type=click.IntRange(1, 9), default=3, show_default=True,
              help="示範機關數（僅首次）/ demo agencies in the PKI (first run only).")
@click.option("--timeout", type=click.FloatRange(5, 900), default=120, show_default=True,
              help="等待所有程式啟動的秒數 / seconds to wait for every program to be RUNNING and beating.")
@click.option("--repeat-schedule", "schedule", default=None, metavar="S,S,...", callback=_schedule_option,
              help="每份檔案各次送出的時間（秒，自第一次起算）/ when each copy of a file goes on both links, in "
                   "seconds after the first (default 0,5,60,300); kept for later runs.")
@operational
def up(folder: Path, loss: float | None, port_base: int | None, agencies: int, timeout: float,
       schedule: list[float] | None) -> None:
    """啟動一機裝置 / Bring the whole gateway up on this machine under supervisord.

    \b
    First run: a demo PKI, both zones' configs and SQLite databases, the signer registry
    in both, and for each demo agency an outer account (allow-list 127.0.0.1/32, a
    releaser user, an API token) written to DIR/credentials.json (mode 0600); with
    softhsm2, the officers' demo IC cards in DIR/cards and a signer config each (not
    started: the summary prints the command). Every run:
    configs rewritten, supervisord started; returns when every program is RUNNING, the
    portal answers and every daemon has sent its first heartbeat. Already running:
    prints the status (exit 0). Exit 2 for bad arguments, 3 if a port is taken or a
    program does not start (see DIR/log/).
    """
    from tgw_common.config import ConfigError

    from .configs import has_console, write_configs
    from .control import busy_ports, process_info, supervisor_pid
    from .programs import supervisord_conf
    from .provision import (
        OWNER_ONLY_UMASK,
        ensure_accounts,
        ensure_console_account,
        ensure_pki,
        owner_only,
        prepare_databases,
    )
    from .status import gather, render

    os.umask(OWNER_ONLY_UMASK)  # before anything is written: the PKI, the configs, the databases
    layout = _layout(folder)
    settings = layout.read_settings()
    if process_info(layout) is not None:
        if settings is not None and loss != settings.loss:
            raise UsageProblem(f"{layout.root} is running with --loss {settings.loss}; run `tgw down --dir "
                               f"{folder}` first to change it")
        click.echo("已在執行 / already running")
        click.echo(render(gather(layout)))
        return
    if supervisor_pid(layout) is not None:
        raise Failure(f"supervisord (pid {supervisor_pid(layout)}) runs but does not answer on {layout.socket}; "
                      f"see {layout.log_dir / 'supervisord.log'}")
    if settings is None:
        settings = Settings(port_base=port_base or DEFAULT_PORT_BASE, agencies=agencies,
                            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    elif port_base is not None:
        settings.port_base = port_base
    if schedule is not None:
        settings.repeat_schedule = schedule
    settings.loss = loss
    console = has_console()
    busy = busy_ports(settings.port_base, loss=loss is not None, console=console)
    if busy:
        raise Failure("port(s) in use 埠號已被占用: " + "; ".join(busy) + " — choose another --port-base")
    layout.root.mkdir(parents=True, exist_ok=True)
    owner_only(layout.root)
    layout.write_settings(settings)
    portal = f"http://127.0.0.1:{ports(settings.port_base)['web']}"

    if ensure_pki(layout, agencies=settings.agencies):
        click.echo(f"示範憑證 / demo PKI written to {layout.pki}")
    _ensure_cards(layout)
    try:
        write_configs(layout, settings, console=console)
    except ConfigError as exc:
        raise UsageProblem(f"config: {exc}") from None
    prepare_databases(layout)
    creds = ensure_accounts(layout, portal_url=portal)
    if console:
        creds = ensure_console_account(layout, console_url=f"http://127.0.0.1:{ports(settings.port_base)['console']}")
    creds = _signer_configs(layout, settings, portal)
    write_atomic(layout.supervisor_conf, supervisord_conf(layout, settings, console=console).encode())
    click.echo(f"啟動 supervisord / starting supervisord ({layout.supervisor_conf})")
    _start_and_wait(layout, folder, portal, timeout)
    click.echo(render(gather(layout)))
    _print_summary(layout, folder, portal, creds)


def _ensure_cards(layout: Layout) -> None:
    """The demo IC cards, when softhsm2 is installed; without it the appliance comes up without them."""
    from tgw.demo.softhsm import SoftHsmMissing

    from .cards import ensure_cards

    try:
        if ensure_cards(layout):
            click.echo(f"示範晶片卡 / demo IC cards (SoftHSM2 tokens) written to {layout.cards}")
    except SoftHsmMissing as exc:
        click.echo(f"沒有示範晶片卡 / no demo IC cards: {exc}")


def _signer_configs(layout: Layout, settings: Settings, portal: str) -> dict:
    """The officers' signer configs, recorded per agency in credentials.json; the credentials."""
    from tgw_common.config import ConfigError

    from .cards import record_cards, write_signer_configs

    try:
        return record_cards(layout, write_signer_configs(layout, port_base=settings.port_base, portal=portal))
    except ConfigError as exc:
        raise UsageProblem(f"config: {exc}") from None


def _start_and_wait(layout: Layout, folder: Path, portal: str, timeout: float) -> None:
    """supervisord, then every program RUNNING, the portal answering, every daemon's first heartbeat."""
    from .control import ControlError, log_tail, portal_answers, process_info, start_supervisord, wait_running
    from .status import wait_heartbeats

    def show(names: list[str]) -> None:
        for name in names:
            click.echo(f"--- {name}, {layout.log_dir / (name.split(' ')[0] + '.log')}:", err=True)
            click.echo(log_tail(layout, name.split(" ")[0]), err=True)

    try:
        start_supervisord(layout)
        wait_running(layout, timeout=timeout)
    except ControlError as exc:
        show([f"{p['name']} ({p['statename']})" for p in process_info(layout) or [] if p["statename"] != "RUNNING"])
        raise Failure(f"{exc} — `tgw down --dir {folder}` stops what did start") from None
    if not portal_answers(portal, timeout=timeout):
        raise Failure(f"the portal does not answer at {portal}/login; see {layout.log_dir / 'outer-web.log'}")
    silent = wait_heartbeats(layout, timeout=timeout)
    if silent:
        show(silent)
        raise Failure(f"no heartbeat since start from: {', '.join(silent)} — `tgw down --dir {folder}` stops the rest")


def _print_summary(layout: Layout, folder: Path, portal: str, creds: dict) -> None:
    click.echo("")
    click.echo(f"機關入口 portal:        {portal}/login   批次 batches: {portal}/batches   API: {portal}/api/v1/")
    click.echo(f"帳號與權杖 credentials: {layout.credentials_file} (mode 0600)")
    for code, a in creds["agencies"].items():
        users = ", ".join(o["user"] for o in a.get("officers", {}).values()) or a["username"]
        click.echo(f"    {code} {a['name']}: {users} (passwords and API tokens in the file)")
    if "console" in creds:
        click.echo(f"內網主控台 console:     {creds['console']['url']}/   user {creds['console']['username']} "
                   "(password in the file)")
    click.echo(f"設定檔 configs:         {layout.outer_config}, {layout.inner_config}")
    _print_cards(layout, creds)
    click.echo(f"告警郵件 alert mail:    {layout.mail_dir}/*.eml    logs 記錄: {layout.log_dir}/")
    click.echo(f"試試 try:               tgw demo-data envelopes --pki {layout.pki} --out {layout.root / 'demo'} "
               f"--count 20 && tgw appliance upload --dir {folder} --wait {layout.root / 'demo'}/*.p7m")
    click.echo(f"停止 stop:              tgw down --dir {folder}")


def _print_cards(layout: Layout, creds: dict) -> None:
    from .cards import signer_command

    with_cards = [(code, a["cards"]) for code, a in creds["agencies"].items() if a.get("cards")]
    if not with_cards:
        return
    code, cards = with_cards[0]
    click.echo(f"晶片卡 IC cards:        {layout.cards} (SoftHSM2; PINs and signer URLs in the credentials file)")
    click.echo(f"簽章服務 signer:        {signer_command(layout, code, 'accountant')}")
    click.echo(f"    (not started here: one per officer, {layout.config_dir}/signer-<agency>-<role>.yaml; "
               f"{code} accountant at {cards['accountant']['signer_url']})")


@click.command("down")
@DIR_OPTION
@click.option("--timeout", type=click.FloatRange(5, 3600), default=600, show_default=True,
              help="等待停止的秒數上限 / seconds to wait for every program to stop.")
@operational
def down(folder: Path, timeout: float) -> None:
    """停止一機裝置 / Stop every program (portal first, monitors last) and supervisord.

    Each program gets SIGTERM and finishes its current work; data stays in DIR. Exit 0
    stopped or not running, 3 if supervisord cannot be reached or does not stop in time.
    """
    from .control import ControlError, shutdown

    layout = _layout(folder)
    try:
        stopped = shutdown(layout, timeout=timeout)
    except ControlError as exc:
        raise Failure(str(exc)) from None
    click.echo(f"已停止 / stopped ({layout.root})" if stopped else f"未在執行 / not running ({layout.root})")


@click.command("status")
@DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="JSON 輸出 / JSON output.")
@operational
def status(folder: Path, as_json: bool) -> None:
    """一機裝置狀態 / Each hop's process state, queue and last heartbeat.

    Process states from supervisor (XML-RPC on DIR/supervisor.sock), queues and
    heartbeats from the zones' databases. Exit 0 when every program is RUNNING, 1 when
    the appliance is down or a program is not RUNNING.
    """
    from .status import gather, render

    info = gather(_layout(folder))
    if as_json:
        emit_json(info)
    else:
        click.echo(render(info))
    sys.exit(EXIT_OK if info["all_running"] else EXIT_REFUSED)


@click.group(name="appliance")
def appliance() -> None:
    """一機裝置的輔助程式 / Helpers of the one-box appliance (`tgw up`): upload, trace, and the
    programs supervisord runs (SMTP sink, event listener). See docs/appliance.md."""


@appliance.command("upload")
@DIR_OPTION
@click.option("--agency", default=None, help="以此機關的權杖上傳 / upload with this agency's token (default: the "
                                             "file's `upload_as` in expected.json, else the first agency).")
@click.option("--wait", "wait_for", is_flag=True,
              help="等待結果收據 / wait for each fate (loaded or refused) through the API, as the agency sees it.")
@click.option("--timeout", type=click.FloatRange(1, 3600), default=120, show_default=True,
              help="等待秒數 / seconds to wait for the outcomes (and for an `after` file to be loaded).")
@click.option("--quiet", "-q", is_flag=True, help="不列出每個信封的路徑 / no per-hop trace of each envelope.")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path))
@operational
def upload(folder: Path, agency: str | None, wait_for: bool, timeout: float, quiet: bool,
           files: tuple[Path, ...]) -> None:
    """上傳信封 / Upload envelopes through the portal's API as an agency would.

    \b
    Prints the tracking id or the refusal of each. Files of a `tgw demo-data envelopes`
    folder are uploaded as its expected.json says (with that agency's token; a file
    marked `after` once that file is loaded), and with --wait each outcome is compared
    with the expected one. With --wait it asks the API (GET /api/v1/envelopes/ID) until
    the inner zone's receipt says loaded or refused, prints where each ended (with the
    reason) and its path through every hop. Exit 0 if every file
    ended as expected (without expected.json: accepted, and with --wait loaded), else 1.
    """
    from .client import Fates, Zones
    from .provision import read_credentials

    layout = _layout(folder)
    creds = read_credentials(layout)
    if not creds.get("agencies"):
        raise UsageProblem(f"{layout.credentials_file}: no credentials; run `tgw up --dir {folder}` first")
    if agency is not None and agency not in creds["agencies"]:
        raise UsageProblem(f"--agency {agency}: not in {layout.credentials_file}")
    files, expected = _in_expected_order(files)
    zones, fates = Zones(layout), Fates(layout)
    try:
        answers, tids = _upload_each(creds, fates, files, expected, agency, timeout)
        ok = all(a.status == 202 for p, a in answers.items() if str(p) not in expected)
        if not wait_for:
            sys.exit(EXIT_OK if ok else EXIT_REFUSED)
        finals = fates.wait(dict(tids.values()), timeout=timeout)
    finally:
        fates.close()
    all_loaded, mismatches = _report_outcomes(zones, answers, finals, expected, timeout, quiet)
    if expected:
        click.echo(f"{len(answers) - mismatches} of {len(answers)} as expected 符合預期")
    sys.exit(EXIT_OK if ok and all_loaded and not mismatches else EXIT_REFUSED)


def _in_expected_order(files: tuple[Path, ...]) -> tuple[tuple[Path, ...], dict[str, dict]]:
    """The files, and what their folders' expected.json say of them (path -> expectation)."""
    from .client import read_expected

    expected = {}
    for parent in {p.parent for p in files}:
        expected.update({str(parent / name): e for name, e in read_expected(parent).items()})
    if expected:
        # expected.json lists the files in upload order: an `after` file comes after its original.
        order = {name: i for i, name in enumerate(expected)}
        files = tuple(sorted(files, key=lambda p: order.get(str(p), len(order))))
    return files, expected


def _upload_each(creds: dict, fates, files: tuple[Path, ...], expected: dict[str, dict],
                 agency: str | None, timeout: float) -> tuple[dict, dict[str, tuple[str, str]]]:
    """Upload every file with its agency's token: (path -> answer, path -> (tracking id, agency))."""
    from .client import portal_for

    portals: dict[str, object] = {}
    answers, tids = {}, {}
    try:
        for path in files:
            expect = expected.get(str(path))
            code = agency or (expect or {}).get("upload_as") or next(iter(creds["agencies"]))
            after = (expect or {}).get("after")
            if after and tids.get(str(path.parent / after)):
                fates.wait(dict([tids[str(path.parent / after)]]), timeout=timeout)
            if code not in portals:
                portals[code] = portal_for(fates.layout, code)
            try:
                answer = portals[code].upload(path.read_bytes())
            except OSError as exc:
                raise Failure(f"portal {creds['portal']}: {exc}") from None
            answers[path] = answer
            if answer.status == 202:
                tids[str(path)] = (answer.tracking_id, code)
                click.echo(f"{path.name}: 202 accepted 已受理 {answer.tracking_id}")
            else:
                click.echo(f"{path.name}: {answer.status} refused 拒收 {answer.body.get('reason')}: "
                           f"{answer.body.get('message')}")
    finally:
        for portal in portals.values():
            portal.close()
    return answers, tids


def _report_outcomes(zones, answers: dict, finals: dict, expected: dict[str, dict], timeout: float,
                     quiet: bool) -> tuple[bool, int]:
    """Print where each upload ended: (every file without an expectation loaded, mismatches)."""
    from .client import describe, judge

    all_loaded, mismatches = True, 0
    for path, answer in answers.items():
        tid = answer.tracking_id if answer.status == 202 else None
        final = finals.get(tid) if tid else None
        reason = final["reason"] if final and final["event"] == "quarantined" else None
        expect = expected.get(str(path))
        if expect is not None:
            problem = judge(expect, answer, final, reason)
            mismatches += problem is not None
            verdict = "as expected 符合預期" if problem is None else f"UNEXPECTED 不符預期: {problem}"
        else:
            all_loaded = all_loaded and final is not None and final["event"] == "loaded"
            verdict = ""
        if tid is None:
            outcome = f"refused at upload {answer.status} {answer.body.get('reason')}"
        elif final is None:
            outcome = f"not finished after {timeout:.0f} s 逾時"
        else:
            outcome = f"{final['event']}{' ' + reason if reason else ''}"
        click.echo(f"{path.name}: {outcome}{' (' + tid + ')' if tid else ''}{' — ' + verdict if verdict else ''}")
        if tid and not quiet:
            for line in describe(zones.trace(tracking_id=tid)):
                click.echo(f"    {line}")
    return all_loaded, mismatches


@appliance.command("trace")
@DIR_OPTION
@click.argument("ident")
@click.option("--json", "as_json", is_flag=True, help="JSON 輸出 / JSON output.")
@operational
def trace(folder: Path, ident: str, as_json: bool) -> None:
    """追蹤信封 / One envelope's events in both zones, by tracking id or SHA-256. Exit 1 if none."""
    from .client import Zones, describe

    zones = Zones(_layout(folder))
    events = zones.trace(sha256=ident.lower() if len(ident) == 64 else None, tracking_id=ident)
    if as_json:
        emit_json(events)
    else:
        for line in describe(events) or ["(沒有事件 / no events)"]:
            click.echo(line)
    sys.exit(EXIT_OK if events else EXIT_REFUSED)


@appliance.command("smtp-sink")
@click.option("--listen", default="127.0.0.1:18025", show_default=True, metavar="HOST:PORT")
@click.option("--dir", "folder", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="郵件存放處 / where each mail is kept as a .eml file.")
def smtp_sink(listen: str, folder: Path) -> None:
    """本機郵件收集器 / A local SMTP server keeping each mail as DIR/<time>-<id>.eml (until SIGTERM)."""
    from .smtp_sink import serve

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise UsageProblem(f"--listen {listen!r}: expected HOST:PORT")
    try:
        serve(host, int(port), folder)
    except OSError as exc:
        raise Failure(f"cannot listen on {listen}: {exc.strerror or exc}") from None


@appliance.command("supervisor-events")
@DIR_OPTION
def supervisor_events(folder: Path) -> None:
    """supervisord 事件監聽程式 / The event listener supervisord runs (stdin/stdout protocol).

    Records PROCESS_STATE_EXITED / FATAL and a heartbeat (daemon `supervisor`) per TICK_5
    in both zones' databases, and starts a FATAL program again after a growing pause
    (5 s, 10 s, ... 5 min). Not for interactive use.
    """
    from .listener import run

    run(_layout(folder))
