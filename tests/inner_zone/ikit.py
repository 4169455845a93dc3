"""Helpers for the inner-zone tests: configs over real folders and databases, envelopes with
voucher numbers that never collide by accident, and real `tgw inner` processes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from tests.kit import (
    Kit,
    wait_until,  # noqa: F401 - re-exported for the tests
    write_config,
)
from tgw.demo.documents import encode, generate_documents
from tgw_common.documents import KINDS

TGW = str(Path(sys.executable).with_name("tgw"))


@dataclass
class Zone:
    """One inner zone under a tmp folder: its config file and folders."""

    root: Path
    config: Path
    db_url: str

    @property
    def inbound(self) -> Path:
        return self.root / "inbound"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def held(self) -> Path:
        return self.root / "spool" / "held"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    def drop(self, name: str, data: bytes) -> Path:
        """Publish a file into the inbound spool the way the transfer receiver does (rename)."""
        self.inbound.mkdir(parents=True, exist_ok=True)
        tmp = self.inbound.parent / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.inbound / name)
        return self.inbound / name

    def quarantine_entries(self, status: str | None = None) -> list[dict]:
        out = []
        for folder in (self.quarantine, self.held):
            for p in sorted(folder.glob("*.json")) if folder.exists() else []:
                entry = json.loads(p.read_text())
                if status is None or entry["status"] == status:
                    out.append(entry)
        return out

    def archived(self) -> list[Path]:
        return sorted(p for p in self.archive.rglob("*.p7m")) if self.archive.exists() else []


class FastKit(Kit):
    """The test kit with each key loaded once: loading a PEM key checks it (tens of ms),
    which would otherwise dominate building hundreds of envelopes."""

    def __init__(self, pki: Path) -> None:
        super().__init__(pki)
        self._pairs: dict[tuple[str, str], tuple] = {}

    def pair(self, agency: str, role: str) -> tuple:
        key = (agency, role)
        if key not in self._pairs:
            self._pairs[key] = super().pair(agency, role)
        return self._pairs[key]


def make_zone(root: Path, pki: Path, *, db_url: str | None = None, **sections) -> Zone:
    from tgw_common.config import load_config
    from tgw_common.db import make_engine
    from tgw_common.registry import SignerRegistry

    inner = {"inbound": str(root / "inbound"), "spool_dir": str(root / "spool"),
             "quarantine_dir": str(root / "quarantine"), "archive_dir": str(root / "archive"),
             "rescan_seconds": 1, "heartbeat_seconds": 1, **sections.pop("inner", {})}
    config = write_config(root / "cfg", pki, db_url=db_url, inner=inner, **sections)
    url = load_config(config).database.url
    SignerRegistry(make_engine(url)).import_file(pki / "registry.yaml", replace=True)
    return Zone(root, config, url)


def numbered_documents(agency: str, count: int, *, number: int, seed: int | None = None,
                       kinds=None) -> list[tuple[str, str, bytes]]:
    """Demo documents whose numbers are `<number>`-based, so separate envelopes never share one."""
    docs = []
    for i, d in enumerate(generate_documents(agency, count, seed=number if seed is None else seed, kinds=kinds)):
        doc = json.loads(d.data)
        doc[KINDS[d.kind].number_field] = f"T{number:08d}{i:03d}"
        docs.append((f"documents/{d.kind}_{number:08d}_{i:03d}.json", d.kind, encode(doc)))
    return docs


def envelope(kit: Kit, agency: str = "A10001", *, number: int, count: int = 2, envelope_id: str | None = None,
             docs=None, kinds=None) -> bytes:
    docs = docs if docs is not None else numbered_documents(agency, count, number=number, kinds=kinds)
    return kit.envelope(agency, payload=kit.payload(agency, docs=docs,
                                                    envelope_id=envelope_id or f"{agency}-E{number:08d}"))


def cli(*args: str) -> tuple[int, str]:
    """Run `tgw ...` in-process (the real click command); returns (exit code, stdout)."""
    from tgw.cli import main

    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def process_json(zone: Zone, path: Path, *extra: str) -> tuple[int, dict]:
    code, out = cli("inner", "process", str(path), "--config", str(zone.config), "--json", *extra)
    return code, json.loads(out)


def run_once(zone: Zone):
    """One runner in this process until the spool is empty (what a restart does, minus the process)."""
    from inner_zone.runner import InnerRunner
    from tgw_common.config import load_config

    runner = InnerRunner(load_config(zone.config))
    runner.run(until_idle=True)
    return runner


def q(zone: Zone, sql: str, *args) -> list[tuple]:
    """Rows of a query against the zone's SQLite database."""
    with sqlite3.connect(zone.db_url.removeprefix("sqlite:///")) as conn:
        return conn.execute(sql, args).fetchall()


class RunnerProc:
    """A real `tgw inner run` process (so kill -9 is a real kill -9)."""

    def __init__(self, zone: Zone, log: Path) -> None:
        self.log = log
        self.fh = open(log, "ab")  # noqa: SIM115 - kept open while the process runs
        self.p = subprocess.Popen([TGW, "--log-level", "INFO", "inner", "run", "--config", str(zone.config)],
                                  stdout=subprocess.DEVNULL, stderr=self.fh)

    def kill9(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGKILL)
        self.p.wait(10)
        self.fh.close()

    def stop(self) -> int:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.fh.close()
        return self.p.returncode

    def alive(self) -> bool:
        return self.p.poll() is None


def bulk_voucher(agency: str, number: int, payees: int, *, seed: int = 0) -> tuple[str, str, bytes]:
    """One payment voucher with many different payees (a large, realistic, hard-to-compress document)."""
    import random

    from tgw.demo.documents import make_business_number, make_national_id
    from tgw_common.documents import load_bank_codes

    rng = random.Random(seed * 1_000_003 + number)
    banks = sorted(load_bank_codes())
    base = json.loads(generate_documents(agency, 1, seed=number, kinds=["payment_voucher"])[0].data)
    rows = []
    for i in range(payees):
        company = rng.random() < 0.5
        rows.append({
            "name": f"{'受款公司' if company else '受款人'}{rng.randrange(10**6):06d}號",
            "id_number": make_business_number(rng) if company else make_national_id(rng),
            "bank_code": rng.choice(banks) + f"{rng.randrange(10**4):04d}",
            "account_no": f"{rng.randrange(10**11, 10**12)}",
            "amount": rng.randrange(1, 10_000),
            **({"memo": f"第{i}筆"} if rng.random() < 0.3 else {}),
        })
    base.update(payment_method="transfer", voucher_no=f"B{number:08d}", payees=rows,
                total_amount=sum(r["amount"] for r in rows))
    return f"documents/bulk_{number:08d}.json", "payment_voucher", encode(base)
