"""Keeping secrets out of what agents send back: output masked and capped."""

from __future__ import annotations

from collections.abc import Sequence

from wcms.protocol.commands import REDACTED
from wcms.server.crypto import Sealer


def secret_values(sealer: Sealer, sealed: str | None) -> list[str]:
    """The clear values of a command's sealed secrets, to mask in what its runs report."""
    if not sealed:
        return []
    values: list[str] = []
    for value in sealer.unseal(sealed).values():
        values += [str(v) for v in value.values()] if isinstance(value, dict) else [str(value)]
    return [v for v in values if v]


def mask(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret replaced by ``***``, the longest first (a secret that
    contains another is masked whole)."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def cap(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to ``limit`` UTF-8 bytes, and whether it was cut."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return text, False
    return data[:limit].decode("utf-8", errors="ignore"), True
