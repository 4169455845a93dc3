"""README.md and docs/ stand alone: nothing in them points outside the repository.

A reader of a release (or of the docs installed in /opt/tgw/share/doc/tgw) has this tree
and nothing else, so a link to a sibling folder or a path on the machine where a page was
written leads nowhere. Deployment targets the docs tell an operator to create (/etc/tgw,
/opt/tgw, /var/lib/tgw, ...) are paths on the hosts, not on a build machine, and allowed.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

# First folders of paths that exist only on a developer's or a CI machine.
BUILD_MACHINE_ROOTS = {"home", "work", "tmp", "root", "Users", "mnt", "media", "workspace", "builds", "scratch",
                       "Volumes", "private"}
# Below /var, /opt and /srv only these are places the docs send an operator to (the hosts'
# layout in deployment.md and the systemd units); anything else there is someone's machine.
DEPLOYMENT_TARGETS = ("/opt/tgw", "/srv/wheelhouse", "/var/lib/tgw", "/var/lib/private", "/var/lib/nginx",
                      "/var/lib/postgresql",
                      "/var/cache/nginx", "/var/log")
CHECKED_TOPS = {"var", "opt", "srv"}

# An absolute path: a slash not preceded by anything that makes it part of a URL, a
# relative path or a word (so `https://host/x`, `docs/x`, `and/or` and `$HOME/x` are not).
ABSOLUTE = re.compile(r"(?<![\w.:/~%$@{}\\-])/(?:[\w.@%+-]+)(?:/[\w.@%+-]*)*")
OUTSIDE_MARKERS = re.compile(r"\.\./shared|\bshared/(?:spec|notes)/")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
HTML_LINK = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']+)["']""")


def _rel(page: Path) -> str:
    return str(page.relative_to(ROOT))


def build_machine_paths(text: str) -> list[str]:
    """Absolute paths in `text` that name a build machine rather than a deployment target."""
    found = []
    for match in ABSOLUTE.finditer(text):
        path = match.group(0).rstrip(".,;:")
        if _names_a_build_machine(path):
            found.append(path)
    return found


def _names_a_build_machine(path: str) -> bool:
    top = path.split("/")[1]
    if top in BUILD_MACHINE_ROOTS or path.startswith(("/var/tmp", "/var/folders")):
        return True
    return top in CHECKED_TOPS and not any(path == t or path.startswith(t + "/") for t in DEPLOYMENT_TARGETS)


def links(text: str) -> list[str]:
    """Every link target of a Markdown page: inline, reference-style and HTML."""
    without_code = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    without_code = re.sub(r"`[^`\n]*`", "", without_code)
    return (INLINE_LINK.findall(without_code) + REFERENCE_LINK.findall(without_code)
            + HTML_LINK.findall(without_code))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|__", "", heading.strip()).lower()
    kept = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LNM")
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.MULTILINE):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def link_problems(page: Path) -> list[str]:
    problems = []
    for target in links(page.read_text(encoding="utf-8")):
        parts = urlsplit(target)
        if parts.scheme in ("http", "https", "mailto"):
            continue
        if parts.scheme == "file" or target.startswith("/"):
            problems.append(f"{target}: an absolute path, not a link inside the repository")
            continue
        if parts.scheme:
            problems.append(f"{target}: unexpected link scheme {parts.scheme!r}")
            continue
        dest = (page.parent / unquote(parts.path)).resolve() if parts.path else page
        if not dest.is_relative_to(ROOT):
            problems.append(f"{target}: resolves to {dest}, outside the repository")
        elif not dest.exists():
            problems.append(f"{target}: {dest.relative_to(ROOT)} does not exist")
        elif parts.fragment and dest.suffix == ".md" and parts.fragment not in anchors(dest):
            problems.append(f"{target}: no heading #{parts.fragment} in {dest.relative_to(ROOT)}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_no_path_of_a_build_machine(page):
    text = page.read_text(encoding="utf-8")
    found = build_machine_paths(text) + OUTSIDE_MARKERS.findall(text)
    assert not found, f"{_rel(page)} points outside the repository: {found}"


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_link_resolves_inside_the_repository(page):
    problems = link_problems(page)
    assert not problems, f"{_rel(page)}:\n" + "\n".join(problems)


def test_the_checks_catch_what_they_are_for(tmp_path):
    """The rules themselves, on text that breaks each one (and on text that must pass)."""
    bad = ("See `../shared/spec/envelope-profile.md` and /work/shared/notes/one-way-transfer.md, "
           "/home/dev/tgw/x.md, /tmp/build/out, /opt/other/bin and /var/cache/ci.")
    assert build_machine_paths(bad) == ["/work/shared/notes/one-way-transfer.md", "/home/dev/tgw/x.md",
                                        "/tmp/build/out", "/opt/other/bin", "/var/cache/ci"]
    assert OUTSIDE_MARKERS.findall(bad)
    good = ("/etc/tgw/outer.yaml, /opt/tgw/bin/tgw, /var/lib/tgw/spool, /run/tgw-feed, /usr/sbin/nologin, "
            "GET /login, https://example.gov.tw/tmp/x, docs/tmp/x, ../config/ and $HOME/work")
    assert build_machine_paths(good) == []
    folder = tmp_path / "docs"
    folder.mkdir()
    page = folder / "page.md"
    page.write_text("# Top\n[a](../README.md) [b](#top) [c](../../outside.md)", encoding="utf-8")
    assert links(page.read_text(encoding="utf-8")) == ["../README.md", "#top", "../../outside.md"]
    assert slug("The seal") == "the-seal" and slug("manifest.json") == "manifestjson"
    assert slug("TPE/1: the envelope 信封規格") == "tpe1-the-envelope-信封規格"
