"""Print the tables of docs/documents.md that are generated from the schemas.

    python -m tgw_common.documents.doctables > /tmp/tables.md

tests/documents checks that the docs hold exactly these tables, so after changing a
schema, paste the new tables into docs/documents.md.
"""

from __future__ import annotations

from .kinds import KINDS
from .schema import common_types_markdown, field_table_markdown


def all_tables() -> str:
    parts = ["### Common types\n", common_types_markdown(), "\n### manifest.json\n", field_table_markdown("manifest")]
    for key, kind in KINDS.items():
        parts += [f"\n### {kind.zh} `{key}`\n", field_table_markdown(key)]
    return "".join(parts)


if __name__ == "__main__":
    print(all_tables(), end="")
