"""The transports that carry alert messages, one per channel kind."""

from __future__ import annotations

import httpx

from wcms.protocol.alerts import ChannelKind
from wcms.server.services.alerts.transports.base import (
    DEFAULT_TIMEOUT_S,
    Outgoing,
    Transport,
    TransportError,
)
from wcms.server.services.alerts.transports.discord import DiscordTransport
from wcms.server.services.alerts.transports.email import EmailTransport
from wcms.server.services.alerts.transports.slack import SlackTransport
from wcms.server.services.alerts.transports.webhook import WebhookTransport

_KINDS: dict[ChannelKind, type[Transport]] = {
    ChannelKind.DISCORD: DiscordTransport,
    ChannelKind.SLACK: SlackTransport,
    ChannelKind.WEBHOOK: WebhookTransport,
    ChannelKind.EMAIL: EmailTransport,
}


def transport_for(
    kind: str, client: httpx.AsyncClient, *, timeout: float = DEFAULT_TIMEOUT_S
) -> Transport:
    """A transport for channels of ``kind``; ValueError for a kind there is none for."""
    return _KINDS[ChannelKind(kind)](client, timeout=timeout)


__all__ = ["Outgoing", "Transport", "TransportError", "transport_for"]
