"""Cross-site request forgery tokens for browser sessions.

A browser's session cookie is sent with any request the browser makes, including ones a
hostile page triggers; a token only this server can compute from that cookie is not.
Every state-changing form and dashboard request carries it (a form field or the
``X-CSRF-Token`` header). Before login, the basis is a random nonce cookie instead.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "x-csrf-token"
FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def derive_key(secret: str) -> bytes:
    """The CSRF key, derived from the server's secret key (never the key itself)."""
    return hashlib.sha256(b"wcms-csrf\x00" + secret.encode()).digest()


def token_for(key: bytes, basis: str) -> str:
    return hmac.new(key, basis.encode(), hashlib.sha256).hexdigest()[:48]


def matches(key: bytes, basis: str | None, presented: str | None) -> bool:
    if not basis or not presented:
        return False
    return hmac.compare_digest(token_for(key, basis), presented)
