"""The generic webhook: the JSON of PRODUCT.md ("Alerts"), signed with the channel's key.

Headers: ``X-WCMS-Delivery`` (the delivery id, the same on every retry, so a receiver
drops a copy it already has) and, when the channel has a secret,
``X-WCMS-Signature: sha256=<hex HMAC-SHA256 of the body's bytes>``. 2xx is delivered; a
410 says the receiver is gone for good, any other 4xx that the request is refused (both
permanent); a 429 waits for its ``Retry-After``; 408 and 5xx are retried.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from wcms.protocol.alerts import AlertMessage
from wcms.server.services.alerts.transports.base import Outgoing, Transport, check_answer, post

DELIVERY_HEADER = "X-WCMS-Delivery"
SIGNATURE_HEADER = "X-WCMS-Signature"


class WebhookTransport(Transport):
    """Posts :meth:`AlertMessage.webhook_body` to any http(s) URL."""

    async def notify(self, delivery: Outgoing) -> None:
        content = body(delivery.message)
        headers = {DELIVERY_HEADER: delivery.delivery_id}
        if delivery.secret:
            headers[SIGNATURE_HEADER] = signature(delivery.secret, content)
        response = await post(self, delivery, content=content, headers=headers)
        check_answer(response, delivery, gone=(410,))


def body(message: AlertMessage) -> bytes:
    """The exact bytes sent and signed."""
    return json.dumps(message.webhook_body(), separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: str, content: bytes) -> str:
    """``sha256=<hex>``: the HMAC-SHA256 of ``content`` keyed with ``secret``."""
    digest = hmac.new(secret.encode(), content, hashlib.sha256).hexdigest()
    return f"sha256={digest}"
