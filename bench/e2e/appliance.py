"""The whole appliance end to end: upload-to-loaded latency, the highest sustained rate, each hop's share.

    .venv/bin/python bench/e2e/appliance.py [--dir DIR] [--loss P] [--steady-rate 4] [--steady-seconds 60]
                                            [--rates 4,8,12,16,20,24,32,48,64] [--step-seconds 20] [--out DIR]

1. `tgw up` in a fresh folder (a temporary one unless --dir), sender -> receiver directly,
   or through the lossy relay with --loss.
2. Valid envelopes (1-4 demo documents each, three agencies) are built with
   `tgw demo-data envelopes`' builder before each phase, so building costs nothing while
   the clock runs.
3. Steady load: --steady-rate envelopes per second for --steady-seconds, open loop (each
   upload starts at its scheduled time on a pool of 16 client threads, whatever the earlier
   ones are doing). Latency = the `loaded` event's time minus the moment the client began
   the upload: p50, p90, p99, max.
4. Ramp: each rate of --rates for --step-seconds, open loop. A rate is sustained when the
   uploads kept to the schedule (achieved >= 95 % of offered) and the pipeline kept up:
   the last envelope of the step was loaded within --keepup-seconds (default 3) of its
   upload. The highest such rate is reported, with the step's throughput and latency.
5. Each hop's share of the time, from the provenance events of the steady run (one clock:
   one machine):
       outer-web          upload start -> the file is in the outbound spool (`spooled`, or the
                          sender's first `sent` when it took the file before the portal's commit)
       transfer-send      outbound -> first `sent` (pick-up, numbering, FEC, pacing)
       transfer-receive   `sent` -> the file is in the inbound spool (`arrived`, or `claimed`
                          when the runner took it before the receiver's commit)
       inner-runner       inbound -> `loaded` (decrypt, verify, validate, commit), also split
                          at `claimed` into noticing the file and the work itself

Results: results/appliance.json and a summary on stdout. `tgw down` at the end; the
appliance's folder is a fresh one under var/ (removed afterwards) unless --dir. The
numbers come from a shared 2-core VM where every daemon, the client and the envelope
builder compete for the same cores: read the shares and the shape, not the absolutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from tgw.appliance.client import Portal  # noqa: E402
from tgw.appliance.envelopes import build_batch  # noqa: E402
from tgw.appliance.layout import Layout  # noqa: E402
from tgw_common.config import load_config  # noqa: E402
from tgw_common.db import make_engine, transaction  # noqa: E402
from tgw_common.events import EventRow  # noqa: E402

HOPS = ("outer-web", "transfer-send", "transfer-receive", "inner-runner")


def tgw(*args) -> str:
    done = subprocess.run([sys.executable, "-m", "tgw", *map(str, args)], capture_output=True, text=True,
                          check=False, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"tgw {' '.join(map(str, args))} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def pick_port_base() -> int:
    from tgw.appliance.control import busy_ports

    for base in range(23000, 32000, 1000):  # below the ephemeral port range (32768 and up)
        if not busy_ports(base, loss=True, console=True):
            return base
    raise SystemExit("no free port base")


class Load:
    """Open-loop uploads: each starts at its scheduled time on a pool of client threads."""

    def __init__(self, portal_url: str, tokens: dict[str, str], pki: Path, *, threads: int = 16) -> None:
        self.url, self.tokens, self.pki = portal_url, tokens, pki
        self.local = threading.local()
        self.pool = ThreadPoolExecutor(threads)
        self.seed = int(time.time()) % 100000

    def _portal(self, agency: str) -> Portal:
        portals = getattr(self.local, "portals", None)
        if portals is None:
            portals = self.local.portals = {}
        if agency not in portals:
            portals[agency] = Portal(self.url, self.tokens[agency])
        return portals[agency]

    def _one(self, item) -> dict:
        started = time.time()
        answer = self._portal(item.expect["agency"]).upload(item.data)
        return {"started": started, "status": answer.status, "tracking_id": answer.tracking_id,
                "seconds": answer.seconds}

    def build(self, count: int) -> list:
        self.seed += 1  # a new seed per phase: new envelope ids and voucher numbers
        return build_batch(self.pki, count, bad_fraction=0.0, seed=self.seed)

    def run(self, rate: float, seconds: float) -> list[dict]:
        batch = self.build(int(rate * seconds))
        futures, t0 = [], time.monotonic()
        for i, item in enumerate(batch):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(self.pool.submit(self._one, item))
        results = [f.result() for f in futures]
        span = max(r["started"] for r in results) - min(r["started"] for r in results)
        for r in results:
            r["achieved_rate"] = (len(results) - 1) / span if span > 0 else None
        return results


def events_for(engines: dict, tracking_ids: list[str]) -> dict[str, dict[str, float]]:
    """tracking id -> {event: first time (epoch seconds)} from both zones."""
    out: dict[str, dict[str, float]] = {}
    for engine in engines.values():
        with transaction(engine) as s:
            for i in range(0, len(tracking_ids), 500):
                rows = s.execute(select(EventRow.tracking_id, EventRow.event, EventRow.at)
                                 .where(EventRow.tracking_id.in_(tracking_ids[i:i + 500])))
                for tid, event, at in rows:
                    seen = out.setdefault(tid, {})
                    t = at.timestamp()
                    if event not in seen or t < seen[event]:
                        seen[event] = t
    return out


def wait_loaded(engines: dict, tracking_ids: list[str], timeout: float) -> dict[str, dict[str, float]]:
    deadline = time.monotonic() + timeout
    while True:
        ev = events_for(engines, tracking_ids)
        done = sum("loaded" in ev.get(t, {}) for t in tracking_ids)
        if done == len(tracking_ids) or time.monotonic() > deadline:
            return ev
        time.sleep(1)


def quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    v = sorted(values)

    def q(p: float) -> float:
        return round(v[min(len(v) - 1, int(p * len(v)))], 3)

    return {"n": len(v), "p50": q(0.50), "p90": q(0.90), "p99": q(0.99), "max": round(v[-1], 3),
            "mean": round(statistics.fmean(v), 3)}


def analyse(results: list[dict], events: dict[str, dict[str, float]]) -> dict:
    latency, segments = [], {h: [] for h in HOPS}
    runner_wait, runner_work = [], []  # the inner-runner segment split at its `claimed` event
    for r in results:
        ev = events.get(r["tracking_id"], {})
        if r["status"] != 202 or "loaded" not in ev:
            continue
        # A hop's next one may act before the hop's own event is committed (the sender numbers
        # a file the moment it is renamed into outbound; the runner claims it the moment it
        # is in inbound): a file is in a spool from the earlier of the two events.
        outbound = min(ev["spooled"], ev["sent"])
        inbound = min(t for t in (ev.get("arrived"), ev.get("claimed")) if t is not None)
        latency.append(ev["loaded"] - r["started"])
        segments["outer-web"].append(outbound - r["started"])
        segments["transfer-send"].append(ev["sent"] - outbound)
        segments["transfer-receive"].append(inbound - ev["sent"])
        segments["inner-runner"].append(ev["loaded"] - inbound)
        if "claimed" in ev:
            runner_wait.append(ev["claimed"] - inbound)
            runner_work.append(ev["loaded"] - ev["claimed"])
    total = sum(statistics.fmean(s) for s in segments.values() if s) or 1.0
    return {
        "uploaded": len(results), "accepted": sum(r["status"] == 202 for r in results),
        "loaded": len(latency),
        "achieved_upload_rate": round(results[0]["achieved_rate"], 2) if results and results[0]["achieved_rate"] else None,
        "upload_seconds": quantiles([r["seconds"] for r in results]),
        "latency_seconds": quantiles(latency),
        "hops": {h: {**quantiles(s), "share": round(statistics.fmean(s) / total, 3) if s else None}
                 for h, s in segments.items()},
        "inner_runner_split": {"inbound_to_claimed": quantiles(runner_wait),
                               "claimed_to_loaded": quantiles(runner_work)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--loss", type=float, default=None)
    ap.add_argument("--steady-rate", type=float, default=4.0)
    ap.add_argument("--steady-seconds", type=float, default=60.0)
    ap.add_argument("--rates", default="4,8,12,16,20,24,32,48,64")
    ap.add_argument("--step-seconds", type=float, default=20.0)
    ap.add_argument("--keepup-seconds", type=float, default=3.0)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",")]

    (ROOT / "var").mkdir(exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix="bench-e2e-", dir=ROOT / "var")) if args.dir is None else None
    folder = args.dir or temp / "app"
    up = ["up", "--dir", folder, "--port-base", str(pick_port_base())]
    if args.loss is not None:
        up += ["--loss", str(args.loss)]
    t = time.monotonic()
    tgw(*up)
    startup = time.monotonic() - t
    layout = Layout.at(folder)
    try:
        creds = json.loads(layout.credentials_file.read_text())
        print(f"appliance up in {startup:.1f} s", flush=True)
        engines = {z: make_engine(load_config(p).database.url)
                   for z, p in (("outer", layout.outer_config), ("inner", layout.inner_config))}
        load = Load(creds["portal"], {c: a["token"] for c, a in creds["agencies"].items()}, layout.pki)
        load.run(2, 5)  # warm-up: workers, connections, caches; not counted

        steady = load.run(args.steady_rate, args.steady_seconds)
        ev = wait_loaded(engines, [r["tracking_id"] for r in steady if r["tracking_id"]], 300)
        steady_report = analyse(steady, ev)
        print(f"steady {args.steady_rate:g}/s for {args.steady_seconds:g} s: latency {steady_report['latency_seconds']}",
              flush=True)

        ramp = []
        for rate in rates:
            results = load.run(rate, args.step_seconds)
            tids = [r["tracking_id"] for r in results if r["tracking_id"]]
            last_upload = max(r["started"] for r in results)
            ev = wait_loaded(engines, tids, 300)
            report = analyse(results, ev)
            loaded_at = [ev[t]["loaded"] for t in tids if "loaded" in ev.get(t, {})]
            lag = (max(loaded_at) - last_upload) if loaded_at else None
            report.update(offered_rate=rate, keepup_lag_seconds=round(lag, 2) if lag is not None else None,
                          throughput=round(len(loaded_at) / (max(loaded_at) - min(r["started"] for r in results)), 2)
                          if loaded_at else None)
            report["sustained"] = bool(
                report["loaded"] == len(results) and report["achieved_upload_rate"]
                and report["achieved_upload_rate"] >= 0.95 * rate and lag is not None and lag <= args.keepup_seconds)
            ramp.append(report)
            print(f"rate {rate:g}/s: achieved {report['achieved_upload_rate']}, loaded {report['loaded']}/"
                  f"{len(results)}, keep-up lag {report['keepup_lag_seconds']} s, p99 "
                  f"{report['latency_seconds'].get('p99')} s, sustained {report['sustained']}", flush=True)
            if not report["sustained"]:
                break
        best = max((r for r in ramp if r["sustained"]), key=lambda r: r["offered_rate"], default=None)
        status = json.loads(tgw("status", "--dir", folder, "--json"))
    finally:
        tgw("down", "--dir", folder)
    result = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
        "load_average": os.getloadavg(), "loss": args.loss, "startup_seconds": round(startup, 1),
        "steady": {"rate": args.steady_rate, "seconds": args.steady_seconds, **steady_report},
        "ramp": ramp, "highest_sustained_rate": best["offered_rate"] if best else None,
        "at_highest": best, "programs_after": [(p["program"], p["state"]) for p in status["programs"]],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = "appliance.json" if args.loss is None else f"appliance-loss{args.loss:g}.json"
    (args.out / name).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("steady", "highest_sustained_rate", "load_average")}, indent=2))
    if temp is not None:
        shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
