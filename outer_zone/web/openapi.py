"""GET /api/v1/openapi.json: the agencies' API described as OpenAPI 3.1, for anyone.

The document is outer_zone/web/openapi.yaml (package data), the one source of truth; it is
read and turned into JSON once per process, so serving it costs nothing and no request can
make the portal read a file. It needs no token: it describes the routes, never their data,
and client generators must be able to fetch it before they hold one.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files

import yaml
from flask import Blueprint, Response

bp = Blueprint("openapi", __name__)

PATH = "/api/v1/openapi.json"


@cache
def document() -> dict:
    return yaml.safe_load(files(__package__).joinpath("openapi.yaml").read_text(encoding="utf-8"))


@cache
def _as_json() -> bytes:
    return json.dumps(document(), ensure_ascii=False, indent=1).encode()


@bp.get(PATH)
def openapi_json() -> Response:
    return Response(_as_json(), mimetype="application/json")
