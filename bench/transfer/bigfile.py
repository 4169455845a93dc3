"""Memory of both ends while one big file (default 1 GB) crosses the link (run on demand).

    .venv/bin/python bench/transfer/bigfile.py [--size-mb 1024] [--loss 0.05] [--rate 400000000]

Starts `tgw transfer receive`, a relay with the given loss and `tgw transfer send`, moves
one file of --size-mb and samples the resident memory (RSS) of sender and receiver every
50 ms. Both stream block by block, so their peak RSS must not grow with the file: compare
the peaks with the file size. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from goodput import TGW, free_port, sha, start_relay, stop_relay  # beside this script


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--loss", type=float, default=0.05)
    ap.add_argument("--rate", type=int, default=400_000_000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="transfer-bigfile-"))
    relay_port, recv_port = free_port(), free_port()
    send = {"outbound": "outbound", "sent_dir": "sent", "state_dir": "sstate", "target": f"127.0.0.1:{relay_port}",
            "rate_bps": args.rate, "repeat": 2, "repeat_spacing_seconds": 0.0}
    recv = {"listen": f"127.0.0.1:{recv_port}", "inbound": "inbound", "staging_dir": "staging", "state_dir": "rstate",
            "memory_bytes": 64 << 20, "max_file_bytes": 8 << 30}
    (work / "send.yaml").write_text(yaml.safe_dump({"node": {"zone": "outer"}, "database": {
        "url": "sqlite:///outer.db"}, "transfer_send": send}))
    (work / "recv.yaml").write_text(yaml.safe_dump({"node": {"zone": "inner"}, "database": {
        "url": "sqlite:///inner.db"}, "transfer_receive": recv}))
    src = work / "big.bin"
    with open(src, "wb") as fh:
        for _ in range(args.size_mb):
            fh.write(os.urandom(1 << 20))
    digest = sha(src)
    relay = start_relay(f"127.0.0.1:{relay_port}", f"127.0.0.1:{recv_port}", args.loss, work / "relay.log")
    procs = {}
    for name, cfg in (("receiver", "recv.yaml"), ("sender", "send.yaml")):
        verb = "receive" if name == "receiver" else "send"
        procs[name] = subprocess.Popen([TGW, "--log-level", "INFO", "transfer", verb, "--config", str(work / cfg)],
                                       stderr=open(work / f"{name}.log", "wb"))  # noqa: SIM115
        time.sleep(2)
    peak = {name: 0 for name in procs}
    (work / "outbound").mkdir(exist_ok=True)
    os.replace(src, work / "outbound" / "BIG.p7m")
    t0 = time.monotonic()
    dest = work / "inbound" / "BIG.p7m"
    while not dest.exists() and time.monotonic() - t0 < 1800:
        for name, p in procs.items():
            with contextlib.suppress(psutil.NoSuchProcess):
                peak[name] = max(peak[name], psutil.Process(p.pid).memory_info().rss)
        time.sleep(0.05)
    seconds = time.monotonic() - t0
    ok = dest.exists() and sha(dest) == digest
    for p in procs.values():
        p.send_signal(signal.SIGTERM)
        p.wait(60)
    stats = stop_relay(relay)
    print(json.dumps({"size_mb": args.size_mb, "loss": args.loss, "rate_bps": args.rate, "intact": ok,
                      "seconds": round(seconds, 1), "goodput_mbps": round(args.size_mb * 8.388608 / seconds, 1),
                      "peak_rss_mb": {k: round(v / 2**20, 1) for k, v in peak.items()},
                      "relay": stats}))
    subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
