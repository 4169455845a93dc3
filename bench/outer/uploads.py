"""Sustained uploads through `tgw outer serve` with the release check (run on demand).

    .venv/bin/python bench/outer/uploads.py [--clients 8] [--uploads 600] [--workers 2] [--threads 4]
                                            [--documents 3] [--out bench/outer/results]

Builds a demo PKI and an outer database (agency, allow-list, releaser, bearer token) in a
temporary folder, prepares --uploads distinct envelopes (one approval, then a fresh seal
and release signature each, so none is a replay), starts the real gunicorn on 127.0.0.1
and lets --clients threads post them as fast as the server answers, each over one
keep-alive connection. Every upload is streamed to disk, hashed, checked (signature,
path, CRL, registry, agency), recorded with its events and renamed into the spool.

Prints one JSON line: uploads per second, latency percentiles (p50/p90/p99/max), errors;
and writes it to --out. The machine is a shared 2-core VM: the clients run on the same
cores as the server, so read the figures as a floor.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

TGW = str(Path(sys.executable).with_name("tgw"))
AGENCY = "A10001"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def setup(work: Path, args) -> tuple[Path, str]:
    from outer_zone import models  # noqa: F401
    from outer_zone.accounts import add_agency, add_user, allow_networks, create_token
    from tgw.demo.pki import build_demo_pki
    from tgw_common.db import create_tables, dispose_engines, make_engine, transaction
    from tgw_common.registry import SignerRegistry

    pki = work / "pki"
    build_demo_pki(pki, agencies=1)
    db = work / "outer.db"
    config = {
        "node": {"zone": "outer", "host": "bench"},
        "database": {"url": f"sqlite:///{db}"},
        "trust": {"anchors": [str(pki / "root.pem")], "intermediates": [str(pki / "gca.pem")],
                  "crl_dir": str(pki / "crl"), "stale_crl": "refuse"},
        "outer": {"bind": f"127.0.0.1:{free_port()}", "workers": args.workers, "threads": args.threads,
                  "outbound": str(work / "outbound"), "upload_tmp": str(work / "incoming"),
                  "secret_key_file": str(work / "secret"), "cookie_secure": False, "min_free_bytes": 0,
                  "min_free_fraction": 0.0},
    }
    path = work / "outer.yaml"
    path.write_text(yaml.safe_dump(config))
    engine = make_engine(f"sqlite:///{db}")
    create_tables(engine)
    SignerRegistry(engine).import_file(pki / "registry.yaml")
    add_agency(engine, AGENCY, "bench")
    allow_networks(engine, AGENCY, ["127.0.0.1/32"])
    with transaction(engine) as s:
        add_user(s, agency=AGENCY, username="bench-rel", roles=["releaser"], password="Bench-password-1",
                 must_change=False)
    token = create_token(engine, "bench-rel", "bench")[1]
    dispose_engines()
    return path, token


def envelopes(pki: Path, count: int, documents: int) -> list[bytes]:
    from tgw.demo.documents import generate_documents
    from tgw_common.pki.certs import load_certificate_file, load_private_key_file
    from tgw_common.tpe import add_signature, build_payload, make_seal, sign_new

    def pair(role):
        folder = pki / "agencies" / AGENCY
        return load_certificate_file(folder / f"{role}.pem"), load_private_key_file(folder / f"{role}.key")

    docs = [(f"documents/{p}", k, b) for p, k, b in generate_documents(AGENCY, documents, seed=7)]
    approved = add_signature(sign_new(build_payload(f"{AGENCY}-BENCH-1", AGENCY, docs), *pair("accountant")),
                             *pair("head"))
    treasury = load_certificate_file(pki / "treasury" / "envelope.pem")
    releaser = pair("releaser")
    return [sign_new(make_seal(approved, [treasury]), *releaser) for _ in range(count)]


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("server did not start")


def client(port: int, token: str, work: queue.Queue, latencies: list[float], errors: list[str]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/pkcs7-mime"}
    while True:
        try:
            body = work.get_nowait()
        except queue.Empty:
            break
        started = time.perf_counter()
        try:
            conn.request("POST", "/api/v1/envelopes", body=body, headers=headers)
            r = conn.getresponse()
            r.read()
            status = r.status
        except (OSError, http.client.HTTPException) as exc:
            errors.append(repr(exc))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            continue
        latencies.append(time.perf_counter() - started)
        if status != 202:
            errors.append(f"HTTP {status}")
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--uploads", type=int, default=600)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--documents", type=int, default=3, help="documents per envelope (size)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tgw-outer-bench-"))
    config_path, token = setup(work, args)
    port = int(yaml.safe_load(config_path.read_text())["outer"]["bind"].rsplit(":", 1)[1])
    t0 = time.perf_counter()
    bodies = envelopes(work / "pki", args.uploads + args.warmup, args.documents)
    built = time.perf_counter() - t0
    log = open(work / "server.log", "ab")  # noqa: SIM115 - open while the server runs
    proc = subprocess.Popen([TGW, "outer", "serve", "--config", str(config_path)], stdout=log, stderr=log,
                            start_new_session=True)
    try:
        wait_ready(port, proc)
        warm: queue.Queue = queue.Queue()
        for body in bodies[:args.warmup]:
            warm.put(body)
        client(port, token, warm, [], [])
        work_q: queue.Queue = queue.Queue()
        for body in bodies[args.warmup:]:
            work_q.put(body)
        latencies: list[float] = []
        errors: list[str] = []
        threads = [threading.Thread(target=client, args=(port, token, work_q, latencies, errors))
                   for _ in range(args.clients)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        log.close()
    spooled = len([p for p in (work / "outbound").iterdir() if p.is_file()])
    result = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"), "clients": args.clients, "workers": args.workers,
        "threads": args.threads, "uploads": len(latencies), "envelope_bytes": len(bodies[0]),
        "seconds": round(elapsed, 2), "uploads_per_second": round(len(latencies) / elapsed, 1),
        "latency_ms": {f"p{p}": round(percentile(latencies, p) * 1000, 1) for p in (50, 90, 99)}
        | {"max": round(max(latencies) * 1000, 1)},
        "errors": len(errors), "error_samples": errors[:5], "spooled_files": spooled,
        "envelopes_built_seconds": round(built, 1), "cpus": os.cpu_count(),
    }
    print(json.dumps(result, ensure_ascii=False))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "uploads.json").write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")


if __name__ == "__main__":
    main()
