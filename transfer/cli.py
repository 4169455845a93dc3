"""`tgw transfer`: commands of the transfer part (docs/transfer.md)."""

from __future__ import annotations

import json
import sys

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
from tgw_common.instance_lock import AlreadyRunning


@click.group(name="transfer")
def transfer() -> None:
    """單向傳輸（資料二極體）：送出端、接收端、模擬損耗中繼、缺漏、重送。

    The one-way link (data diode): sender, receiver, lossy relay, gaps, resend.
    See docs/transfer.md.
    """


def _engine(config):
    from tgw_common.db import make_engine

    return make_engine(config.database.url, echo=config.database.echo)


def _run_daemon(runner) -> None:
    runner.install_signal_handlers()
    try:
        runner.run()
    except AlreadyRunning as exc:
        raise Failure(str(exc)) from None
    except OSError as exc:
        if exc.errno in (98, 99):  # EADDRINUSE, EADDRNOTAVAIL
            raise Failure(f"cannot bind: {exc.strerror}") from None
        raise Failure(f"{exc.filename or ''} {exc.strerror or exc}".strip()) from None


@transfer.command()
@config_option()
def send(config_path: str) -> None:
    """外網端送出程式：把 outbound 中已完成的檔案編號後經 UDP 單向送出。

    Outer side: number finished files from the outbound spool and send them one way
    over UDP (FEC, paced, repeated, heartbeats). Runs until SIGTERM.
    """
    from .common import parse_address
    from .sender import Sender

    config = load(config_path, "transfer_send")
    try:
        parse_address(config.transfer_send.target)
    except ValueError as exc:
        raise UsageProblem(f"config: transfer_send.target: {exc}") from None
    _run_daemon(Sender(config))


@transfer.command()
@config_option()
def receive(config_path: str) -> None:
    """內網端接收程式：重組、FEC 解碼、SHA-256 檢查後原子發布到 inbound；可有待命接收端。

    Inner side: receive datagrams, reassemble and decode, check SHA-256, publish into
    the inbound spool by atomic rename; record gaps. Never sends a packet. Runs until SIGTERM.
    A second receiver of the same link (same database) waits as a standby and takes over
    when the active one dies (docs/transfer.md, "Standby receiver").
    """
    from .common import parse_address
    from .receiver import Receiver

    config = load(config_path, "transfer_receive")
    try:
        parse_address(config.transfer_receive.listen)
    except ValueError as exc:
        raise UsageProblem(f"config: transfer_receive.listen: {exc}") from None
    _run_daemon(Receiver(config))


@transfer.command()
@config_option()
@click.option("--json", "as_json", is_flag=True, help="以 JSON 輸出 / output JSON.")
@operational
def gaps(config_path: str, as_json: bool) -> None:
    """列出尚未補齊的缺漏檔案（可帶到外網端重送）；有缺漏時結束碼為 1。

    List open gaps (files sent but never arrived), printable so an operator can carry the
    list to the outer side for `tgw transfer resend --gaps FILE`. Exit 1 if there are open
    gaps, 0 if none.
    """
    from sqlalchemy import select

    from tgw_common.db import create_tables, transaction, utcnow

    from .models import TransferGap

    config = load(config_path, "transfer_receive")
    engine = _engine(config)
    create_tables(engine)
    with transaction(engine) as s:
        rows = [g.as_dict() for g in s.scalars(select(TransferGap).where(TransferGap.closed_at.is_(None))
                                              .order_by(TransferGap.seq))]
    if as_json:
        emit_json({"open": len(rows), "host": config.node.host, "at": utcnow().isoformat(), "gaps": rows})
    else:
        click.echo(f"# tgw transfer gaps: {len(rows)} 個缺漏檔案 / open gap(s); host {config.node.host}; "
                   f"{utcnow().isoformat(timespec='seconds')}")
        if rows:
            click.echo("# 將本清單帶到外網端執行 / carry this list to the outer side and run:")
            click.echo("#   tgw transfer resend --config <sender.yaml> --gaps <this file>")
            click.echo("# seq\ttracking_id\tsize\tsha256\tsince\tsource")
        for g in rows:
            click.echo("\t".join(str(v if v is not None else "-") for v in (
                g["seq"], g["tracking_id"], g["size"], g["sha256"], g["opened_at"], g["source"])))
    sys.exit(EXIT_REFUSED if rows else EXIT_OK)


@transfer.command()
@config_option()
@click.option("--json", "as_json", is_flag=True, help="以 JSON 輸出 / output JSON.")
@operational
def stats(config_path: str, as_json: bool) -> None:
    """顯示傳輸計數器（含核心 UDP 丟棄計數）。

    Show the counters of the sender and/or receiver of this config: the daemon's last
    heartbeat state, and the kernel's UDP drop counters (/proc/net/udp, /proc/net/snmp) now.
    """
    from tgw_common.events import Provenance

    from .common import parse_address
    from .netstat import kernel_counters

    config = load(config_path)
    if config.transfer_send is None and config.transfer_receive is None:
        raise UsageProblem(f"config: {config.source}: needs a transfer_send or transfer_receive section")
    prov = Provenance(_engine(config), zone=config.node.zone, host=config.node.host)
    daemons = {d["daemon"]: d for d in prov.daemons()}
    out: dict = {}
    if config.transfer_receive is not None:
        try:
            port = parse_address(config.transfer_receive.listen)[1][1]
        except ValueError as exc:
            raise UsageProblem(f"config: transfer_receive.listen: {exc}") from None
        out["receiver"] = daemons.get("transfer-receive")
        out["kernel_now"] = kernel_counters(port=port)
        out["sender_seen_by_receiver"] = daemons.get("outer.transfer-send")
    if config.transfer_send is not None:
        out["sender"] = daemons.get("transfer-send")
    if as_json:
        emit_json(out)
        return
    for section, body in out.items():
        click.echo(f"[{section}]")
        if body is None:
            click.echo("  (沒有資料 / no heartbeat yet)")
            continue
        state = body.get("state", body) if isinstance(body, dict) else body
        if "at" in body:
            click.echo(f"  last heartbeat: {body['at']}  session: {body.get('session')}")
        for key, value in state.items():
            click.echo(f"  {key}: {json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else value}")


@transfer.command()
@config_option()
@click.option("--seq", "seq_ranges", multiple=True, metavar="A-B",
              help="序號或範圍，可重複或以逗號分隔 / sequence number or range, repeatable, comma lists allowed.")
@click.option("--id", "tracking_ids", multiple=True, metavar="TRACKING_ID",
              help="追蹤編號（檔名主幹）/ tracking id (the file name's stem), repeatable.")
@click.option("--gaps", "gaps_file", type=click.File("r", encoding="utf-8"),
              help="`tgw transfer gaps` 的輸出檔（純文字或 JSON），- 為標準輸入 / "
                   "the printed output of `tgw transfer gaps` (text or --json); - for stdin.")
@click.option("--copies", type=click.IntRange(1, 20), default=1, show_default=True,
              help="每個檔案重送幾份（鏈路很差時用 2-3）/ copies of each file to send (2-3 for a poor link).")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="等待送出端完成並顯示進度 / wait for the sender to finish, with a progress bar.")
@click.option("--timeout", type=click.FloatRange(min=1), default=3600, show_default=True,
              help="等待秒數上限 / give up waiting after this many seconds (exit 3).")
@operational
def resend(config_path: str, seq_ranges: tuple[str, ...], tracking_ids: tuple[str, ...], gaps_file,
           copies: int, wait: bool, timeout: float) -> None:
    """要求送出端重送檔案（依序號、追蹤編號或缺漏清單）。

    Ask the running sender to send files again, by sequence range, tracking id, or the
    gap listing printed by the receiver. Exit 1 if some requested files are unknown or
    past retention (the rest are still resent).
    """
    from tgw_common.db import create_tables

    from .resend import parse_gaps_listing, parse_seq_ranges, queue_resends, sender_alive
    from .resend import wait as wait_for

    config = load(config_path, "transfer_send")
    if not (seq_ranges or tracking_ids or gaps_file):
        raise UsageProblem("give --seq, --id or --gaps / 請指定 --seq、--id 或 --gaps")
    seqs: set[int] = set()
    try:
        for text in seq_ranges:
            seqs.update(parse_seq_ranges(text))
        if gaps_file is not None:
            seqs.update(parse_gaps_listing(gaps_file.read()))
    except ValueError as exc:
        raise UsageProblem(f"--seq/--gaps: {exc}") from None
    engine = _engine(config)
    create_tables(engine)
    req = queue_resends(engine, sorted(seqs), list(tracking_ids), copies=copies)
    for item in req.unknown:
        click.echo(f"未知 / unknown: {item}", err=True)
    for seq in req.removed:
        click.echo(f"已逾保存期限而刪除 / past retention, deleted: seq {seq}", err=True)
    click.echo(f"已排入重送 / queued for resend: {len(req.queued)} file(s)"
               + (f" (seq {min(req.queued)}-{max(req.queued)})" if req.queued else ""))
    problems = bool(req.unknown or req.removed)
    if req.queued and wait:
        if not sender_alive(engine, config.transfer_send.heartbeat_seconds):
            click.echo("送出程式未在執行，重送將於其啟動後進行 / the sender is not running; "
                       "the files go out when it starts", err=True)
        elif not wait_for(engine, req, timeout=timeout, show=True):
            raise Failure(f"resend not finished after {timeout:.0f} s (still queued)")
    sys.exit(EXIT_REFUSED if problems else EXIT_OK)


@transfer.command()
@config_option()
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="以 JSON 輸出 / output JSON.")
@operational
def ledger(config_path: str, limit: int, as_json: bool) -> None:
    """列出送出端最近編號的檔案 / the sender's most recently numbered files."""
    from sqlalchemy import select

    from tgw_common.db import create_tables, transaction

    from .models import SentFile

    config = load(config_path, "transfer_send")
    engine = _engine(config)
    create_tables(engine)
    with transaction(engine) as s:
        rows = [r.as_dict() for r in s.scalars(select(SentFile).order_by(SentFile.seq.desc()).limit(limit))]
    rows.reverse()
    if as_json:
        emit_json(rows)
        return
    click.echo("# seq\tname\tsize\tcopies\tresends\tsha256\tremoved")
    for r in rows:
        click.echo(f"{r['seq']}\t{r['name']}\t{r['size']}\t{r['copies_sent']}\t{r['resends_done']}\t"
                   f"{r['sha256']}\t{r['removed_at'] or '-'}")


@transfer.command()
@click.option("--listen", required=True, metavar="HOST:PORT", help="接收位址 / where datagrams come in.")
@click.option("--to", "to", required=True, metavar="HOST:PORT", help="轉送位址 / where they go on.")
@click.option("--loss", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="每個封包的遺失機率 / chance a datagram is dropped.")
@click.option("--burst", type=click.IntRange(min=0), default=0, show_default=True,
              help="連續遺失長度 / length of a loss burst (0: none).")
@click.option("--burst-prob", type=click.FloatRange(0, 1), default=0.001, show_default=True,
              help="每個封包開始連續遺失的機率 / chance per datagram that a burst starts.")
@click.option("--reorder", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="延後送出（亂序）機率 / chance a datagram is held back behind the next 1-8.")
@click.option("--duplicate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="重複送出機率 / chance a datagram is sent twice.")
@click.option("--corrupt", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="位元翻轉機率 / chance 1-3 bits of a datagram are flipped.")
@click.option("--rate", type=click.IntRange(min=0), default=0, show_default=True,
              help="速率上限 bit/s，0 為不限 / rate cap in bits per second (0: none).")
@click.option("--seed", type=int, default=0, show_default=True, help="亂數種子 / random seed.")
@click.option("--mtu", type=click.IntRange(min=0), default=0, show_default=True,
              help="模擬此 MTU 下的 IP 分段：任一分段遺失即整個封包遺失（0 關閉）/ model IP fragmentation "
                   "at this MTU: a datagram is lost if any of its fragments is (0: off).")
@click.option("--source", metavar="HOST:PORT", default=None,
              help="轉送時使用的來源位址 / send from this address (for receivers that check the source port).")
def relay(listen: str, to: str, loss: float, burst: int, burst_prob: float, reorder: float, duplicate: float,
          corrupt: float, rate: int, seed: int, mtu: int, source: str | None) -> None:
    """模擬有損耗的單向鏈路（測試與展示用）。

    A seeded lossy link in user space between sender and receiver, for tests and demos.
    Prints its counters as JSON on stdout when stopped (SIGTERM or Ctrl-C).
    """
    import signal

    from .relay import Fates, Relay

    try:
        r = Relay(listen, to, Fates(loss=loss, burst=burst, burst_prob=burst_prob, reorder=reorder,
                                    duplicate=duplicate, corrupt=corrupt, rate_bps=rate, seed=seed,
                                    mtu=mtu), source=source)
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None
    except OSError as exc:
        raise Failure(f"relay: {exc.strerror or exc}") from None
    signal.signal(signal.SIGTERM, lambda *_: r.stop())
    signal.signal(signal.SIGINT, lambda *_: r.stop())
    click.echo(json.dumps({"relay": "listening", "listen": f"{r.address[0]}:{r.address[1]}", "to": to}), err=True)
    r.run()
    click.echo(json.dumps(r.stats()))
