"""`tgw demo-data`: realistic demo documents for trying the gateway out."""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from pathlib import Path

import click

from tgw_common.cli_support import UsageProblem, operational
from tgw_common.documents import BAD_DOCUMENT_CODES, KINDS, bad_documents, build_manifest, generate_documents
from tgw_common.spool import write_atomic

_AGENCY = re.compile(r"[0-9A-Z]{4,12}")
_TAIPEI = dt.timezone(dt.timedelta(hours=8))


@click.group(name="demo-data")
def demo_data() -> None:
    """示範資料 / Demo data: documents and (later) whole envelopes."""


@demo_data.command(name="documents")
@click.option("--agency", required=True, help="機關代號 / agency code (4-12 digits or capital letters).")
@click.option("--count", type=click.IntRange(1, 100_000), default=10, show_default=True,
              help="文件數 / number of documents.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="輸出資料夾 / folder for the JSON files (created if missing; same names are overwritten).")
@click.option("--seed", type=int, default=None,
              help="亂數種子，可重現 / random seed; the same seed gives the same files. Default: random, printed on stderr.")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(list(KINDS)),
              help="文件種類，可重複 / document kind, repeatable. Default: payment and transfer vouchers.")
@click.option("--today", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="視為今天的日期 / the date taken as today (YYYY-MM-DD): sets fiscal year and dates.")
@click.option("--bad", type=click.Choice(BAD_DOCUMENT_CODES), default=None,
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
