"""The pages' texts come from the gettext catalogs, and the catalogs keep up with the sources.

A page or view that writes a zh/en pair inline instead of a message id fails here, and so
does a catalog that misses an id, leaves one untranslated or was not compiled after an edit
(`make translations` fixes the last two after the translator's work).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo

from tgw_common.web.catalogs import CATALOG_PACKAGES, ROOT, extracted, po_path, read_catalog

HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.S)
# Command-line modules inside a page package speak to a terminal, not through the catalogs.
NOT_PAGES = re.compile(r"(^|/)cli[^/]*\.py$")


def _files(package: str, pattern: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob(pattern)
                  if "translations" not in p.parts and not NOT_PAGES.search(p.as_posix()))


def _docstring_nodes(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _inline_chinese_in_python(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = _docstring_nodes(tree)
    return [f"{path.relative_to(ROOT)}:{node.lineno}: {node.value[:40]!r}" for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
            and HAN.search(node.value)]


@pytest.mark.parametrize("package", CATALOG_PACKAGES)
def test_templates_write_no_chinese_inline(package):
    offenders = [f"{p.relative_to(ROOT)}: {HAN.search(JINJA_COMMENT.sub('', p.read_text(encoding='utf-8'))).group()}"
                 for p in _files(package, "*.html") if HAN.search(JINJA_COMMENT.sub("", p.read_text(encoding="utf-8")))]
    assert not offenders, "texts belong in the catalog as English message ids:\n" + "\n".join(offenders)


@pytest.mark.parametrize("package", CATALOG_PACKAGES)
def test_views_and_scripts_write_no_chinese_inline(package):
    offenders = [hit for p in _files(package, "*.py") for hit in _inline_chinese_in_python(p)]
    offenders += [str(p.relative_to(ROOT)) for p in _files(package, "*.js") if HAN.search(p.read_text(encoding="utf-8"))]
    # The language switch names each language in that language, whatever the page's language.
    offenders = [hit for hit in offenders if not hit.startswith("tgw_common/web/i18n.py")]
    assert not offenders, "texts belong in the catalog as English message ids:\n" + "\n".join(offenders)


@pytest.mark.parametrize("package", CATALOG_PACKAGES)
def test_every_message_has_its_translation(package):
    catalog = read_catalog(po_path(package))
    have = {m.id: m.string for m in catalog if m.id}
    wanted = {m.id for m in extracted(package) if m.id}
    assert not wanted - have.keys(), f"run `make translations`: ids missing from {po_path(package)}"
    assert not have.keys() - wanted, f"run `make translations`: ids no longer used in {po_path(package)}"
    untranslated = sorted(str(key) for key, text in have.items() if not text or (isinstance(text, tuple) and not all(text)))
    assert not untranslated, f"no zh-TW text for: {untranslated[:20]}"
    fuzzy = sorted(str(m.id) for m in catalog if m.id and m.fuzzy)
    assert not fuzzy, f"fuzzy (unchecked) translations: {fuzzy[:20]}"


@pytest.mark.parametrize("package", CATALOG_PACKAGES)
def test_compiled_catalog_matches_its_source(package):
    path = po_path(package)
    source = {m.id: m.string for m in read_catalog(path) if m.id}
    with path.with_suffix(".mo").open("rb") as stream:
        loaded = {m.id: m.string for m in read_mo(stream) if m.id}
    assert loaded == source, f"run `make translations`: {path.with_suffix('.mo')} is older than its .po"


def test_placeholders_survive_translation():
    placeholder = re.compile(r"%\(\w+\)[sd]|\{\w*\}")
    wrong = []
    for package in CATALOG_PACKAGES:
        for m in read_catalog(po_path(package)):
            pairs = zip(m.id, m.string, strict=True) if isinstance(m.id, tuple) else [(m.id, m.string)]
            for msgid, text in pairs:
                if msgid and text and sorted(placeholder.findall(msgid)) != sorted(placeholder.findall(text)):
                    wrong.append(f"{package}: {msgid!r} -> {text!r}")
    assert not wrong, "\n".join(wrong)


def test_reason_titles_come_from_the_reason_table():
    from flask import Flask
    from flask_babel import Babel, force_locale

    from tgw_common.reasons import REASONS
    from tgw_common.web.catalogs import SHARED
    from tgw_common.web.i18n import reason_title

    app = Flask(__name__)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(po_path(SHARED).parent.parent.parent)
    Babel(app)
    with app.test_request_context():
        with force_locale("zh_Hant_TW"):
            assert {code: reason_title(code) for code in REASONS} == {code: r.zh for code, r in REASONS.items()}
        with force_locale("en"):
            assert {code: reason_title(code) for code in REASONS} == {code: r.en for code, r in REASONS.items()}
        assert reason_title("NO_SUCH_CODE") == "NO_SUCH_CODE"
