"""`tgw demo-data`: realistic demo documents for trying the gateway out."""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from collections.abc import Callable, Iterable
from functools import cached_property
from pathlib import Path

import click

from tgw_common.cli_support import UsageProblem, operational
from tgw_common.spool import write_atomic

_AGENCY = re.compile(r"[0-9A-Z]{4,12}")
_TAIPEI = dt.timezone(dt.timedelta(hours=8))


class _LazyChoice(click.Choice):
    """A Choice whose values come from tgw_common.documents, imported only when this command
    is parsed or its help shown: importing the documents package costs every `tgw` call ~150 ms."""

    def __init__(self, values: Callable[[], Iterable[str]]) -> None:
        self._values = values
        self.case_sensitive = True

    @cached_property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self._values())


def _kinds() -> Iterable[str]:
    from tgw_common.documents import KINDS

    return KINDS


def _bad_codes() -> Iterable[str]:
    from tgw.demo.documents import BAD_DOCUMENT_CODES

    return BAD_DOCUMENT_CODES


@click.group(name="demo-data")
def demo_data() -> None:
    """示範資料 / Demo data: documents and whole envelopes."""


@demo_data.command(name="documents")
@click.option("--agency", required=True, help="機關代號 / agency code (4-12 digits or capital letters).")
@click.option("--count", type=click.IntRange(1, 100_000), default=10, show_default=True,
              help="文件數 / number of documents.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="輸出資料夾 / folder for the JSON files (created if missing; same names are overwritten).")
@click.option("--seed", type=int, default=None,
              help="亂數種子，可重現 / random seed; the same seed gives the same files. Default: random, printed on stderr.")
@click.option("--kind", "kinds", multiple=True, type=_LazyChoice(_kinds),
              help="文件種類，可重複 / document kind, repeatable. Default: payment and transfer vouchers.")
@click.option("--today", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="視為今天的日期 / the date taken as today (YYYY-MM-DD): sets fiscal year and dates.")
@click.option("--bad", type=_LazyChoice(_bad_codes), default=None,
              help="產生違反此規則的文件 / write two vouchers refused with this reason code instead (ignores --count, --kind).")
@click.option("--manifest", "envelope_id", default=None, metavar="ENVELOPE_ID",
              help="一併寫出 manifest.json / also write manifest.json for these files with this envelope id.")
@operational
def documents(agency: str, count: int, out_dir: Path, seed: int | None, kinds: tuple[str, ...],
              today: dt.datetime | None, bad: str | None, envelope_id: str | None) -> None:
    """產生示範文件 / Write demo documents, one JSON file each, and print their paths.

    \b
    Identifiers carry correct check digits, bank codes are real institutions, dates are
    ROC dates of the current fiscal year and voucher totals add up. Exit 0 on success,
    2 for bad arguments, 3 if the files cannot be written.
    """
    from tgw.demo.documents import bad_documents, generate_documents
    from tgw_common.documents import build_manifest

    if not _AGENCY.fullmatch(agency):
        raise UsageProblem(f"--agency {agency!r}: 機關代號須為 4-12 位數字或大寫字母 / must be 4-12 digits or capital letters")
    if envelope_id is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,127}", envelope_id):
        raise UsageProblem(f"--manifest {envelope_id!r}: 信封編號格式錯誤 / envelope id must match "
                           "[A-Za-z0-9][A-Za-z0-9._:-]{7,127}")
    if seed is None:
        seed = secrets.randbelow(2**31)
        click.echo(f"seed: {seed}", err=True)
    day = today.date() if today else dt.date.today()
    if bad:
        docs = bad_documents(bad, agency, seed=seed, today=day)
    else:
        docs = generate_documents(agency, count, seed=seed, kinds=kinds or None, today=day)
    for doc in docs:
        dest = out_dir / doc.path
        write_atomic(dest, doc.data)
        click.echo(str(dest))
    if envelope_id is not None:
        manifest = build_manifest(envelope_id, agency, dt.datetime.now(_TAIPEI).replace(microsecond=0), docs)
        dest = out_dir / "manifest.json"
        write_atomic(dest, (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))
        click.echo(str(dest))


@demo_data.command(name="envelopes")
@click.option("--pki", "pki_dir", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="示範憑證資料夾 / a folder written by `tgw pki demo` (for `tgw up`: DIR/pki).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="輸出資料夾 / folder for the envelopes and expected.json (created if missing).")
@click.option("--count", type=click.IntRange(1, 100_000), default=20, show_default=True,
              help="信封數 / number of envelope files.")
@click.option("--agency", default=None,
              help="只用此機關 / only this agency (default: every agency of the PKI in turn).")
@click.option("--bad-fraction", type=click.FloatRange(0, 1), default=0.3, show_default=True,
              help="錯誤信封比例 / share of bad envelopes (at least one valid envelope is always kept).")
@click.option("--seed", type=int, default=None,
              help="亂數種子 / random seed: the same seed gives the same mix and documents. Default: random, "
                   "printed on stderr. Use a new seed for each batch sent to one gateway.")
@operational
def envelopes(pki_dir: Path, out_dir: Path, count: int, agency: str | None, bad_fraction: float,
              seed: int | None) -> None:
    """產生示範信封與預期結果 / Write envelopes (valid and bad) and expected.json.

    \b
    Bad ones: tampered bytes, truncated, trailing bytes, empty, revoked / unregistered /
    untrusted / wrong-role / other agency's releaser, release signed in the future,
    expired / unregistered / wrong-usage / other agency's approver, one approval, the
    same approver twice, sealed for someone else, bad documents (every code of
    `tgw demo-data documents --bad`), a replayed envelope id, a voucher loaded before,
    the same file uploaded twice. expected.json says for each file: loaded, or refused
    by which zone (outer: HTTP status at upload; inner: quarantine) with which reason.
    Exit 0 on success, 2 for bad arguments, 3 if the files cannot be written.
    """
    from tgw.appliance.envelopes import build_batch, write_batch

    if agency is not None and not _AGENCY.fullmatch(agency):
        raise UsageProblem(f"--agency {agency!r}: 機關代號須為 4-12 位數字或大寫字母 / must be 4-12 digits or capital letters")
    if seed is None:
        seed = secrets.randbelow(2**31)
        click.echo(f"seed: {seed}", err=True)
    try:
        items = build_batch(pki_dir, count, agency=agency, bad_fraction=bad_fraction, seed=seed)
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None
    path = write_batch(items, out_dir, seed=seed, pki_dir=pki_dir)
    summary = json.loads(path.read_text(encoding="utf-8"))["counts"]
    click.echo(f"wrote {summary['files']} envelopes to {out_dir}: {summary['loaded']} to be loaded, "
               f"{summary['refused_outer']} refused at upload, {summary['refused_inner']} quarantined; see {path}")
