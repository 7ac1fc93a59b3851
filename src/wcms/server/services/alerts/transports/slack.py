"""Slack: an incoming webhook, a header, a section of up to ten lines and a context line.

Slack answers 200 ``ok``; a deleted or revoked webhook is a 403 (``invalid_token``), a
404 (``no_service``, ``channel_not_found``) or a 410 (``channel_is_archived``), which no
retry mends; a 429 says how long to wait in ``Retry-After``.
"""

from __future__ import annotations

import json
from typing import Any

from wcms.protocol.alerts import AlertMessage
from wcms.server.services.alerts.transports.base import (
    Outgoing,
    Transport,
    check_answer,
    cut,
    post,
    subject_lines,
)

# Slack's limits: a header's text, a section's text, the fallback text we keep.
HEADER_MAX = 150
SECTION_MAX = 3000
TEXT_MAX = 3000
_LINE_MAX = 200
_GONE = (403, 404, 410)


class SlackTransport(Transport):
    """Posts a Block Kit message to a Slack incoming webhook URL."""

    async def notify(self, delivery: Outgoing) -> None:
        body = json.dumps(payload(delivery.message), ensure_ascii=False).encode()
        response = await post(self, delivery, content=body)
        check_answer(response, delivery, gone=_GONE)


def payload(message: AlertMessage) -> dict[str, Any]:
    """The webhook's JSON body: ``text`` for notifications, ``blocks`` for the channel."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": cut(message.title, HEADER_MAX), "emoji": True},
        }
    ]
    lines = [f"• {escape(cut(line, _LINE_MAX))}" for line in subject_lines(message)]
    section = "\n".join([escape(message.summary), *lines] if message.summary else lines)
    if section.strip():
        text = cut(section, SECTION_MAX)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    context = [message.severity.value]
    if message.rule:
        context.append(f"rule {escape(message.rule)}")
    if message.link and message.link.startswith(("http://", "https://")):
        context.append(f"<{message.link}|open in WCMS>")
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]}
    )
    fallback = f"{message.title}: {message.summary}" if message.summary else message.title
    return {"text": cut(fallback, TEXT_MAX), "blocks": blocks}


def escape(text: str) -> str:
    """``text`` safe in Slack's mrkdwn: &, < and > are its control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
