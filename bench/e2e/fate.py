"""Upload to fate visible at the agency: the receipt's whole way back, on the one-box appliance.

    .venv/bin/python bench/e2e/fate.py [--rate 10] [--seconds 60] [--loss P] [--out DIR]

`tgw up` in a fresh folder, then --rate valid envelopes per second for --seconds, open loop
(bench/e2e/appliance.py's load). An envelope's fate is visible to its agency the moment its
receipt is stored in the outer database (`outer_receipts.stored_at`: the API and the portal
read it from there). Latency = that moment minus the moment the client began the upload:
p50, p90, p99, max, and split into the way in (upload -> `loaded` in the inner zone) and the
way back (`loaded` -> receipt signed -> on the return link -> verified and stored). The
reference in the same run is the way in alone, which bench/e2e/appliance.py also measures.
Results: results/fate.json and a summary on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from appliance import ROOT, Load, events_for, pick_port_base, quantiles, tgw
from sqlalchemy import select

from inner_zone.models import IssuedReceipt
from outer_zone.models import StoredReceipt
from tgw.appliance.layout import Layout
from tgw_common.config import load_config
from tgw_common.db import make_engine, transaction


def stored_at(engine, tracking_ids: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    with transaction(engine) as s:
        for i in range(0, len(tracking_ids), 500):
            rows = s.execute(select(StoredReceipt.tracking_id, StoredReceipt.stored_at)
                             .where(StoredReceipt.tracking_id.in_(tracking_ids[i:i + 500]),
                                    StoredReceipt.state.in_(("loaded", "refused"))))
            for tid, at in rows:
                out[tid] = min(out.get(tid, float("inf")), at.timestamp())
    return out


def issued(engine) -> dict[str, tuple[float, float]]:
    """tracking id -> (its loaded receipt signed, published into the return outbound)."""
    with transaction(engine) as s:
        rows = s.execute(select(IssuedReceipt.tracking_id, IssuedReceipt.issued_at, IssuedReceipt.published_at)
                         .where(IssuedReceipt.state == "loaded")).all()
    return {tid: (a.timestamp(), b.timestamp()) for tid, a, b in rows if a and b}


def wait_fates(engine, tracking_ids: list[str], timeout: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        seen = stored_at(engine, tracking_ids)
        if len(seen) == len(tracking_ids) or time.monotonic() > deadline:
            return seen
        time.sleep(0.5)


def analyse(results: list[dict], fates: dict[str, float], events: dict, signed: dict) -> dict:
    total, way_in, way_back, signing, link = [], [], [], [], []
    for r in results:
        tid = r["tracking_id"]
        loaded = events.get(tid, {}).get("loaded")
        if r["status"] != 202 or tid not in fates or loaded is None:
            continue
        total.append(fates[tid] - r["started"])
        way_in.append(loaded - r["started"])
        way_back.append(fates[tid] - loaded)
        if tid in signed:
            signing.append(signed[tid][1] - loaded)  # loaded -> receipt signed and published
            link.append(fates[tid] - signed[tid][1])  # published -> verified and stored outside
    return {"uploaded": len(results), "fates_visible": len(total),
            "upload_to_fate_seconds": quantiles(total), "upload_to_loaded_seconds": quantiles(way_in),
            "loaded_to_fate_seconds": quantiles(way_back), "loaded_to_receipt_published_seconds": quantiles(signing),
            "published_to_stored_seconds": quantiles(link)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--loss", type=float, default=None)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args()
    (ROOT / "var").mkdir(exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix="bench-fate-", dir=ROOT / "var"))
    folder = temp / "app"
    up = ["up", "--dir", folder, "--port-base", str(pick_port_base())]
    if args.loss is not None:
        up += ["--loss", str(args.loss)]
    tgw(*up)
    layout = Layout.at(folder)
    try:
        creds = json.loads(layout.credentials_file.read_text())
        outer = make_engine(load_config(layout.outer_config).database.url)
        inner = make_engine(load_config(layout.inner_config).database.url)
        load = Load(creds["portal"], {c: a["token"] for c, a in creds["agencies"].items()}, layout.pki)
        load.run(2, 5)  # warm-up, not counted
        results = load.run(args.rate, args.seconds)
        tids = [r["tracking_id"] for r in results if r["tracking_id"]]
        fates = wait_fates(outer, tids, 300)
        report = analyse(results, fates, events_for({"inner": inner}, tids), issued(inner))
    finally:
        tgw("down", "--dir", folder)
    result = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
              "load_average": os.getloadavg(), "rate": args.rate, "seconds": args.seconds, "loss": args.loss,
              **report}
    way_in, whole = report["upload_to_loaded_seconds"], report["upload_to_fate_seconds"]
    if way_in and whole:
        result["ratio_p50_fate_to_loaded"] = round(whole["p50"] / way_in["p50"], 2) if way_in["p50"] else None
    args.out.mkdir(parents=True, exist_ok=True)
    name = "fate.json" if args.loss is None else f"fate-loss{args.loss:g}.json"
    (args.out / name).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
