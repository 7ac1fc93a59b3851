"""The transport contract: one delivery in, sent or a :class:`TransportError` out.

A transport knows one kind of channel (Discord, Slack, a generic webhook, email): how to
render an :class:`~wcms.protocol.alerts.AlertMessage` for it and how to read its
answer. It never retries, waits for a backoff or touches the database: the outbox does
that from what the error says (permanent or not, the status, how long to wait).
"""

from __future__ import annotations

import email.utils
import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import httpx

from wcms.protocol.alerts import AlertMessage

# Seconds one attempt may take, unless the outbox's settings say otherwise.
DEFAULT_TIMEOUT_S = 10.0
# What of an answer's body goes into an attempt's error: enough to say what was wrong.
_BODY_EXCERPT = 200


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One attempt at one delivery, with the channel's URL and secret in clear (for the
    transport only: they appear in no log and no error)."""

    delivery_id: str
    message: AlertMessage
    url: str
    secret: str | None
    attempt: int  # 1 for the first


class TransportError(Exception):
    """The message was not delivered. ``permanent``: sending it again cannot help (the
    webhook was deleted, the credentials are refused); otherwise the outbox retries,
    after ``retry_after`` seconds when the receiver said how long to wait (a rate
    limit), else after its backoff. ``status``: the HTTP status or SMTP reply code."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.status = status
        self.retry_after = retry_after


class Transport(ABC):
    """Sends messages to channels of one kind.

    One instance serves every channel of its kind, concurrently for different channels
    (the outbox sends one message at a time to any one channel), so whatever it keeps
    between calls (a rate-limit bucket) is keyed by the channel's URL.
    """

    def __init__(self, client: httpx.AsyncClient, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.client = client
        self.timeout = timeout

    @abstractmethod
    async def notify(self, delivery: Outgoing) -> None:
        """Send ``delivery.message`` to ``delivery.url``; return once the receiver has
        accepted it, or raise :class:`TransportError`. Must finish within about
        ``self.timeout`` seconds (a transient error when it cannot), and must not put
        the URL or the secret in the error."""


async def post(
    transport: Transport,
    delivery: Outgoing,
    *,
    content: bytes,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST ``content`` to the delivery's URL; a network failure or a timeout as a
    transient :class:`TransportError`, a URL httpx refuses as a permanent one."""
    sent_headers = {"Content-Type": "application/json", **(headers or {})}
    try:
        return await transport.client.post(
            delivery.url, content=content, headers=sent_headers, timeout=transport.timeout
        )
    except httpx.TimeoutException as exc:
        raise TransportError(
            f"no answer within {transport.timeout:g} s ({type(exc).__name__})", permanent=False
        ) from None
    except httpx.UnsupportedProtocol:
        raise TransportError("the URL's scheme is not http or https", permanent=True) from None
    except httpx.InvalidURL:
        raise TransportError("the URL is not valid", permanent=True) from None
    except httpx.TransportError as exc:
        reason = scrubbed(f"{type(exc).__name__}: {exc}", delivery)
        raise TransportError(reason, permanent=False) from None


def check_answer(response: httpx.Response, delivery: Outgoing, *, gone: tuple[int, ...]) -> None:
    """Nothing for a 2xx answer; else the :class:`TransportError` it means: 429 waits
    for its ``Retry-After``; 408 and 5xx are transient; ``gone`` (the webhook was
    deleted) and any other 4xx are permanent; a redirect is permanent too (a webhook
    URL that moved is one to fix)."""
    status = response.status_code
    if 200 <= status < 300:
        return
    said = excerpt(response, delivery)
    if status == 429:
        wait = retry_after_header(response) or 1.0
        raise TransportError(
            f"rate limited: retry after {wait:g} s{said}",
            permanent=False,
            status=status,
            retry_after=wait,
        )
    if status == 408 or status >= 500:
        raise TransportError(f"HTTP {status}{said}", permanent=False, status=status)
    reason = "the webhook is gone" if status in gone else f"refused with HTTP {status}"
    raise TransportError(f"{reason}{said}", permanent=True, status=status)


def retry_after_header(response: httpx.Response) -> float | None:
    """The seconds a ``Retry-After`` header asks for (a number, or an HTTP date)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    seconds = seconds_in(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def seconds_in(value: str | float | None) -> float | None:
    """``value`` as a number of seconds from 0 to a day, or None when it is not one."""
    if value is None or isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, 86400.0)


def excerpt(response: httpx.Response, delivery: Outgoing) -> str:
    """``": <the start of the answer's body>"``, or nothing for an empty one."""
    text = " ".join(response.text.split())[:_BODY_EXCERPT]
    return f": {scrubbed(text, delivery)}" if text else ""


def scrubbed(text: str, delivery: Outgoing) -> str:
    """``text`` without the channel's URL or secret, should a library have quoted them."""
    for secret in (delivery.url, delivery.secret):
        if secret:
            text = text.replace(secret, "***")
    return text


def cut(text: str, limit: int) -> str:
    """``text`` of at most ``limit`` characters, ending in … when it was longer."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def subject_lines(message: AlertMessage, *, shown: int = 10) -> list[str]:
    """The message's lines (its subjects when it has no lines), at most ``shown`` of
    them, then "… and N more"."""
    lines = message.lines or message.subjects
    kept = lines[:shown]
    if len(lines) > shown:
        kept = [*kept, f"… and {len(lines) - shown} more"]
    return kept
