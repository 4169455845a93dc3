"""Strict JSON for payment files: UTF-8, no duplicate keys, no NaN/Infinity.

Duplicate keys matter: {"amount": 1, "amount": 9} is read as 1 by some parsers and 9 by
others, so an approver's viewer and the gateway could disagree about what was signed.
"""

from __future__ import annotations

import json
from typing import Any


class JsonProblem(ValueError):
    """Bytes that are not acceptable JSON; the message says where and why."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise JsonProblem(f"duplicate key {key!r} in one object")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise JsonProblem(f"{name} is not JSON")


def parse_json_bytes(data: bytes) -> Any:
    """Parse strict JSON. A leading UTF-8 byte-order mark is tolerated (RFC 8259 allows a
    parser to ignore it, and Windows tools write one); anything else not UTF-8 is refused."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonProblem(f"not UTF-8 (byte {exc.start}: {data[exc.start:exc.start + 1]!r})") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except JsonProblem:
        raise
    except json.JSONDecodeError as exc:
        raise JsonProblem(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:
        # int() beyond 4300 digits raises ValueError; absurd nesting raises RecursionError.
        raise JsonProblem(f"not acceptable JSON: {type(exc).__name__}") from None
