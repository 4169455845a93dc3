"""Regenerate docs/reason-codes.md from the reason table: `python -m tgw_common.docs_gen`."""

from __future__ import annotations

from pathlib import Path

from .reasons import reason_table_markdown

HEADER = """# Reason codes 拒絕原因代碼

Every refusal names one of these codes and the layer it came from. They are stable: a code
is never renamed or reused. API answers carry them as `reason`, quarantine files as
`reason`, `tgw envelope open --json` as `reason` with `layer`.

Layers, outermost first: `upload` (the outer zone's HTTP intake), `release` (layer 1, the
releaser's SignedData), `seal` (layer 2), `approval` (layer 3), `payload` (layer 4, the ZIP
and its manifest), `documents` (schemas and business rules), `intake` (the payment
database), `transfer` (the one-way link).

A refusal with `"hold": true` (only `CRL_STALE` with `trust.stale_crl: hold`) is not final:
the envelope waits until a fresh CRL is installed and is then judged again.

This table is generated from `tgw_common/reasons.py` (`python -m tgw_common.docs_gen`); a
test fails when the two differ.

"""


def main() -> None:
    path = Path(__file__).resolve().parent.parent / "docs" / "reason-codes.md"
    path.write_text(HEADER + reason_table_markdown(), encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
