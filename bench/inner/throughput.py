"""Inner runner throughput against the RSA limit, and peak memory for one large envelope (on demand).

    PYTHONPATH=. .venv/bin/python bench/inner/throughput.py [--count 2000] [--db sqlite,postgresql]
                                                           [--big-mb 200] [--profile] [--out DIR]

1. `openssl speed -seconds 3 rsa2048`: RSA-2048 private-key operations per second on one
   core. Opening an envelope costs exactly one of them (the seal's key transport), so that
   is the ceiling of any runner; the goal is half of it per core, end to end and durable.
2. `--count` small envelopes (one or two demo documents each, two agencies) are built once,
   dropped into the inbound spool, and a real `tgw inner run` drains them into SQLite and
   then into PostgreSQL (a fresh schema, dropped afterwards). Figures: envelopes per
   second (wall, first claim to last load), envelopes per CPU-second of the runner (= per
   core: the runner is one thread), p50/p99 time per envelope (its "claimed" to its
   "loaded" event), and the ratios to the RSA figure.
3. One envelope of `--big-mb` MB (payment vouchers of 9,999 payees each, stored
   uncompressed in the ZIP so the file really is that large; the size limits are raised
   for this run) through `tgw inner process`: wall time and the process's peak RSS.
4. `--profile`: the small-envelope run once more in this process under cProfile; the
   top functions by cumulative and by own time go to profile.txt.

Results: results.json and a summary on stdout. Numbers come from a shared 2-core VM: read
the ratios and the profile, not the absolute figures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tgw.demo.documents import encode, generate_documents, make_business_number, make_national_id  # noqa: E402
from tgw_common.documents import KINDS, build_manifest, load_bank_codes  # noqa: E402
from tgw_common.pki.certs import load_certificate_file, load_private_key_file  # noqa: E402
from tgw_common.tpe import add_signature, build_payload, make_seal, sign_new  # noqa: E402

TGW = str(Path(sys.executable).with_name("tgw"))
PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
AGENCIES = ("A10001", "A10002")
TAIPEI = ZoneInfo("Asia/Taipei")


# ---------------------------------------------------------------- RSA ceiling
def rsa_sign_per_second() -> float:
    out = subprocess.run(["openssl", "speed", "-seconds", "3", "rsa2048"], capture_output=True, text=True,
                         check=True).stdout
    m = re.search(r"rsa\s+2048 bits\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", out)
    if not m:
        raise RuntimeError(f"cannot read openssl speed output:\n{out}")
    return float(m.group(1))


# ---------------------------------------------------------------- envelopes
class Builder:
    def __init__(self, pki: Path) -> None:
        self.pki = pki
        self.treasury = load_certificate_file(pki / "treasury" / "envelope.pem")
        self._pairs: dict = {}

    def pair(self, agency: str, role: str):
        if (agency, role) not in self._pairs:
            folder = self.pki / "agencies" / agency
            self._pairs[agency, role] = (load_certificate_file(folder / f"{role}.pem"),
                                         load_private_key_file(folder / f"{role}.key"))
        return self._pairs[agency, role]

    def envelope(self, agency: str, payload: bytes) -> bytes:
        approved = add_signature(sign_new(payload, *self.pair(agency, "accountant")), *self.pair(agency, "head"))
        return sign_new(make_seal(approved, [self.treasury]), *self.pair(agency, "releaser"))

    def small(self, n: int) -> bytes:
        agency = AGENCIES[n % 2]
        docs = []
        for i, d in enumerate(generate_documents(agency, 1 + n % 2, seed=n)):
            doc = json.loads(d.data)
            doc[KINDS[d.kind].number_field] = f"B{n:08d}{i:02d}"  # never a duplicate voucher by chance
            docs.append((f"documents/{d.kind}_{n:08d}_{i}.json", d.kind, encode(doc)))
        return self.envelope(agency, build_payload(f"{agency}-BENCH-{n:08d}", agency, docs))

    def big(self, megabytes: int) -> bytes:
        """Vouchers of 9,999 payees with long memos, STORED: the envelope is ~`megabytes` MB."""
        agency = AGENCIES[0]
        rng = random.Random(1)
        banks = sorted(load_bank_codes())
        chars = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
        docs, size, n = [], 0, 0
        while size < megabytes * 1024 * 1024:
            base = json.loads(generate_documents(agency, 1, seed=10_000 + n, kinds=["payment_voucher"])[0].data)
            payees = []
            for _ in range(9999):
                company = rng.random() < 0.5
                payees.append({"name": f"受款{'公司' if company else '人'}{rng.randrange(10**6):06d}",
                               "id_number": make_business_number(rng) if company else make_national_id(rng),
                               "bank_code": rng.choice(banks) + f"{rng.randrange(10**4):04d}",
                               "account_no": f"{rng.randrange(10**11, 10**12)}", "amount": rng.randrange(1, 10_000),
                               "memo": "".join(rng.choices(chars, k=60))})
            base.update(payment_method="transfer", voucher_no=f"G{n:08d}", payees=payees,
                        total_amount=sum(p["amount"] for p in payees))
            data = encode(base)
            docs.append((f"documents/big_{n:04d}.json", "payment_voucher", data))
            size += len(data)
            n += 1
        manifest = build_manifest(f"{agency}-BIG-{uuid.uuid4().hex[:8]}", agency,
                                  datetime.now(UTC).astimezone(TAIPEI).replace(microsecond=0), docs)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as z:
            z.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False))
            for path, _kind, data in docs:
                z.writestr(path, data)
        return self.envelope(agency, buffer.getvalue())


# ---------------------------------------------------------------- zones
def make_zone(root: Path, pki: Path, db_url: str, **extra) -> Path:
    from tgw_common.db import dispose_engines, make_engine
    from tgw_common.registry import SignerRegistry

    root.mkdir(parents=True, exist_ok=True)
    config = {
        "node": {"zone": "inner", "data_dir": str(root / "var")},
        "database": {"url": db_url},
        "trust": {"anchors": [str(pki / "root.pem")], "intermediates": [str(pki / "gca.pem")],
                  "crl_dir": str(pki / "crl")},
        "treasury": {"certificate": str(pki / "treasury" / "envelope.pem"),
                     "private_key": str(pki / "treasury" / "envelope.key")},
        "inner": {"inbound": str(root / "inbound"), "spool_dir": str(root / "spool"),
                  "quarantine_dir": str(root / "quarantine"), "archive_dir": str(root / "archive")},
        **extra,
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    SignerRegistry(make_engine(db_url)).import_file(pki / "registry.yaml")
    dispose_engines()
    return path


def pg_schema() -> tuple[str, callable]:
    import psycopg

    schema = f"bench_inner_{uuid.uuid4().hex[:8]}"
    conn = psycopg.connect("host=127.0.0.1 port=5432 dbname=test user=postgres", autocommit=True)
    conn.execute(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        conn.close()

    return f"{PG_BASE}?options=-csearch_path%3D{schema}", drop


# ---------------------------------------------------------------- runs
def run_throughput(config: Path, envelopes: list[bytes], log: Path) -> dict:
    from sqlalchemy import create_engine, text

    from tgw_common.config import load_config

    cfg = load_config(config)
    inbound = cfg.inner.inbound
    stage = inbound.parent / "stage"  # same filesystem: publishing is a rename, as the receiver does
    stage.mkdir(parents=True, exist_ok=True)
    for n, data in enumerate(envelopes):
        (stage / f"T{n:08d}.p7m").write_bytes(data)
    engine = create_engine(cfg.database.url)
    with open(log, "wb") as fh:
        proc = subprocess.Popen([TGW, "--log-level", "INFO", "inner", "run", "--config", str(config)],
                                stdout=subprocess.DEVNULL, stderr=fh)
        ps = psutil.Process(proc.pid)
        while b'"started"' not in log.read_bytes():  # start-up (imports, migrations) is not counted
            if proc.poll() is not None:
                raise RuntimeError(f"runner exited; see {log}")
            time.sleep(0.1)
        cpu0 = ps.cpu_times()
        for p in sorted(stage.iterdir()):
            os.replace(p, inbound / p.name)
        start = time.monotonic()
        loaded = 0
        while loaded < len(envelopes):
            time.sleep(0.5)
            if proc.poll() is not None:
                raise RuntimeError(f"runner exited; see {log}")
            try:
                with engine.connect() as c:
                    loaded = c.execute(text("SELECT count(*) FROM intake_envelopes")).scalar()
            except Exception:  # the tables appear a moment after the start
                continue
            if time.monotonic() - start > 3600:
                raise RuntimeError("gave up after an hour")
        cpu = ps.cpu_times()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    with engine.connect() as c:
        rows = c.execute(text(
            "SELECT tracking_id, event, at FROM provenance_events WHERE event IN ('claimed', 'loaded')")).all()
        refused = c.execute(text("SELECT count(*) FROM provenance_events WHERE event = 'refused'")).scalar()
    engine.dispose()
    claimed = {r.tracking_id: r.at for r in rows if r.event == "claimed"}
    done = {r.tracking_id: r.at for r in rows if r.event == "loaded"}

    def ts(v):
        return (v if isinstance(v, datetime) else datetime.fromisoformat(str(v))).timestamp()

    per = sorted(ts(done[t]) - ts(claimed[t]) for t in done)
    wall = max(ts(v) for v in done.values()) - min(ts(v) for v in claimed.values())
    cpu_s = cpu.user + cpu.system - cpu0.user - cpu0.system
    return {
        "envelopes": len(done), "refused": refused, "wall_seconds": round(wall, 2),
        "envelopes_per_second": round(len(done) / wall, 1),
        "runner_cpu_seconds": round(cpu_s, 2),
        "envelopes_per_cpu_second": round(len(done) / cpu_s, 1),
        "p50_ms": round(statistics.median(per) * 1000, 2),
        "p99_ms": round(per[int(len(per) * 0.99) - 1] * 1000, 2),
    }


def run_big(config: Path, data: bytes, work: Path) -> dict:
    path = work / "T-BIG.p7m"
    path.write_bytes(data)
    out_path, err_path = work / "big.out", work / "big.err"
    start = time.monotonic()
    before = psutil.Process().cpu_times()
    cpu_before = before.children_user + before.children_system
    peak_kib = 0
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen([TGW, "inner", "process", str(path), "--config", str(config), "--json"],
                                stdout=out, stderr=err)
        # Not wait4's ru_maxrss: Linux records the high-water mark of the memory the child
        # had before exec too, which is this benchmark's own (gigabytes of test envelopes).
        # VmHWM is the child's own high-water mark since exec; it only grows, so the last
        # reading before exit is the peak (a final spike under 20 ms could be missed).
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                hwm = re.search(r"VmHWM:\s+(\d+) kB", status.read_text())
            except OSError:
                hwm = None
            if hwm:
                peak_kib = max(peak_kib, int(hwm.group(1)))
            time.sleep(0.02)
        usage = psutil.Process().cpu_times()  # children_user/children_system: the reaped child's CPU
    wall = time.monotonic() - start
    text_out = out_path.read_text()
    result = json.loads(text_out) if text_out.strip().startswith("{") else {"error": err_path.read_text()[-2000:]}
    peak_mb = peak_kib / 1024
    return {"envelope_mb": round(len(data) / 2**20, 1), "wall_seconds": round(wall, 1),
            "peak_rss_mb": round(peak_mb, 1), "status": result.get("status"), "reason": result.get("reason"),
            "message": result.get("message") or result.get("error"), "documents": result.get("loaded_documents"),
            "cpu_seconds": round(usage.children_user + usage.children_system - cpu_before, 1),
            "rss_to_envelope": round(peak_mb / (len(data) / 2**20), 2)}


def profile_run(config: Path, envelopes: list[bytes], out: Path) -> None:
    import cProfile
    import pstats

    from inner_zone.runner import InnerRunner
    from tgw_common.config import load_config

    cfg = load_config(config)
    cfg.inner.inbound.mkdir(parents=True, exist_ok=True)
    for n, data in enumerate(envelopes):
        (cfg.inner.inbound / f"P{n:08d}.p7m").write_bytes(data)
    runner = InnerRunner(cfg)
    runner.startup()
    prof = cProfile.Profile()
    prof.enable()
    while runner.one_iteration():
        pass
    prof.disable()
    runner.shutdown()
    with open(out, "w") as fh:
        stats = pstats.Stats(prof, stream=fh)
        stats.sort_stats("cumulative").print_stats(60)
        stats.sort_stats("tottime").print_stats(40)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--db", default="sqlite,postgresql")
    ap.add_argument("--big-mb", type=int, default=200, help="0 skips the large envelope")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "inner" / "results")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tgw-bench-inner-"))
    results: dict = {"host": {"cpus": os.cpu_count(), "load_average": os.getloadavg()}}
    try:
        from tgw.demo.pki import build_demo_pki

        rsa = rsa_sign_per_second()
        results["rsa2048_sign_per_second"] = rsa
        print(f"openssl speed rsa2048: {rsa:.0f} private-key operations/s (one core); goal >= {rsa / 2:.0f} "
              "envelopes/s per core")
        pki = work / "pki"
        build_demo_pki(pki, agencies=2)
        builder = Builder(pki)
        t = time.monotonic()
        envelopes = [builder.small(n) for n in range(args.count)]
        print(f"built {len(envelopes)} envelopes ({sum(map(len, envelopes)) / len(envelopes) / 1024:.1f} KiB "
              f"average) in {time.monotonic() - t:.0f} s")
        for db in [d.strip() for d in args.db.split(",") if d.strip()]:
            drop = None
            if db == "sqlite":
                url = f"sqlite:///{work / db / 'inner.db'}"
            else:
                url, drop = pg_schema()
            try:
                config = make_zone(work / db, pki, url)
                r = run_throughput(config, envelopes, work / f"{db}-runner.log")
            finally:
                if drop:
                    drop()
            r["per_core_vs_rsa"] = round(r["envelopes_per_cpu_second"] / rsa, 3)
            r["wall_vs_rsa"] = round(r["envelopes_per_second"] / rsa, 3)
            results[db] = r
            print(f"{db:>10}: {r['envelopes_per_second']} envelopes/s wall, {r['envelopes_per_cpu_second']} per "
                  f"CPU-second ({r['per_core_vs_rsa']:.1%} of the RSA limit per core; goal 50%), "
                  f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms")
        if args.profile:
            config = make_zone(work / "profile", pki, f"sqlite:///{work / 'profile' / 'inner.db'}")
            profile_run(config, envelopes[:500], args.out / "profile.txt")
            print(f"profile: {args.out / 'profile.txt'}")
        if args.big_mb:
            t = time.monotonic()
            data = builder.big(args.big_mb)
            print(f"built a {len(data) / 2**20:.0f} MB envelope in {time.monotonic() - t:.0f} s")
            limit = 512 * 1024 * 1024
            config = make_zone(work / "big", pki, f"sqlite:///{work / 'big' / 'inner.db'}",
                               limits={"max_envelope_bytes": limit, "max_entries": 1000,
                                       "max_entry_bytes": 64 * 1024 * 1024, "max_total_bytes": limit,
                                       "max_compression_ratio": 200},
                               documents={"epayment_limit": 10**12})
            r = run_big(config, data, work)
            results["big"] = r
            print(f"big envelope: {r['envelope_mb']} MB, {r['status']} {r['reason'] or ''} in {r['wall_seconds']} s, "
                  f"peak RSS {r['peak_rss_mb']} MB ({r['rss_to_envelope']}x the envelope)")
        (args.out / "results.json").write_text(json.dumps(results, indent=2))
        print(f"results: {args.out / 'results.json'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
