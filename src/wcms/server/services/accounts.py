"""Admin users, login sessions and API keys."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError

from wcms.protocol import ApiKeyOut
from wcms.server import crypto
from wcms.server.errors import BadRequest, Conflict, NotFound, Unauthorized
from wcms.server.services.audit import Actor, record
from wcms.server.services.clock import utcnow
from wcms.server.store import accounts as store
from wcms.server.store.accounts import ApiKeyRecord, NewApiKey, NewSession, NewUser, UserRecord
from wcms.server.store.engine import Database

SESSION_TTL = timedelta(hours=12)
# An API key's "last used" is kept to the minute: writing it on every call would make
# each read-only request a write transaction.
KEY_TOUCH_INTERVAL = timedelta(minutes=1)
MIN_PASSWORD_LENGTH = 8


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated admin: a user (via session) or an API key."""

    name: str
    user_id: int | None
    via: str


class Accounts:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._key_touched: dict[str, datetime] = {}

    async def has_users(self) -> bool:
        async with self._db.connect() as conn:
            return await store.count_users(conn) > 0

    async def create_user(
        self, username: str, password: str, *, actor: Actor, role: str = "admin"
    ) -> int:
        if (
            not username
            or len(username) > 64
            or not username.replace("-", "").replace("_", "").replace(".", "").isalnum()
        ):
            raise BadRequest(
                "username must be 1-64 letters, digits, '.', '-' or '_'", field="username"
            )
        _check_password(password)
        # argon2 is deliberately slow: keep it off the event loop (and out of the
        # transaction).
        password_hash = await asyncio.to_thread(crypto.hash_password, password)
        user = NewUser(
            username=username, password_hash=password_hash, role=role, created_at=utcnow()
        )
        try:
            async with self._db.begin() as conn:
                user_id = await store.create_user(conn, user)
                await record(conn, actor, "user.create", target=username)
        except IntegrityError as exc:
            raise Conflict(f"user {username!r} already exists", field="username") from exc
        return user_id

    async def list_users(self) -> list[UserRecord]:
        async with self._db.connect() as conn:
            return await store.list_users(conn)

    async def set_password(self, username: str, password: str, *, actor: Actor) -> None:
        _check_password(password)
        password_hash = await asyncio.to_thread(crypto.hash_password, password)
        async with self._db.begin() as conn:
            if not await store.set_password(conn, username, password_hash):
                raise NotFound(f"no user {username!r}")
            await record(conn, actor, "user.password", target=username)

    async def login(self, username: str, password: str, *, ip: str | None) -> str:
        """Check a password and open a session; returns the session token."""
        async with self._db.connect() as conn:
            user = await store.get_login(conn, username)
        matches = user is not None and await asyncio.to_thread(
            crypto.password_matches, password, user.password_hash
        )
        if user is None or user.disabled or not matches:
            async with self._db.begin() as conn:
                await record(conn, Actor(username, ip), "auth.login_failed")
            raise Unauthorized("wrong username or password", code="bad_login")
        token = secrets.token_urlsafe(32)
        now = utcnow()
        session = NewSession(
            id=crypto.hash_secret(token),
            user_id=user.id,
            created_at=now,
            expires_at=now + SESSION_TTL,
        )
        async with self._db.begin() as conn:
            await store.create_session(conn, session)
            await store.touch_login(conn, user.id, now=now)
            await record(conn, Actor(username, ip), "auth.login")
        return token

    async def logout(self, token: str) -> None:
        async with self._db.begin() as conn:
            await store.delete_session(conn, crypto.hash_secret(token))

    async def principal_for_session(self, token: str) -> Principal | None:
        async with self._db.connect() as conn:
            user = await store.session_user(conn, crypto.hash_secret(token), now=utcnow())
        return Principal(user.username, user.id, "session") if user is not None else None

    async def principal_for_key(self, key: str) -> Principal | None:
        parsed = crypto.parse_token(key, crypto.API_KEY_PREFIX)
        if parsed is None:
            return None
        key_id, secret = parsed
        async with self._db.connect() as conn:
            found = await store.get_api_key(conn, key_id)
        if (
            found is None
            or found.revoked_at is not None
            or not crypto.secret_matches(secret, found.secret_hash)
        ):
            return None
        now = utcnow()
        touched = self._key_touched.get(key_id)
        if touched is None or now - touched >= KEY_TOUCH_INTERVAL:
            self._key_touched[key_id] = now
            async with self._db.begin() as conn:
                await store.touch_api_key(conn, key_id, now=now)
        return Principal(f"key:{found.name}", found.user_id, "api_key")

    async def create_api_key(self, name: str, *, actor: Actor) -> tuple[ApiKeyOut, str]:
        """A new key and its secret (also in the answer's ``key``; shown once)."""
        issued = crypto.issue_token(crypto.API_KEY_PREFIX)
        new = NewApiKey(
            id=issued.id, name=name, secret_hash=issued.secret_hash, created_at=utcnow()
        )
        async with self._db.begin() as conn:
            await store.create_api_key(conn, new)
            await record(conn, actor, "api_key.create", target=issued.id, detail={"name": name})
            created = await store.get_api_key(conn, issued.id)
        assert created is not None
        return key_out(created, issued.token), issued.token

    async def list_api_keys(self) -> list[ApiKeyOut]:
        async with self._db.connect() as conn:
            return [key_out(found) for found in await store.list_api_keys(conn)]

    async def revoke_api_key(self, key_id: str, *, actor: Actor) -> None:
        async with self._db.begin() as conn:
            if not await store.revoke_api_key(conn, key_id, now=utcnow()):
                raise NotFound(f"no active API key {key_id!r}")
            await record(conn, actor, "api_key.revoke", target=key_id)


def key_out(key: ApiKeyRecord, secret: str | None = None) -> ApiKeyOut:
    """An API key as the API and the dashboard show it; the secret only at creation."""
    return ApiKeyOut(
        id=key.id,
        name=key.name,
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        revoked=key.revoked_at is not None,
        key=secret,
    )


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadRequest(
            f"password must have at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )
