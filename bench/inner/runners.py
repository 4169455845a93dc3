"""Many inner runners on one PostgreSQL database (inner.queue: database), on demand.

    PYTHONPATH=. .venv/bin/python bench/inner/runners.py [--count 1500] [--runners 1,2,3]
                                                        [--lease 10] [--out DIR]

1. `--count` small envelopes (bench/inner/throughput.py's) are handed into the shared queue
   first, so what is timed is claiming, opening and loading; then 1, 2 and 3 real
   `tgw inner run` processes drain it, each run on a fresh schema. Figures: envelopes per
   second (first claim to last load), each runner's share, and the ratio to one runner
   (the goal: two runners at least 1.7 times one, on this 2-core box where PostgreSQL
   shares the cores).
2. Recovery after kill -9: two runners with `inner.lease_seconds` = `--lease`; one is killed
   while it holds leases; the figure is the time from the kill until every envelope it held
   is loaded by the other (the lease time plus one claim; the goal is within lease + 10 s).

Results: runners.json and a summary on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "inner"))

from throughput import TGW, Builder, make_zone, pg_schema  # noqa: E402


def _engine(url: str):
    from sqlalchemy import create_engine

    return create_engine(url)


def hand_in(config: Path, envelopes: list[bytes], work: Path) -> None:
    from inner_zone.context import open_inner
    from inner_zone.shared_queue import SharedQueue
    from tgw_common.config import load_config
    from tgw_common.db import dispose_engines

    inner = open_inner(load_config(config), publish=False)
    queue = SharedQueue(inner.engine, work / "hand-in", owner="bench", host="bench", lease_seconds=30, max_tries=3)
    src = work / "one.p7m"
    for n, data in enumerate(envelopes):
        src.write_bytes(data)
        queue.enqueue_file(src, f"T{n:08d}.p7m")
    dispose_engines()


def start(config: Path, log: Path) -> subprocess.Popen:
    fh = open(log, "ab")  # noqa: SIM115 - the child keeps it
    return subprocess.Popen([TGW, "--log-level", "WARNING", "inner", "run", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=fh)


def wait_loaded(engine, count: int, procs, timeout: float = 1800) -> None:
    from sqlalchemy import text

    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as c:
            if c.execute(text("SELECT count(*) FROM intake_envelopes")).scalar() >= count:
                return
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a runner exited")
        if time.monotonic() > deadline:
            raise RuntimeError("gave up")
        time.sleep(0.2)


def throughput(pki: Path, envelopes: list[bytes], runners: int, work: Path) -> dict:
    from sqlalchemy import text

    url, drop = pg_schema()
    try:
        config = make_zone(work / f"r{runners}", pki, url)
        _set_inner(config, queue="database")
        hand_in(config, envelopes, work)
        engine = _engine(url)
        procs = [start(config, work / f"r{runners}-{i}.log") for i in range(runners)]
        wait_loaded(engine, len(envelopes), procs)
        cpu = sum(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in procs)
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(60)
        with engine.connect() as c:
            first, last = c.execute(text("SELECT min(claimed_at), max(loaded_at) FROM intake_loads")).one()
            shares = dict(c.execute(text("SELECT session, count(*) FROM intake_loads GROUP BY session")).all())
        engine.dispose()
    finally:
        drop()
    wall = (last - first).total_seconds()
    return {"runners": runners, "envelopes": len(envelopes), "wall_seconds": round(wall, 2),
            "envelopes_per_second": round(len(envelopes) / wall, 1), "shares": sorted(shares.values()),
            "runner_cpu_seconds": round(cpu, 1), "envelopes_per_runner_cpu_second": round(len(envelopes) / cpu, 1)}


def _set_inner(config: Path, **values) -> None:
    import yaml

    data = yaml.safe_load(config.read_text())
    data["inner"].update(values)
    config.write_text(yaml.safe_dump(data, allow_unicode=True))


def recovery(pki: Path, envelopes: list[bytes], lease: int, work: Path) -> dict:
    from sqlalchemy import text

    url, drop = pg_schema()
    try:
        config = make_zone(work / "recovery", pki, url)
        _set_inner(config, queue="database", lease_seconds=lease)
        hand_in(config, envelopes, work)
        engine = _engine(url)
        victim = start(config, work / "victim.log")
        survivor = start(config, work / "survivor.log")
        held: list[str] = []
        while not held:
            with engine.connect() as c:
                sessions = c.execute(text("SELECT session FROM intake_runners WHERE pid = :p"), {"p": victim.pid}).all()
                if sessions:
                    held = [r[0] for r in c.execute(text(
                        "SELECT name FROM intake_queue WHERE lease_owner = :s AND state = 'ready'"),
                        {"s": sessions[0][0]}).all()]
            time.sleep(0.001)
        victim.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        victim.wait(10)
        with engine.connect() as c:
            held = [r[0] for r in c.execute(text(
                "SELECT name FROM intake_queue WHERE lease_owner = :s AND state = 'ready'"), {"s": sessions[0][0]})]
        while held:
            with engine.connect() as c:
                done = c.execute(text("SELECT count(*) FROM intake_queue WHERE name = ANY(:n) AND state = 'done'"),
                                 {"n": held}).scalar()
            if done == len(held):
                break
            time.sleep(0.05)
        recovered = time.monotonic() - killed
        wait_loaded(engine, len(envelopes), [survivor])
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(60)
        with engine.connect() as c:
            loads = c.execute(text("SELECT count(*), count(DISTINCT sha256) FROM intake_loads")).one()
        engine.dispose()
    finally:
        drop()
    return {"lease_seconds": lease, "held_at_kill": len(held), "recovery_seconds": round(recovered, 2),
            "loads": loads[0], "distinct": loads[1]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1500)
    ap.add_argument("--runners", default="1,2,3")
    ap.add_argument("--lease", type=int, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "inner" / "results")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tgw-bench-runners-"))
    results: dict = {"host": {"cpus": os.cpu_count(), "load_average": os.getloadavg()}, "runs": []}
    try:
        from tgw.demo.pki import build_demo_pki

        pki = work / "pki"
        build_demo_pki(pki, agencies=2)
        builder = Builder(pki)
        envelopes = [builder.small(n) for n in range(args.count)]
        base = None
        for n in [int(x) for x in args.runners.split(",")]:
            r = throughput(pki, envelopes, n, work)
            base = base or r["envelopes_per_second"]
            r["vs_one_runner"] = round(r["envelopes_per_second"] / base, 2)
            results["runs"].append(r)
            print(f"{n} runner(s): {r['envelopes_per_second']} envelopes/s ({r['vs_one_runner']}x one runner), "
                  f"shares {r['shares']}, {r['envelopes_per_runner_cpu_second']} per runner CPU-second")
        r = recovery(pki, envelopes[:400], args.lease, work)
        results["recovery"] = r
        print(f"kill -9 of a runner holding {r['held_at_kill']} lease(s): all loaded by the other "
              f"{r['recovery_seconds']} s later (lease {r['lease_seconds']} s; goal <= lease + 10 s); "
              f"{r['loads']} loads, {r['distinct']} distinct")
        (args.out / "runners.json").write_text(json.dumps(results, indent=2, default=str))
        print(f"results: {args.out / 'runners.json'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
