"""Demo documents: always valid, repeatable, realistic; and the `tgw demo-data documents` command."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from tgw.cli import main
from tgw.demo.documents import BAD_DOCUMENT_CODES, bad_document_variants, generate_documents
from tgw_common.config import DocumentsConfig
from tgw_common.documents import (
    KINDS,
    build_manifest,
    check_control_totals,
    is_valid_business_number,
    is_valid_national_id,
    load_bank_codes,
    load_manifest,
    parse_roc_date,
    validate_documents,
)
from tgw_common.reasons import REASONS

AGENCY = "A1234567"
TODAY = dt.date(2025, 6, 15)


def validate(docs, agency=AGENCY, today=TODAY, limits=None):
    manifest = build_manifest("ENV-DEMO-00000001", agency, "2025-06-15T09:30:00+08:00", docs)
    valid = validate_documents(manifest, {d.path: d.data for d in docs}, agency=agency,
                               limits=limits or DocumentsConfig(), today=today)
    check_control_totals(manifest, [v.amount for v in valid])
    return manifest, valid


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32), count=st.integers(1, 12),
       kinds=st.none() | st.lists(st.sampled_from(list(KINDS)), min_size=1, max_size=4, unique=True),
       today=st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2200, 12, 31)),
       agency=st.from_regex(r"[0-9A-Z]{4,12}", fullmatch=True))
def test_generated_documents_always_validate(seed, count, kinds, today, agency):
    docs = generate_documents(agency, count, seed=seed, kinds=kinds, today=today)
    assert len(docs) == count and len({d.path for d in docs}) == count
    manifest, valid = validate(docs, agency=agency, today=today)
    assert manifest["control"]["total_amount"] == sum(v.amount for v in valid)
    if kinds:
        assert {d.kind for d in docs} <= set(kinds)


def test_default_mix_is_payment_and_transfer_vouchers():
    docs = generate_documents(AGENCY, 200, seed=1, today=TODAY)
    counts = {k: sum(d.kind == k for d in docs) for k in ("payment_voucher", "transfer_voucher")}
    assert sum(counts.values()) == 200
    assert counts["payment_voucher"] > 2 * counts["transfer_voucher"] > 0


def test_same_seed_same_bytes_other_seed_other_numbers():
    a = generate_documents(AGENCY, 5, seed=42, today=TODAY)
    assert a == generate_documents(AGENCY, 5, seed=42, today=TODAY)
    b = generate_documents(AGENCY, 5, seed=43, today=TODAY)
    assert not {d.path for d in a} & {d.path for d in b}


def test_demo_vouchers_look_real():
    docs = generate_documents(AGENCY, 60, seed=9, kinds=["payment_voucher"], today=TODAY)
    _, valid = validate(docs)
    payees = [p for v in valid for p in v.payees]
    businesses = [p for p in payees if len(p.id_number) == 8]
    people = [p for p in payees if len(p.id_number) == 10]
    assert businesses and people
    assert all(is_valid_business_number(p.id_number) for p in businesses)
    assert all(is_valid_national_id(p.id_number) for p in people)
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in p.name) for p in payees)  # Chinese names
    banks = load_bank_codes()
    assert all(p.bank_code[:3] in banks for p in payees if p.bank_code)
    for v in valid:
        assert v.fiscal_year == 114
        assert dt.date(2025, 1, 1) <= parse_roc_date(v.data["voucher_date"]) <= TODAY
        assert v.amount == sum(p.amount for p in v.payees)
    raw = [json.loads(d.data) for d in docs]
    assert any(isinstance(p["amount"], str) for r in raw for p in r["payees"])  # digit strings exercised
    assert any(isinstance(p["amount"], int) for r in raw for p in r["payees"])


def test_generator_respects_a_custom_bank_list():
    docs = generate_documents(AGENCY, 20, seed=2, kinds=["payment_voucher"], today=TODAY,
                              bank_codes={"999": "測試銀行"})
    for d in docs:
        for p in json.loads(d.data)["payees"]:
            assert p.get("bank_code", "999")[:3] == "999"


def test_generator_refuses_unknown_kind():
    with pytest.raises(ValueError, match="lottery"):
        generate_documents(AGENCY, 1, seed=1, kinds=["lottery"])


def test_build_manifest_hashes_and_totals():
    docs = generate_documents(AGENCY, 4, seed=8, kinds=list(KINDS), today=TODAY)
    created = dt.datetime(2025, 6, 15, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    m = build_manifest("ENV-DEMO-00000002", AGENCY, created, docs)
    assert m["created_at"] == "2025-06-15T09:30:00+08:00"
    assert [e["sha256"] for e in m["documents"]] == [hashlib.sha256(d.data).hexdigest() for d in docs]
    assert m["control"]["document_count"] == 4
    assert load_manifest(json.dumps(m).encode()) == m
    with pytest.raises(ValueError, match="offset"):
        build_manifest("ENV-DEMO-00000002", AGENCY, dt.datetime(2025, 6, 15), docs)


def test_bad_variants_cover_the_documents_codes():
    assert set(bad_document_variants()) == set(BAD_DOCUMENT_CODES)
    assert all(code in REASONS for code in BAD_DOCUMENT_CODES)


# ------------------------------------------------------------------- the CLI


def test_cli_writes_one_file_per_document(tmp_path):
    out = tmp_path / "docs"
    result = CliRunner().invoke(main, ["demo-data", "documents", "--agency", AGENCY, "--count", "4",
                                       "--out", str(out), "--seed", "3", "--kind", "payment_slip",
                                       "--kind", "revenue_refund", "--today", "2025-06-15",
                                       "--manifest", "ENV-CLI-0000001"])
    assert result.exit_code == 0, result.output
    printed = result.stdout.split()
    assert len(printed) == 5 and printed[-1] == str(out / "manifest.json")
    files = sorted(p for p in out.iterdir() if p.name != "manifest.json")
    assert sorted(map(str, files)) == sorted(printed[:-1])
    manifest = load_manifest((out / "manifest.json").read_bytes())
    docs = {p.name: p.read_bytes() for p in files}
    valid = validate_documents(manifest, docs, agency=AGENCY, limits=DocumentsConfig(), today=TODAY)
    assert {v.kind for v in valid} <= {"payment_slip", "revenue_refund"}
    # Same seed, same files.
    again = CliRunner().invoke(main, ["demo-data", "documents", "--agency", AGENCY, "--count", "4",
                                      "--out", str(tmp_path / "again"), "--seed", "3", "--kind", "payment_slip",
                                      "--kind", "revenue_refund", "--today", "2025-06-15"])
    assert again.exit_code == 0
    assert {p.name: p.read_bytes() for p in (tmp_path / "again").iterdir()} == docs


def test_cli_bad_variant_and_random_seed(tmp_path):
    result = CliRunner().invoke(main, ["demo-data", "documents", "--agency", AGENCY, "--out", str(tmp_path),
                                       "--bad", "BAD_ROC_DATE", "--today", "2025-06-15"])
    assert result.exit_code == 0
    assert result.stderr.startswith("seed: ")
    assert len(list(tmp_path.iterdir())) == 2
    assert any(json.loads(p.read_bytes())["voucher_date"] == "1140230" for p in tmp_path.iterdir())


@pytest.mark.parametrize("args, message", [
    (["--agency", "a1"], "agency"),
    (["--agency", AGENCY, "--kind", "lottery"], "--kind"),
    (["--agency", AGENCY, "--count", "0"], "--count"),
    (["--agency", AGENCY, "--manifest", "x"], "envelope id"),
    (["--agency", AGENCY, "--today", "114/06/15"], "--today"),
])
def test_cli_usage_errors_exit_2(tmp_path, args, message):
    result = CliRunner().invoke(main, ["demo-data", "documents", "--out", str(tmp_path), *args])
    assert result.exit_code == 2 and message in result.output
    assert not list(tmp_path.iterdir())


def test_cli_unwritable_folder_exits_3(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(main, ["demo-data", "documents", "--agency", AGENCY, "--out", str(blocker / "sub"),
                                       "--seed", "1"])
    assert result.exit_code == 3 and "error" in result.output.lower()
