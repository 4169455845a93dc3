"""Handing one message to the SMTP server: the monitors' alerts and the inner zone's notices
to agencies go out the same way (STARTTLS or implicit TLS and login as configured)."""

from __future__ import annotations

import os
import smtplib
import ssl
from email.message import EmailMessage

from .config import SmtpConfig


class MailError(Exception):
    """The mail could not be handed to the SMTP server; the message says why."""


def send(msg: EmailMessage, smtp: SmtpConfig) -> list[str]:
    """Hand one message to the SMTP server (STARTTLS/implicit TLS and login as configured).

    Returns the recipients the server refused while accepting the mail for the others.
    """
    password = None
    if smtp.username:
        password = os.environ.get(smtp.password_env or "")
        if password is None:
            raise MailError(f"smtp.password_env: environment variable {smtp.password_env} is not set")
    context = ssl.create_default_context(cafile=str(smtp.ca_file) if smtp.ca_file else None)
    try:
        if smtp.implicit_tls:
            conn = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout_seconds, context=context)
        else:
            conn = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds)
        with conn:
            conn.ehlo()
            if smtp.starttls:
                conn.starttls(context=context)
                conn.ehlo()
            if smtp.username:
                conn.login(smtp.username, password)
            refused = conn.send_message(msg)
    except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        raise MailError(f"SMTP {smtp.host}:{smtp.port}: {type(exc).__name__}: {exc}") from None
    # Some recipients refused, others not: the notice went out, so it is not retried (that would
    # mail the others again); the refusal is logged with it.
    return sorted(refused)
