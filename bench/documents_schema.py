"""Schema validation time per payment voucher: the full jsonschema pass alone, then first_problem.

    python bench/documents_schema.py [--seconds 2]

first_problem() runs a fast fastjsonschema pass and falls back to the full pass only when
that one refuses; "full pass" here times the full pass on its own, as first_problem ran
before the fast pass existed. Both are timed on a 1-payee and a 9,999-payee voucher (the
schema's maximum), and on the 9,999-payee voucher with a bad last amount, which pays for
both passes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time

from tgw.demo.documents import generate_documents
from tgw_common.documents.schema import first_problem, validator

KIND = "payment_voucher"


def full_pass(doc: object) -> None:
    # What first_problem did for a valid document before the fast pass: walk every error.
    for _ in validator(KIND).iter_errors(doc):
        pass


def seconds_per_call(function, doc, budget: float) -> float:
    function(doc)  # compile and warm the caches outside the timing
    calls, start = 0, time.perf_counter()
    while True:
        function(doc)
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= budget:
            return elapsed / calls


def voucher(payees: int) -> dict:
    """A transfer voucher with `payees` demo payees (businesses and persons, as generated)."""
    docs = [json.loads(g.data) for g in generate_documents("A10001", payees, seed=7, kinds=[KIND],
                                                           today=dt.date(2025, 6, 15))]
    docs = [d for d in docs if d["payment_method"] == "transfer"]
    doc = docs[0]
    doc["payees"] = [p for d in docs for p in d["payees"]][:payees]
    doc["total_amount"] = sum(int(p["amount"]) for p in doc["payees"])
    assert len(doc["payees"]) == payees
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time budget per measurement")
    args = parser.parse_args()
    bad = voucher(9999)
    bad["payees"][-1]["amount"] = 100.0
    cases = [("1 payee", voucher(1)), ("9,999 payees", voucher(9999)), ("9,999 payees, last one bad", bad)]
    print(f"{'document':<28}{'full pass':>14}{'first_problem':>16}{'speed-up':>10}")
    for label, doc in cases:
        before = seconds_per_call(full_pass, doc, args.seconds)
        after = seconds_per_call(lambda d: first_problem(KIND, d), doc, args.seconds)
        print(f"{label:<28}{_ms(before):>14}{_ms(after):>16}{before / after:>9.1f}x")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


if __name__ == "__main__":
    main()
