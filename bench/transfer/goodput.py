"""Goodput of the one-way link against loss, beside pydiode and udpcast (run on demand).

    .venv/bin/python bench/transfer/goodput.py [--size-mb 40] [--out bench/results/transfer]

For each rate cap (100 Mbit/s, 1 Gbit/s) and each loss (0, 1, 5, 10 %), the same random
file is moved by `tgw transfer`, by pydiode and by udpcast, each through the same seeded
`tgw transfer relay` on 127.0.0.1 (the relay makes the loss; it has no rate cap itself,
each tool paces at the cap). Goodput = file bytes / seconds until an intact copy is at the
receiving end (SHA-256 compared); a tool that delivers nothing intact within its time
limit scores 0. Then `tgw transfer` alone, without relay, at rising caps: the highest
rate that still delivers intact at 0 % loss, with the kernel's drop counters, and the CPU
seconds per MB of sender and receiver. Results: results.json, results.md, goodput.png.

Numbers are from one run on a shared 2-core VM over loopback: read the ratios, not the
absolute figures. See bench/README-transfer.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
import yaml

VENV_BIN = Path(sys.executable).parent
TGW = str(VENV_BIN / "tgw")
PYDIODE = str(VENV_BIN / "pydiode")
LOSSES = (0.0, 0.01, 0.05, 0.10)
MTU = [1500]  # the relay models IP fragmentation at this MTU (set from --mtu)
REPEAT = [3]  # runs per condition; the median is reported (set from --repeat)
RATES = (100_000_000, 1_000_000_000)


@dataclass
class Result:
    tool: str
    rate_bps: int
    loss: float
    ok: bool
    seconds: float
    goodput_mbps: float
    wire_bytes: int = 0
    cpu_seconds: float = 0.0
    cpu_s_per_mb: float = 0.0
    note: str = ""
    extra: dict = field(default_factory=dict)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def cpu_of(proc: subprocess.Popen) -> float:
    try:
        t = psutil.Process(proc.pid).cpu_times()
        return t.user + t.system
    except psutil.NoSuchProcess:
        return 0.0


def wait_rusage(proc: subprocess.Popen, timeout: float) -> tuple[int | None, float]:
    """Wait for a child and return (exit status, CPU seconds) from wait4; None if it timed out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, ru.ru_utime + ru.ru_stime
        time.sleep(0.01)
    cpu = cpu_of(proc)
    proc.kill()
    os.wait4(proc.pid, 0)
    proc.returncode = -9
    return None, cpu


def start_relay(listen: str, to: str, loss: float, log: Path, source: str | None = None) -> subprocess.Popen:
    args = [TGW, "transfer", "relay", "--listen", listen, "--to", to, "--loss", str(loss), "--seed", "42",
            "--mtu", str(MTU[0])]
    if source:
        args += ["--source", source]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=open(log, "wb"))  # noqa: SIM115
    deadline = time.monotonic() + 20
    while b"listening" not in log.read_bytes():
        if time.monotonic() > deadline or p.poll() is not None:
            raise RuntimeError(f"relay did not start: {log.read_text()}")
        time.sleep(0.05)
    return p


def stop_relay(p: subprocess.Popen) -> dict:
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=20)
    try:
        return json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {}


def time_limit(size: int, rate: int) -> float:
    return size * 8 / rate * 4 + 15


# --- tgw transfer -------------------------------------------------------------------------
class TgwLink:
    """Long-running sender and receiver daemons, as in production; a file is timed from
    its publication in the outbound spool to its publication in the inbound spool."""

    def __init__(self, work: Path, rate: int, *, target_port: int, recv_port: int, repeat: int = 2) -> None:
        self.work = work
        work.mkdir(parents=True)
        send = {"outbound": "outbound", "sent_dir": "sent", "state_dir": "sstate", "target": f"127.0.0.1:{target_port}",
                "rate_bps": rate, "repeat": repeat, "repeat_spacing_seconds": 0.0, "heartbeat_seconds": 2.0}
        recv = {"listen": f"127.0.0.1:{recv_port}", "inbound": "inbound", "staging_dir": "staging",
                "state_dir": "rstate", "socket_buffer_bytes": 256 * 1024 * 1024, "queue_datagrams": 200_000}
        (work / "send.yaml").write_text(yaml.safe_dump({"node": {"zone": "outer"}, "database": {
            "url": "sqlite:///outer.db"}, "transfer_send": send}))
        (work / "recv.yaml").write_text(yaml.safe_dump({"node": {"zone": "inner"}, "database": {
            "url": "sqlite:///inner.db"}, "transfer_receive": recv}))
        self.recv = subprocess.Popen([TGW, "--log-level", "INFO", "transfer", "receive", "--config",
                                      str(work / "recv.yaml")], stderr=open(work / "recv.log", "wb"))  # noqa: SIM115
        deadline = time.monotonic() + 20
        while b"receiver ready" not in (work / "recv.log").read_bytes():
            if time.monotonic() > deadline:
                raise RuntimeError((work / "recv.log").read_text())
            time.sleep(0.05)
        self.send = subprocess.Popen([TGW, "--log-level", "INFO", "transfer", "send", "--config",
                                      str(work / "send.yaml")], stderr=open(work / "send.log", "wb"))  # noqa: SIM115
        while b"sender ready" not in (work / "send.log").read_bytes():
            if time.monotonic() > deadline:
                raise RuntimeError((work / "send.log").read_text())
            time.sleep(0.05)
        time.sleep(0.5)

    def move(self, src: Path, timeout: float) -> tuple[bool, float, float]:
        """(intact, seconds, CPU seconds of both daemons during the move)."""
        name = f"BENCH{time.monotonic_ns()}.p7m"
        staged = self.work / "outbound" / f".{name}"
        shutil.copyfile(src, staged)
        # Fresh bytes at the front: the receiver drops a file identical to one it already
        # published (by SHA-256), so a second move of the same content would never arrive.
        with open(staged, "r+b") as fh:
            fh.write(os.urandom(32))
        digest = sha(staged)
        cpu0 = cpu_of(self.send) + cpu_of(self.recv)
        t0 = time.monotonic()
        os.replace(staged, self.work / "outbound" / name)
        dest = self.work / "inbound" / name
        while not dest.exists():
            if time.monotonic() - t0 > timeout:
                return False, timeout, cpu_of(self.send) + cpu_of(self.recv) - cpu0
            time.sleep(0.005)
        seconds = time.monotonic() - t0
        cpu = cpu_of(self.send) + cpu_of(self.recv) - cpu0
        return sha(dest) == digest, seconds, cpu

    def wait_copies(self, copies: int, timeout: float) -> None:
        import sqlite3

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            con = sqlite3.connect(self.work / "outer.db", timeout=30)
            try:
                if con.execute("select min(copies_sent) from transfer_sent").fetchone()[0] >= copies:
                    return
            finally:
                con.close()
            time.sleep(0.05)

    def receiver_state(self) -> dict:
        out = subprocess.run([TGW, "transfer", "stats", "--config", str(self.work / "recv.yaml"), "--json"],
                             capture_output=True, text=True, timeout=60).stdout
        rec = json.loads(out).get("receiver") or {}
        return rec.get("state", {})

    def close(self) -> None:
        for p in (self.send, self.recv):
            p.send_signal(signal.SIGTERM)
        for p in (self.send, self.recv):
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


def run_tgw(src: Path, digest: str, rate: int, loss: float, work: Path) -> Result:
    relay_port, recv_port = free_port(), free_port()
    relay = start_relay(f"127.0.0.1:{relay_port}", f"127.0.0.1:{recv_port}", loss, work.with_suffix(".relay.log"))
    link = TgwLink(work, rate, target_port=relay_port, recv_port=recv_port)
    size = src.stat().st_size
    try:
        ok, seconds, cpu = link.move(src, time_limit(size, rate))
        link.wait_copies(2, time_limit(size, rate))
        time.sleep(0.3)
    finally:
        link.close()
        stats = stop_relay(relay)
    # Both scheduled copies crossed the relay; a copy's wire bytes are half of that.
    return Result("tgw", rate, loss, ok, seconds, size * 8 / seconds / 1e6 if ok else 0.0,
                  stats.get("bytes_received", 0) // 2, cpu, cpu / (size / 1e6),
                  "repeat=2 spacing=0, FEC 16/20; time to first intact copy incl. SHA-256 both ends and fsync")


# --- pydiode -----------------------------------------------------------------------------
def run_pydiode(src: Path, digest: str, rate: int, loss: float, work: Path) -> Result:
    work.mkdir(parents=True)
    port = free_port()
    relay = start_relay(f"127.0.0.1:{port}", f"127.0.0.2:{port}", loss, work / "relay.log")
    out = work / "out.bin"
    size = src.stat().st_size
    limit = time_limit(size, rate)
    with open(out, "wb") as fh:
        recv = subprocess.Popen([PYDIODE, "receive", "--port", str(port), "127.0.0.2"], stdout=fh,
                                stderr=open(work / "recv.log", "wb"))  # noqa: SIM115
    time.sleep(0.5)
    t0 = time.monotonic()
    with open(src, "rb") as fin:
        send = subprocess.Popen([PYDIODE, "send", "--port", str(port), "--max-bitrate", str(rate), "127.0.0.1",
                                 "127.0.0.1"], stdin=fin, stderr=open(work / "send.log", "wb"))  # noqa: SIM115
    status, cpu_r = wait_rusage(recv, limit)
    seconds = time.monotonic() - t0
    _, cpu_s = wait_rusage(send, 30)
    stats = stop_relay(relay)
    ok = status == 0 and out.exists() and sha(out) == digest
    note = "" if ok else ("timed out (hung waiting for lost packets)" if status is None
                          else f"exit {status}, {out.stat().st_size} of {size} bytes")
    return Result("pydiode", rate, loss, ok, seconds, size * 8 / seconds / 1e6 if ok else 0.0,
                  stats.get("bytes_received", 0), cpu_r + cpu_s, (cpu_r + cpu_s) / (size / 1e6),
                  note or "default redundancy (each chunk twice)")


# --- udpcast -----------------------------------------------------------------------------
def run_udpcast(src: Path, digest: str, rate: int, loss: float, work: Path) -> Result:
    work.mkdir(parents=True)
    # udp-receiver accepts data only from port portbase + 1 of its own portbase: the relay
    # sends from there. Sender and receiver need separate port pairs on one host.
    base_s, base_r = 9300 + (os.getpid() % 100) * 4, 9302 + (os.getpid() % 100) * 4
    relay = start_relay(f"127.0.0.1:{base_s}", f"127.0.0.1:{base_r}", loss, work / "relay.log",
                        source=f"127.0.0.1:{base_r + 1}")
    out = work / "out.bin"
    size = src.stat().st_size
    limit = time_limit(size, rate)
    recv = subprocess.Popen(["udp-receiver", "--interface", "lo", "--portbase", str(base_r), "--nosync", "--nokbd",
                             "--file", str(out), "--receive-timeout", str(int(limit)), "--rcvbuf", str(256 << 20)],
                            stdout=subprocess.DEVNULL, stderr=open(work / "recv.log", "wb"))  # noqa: SIM115
    time.sleep(0.5)
    t0 = time.monotonic()
    send = subprocess.Popen(["udp-sender", "--interface", "lo", "--portbase", str(base_s), "--mcast-data-address",
                             "127.0.0.1", "--mcast-rdv-address", "127.0.0.1", "--async", "--fec", "8x16/64",
                             "--max-bitrate", f"{rate // 1_000_000}m", "--file", str(src), "--autostart", "1",
                             "--rexmit-hello-interval", "100", "--nokbd"],
                            stdout=subprocess.DEVNULL, stderr=open(work / "send.log", "wb"))  # noqa: SIM115
    status, cpu_r = wait_rusage(recv, limit)
    seconds = time.monotonic() - t0
    _, cpu_s = wait_rusage(send, 30)
    stats = stop_relay(relay)
    ok = out.exists() and out.stat().st_size == size and sha(out) == digest
    note = "" if ok else ("timed out" if status is None else
                          f"aborted: {out.stat().st_size if out.exists() else 0} of {size} bytes")
    return Result("udpcast", rate, loss, ok, seconds, size * 8 / seconds / 1e6 if ok else 0.0,
                  stats.get("bytes_received", 0), cpu_r + cpu_s, (cpu_r + cpu_s) / (size / 1e6),
                  note or "--async --fec 8x16/64 (25 % like tgw's 16/20)")


# --- tgw alone: the highest rate -----------------------------------------------------------
def max_rate(src: Path, work: Path) -> list[dict]:
    rows = []
    size = src.stat().st_size
    for cap in (250_000_000, 500_000_000, 1_000_000_000, 2_000_000_000, 10_000_000_000):
        port = free_port()
        link = TgwLink(work / f"max-{cap}", cap, target_port=port, recv_port=port, repeat=1)
        moves = []
        try:
            for _ in range(REPEAT[0]):
                moves.append(link.move(src, 120))
            time.sleep(2.5)  # one receiver heartbeat with the counters
            state = link.receiver_state()
        finally:
            link.close()
        kernel = state.get("kernel", {})
        goodputs = sorted(size * 8 / sec / 1e6 if ok else 0.0 for ok, sec, _ in moves)
        cpu = statistics.median(c for _, _, c in moves)
        rows.append({"cap_bps": cap, "ok": all(ok for ok, _, _ in moves), "moves": len(moves),
                     "goodput_mbps": round(statistics.median(goodputs), 1), "best_mbps": round(goodputs[-1], 1),
                     "cpu_seconds": round(cpu, 2), "cpu_s_per_mb": round(cpu / (size / 1e6), 4),
                     "socket_drops": kernel.get("socket_drops"), "queue_drops": state.get("queue_drops"),
                     "rcvbuf_granted": state.get("rcvbuf_granted"), "blocks_decoded": state.get("blocks_decoded")})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def plot(results: list[Result], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(RATES), figsize=(11, 4.2), sharey=False)
    for ax, rate in zip(axes, RATES, strict=True):
        for tool, marker in (("tgw", "o"), ("pydiode", "s"), ("udpcast", "^")):
            pts = sorted((r.loss * 100, r.goodput_mbps) for r in results if r.tool == tool and r.rate_bps == rate)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, label=tool)
        ax.set_title(f"rate cap {rate / 1e6:.0f} Mbit/s")
        ax.set_xlabel("loss (%)")
        ax.set_ylabel("goodput (Mbit/s, 0 = failed)")
        ax.set_xticks([x * 100 for x in LOSSES])
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("One-way transfer goodput against loss (loopback, user-space lossy relay)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=float, default=40)
    ap.add_argument("--out", type=Path, default=Path("bench/results/transfer"))
    ap.add_argument("--tools", default="tgw,pydiode,udpcast", help="comma list of tools to measure")
    ap.add_argument("--reuse", action="store_true",
                    help="keep the earlier results.json runs of the tools not in --tools")
    ap.add_argument("--mtu", type=int, default=1500,
                    help="the relay drops a datagram if any of its IP fragments at this MTU is lost (0: off)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per condition (median reported)")
    ap.add_argument("--max-rate-only", action="store_true",
                    help="measure only tgw's highest rate; keep the comparison runs of an earlier results.json")
    args = ap.parse_args()
    MTU[0] = args.mtu
    REPEAT[0] = args.repeat
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="transfer-goodput-"))
    src = work / "payload.bin"
    src.write_bytes(os.urandom(int(args.size_mb * 1e6)))
    digest = sha(src)
    tools = {"tgw": run_tgw, "pydiode": run_pydiode, "udpcast": run_udpcast}
    chosen = [] if args.max_rate_only else args.tools.split(",")
    runners = [(name, tools[name]) for name in chosen]
    results: list[Result] = []
    if args.max_rate_only or args.reuse:
        # Keep the runs of the tools not measured this time from the last results.json.
        saved = json.loads((args.out / "results.json").read_text())
        results = [Result(**r) for r in saved["runs"] if r["tool"] not in chosen]
    try:
        for rate in RATES if runners else ():
            for loss in LOSSES:
                for name, fn in runners:
                    runs = [fn(src, digest, rate, loss, work / f"{name}-{rate}-{loss}-{i}") for i in range(REPEAT[0])]
                    runs.sort(key=lambda r: r.goodput_mbps)
                    r = runs[len(runs) // 2]
                    r.extra = {"goodputs": [round(x.goodput_mbps, 1) for x in runs],
                               "intact_runs": sum(x.ok for x in runs)}
                    results.append(r)
                    print(json.dumps(asdict(r)), flush=True)
        top = max_rate(src, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (args.out / "results.json").write_text(json.dumps({"size_bytes": int(args.size_mb * 1e6), "mtu": args.mtu, "runs": [
        asdict(r) for r in results], "max_rate": top, "cpus": os.cpu_count()}, indent=2))
    plot(results, args.out / "goodput.png")
    lines = ["| cap | loss | tgw Mbit/s | pydiode Mbit/s | udpcast Mbit/s | tgw/pydiode | tgw/udpcast |",
             "|---|---|---|---|---|---|---|"]
    for rate in RATES:
        for loss in LOSSES:
            g = {r.tool: r.goodput_mbps for r in results if r.rate_bps == rate and r.loss == loss}
            ratio = {t: (f"{g['tgw'] / g[t]:.2f}" if g.get(t) else ("∞" if g.get("tgw") else "-"))
                     for t in ("pydiode", "udpcast")}
            lines.append(f"| {rate / 1e6:.0f}M | {loss:.0%} | {g.get('tgw', 0):.1f} | {g.get('pydiode', 0):.1f} | "
                         f"{g.get('udpcast', 0):.1f} | {ratio['pydiode']} | {ratio['udpcast']} |")
    lines += ["", "| cap | intact | goodput Mbit/s (median) | best | CPU s/MB (both ends) | socket drops | "
              "queue drops |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {t['cap_bps'] / 1e6:.0f}M | {t['ok']} | {t['goodput_mbps']} | {t['best_mbps']} | "
              f"{t['cpu_s_per_mb']} | {t['socket_drops']} | {t['queue_drops']} |" for t in top]
    cpu = {r.tool: statistics.median(x.cpu_s_per_mb for x in results if x.tool == r.tool and x.ok) for r in results
           if any(x.ok for x in results if x.tool == r.tool)}
    lines += ["", "CPU seconds per MB (sender + receiver, median of intact runs through the relay): "
              + ", ".join(f"{t} {v:.4f}" for t, v in cpu.items())]
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
