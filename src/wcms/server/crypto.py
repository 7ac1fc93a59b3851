"""Secrets: issuing and checking tokens, hashing passwords, sealing payload secrets.

Tokens (enrolment tokens, agent credentials, API keys) look like ``wcmsX_<id>_<secret>``.
The id finds the row; only a SHA-256 of the 256-bit random secret is stored. A fast hash
is right here: the secret is random, so there is nothing to brute-force, and agents
authenticate often. Passwords are chosen by people and get argon2.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken

ENROLL_PREFIX = "wcmse"
AGENT_PREFIX = "wcmsa"
API_KEY_PREFIX = "wcmsk"

_hasher = PasswordHasher()


@dataclass(frozen=True, slots=True)
class IssuedToken:
    id: str
    secret_hash: str
    token: str


def issue_token(prefix: str) -> IssuedToken:
    """A new random token; keep ``secret_hash``, show ``token`` once."""
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return IssuedToken(token_id, hash_secret(secret), f"{prefix}_{token_id}_{secret}")


def parse_token(token: str, prefix: str) -> tuple[str, str] | None:
    """Split ``token`` into (id, secret), or None when it is not a ``prefix`` token."""
    parts = token.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != prefix or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, secret_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), secret_hash)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password: str, password_hash: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    return secrets.token_urlsafe(12)


class Sealer:
    """Encrypts command secrets at rest (Fernet: AES-128-CBC + HMAC-SHA256)."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(_fernet_key(key))

    def seal(self, data: dict[str, Any]) -> str:
        return self._fernet.encrypt(orjson.dumps(data)).decode()

    def unseal(self, sealed: str) -> dict[str, Any]:
        try:
            value = orjson.loads(self._fernet.decrypt(sealed.encode()))
        except InvalidToken as exc:
            raise ValueError("sealed secrets cannot be opened with this server's key") from exc
        if not isinstance(value, dict):
            raise ValueError("sealed secrets are not an object")
        return value


def _fernet_key(key: str) -> bytes:
    # Any string works as the configured key; derive Fernet's 32 bytes from it.
    return base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest())


def load_or_create_key(path: Path) -> str:
    """The key stored at ``path``, created (mode 0600) on first use."""
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    return key
