"""A cheap fingerprint of some files, to notice that one changed without reading any of them.

The web apps' workers rebuild their trust store when a CRL (or, in the console, an anchor)
is replaced in place; comparing (path, mtime, size) costs one stat per file per look.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def files_mark(paths: Iterable[Path]) -> tuple:
    mark = []
    for p in paths:
        try:
            st = Path(p).stat()
        except FileNotFoundError:
            continue  # gone (being replaced): its absence is part of the mark
        mark.append((str(p), st.st_mtime_ns, st.st_size))
    return tuple(mark)
