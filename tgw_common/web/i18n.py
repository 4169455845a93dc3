"""The web pages' language: Flask-Babel catalogs, zh-TW by default, English by a switch.

Texts in templates and views are written in English as gettext message ids; the zh-TW words
are in each package's `translations/zh_Hant_TW/LC_MESSAGES/messages.po` (compiled to `.mo`
beside it, both committed, so an installed wheel needs no build step). A zone's app reads its
own catalog first, then the shared one here (tgw_common/web/translations).

The user's choice lives in the `tgw_lang` cookie for a year: it is a preference, not a
credential, so it outlives sessions and needs no CSRF token. Pages ignore Accept-Language on
purpose (treasury staff expect Chinese unless they switch); requests the zone marks as
machine requests (the portal's API) without the cookie follow Accept-Language instead, zh-TW
unless English is preferred.

A refusal's reason title is translated by `reason_title(code)`: its ids are the reason
table's English meanings and `make translations` copies their zh-TW words from that table.

`make translations` extracts the ids, updates the catalogs and compiles them;
tests/foundation/test_catalogs.py fails when a catalog lags its sources.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from flask import Blueprint, Flask, redirect, request, url_for
from flask_babel import Babel, gettext
from werkzeug.wrappers import Response

from tgw_common.reasons import REASONS

from .redirects import safe_next

DEFAULT = "zh_Hant_TW"
# code in the URL and cookie -> (Babel locale, HTML lang tag, the switch's label in that language)
LANGUAGES: Mapping[str, tuple[str, str, str]] = {
    "zh-TW": (DEFAULT, "zh-Hant-TW", "中文"),
    "en": ("en", "en", "English"),
}
COOKIE = "tgw_lang"
COOKIE_SECONDS = 365 * 24 * 3600
SHARED_CATALOGS = Path(__file__).parent / "translations"
LANGUAGE_ENDPOINT = "tgw_lang.choose"

bp = Blueprint("tgw_lang", __name__)


def language_code() -> str:
    """The code ('zh-TW' or 'en') this request's pages are in."""
    chosen = request.cookies.get(COOKIE, "")
    return chosen if chosen in LANGUAGES else "zh-TW"


def _locale_selector(negotiate: Callable[[], bool]) -> Callable[[], str]:
    def select() -> str:
        if COOKIE not in request.cookies and negotiate():
            best = request.accept_languages.best_match(["zh-TW", "zh", "en"], default="zh-TW")
            return "en" if best == "en" else DEFAULT
        return LANGUAGES[language_code()][0]

    return select


def reason_title(code: str) -> str:
    """A reason code's short meaning in the request's language (the code itself if unknown)."""
    info = REASONS.get(code)
    return gettext(info.en) if info else code


@bp.get("/lang/<code>")
def choose(code: str) -> Response:
    """Keep `code` in the cookie and go back where the user was (a local path only)."""
    back = safe_next(request.args.get("next")) or "/"
    response = redirect(back)
    if code in LANGUAGES:
        response.set_cookie(COOKIE, code, max_age=COOKIE_SECONDS, httponly=True, samesite="Lax",
                            secure=request.is_secure, path="/")
    return response


def _page_language() -> dict[str, object]:
    code = language_code()
    here = request.full_path if request.method == "GET" else None
    switches = [(other, label, url_for(LANGUAGE_ENDPOINT, code=other, next=safe_next(here)))
                for other, (_locale, _tag, label) in LANGUAGES.items() if other != code]
    return {"html_lang": LANGUAGES[code][1], "language_switches": switches}


def init_babel(app: Flask, negotiate: Callable[[], bool]) -> None:
    """Catalogs of the app (its `translations/` folder) and the shared ones; the switch route.
    `negotiate()` tells a machine request, whose language may come from Accept-Language."""
    own = Path(app.root_path) / "translations"
    app.config["BABEL_DEFAULT_LOCALE"] = DEFAULT
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = ";".join(str(p) for p in (own, SHARED_CATALOGS))
    Babel(app, locale_selector=_locale_selector(negotiate))
    app.register_blueprint(bp)
    app.jinja_env.globals["reason_title"] = reason_title
    app.context_processor(_page_language)
