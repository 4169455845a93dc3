"""`<int:...>` in the web apps' routes names a database row, so it is bounded like one.

Werkzeug's int converter takes any number of digits; a number past a 64-bit key cannot name
a row, and handed to the database driver it overflows (a 500 on SQLite, an error on
PostgreSQL). Bounded here it is simply a 404, as for any other id that does not exist.
"""

from __future__ import annotations

from werkzeug.routing import IntegerConverter

MAX_ID = 2**63 - 1  # BIGINT on PostgreSQL, INTEGER on SQLite


class DatabaseId(IntegerConverter):
    # Werkzeug's own parameter names, so `<int(max=...):x>` keeps working.
    def __init__(self, url_map, fixed_digits: int = 0, min: int | None = None,
                 max: int | None = None, signed: bool = False) -> None:
        super().__init__(url_map, fixed_digits, min, MAX_ID if max is None else max, signed)
