"""The service's Flask app: the portal's API (/v1/...) and the officer's confirmation page."""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from flask import Flask, Response, abort, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from tgw_common.config import SignerConfig
from tgw_common.pki.certs import der, fingerprint
from tgw_common.pki.pkcs11key import Card, CardError, PinRefused
from tgw_common.web import headers

from .origins import Origins
from .pending import DECLINED, PENDING, SIGNED, Request, Requests, TooManyRequests
from .signing import sign_on_card
from .summary import NotSignable, read_request

log = logging.getLogger("tgw.agency.signer")
GIVEN = ("payload", "approval", "sealed")


class HeldPin:
    """The PIN given at start (terminal or file), or none: then the officer types it on the page.

    A held PIN the card refuses is dropped at once, so it is never tried a second time.
    """

    def __init__(self, pin: str | None) -> None:
        self.pin = pin or None

    def forget(self) -> None:
        self.pin = None


@dataclass(frozen=True)
class Service:
    card: Card
    origins: Origins
    requests: Requests
    held: HeldPin


def card_of(cfg: SignerConfig) -> Card:
    if cfg.pkcs11_uri:
        return Card.from_uri(cfg.pkcs11_uri, module=cfg.pkcs11_module)
    return Card(module=cfg.pkcs11_module, token_label=cfg.token_label, key_label=cfg.key_label,
                key_id=bytes.fromhex(cfg.key_id) if cfg.key_id else None)


def create_app(cfg: SignerConfig, *, held_pin: str | None = None) -> Flask:
    service = Service(card=card_of(cfg), origins=Origins(cfg.listen, cfg.portal_origin),
                      requests=Requests(cfg.request_ttl_seconds), held=HeldPin(held_pin))
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.json.ensure_ascii = False
    app.config["MAX_CONTENT_LENGTH"] = cfg.max_request_bytes * 4 // 3 + 4096  # base64 in JSON
    _hooks(app, service)
    _api(app, service)
    _page(app, service)
    return app


def _hooks(app: Flask, service: Service) -> None:
    @app.before_request
    def check_origin():
        refused = service.origins.refusal()
        if refused is not None:
            log.warning("refused", extra={"origin": request.headers.get("Origin"), "path": request.path})
            return refused
        if request.method == "OPTIONS":
            return service.origins.preflight()
        return None

    @app.after_request
    def secure(response: Response) -> Response:
        return headers.secure(service.origins.allow_portal(response))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return _error(exc.code or 500, "HTTP_" + str(exc.code), exc.description or exc.name)


def _api(app: Flask, service: Service) -> None:
    @app.post("/v1/sign")
    def new_request():
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("role"), str):
            return _error(400, "BAD_REQUEST", 'a JSON object with "role" and one of "payload", "approval", "sealed"')
        given = [k for k in GIVEN if k in body]
        if len(given) != 1 or not isinstance(body[given[0]], str):
            return _error(400, "BAD_REQUEST", 'exactly one of "payload", "approval", "sealed" (base64)')
        try:
            data = base64.b64decode(body[given[0]], validate=True)
            to_sign = read_request(body["role"], given[0], data)
            pending = service.requests.add(to_sign)
        except binascii.Error:
            return _error(400, "BAD_REQUEST", f'"{given[0]}" is not base64')
        except NotSignable as exc:
            return _error(422, "NOT_SIGNABLE", str(exc))
        except TooManyRequests as exc:
            return _error(429, "TOO_MANY_REQUESTS", str(exc))
        answer = _status(pending) | {"confirm_url": f"{service.origins.own}/confirm/{pending.id}"}
        return jsonify(answer), 202

    @app.get("/v1/requests/<request_id>")
    def request_status(request_id: str):
        pending = service.requests.get(request_id)
        if pending is None:
            return _error(404, "NO_SUCH_REQUEST", "no such request (or it was forgotten)")
        return jsonify(_status(pending))

    @app.get("/v1/certificate")
    def card_certificate():
        # No PIN: the certificate is a public object on the token, and registering it signs nothing.
        try:
            cert = service.card.certificate()
        except CardError as exc:
            return _error(503, "CARD_ERROR", str(exc))
        return jsonify(_certificate(cert, service.card))


def _page(app: Flask, service: Service) -> None:
    @app.get("/confirm/<request_id>")
    def confirm_page(request_id: str):
        return _render(service, _found(service, request_id))

    @app.post("/confirm/<request_id>")
    def confirm(request_id: str):
        pending = _found(service, request_id)
        with pending.lock:
            if pending.state != PENDING:
                return _render(service, pending)
            if request.form.get("token") != pending.confirm_token:
                return _error(403, "CONFIRMATION_REFUSED", "this confirmation did not come from the request's page")
            if request.form.get("action") == "decline":
                pending.state = DECLINED
                return _render(service, pending)
            held = service.held.pin
            pin = held or request.form.get("pin", "")
            if not pin:
                return _render(service, pending, problem="請輸入 PIN 碼 Type the card's PIN", status=400)
            try:
                pending.result, pending.signer_subject = sign_on_card(service.card, pin, pending.to_sign)
            except PinRefused as exc:
                pending.last_error = "PIN_INCORRECT"
                if held:
                    service.held.forget()
                log.warning("wrong PIN", extra={"request": pending.id})
                return _render(service, pending, problem=str(exc), status=400)
            except CardError as exc:
                pending.last_error = "CARD_ERROR"
                return _render(service, pending, problem=str(exc), status=500)
            pending.state, pending.last_error = SIGNED, None
            log.info("signed", extra={"request": pending.id, "sha256": pending.to_sign.sha256})
            return _render(service, pending)


def _found(service: Service, request_id: str) -> Request:
    pending = service.requests.get(request_id)
    if pending is None:
        abort(404, "no such request (or it was forgotten)")
    return pending


def _render(service: Service, pending: Request, *, problem: str | None = None, status: int = 200):
    return render_template("confirm.html", r=pending, s=pending.to_sign, problem=problem,
                           pin_on_page=service.held.pin is None, card=service.card.describe()), status


def _status(pending: Request) -> dict:
    s = pending.to_sign
    answer = {
        "request_id": pending.id, "state": pending.state, "role": s.role, "given": s.given,
        "summary": {"agency": s.agency, "envelope_id": s.envelope_id, "document_count": s.document_count,
                    "total_amount": s.total_amount, "sha256": s.sha256, "signatures_so_far": s.signatures_so_far,
                    "recipients": s.recipients},
    }
    if pending.last_error:
        answer["last_error"] = pending.last_error
    if pending.state == SIGNED and pending.result is not None:
        answer["result_kind"] = "release" if s.given == "sealed" else "approval"
        answer["result"] = base64.b64encode(pending.result).decode()
        answer["signer"] = pending.signer_subject
    return answer


def _certificate(cert: x509.Certificate, card: Card) -> dict:
    return {
        "token": card.token_label,
        "pem": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "der": base64.b64encode(der(cert)).decode(),
        "subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string(),
        "serial": format(cert.serial_number, "x"),
        "not_before": cert.not_valid_before_utc.isoformat(), "not_after": cert.not_valid_after_utc.isoformat(),
        "sha256": fingerprint(cert),
    }


def _error(status: int, code: str, message: str):
    return jsonify({"error": code, "message": message}), status
