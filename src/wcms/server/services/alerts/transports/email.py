"""Email over SMTP, to ``smtp://user:pass@host:port?to=a@b,c@d[&from=x@y]``.

``smtp://`` (port 587 unless given) upgrades with STARTTLS when the server offers it and
stays plain when it does not (a relay on the local network); ``smtps://`` (port 465) is
TLS from the first byte. The sender is ``from=`` or ``wcms@<this host>``. The
Message-ID is made from the delivery id, so a mail sent again (a retry after a lost
answer) is one a mail client recognises as the same.

A refused login or a 5xx reply is permanent; a 4xx reply (greylisting, a full mailbox
queue), a refused connection or a timeout is retried.
"""

from __future__ import annotations

import asyncio
import email.utils
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from wcms.protocol.alerts import AlertMessage
from wcms.server.services.alerts.transports.base import (
    Outgoing,
    Transport,
    TransportError,
    cut,
    scrubbed,
    subject_lines,
)
from wcms.server.services.clock import utcnow

SUBJECT_MAX = 200
# A mail can hold every subject; past this many the rest are counted.
LINES_MAX = 200


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """Where and how an email channel sends, read from its URL."""

    host: str
    port: int
    implicit_tls: bool
    username: str | None
    password: str | None
    sender: str
    recipients: tuple[str, ...]


def target(url: str) -> SmtpTarget:
    """The SMTP server, login and addresses an email channel's URL names."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise TransportError("the URL is not smtp:// or smtps:// with a host", permanent=True)
    query = parse_qs(parts.query)
    recipients = tuple(
        address.strip()
        for value in query.get("to", [])
        for address in value.split(",")
        if address.strip()
    )
    if not recipients:
        raise TransportError("the URL names no recipient (?to=ADDRESS)", permanent=True)
    implicit_tls = parts.scheme == "smtps"
    try:
        port = parts.port or (465 if implicit_tls else 587)
    except ValueError:
        raise TransportError("the URL's port is not a number", permanent=True) from None
    senders = query.get("from") or [f"wcms@{socket.gethostname()}"]
    return SmtpTarget(
        host=parts.hostname,
        port=port,
        implicit_tls=implicit_tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        sender=senders[0],
        recipients=recipients,
    )


class EmailTransport(Transport):
    """Sends a plain-text mail through the channel's SMTP server."""

    async def notify(self, delivery: Outgoing) -> None:
        where = target(delivery.url)
        mail = compose(delivery.message, delivery_id=delivery.delivery_id, target=where)
        try:
            async with asyncio.timeout(self.timeout):
                await aiosmtplib.send(
                    mail,
                    hostname=where.host,
                    port=where.port,
                    username=where.username,
                    password=where.password,
                    use_tls=where.implicit_tls,
                    # None: STARTTLS when the server offers it, plain when it does not.
                    start_tls=False if where.implicit_tls else None,
                    timeout=self.timeout,
                )
        except TimeoutError:
            raise TransportError(
                f"the SMTP server did not answer within {self.timeout:g} s", permanent=False
            ) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise _translated(exc, delivery, where) from None


def compose(message: AlertMessage, *, delivery_id: str, target: SmtpTarget) -> EmailMessage:
    """The mail: subject the title, body the summary, the subjects and the link."""
    mail = EmailMessage()
    mail["Subject"] = cut(" ".join(message.title.split()), SUBJECT_MAX)
    mail["From"] = target.sender
    mail["To"] = ", ".join(target.recipients)
    mail["Date"] = email.utils.format_datetime(utcnow())
    domain = target.sender.rpartition("@")[2] or "wcms"
    mail["Message-ID"] = f"<{delivery_id}@{domain}>"
    mail["X-WCMS-Delivery"] = delivery_id
    mail.set_content(body(message))
    return mail


def body(message: AlertMessage) -> str:
    parts = [message.summary] if message.summary else []
    lines = subject_lines(message, shown=LINES_MAX)
    if lines:
        parts.append("\n".join(f"- {line}" for line in lines))
    if message.link:
        parts.append(message.link)
    footer = f"WCMS · {message.severity.value}"
    if message.rule:
        footer += f" · rule {message.rule}"
    parts.append(f"-- \n{footer}")
    return "\n\n".join(parts) + "\n"


def _translated(exc: BaseException, delivery: Outgoing, where: SmtpTarget) -> TransportError:
    """The TransportError an SMTP failure means, without the channel's password."""
    secrets = Outgoing(delivery.delivery_id, delivery.message, delivery.url, where.password, 0)
    reason = scrubbed(f"{type(exc).__name__}: {exc}", secrets)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return TransportError(f"login refused: {reason}", permanent=True, status=exc.code)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [refused.code for refused in exc.recipients]
        status = max(codes) if codes else None
        permanent = bool(codes) and min(codes) >= 500
        return TransportError(f"recipients refused: {reason}", permanent=permanent, status=status)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return TransportError(reason, permanent=exc.code >= 500, status=exc.code)
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return TransportError(reason, permanent=True)
    if isinstance(exc, ssl.SSLCertVerificationError) or isinstance(
        exc.__cause__, ssl.SSLCertVerificationError
    ):
        return TransportError(f"the server's certificate: {reason}", permanent=True)
    return TransportError(reason, permanent=False)
