"""Admin users, login sessions and API keys."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from wcms.server import crypto
from wcms.server.errors import BadRequest, Conflict, NotFound, Unauthorized
from wcms.server.services.audit import Actor, record
from wcms.server.services.clock import utcnow
from wcms.server.store import accounts as store

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
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._key_touched: dict[str, datetime] = {}

    async def has_users(self) -> bool:
        async with self._engine.connect() as conn:
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
        if len(password) < MIN_PASSWORD_LENGTH:
            raise BadRequest(
                f"password must have at least {MIN_PASSWORD_LENGTH} characters", field="password"
            )
        try:
            async with self._engine.begin() as conn:
                user_id = await store.create_user(
                    conn,
                    {
                        "username": username,
                        "password_hash": await asyncio.to_thread(crypto.hash_password, password),
                        "role": role,
                        "created_at": utcnow(),
                        "disabled": False,
                    },
                )
                await record(conn, actor, "user.create", target=username)
        except IntegrityError as exc:
            raise Conflict(f"user {username!r} already exists", field="username") from exc
        return user_id

    async def list_users(self) -> Sequence[Row[Any]]:
        async with self._engine.connect() as conn:
            return await store.list_users(conn)

    async def set_password(self, username: str, password: str, *, actor: Actor) -> None:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise BadRequest(
                f"password must have at least {MIN_PASSWORD_LENGTH} characters", field="password"
            )
        async with self._engine.begin() as conn:
            password_hash = await asyncio.to_thread(crypto.hash_password, password)
            if not await store.set_password(conn, username, password_hash):
                raise NotFound(f"no user {username!r}")
            await record(conn, actor, "user.password", target=username)

    async def login(self, username: str, password: str, *, ip: str | None) -> str:
        """Check a password and open a session; returns the session token."""
        async with self._engine.connect() as conn:
            user = await store.get_user(conn, username)
        # argon2 is deliberately slow: keep it off the event loop.
        matches = user is not None and await asyncio.to_thread(
            crypto.password_matches, password, user.password_hash
        )
        if user is None or user.disabled or not matches:
            async with self._engine.begin() as conn:
                await record(conn, Actor(username, ip), "auth.login_failed")
            raise Unauthorized("wrong username or password", code="bad_login")
        token = secrets.token_urlsafe(32)
        now = utcnow()
        async with self._engine.begin() as conn:
            await store.create_session(
                conn,
                {
                    "id": crypto.hash_secret(token),
                    "user_id": user.id,
                    "created_at": now,
                    "expires_at": now + SESSION_TTL,
                },
            )
            await store.touch_login(conn, user.id, now=now)
            await record(conn, Actor(username, ip), "auth.login")
        return token

    async def logout(self, token: str) -> None:
        async with self._engine.begin() as conn:
            await store.delete_session(conn, crypto.hash_secret(token))

    async def principal_for_session(self, token: str) -> Principal | None:
        async with self._engine.connect() as conn:
            user = await store.session_user(conn, crypto.hash_secret(token), now=utcnow())
        return Principal(user.username, user.id, "session") if user is not None else None

    async def principal_for_key(self, key: str) -> Principal | None:
        parsed = crypto.parse_token(key, crypto.API_KEY_PREFIX)
        if parsed is None:
            return None
        key_id, secret = parsed
        async with self._engine.connect() as conn:
            row = await store.get_api_key(conn, key_id)
        if (
            row is None
            or row.revoked_at is not None
            or not crypto.secret_matches(secret, row.secret_hash)
        ):
            return None
        now = utcnow()
        touched = self._key_touched.get(key_id)
        if touched is None or now - touched >= KEY_TOUCH_INTERVAL:
            self._key_touched[key_id] = now
            async with self._engine.begin() as conn:
                await store.touch_api_key(conn, key_id, now=now)
        return Principal(f"key:{row.name}", row.user_id, "api_key")

    async def create_api_key(self, name: str, *, actor: Actor) -> tuple[Row[Any], str]:
        issued = crypto.issue_token(crypto.API_KEY_PREFIX)
        async with self._engine.begin() as conn:
            await store.create_api_key(
                conn,
                {
                    "id": issued.id,
                    "name": name,
                    "secret_hash": issued.secret_hash,
                    "created_at": utcnow(),
                },
            )
            await record(conn, actor, "api_key.create", target=issued.id, detail={"name": name})
            row = await store.get_api_key(conn, issued.id)
        assert row is not None
        return row, issued.token

    async def list_api_keys(self) -> Sequence[Row[Any]]:
        async with self._engine.connect() as conn:
            return await store.list_api_keys(conn)

    async def revoke_api_key(self, key_id: str, *, actor: Actor) -> None:
        async with self._engine.begin() as conn:
            if not await store.revoke_api_key(conn, key_id, now=utcnow()):
                raise NotFound(f"no active API key {key_id!r}")
            await record(conn, actor, "api_key.revoke", target=key_id)
