"""Signing in and out, and changing one's own password."""

from __future__ import annotations

from flask import Blueprint, g, render_template, request
from flask_babel import gettext as _

from tgw_common.db import transaction
from tgw_common.reasons import Refusal
from tgw_common.web.account_views import add_account_routes, login_form, signed_in
from tgw_common.web.redirects import safe_next

from .. import audit
from ..models import Agency, User
from ..netaccess import ip_allowed
from .helpers import portal, refusal_page, refuse, who

bp = Blueprint("auth", __name__)


@bp.get("/login")
def login():
    agency = request.args.get("agency", "").strip()[:16]
    if agency:
        # The agency is known before any password: its allow-list already applies.
        with transaction(portal().engine) as s:
            known = s.get(Agency, agency) is not None
        if known and not ip_allowed(portal().engine, agency, g.ip):
            audit.record(portal().engine, "ip_refused", actor="-", agency=agency, ip=g.ip, outcome="refused",
                         reason="IP_NOT_ALLOWED", path="login")
            return refusal_page(refuse("IP_NOT_ALLOWED", _("address %(ip)s is not on agency %(agency)s's allow-list",
                                                           ip=g.ip, agency=agency)))
    return render_template("login.html", agency=agency, username="", next=safe_next(request.args.get("next")))


@bp.post("/login")
def login_post():
    form = request.form
    agency = form.get("agency", "").strip().upper()[:16]
    username, password = login_form()
    try:
        key, principal = portal().signin.login(agency=agency, username=username, password=password, ip=g.ip)
    except Refusal as refusal:
        page, status, headers = refusal_page(refusal, "login.html", agency=agency, username=username,
                                             next=safe_next(form.get("next")))
        return page, status, headers
    return signed_in(key, principal.must_change_password, "portal.home")


add_account_routes(bp, signin=lambda: portal().signin, current_user=who, user_model=User, home="portal.home")
