"""Envelopes opened per second per core, next to openssl's RSA-2048 private-key rate.

    python bench/envelope_open.py [--seconds 5]

Opening an envelope costs one RSA private-key operation (the seal's key transport) and
three public-key verifications, so `openssl speed rsa2048` (sign/s) is the natural ceiling
for one core: the ratio printed is how close the whole pipeline comes to it. "open" runs
every layer (release, seal, approval, payload with manifest and control totals);
"open+documents" adds the documents' schemas and business rules.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import statistics
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

from tgw.demo.documents import generate_documents
from tgw.demo.pki import build_demo_pki
from tgw_common.config import DocumentsConfig, LimitsConfig, PolicyConfig
from tgw_common.db import make_engine
from tgw_common.documents import build_manifest
from tgw_common.pki.certs import load_certificate_file, load_private_key_file
from tgw_common.pki.trust import TrustStore
from tgw_common.registry import SignerRegistry
from tgw_common.tpe import EnvelopeOpener, add_signature, build_payload, make_seal, sign_new

A = "A10001"


def openssl_rsa2048_sign_per_second(seconds: int) -> float:
    out = subprocess.run(["openssl", "speed", "-seconds", str(seconds), "-multi", "1", "rsa2048"],
                         capture_output=True, text=True, check=True).stdout
    match = re.search(r"rsa\s+2048 bits\s+[\d.]+s\s+[\d.]+s\s+([\d.]+)", out)
    if not match:
        raise RuntimeError(f"cannot read openssl speed output:\n{out}")
    return float(match.group(1))


def stored_payload(envelope_id: str, docs) -> bytes:
    """A payload with uncompressed entries, so the envelope really is as large as its documents."""
    manifest = build_manifest(envelope_id, A, "2026-11-23T10:00:00+08:00", docs)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False))
        for path, _kind, data in docs:
            z.writestr(path, data)
    return buffer.getvalue()


def envelope(pki: Path, payload: bytes) -> bytes:
    folder = pki / "agencies" / A
    pair = lambda role: (load_certificate_file(folder / f"{role}.pem"), load_private_key_file(folder / f"{role}.key"))  # noqa: E731
    approved = add_signature(sign_new(payload, *pair("accountant")), *pair("head"))
    sealed = make_seal(approved, [load_certificate_file(pki / "treasury" / "envelope.pem")])
    return sign_new(sealed, *pair("releaser"))


def measure(fn, seconds: float) -> tuple[float, list[float]]:
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 3:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return len(times) / sum(times), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tgw-bench-"))
    pki = work / "pki"
    build_demo_pki(pki, agencies=1)
    engine = make_engine(f"sqlite:///{work / 'bench.db'}")
    registry = SignerRegistry(engine)
    registry.import_file(pki / "registry.yaml")
    trust = TrustStore([load_certificate_file(pki / "root.pem")], [load_certificate_file(pki / "gca.pem")],
                       [__import__("tgw_common.pki.certs", fromlist=["x"]).load_crl((pki / "crl" / n).read_bytes())
                        for n in ("gca.crl", "root.crl")])
    opener = EnvelopeOpener(trust=trust, registry=registry, policy=PolicyConfig(), limits=LimitsConfig(max_entries=50_000),
                            documents=DocumentsConfig(),
                            treasury_certificate=load_certificate_file(pki / "treasury" / "envelope.pem"),
                            treasury_key=load_private_key_file(pki / "treasury" / "envelope.key"))

    small_docs = [(f"documents/{p}", k, b) for p, k, b in generate_documents(A, 10, seed=1)]
    small = envelope(pki, build_payload("BENCH-SMALL-000001", A, small_docs))
    big_docs, size, seed = [], 0, 2
    while size < 10 * 1024 * 1024:
        batch = generate_documents(A, 500, seed=seed)
        seed += 1
        for p, k, b in batch:
            big_docs.append((f"documents/{seed:04d}-{p}", k, b))
            size += len(b)
    large = envelope(pki, stored_payload("BENCH-LARGE-000001", big_docs))

    rsa = openssl_rsa2048_sign_per_second(max(1, int(args.seconds)))
    print(f"openssl speed rsa2048 (1 core): {rsa:,.0f} private-key ops/s")
    print(f"small envelope: {len(small):,} bytes, {len(small_docs)} vouchers; "
          f"large envelope: {len(large):,} bytes, {len(big_docs):,} documents")
    rows = [
        ("small", "open", lambda: opener.open(small, validate_documents=False), args.seconds),
        ("small", "open+documents", lambda: opener.open(small), args.seconds),
        ("large", "open", lambda: opener.open(large, validate_documents=False), args.seconds * 2),
        ("large", "open+documents", lambda: opener.open(large), args.seconds * 2),
    ]
    print(f"{'envelope':<8} {'steps':<16} {'per s':>9} {'p50 ms':>9} {'p99 ms':>9} {'ratio to RSA':>13}")
    for name, steps, fn, seconds in rows:
        rate, times = measure(fn, seconds)
        ms = sorted(t * 1000 for t in times)
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        print(f"{name:<8} {steps:<16} {rate:>9.1f} {statistics.median(ms):>9.2f} {p99:>9.2f} {rate / rsa:>13.3f}")


if __name__ == "__main__":
    main()
