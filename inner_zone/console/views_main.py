"""The dashboard and the envelopes: search, and one envelope's whole story."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _

from tgw_common.reasons import REASONS

from . import charts
from . import dashboard as board
from . import envelopes as env
from .web import console, parse_day

bp = Blueprint("main", __name__)


@bp.get("/")
def dashboard_page():
    return redirect(url_for("main.dashboard"))


@bp.get("/dashboard")
def dashboard():
    data = board.gather(console())
    h = data["hourly"]
    throughput = charts.bars(
        "chart-throughput", _("Envelopes per hour"), h["labels"],
        [("loaded", _("loaded"), h["counts"]["loaded"]),
         ("quarantined", _("quarantined"), h["counts"]["quarantined"]),
         ("duplicate", _("duplicate"), h["counts"]["duplicate"])], unit=_("envelopes / h"))
    arrivals = charts.bars("chart-arrivals", _("Arrivals per hour"), h["labels"],
                           [("arrived", _("arrived"), h["counts"]["arrived"])], unit=_("envelopes / h"))
    latency = charts.lines(
        "chart-latency", _("Latency (seconds)"), h["labels"],
        [("p50", _("arrival to load, p50"), h["arrival_to_load_p50"]),
         ("p95", _("arrival to load, p95"), h["arrival_to_load_p95"]),
         ("proc", _("processing, p50"), h["processing_p50"])], unit="s")
    return render_template("dashboard.html", d=data, throughput=throughput, arrivals=arrivals, latency=latency,
                           hours=console().cfg.chart_hours)


@bp.get("/dashboard.json")
def dashboard_json():
    data = board.gather(console())
    data.pop("hourly")
    return jsonify(data)


@bp.get("/envelopes")
def envelopes():
    args = request.args
    form = {k: args.get(k, "").strip()[:200] for k in ("q", "agency", "envelope_id", "tracking_id", "voucher_no",
                                                       "state", "from", "until")}
    searched = any(form.values())
    results = []
    if searched:
        if form["state"] not in ("", *env.STATES):
            form["state"] = ""
        results = env.search(console(), q=form["q"], agency=form["agency"], envelope_id=form["envelope_id"],
                             tracking_id=form["tracking_id"], voucher_no=form["voucher_no"], state=form["state"],
                             day_from=parse_day(form["from"]), day_until=parse_day(form["until"]))
        if form["q"] and len(results) == 1:
            only = results[0]
            # A quarantined file that could not be read has no SHA-256: its entry is all there is.
            return redirect(url_for("main.envelope", sha=only["sha256"]) if only["sha256"]
                            else url_for("quarantine.entry", qid=only["quarantine_id"]))
    return render_template("envelopes.html", form=form, results=results, searched=searched, states=env.STATES,
                           titles=env.STATE_TITLES, limit=env.MAX_RESULTS)


@bp.get("/envelopes/lookup/<path:name>")
def lookup(name: str):
    sha = env.resolve(console(), name[:200])
    if sha is None:
        abort(404, description=_("No envelope is known by the name %(name)s.", name=name))
    return redirect(url_for("main.envelope", sha=sha))


@bp.get("/envelopes/<sha>")
def envelope(sha: str):
    if not env.is_sha256(sha):
        return redirect(url_for("main.lookup", name=sha))
    info = env.detail(console(), sha)
    if info is None:
        abort(404, description=_("No envelope with this SHA-256 is known here."))
    return render_template("envelope.html", e=info, titles=env.STATE_TITLES, reasons=REASONS)
