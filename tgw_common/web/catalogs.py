"""Keep the web pages' gettext catalogs in step with their sources: `make translations`.

For each package that has pages (CATALOG_PACKAGES), the English message ids are extracted
from its Python modules and templates, merged into its zh-TW `.po` (new ids arrive with an
empty translation, ids no longer used are dropped) and compiled to the `.mo` the app loads.
A translator then fills the empty `msgstr`s and runs it again. tests/foundation/
test_catalogs.py runs the same extraction and fails on an id that is missing or untranslated.
"""

from __future__ import annotations

import sys
from io import BytesIO
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from tgw_common.reasons import REASONS

from .i18n import DEFAULT

ROOT = Path(__file__).resolve().parent.parent.parent
SHARED = "tgw_common/web"
CATALOG_PACKAGES = (SHARED, "outer_zone/web", "inner_zone/console")
METHODS = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None, "lazy_ngettext": (1, 2)}


def po_path(package: str) -> Path:
    return ROOT / package / "translations" / DEFAULT / "LC_MESSAGES" / "messages.po"


def extracted(package: str) -> Catalog:
    """The ids the package's sources use now (the shared package: also every reason's title)."""
    template = Catalog(locale=None, project="tgw", fuzzy=False)
    if package == SHARED:
        for info in REASONS.values():
            template.add(info.en, None, auto_comments=[f"reason code {info.code}"])
    for filename, lineno, message, comments, context in extract_from_dir(
            ROOT / package, METHODS, keywords=KEYWORDS,
            directory_filter=lambda path: "translations" not in path and "__pycache__" not in path):
        template.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return template


def read_catalog(path: Path) -> Catalog:
    with path.open("rb") as stream:
        return read_po(stream, locale=DEFAULT)


def compiled(catalog: Catalog) -> bytes:
    out = BytesIO()
    write_mo(out, catalog)
    return out.getvalue()


def update(package: str) -> tuple[int, int]:
    """Merge the extracted ids into the package's catalog and compile it: (ids, untranslated)."""
    path = po_path(package)
    path.parent.mkdir(parents=True, exist_ok=True)
    catalog = read_catalog(path) if path.exists() else Catalog(
        locale=DEFAULT, project="tgw", copyright_holder="National Treasury Administration", fuzzy=False)
    catalog.update(extracted(package), no_fuzzy_matching=True, update_creation_date=False)
    catalog.obsolete.clear()
    if package == SHARED:
        # A reason's zh title is kept in the reason table (tgw_common/reasons.py), never typed twice.
        for info in REASONS.values():
            catalog[info.en].string = info.zh
    catalog.fuzzy = False  # the header: a fuzzy header would keep the .mo from loading
    with path.open("wb") as stream:
        write_po(stream, catalog, width=100, no_location=True, omit_header=False, sort_output=True)
    path.with_suffix(".mo").write_bytes(compiled(catalog))
    ids = [m for m in catalog if m.id]
    return len(ids), sum(1 for m in ids if not m.string)


def main() -> int:
    missing = 0
    for package in CATALOG_PACKAGES:
        ids, untranslated = update(package)
        missing += untranslated
        print(f"{package}: {ids} messages, {untranslated} untranslated")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
