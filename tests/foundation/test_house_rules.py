"""The shape the code keeps (issue 14's 'done when'), checked on every run so it stays so.

- One way into a spool: nothing in the zones or the transfer renames a file into a folder
  or makes bytes durable by itself; `tgw_common.spool` does.
- No function outside tests and migrations grows past 80 lines.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("tgw", "tgw_common", "outer_zone", "inner_zone", "transfer", "monitoring", "agency_signer", "bench")
MOVES = re.compile(r"os\.replace|os\.rename|fsync")
MAX_FUNCTION_LINES = 80


def _sources(*packages: str):
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def test_only_the_spool_module_moves_files_into_folders_or_syncs():
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
             for path in _sources("outer_zone", "transfer", "inner_zone")
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if MOVES.search(line)]
    assert found == [], "use tgw_common.spool (publish, write_atomic, sync_folders):\n" + "\n".join(found)


def test_no_function_is_longer_than_80_lines():
    long = []
    for path in _sources(*PACKAGES):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {lines} lines")
    assert long == [], "split these into one function per step:\n" + "\n".join(long)
