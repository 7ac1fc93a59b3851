"""Discord: an incoming webhook, one embed a message, within Discord's limits.

Discord answers every webhook call with its bucket's state (``X-RateLimit-Remaining``,
``X-RateLimit-Reset-After``): once a bucket is empty, the next message to that webhook
waits for it to refill instead of earning a 429. A 429 says how long to wait in its
body's ``retry_after`` (seconds) or its ``Retry-After`` header.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from datetime import datetime
from typing import Any

import httpx

from wcms.protocol.alerts import AlertMessage, DeliveryKind, Severity
from wcms.server.services.alerts.transports.base import (
    DEFAULT_TIMEOUT_S,
    Outgoing,
    Transport,
    TransportError,
    check_answer,
    cut,
    post,
    retry_after_header,
    seconds_in,
    subject_lines,
)
from wcms.server.services.clock import utcnow

# Discord's limits on one embed and on one message's embeds together.
TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FOOTER_MAX = 2048
FIELDS_MAX = 25
EMBEDS_MAX = 10
TOTAL_MAX = 6000
# One subject line: ten of them and "… and N more" fit in one field's value.
_LINE_MAX = 90

_COLOURS = {
    Severity.CRITICAL: 0xE74C3C,
    Severity.WARNING: 0xF39C12,
    Severity.INFO: 0x3498DB,
}
_RESOLVED = 0x2ECC71
_TEST = 0x95A5A6
# 404: the webhook was deleted; 401 / 403: its token is no longer valid.
_GONE = (401, 403, 404)


class DiscordTransport(Transport):
    """Posts one embed per message to a Discord webhook URL."""

    def __init__(self, client: httpx.AsyncClient, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        super().__init__(client, timeout=timeout)
        # When each webhook's bucket refills (monotonic), keyed by a hash of its URL.
        self._refills: dict[str, float] = {}

    async def notify(self, delivery: Outgoing) -> None:
        bucket = hashlib.sha256(delivery.url.encode()).hexdigest()
        await self._wait_for_bucket(bucket)
        body = json.dumps(payload(delivery.message), ensure_ascii=False).encode()
        response = await post(self, delivery, content=body)
        self._note_bucket(bucket, response)
        if response.status_code == 429:
            wait = _retry_after(response)
            self._refills[bucket] = time.monotonic() + wait
            raise TransportError(
                f"rate limited by Discord: retry after {wait:g} s",
                permanent=False,
                status=429,
                retry_after=wait,
            )
        check_answer(response, delivery, gone=_GONE)

    async def _wait_for_bucket(self, bucket: str) -> None:
        """Wait for an empty bucket to refill; when that is longer than one attempt may
        take, leave the wait to the outbox (which lets other channels go meanwhile)."""
        refill = self._refills.get(bucket)
        if refill is None:
            return
        wait = refill - time.monotonic()
        if wait <= 0:
            del self._refills[bucket]
            return
        if wait > self.timeout:
            raise TransportError(
                f"Discord's rate limit for this webhook resets in {wait:.1f} s",
                permanent=False,
                retry_after=wait,
            )
        await asyncio.sleep(wait)
        self._refills.pop(bucket, None)

    def _note_bucket(self, bucket: str, response: httpx.Response) -> None:
        remaining = response.headers.get("x-ratelimit-remaining")
        reset_after = seconds_in(response.headers.get("x-ratelimit-reset-after"))
        if remaining is not None and remaining.strip() == "0" and reset_after:
            self._refills[bucket] = time.monotonic() + reset_after
        else:
            self._refills.pop(bucket, None)


def _retry_after(response: httpx.Response) -> float:
    try:
        said = response.json()
    except ValueError:
        said = None
    from_body = seconds_in(said.get("retry_after")) if isinstance(said, dict) else None
    if from_body is not None:
        return from_body
    return (
        retry_after_header(response)
        or seconds_in(response.headers.get("x-ratelimit-reset-after"))
        or 1.0
    )


def payload(message: AlertMessage) -> dict[str, Any]:
    """The webhook's JSON body: one embed within Discord's limits."""
    embed: dict[str, Any] = {
        "title": cut(message.title, TITLE_MAX),
        "color": colour(message),
        "timestamp": _moment(message).isoformat(),
    }
    if message.link and message.link.startswith(("http://", "https://")):
        embed["url"] = message.link
    fields: list[dict[str, Any]] = []
    lines = [cut(line, _LINE_MAX) for line in subject_lines(message)]
    if lines:
        count = len(message.lines or message.subjects)
        name = "Subject" if count == 1 else f"Subjects ({count})"
        value = cut("\n".join(lines), FIELD_VALUE_MAX)
        fields.append({"name": cut(name, FIELD_NAME_MAX), "value": value, "inline": False})
    embed["fields"] = fields[:FIELDS_MAX]
    footer = cut(_footer(message), FOOTER_MAX)
    embed["footer"] = {"text": footer}
    # Whatever is left of the 6000 characters of a message goes to the description.
    used = len(embed["title"]) + len(footer)
    used += sum(len(field["name"]) + len(field["value"]) for field in embed["fields"])
    room = min(DESCRIPTION_MAX, TOTAL_MAX - used)
    if message.summary and room > 0:
        embed["description"] = cut(message.summary, room)
    return {"embeds": [embed][:EMBEDS_MAX]}


def colour(message: AlertMessage) -> int:
    if message.kind is DeliveryKind.RESOLVED:
        return _RESOLVED
    if message.kind is DeliveryKind.TEST:
        return _TEST
    return _COLOURS.get(message.severity, _COLOURS[Severity.WARNING])


def _footer(message: AlertMessage) -> str:
    parts = ["WCMS", message.severity.value]
    if message.rule:
        parts.append(f"rule {message.rule}")
    return " · ".join(parts)


def _moment(message: AlertMessage) -> datetime:
    if message.kind is DeliveryKind.RESOLVED and message.resolved_at is not None:
        return message.resolved_at
    return message.started_at or utcnow()
