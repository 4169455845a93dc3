"""Who may talk to the service: the portal's origin for the API, the service itself for its page.

CORS alone would only stop a page from reading the answers, not the requests from arriving,
so every request is checked here first: the Host (against DNS rebinding: a hostile name
resolving to 127.0.0.1 still sends its own Host), then the Origin.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Response, jsonify, request

API_PREFIX = "/v1/"


@dataclass(frozen=True)
class Origins:
    listen: str  # 127.0.0.1:PORT
    portal: str  # https://portal.example

    @property
    def own(self) -> str:
        return f"http://{self.listen}"

    def refusal(self) -> Response | None:
        """None if the request may go on; else the 403 to answer."""
        if request.host != self.listen:
            return _forbidden("HOST_REFUSED", f"this service answers {self.listen} only, not {request.host!r}")
        origin = request.headers.get("Origin")
        if request.path.startswith(API_PREFIX):
            if origin != self.portal:
                return _forbidden("ORIGIN_REFUSED", f"origin {origin!r} may not use this service")
            return None
        # The service's own pages: a navigation (no Origin on GET) or the page's own form.
        if request.method == "GET" and origin in (None, self.own):
            return None
        if origin != self.own or request.headers.get("Sec-Fetch-Site", "same-origin") != "same-origin":
            return _forbidden("ORIGIN_REFUSED", "the confirmation is accepted from this service's own page only")
        return None

    def preflight(self) -> Response:
        """The answer to a CORS (and Private Network Access) preflight from the portal."""
        response = Response(status=204)
        response.headers["Access-Control-Allow-Methods"] = "GET, POST"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        response.headers["Access-Control-Max-Age"] = "600"
        if request.headers.get("Access-Control-Request-Private-Network") == "true":
            response.headers["Access-Control-Allow-Private-Network"] = "true"
        return response

    def allow_portal(self, response: Response) -> Response:
        if request.path.startswith(API_PREFIX):
            response.headers["Access-Control-Allow-Origin"] = self.portal
        response.vary.add("Origin")
        return response


def _forbidden(code: str, message: str) -> Response:
    response = jsonify({"error": code, "message": message})
    response.status_code = 403
    return response
