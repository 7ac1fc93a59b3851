"""Enrolment tokens, agent registration and agent credentials."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wcms.protocol import Inventory, RegisterRequest
from wcms.protocol.rooms import ROOM_PATTERN
from wcms.server import crypto
from wcms.server.errors import BadRequest, Conflict, NotFound, Unauthorized
from wcms.server.services.audit import Actor, record
from wcms.server.services.batching import Batcher
from wcms.server.services.clock import utcnow
from wcms.server.services.presence import CLOSE_REVOKED, Presence, inventory_fields
from wcms.server.store import credentials as cred_store
from wcms.server.store import machines as machine_store

# Verified credentials are remembered briefly so HTTP-polling agents cost one hash, not
# one query, per request. Revocation evicts at once.
_CACHE_TTL_S = 30.0


class Enrollment:
    """Issues enrolment tokens, registers agents, checks and revokes their credentials."""

    def __init__(self, engine: AsyncEngine, presence: Presence) -> None:
        self._engine = engine
        self._presence = presence
        self._verified: dict[str, tuple[str, str, float]] = {}
        self._credentials: Batcher[str, Row[Any] | None] = Batcher(
            self._load_credentials, name="credentials"
        )
        self._inventories: Batcher[tuple[str, dict[str, Any]], None] = Batcher(
            self._write_inventories, name="inventories"
        )

    async def create_token(
        self, *, uses: int, ttl_s: float, note: str | None, actor: Actor, room: str | None = None
    ) -> tuple[Row[Any], str]:
        """A token for ``uses`` enrolments within ``ttl_s``; machines it enrols start in
        ``room`` (on the room's unplaced tray) when one is given."""
        if room is not None and not re.match(ROOM_PATTERN, room):
            raise BadRequest("room has characters that are not allowed", field="room")
        issued = crypto.issue_token(crypto.ENROLL_PREFIX)
        now = utcnow()
        async with self._engine.begin() as conn:
            await cred_store.create_token(
                conn,
                {
                    "id": issued.id,
                    "secret_hash": issued.secret_hash,
                    "uses_allowed": uses,
                    "uses_count": 0,
                    "expires_at": now + timedelta(seconds=ttl_s),
                    "created_at": now,
                    "created_by": actor.name,
                    "note": note,
                    "room": room,
                },
            )
            await record(
                conn, actor, "token.create", target=issued.id, detail={"uses": uses, "ttl_s": ttl_s}
            )
            row = await cred_store.get_token(conn, issued.id)
        assert row is not None
        return row, issued.token

    async def list_tokens(self) -> Sequence[Row[Any]]:
        async with self._engine.connect() as conn:
            return await cred_store.list_tokens(conn)

    async def revoke_token(self, token_id: str, *, actor: Actor) -> None:
        async with self._engine.begin() as conn:
            if not await cred_store.revoke_token(conn, token_id, now=utcnow()):
                raise NotFound(f"no active enrolment token {token_id!r}")
            await record(conn, actor, "token.revoke", target=token_id)

    async def register(self, request: RegisterRequest, *, ip: str | None) -> str:
        """Enrol a machine with a token; returns its new credential.

        1. The token must exist, be unexpired, unrevoked and have uses left.
        2. An existing record with the same id is taken over (a reinstall: history kept,
           old credentials revoked) unless it is live or belongs to other hardware: then
           it is a second machine claiming the id, which is flagged and refused.
        3. One use of the token is consumed atomically and a credential is issued.
        """
        token = request.enrollment_token or ""
        parsed = crypto.parse_token(token, crypto.ENROLL_PREFIX)
        if parsed is None:
            raise Unauthorized("enrolment token is malformed", code="invalid_token")
        token_id, secret = parsed
        now = utcnow()
        async with self._engine.begin() as conn:
            row = await cred_store.get_token(conn, token_id)
            if row is None or not crypto.secret_matches(secret, row.secret_hash):
                raise Unauthorized("enrolment token is not valid", code="invalid_token")
            _check_token_usable(row, now=now)
            existing = await machine_store.get(conn, request.machine_id)
            if existing is not None:
                await self._refuse_if_other_machine(existing, request.inventory, ip)
            if not await cred_store.consume_token(conn, token_id, now=now):
                raise Unauthorized("enrolment token was used up just now", code="token_used_up")
            fields = inventory_fields(request.inventory, ip)
            if existing is None:
                await machine_store.create(
                    conn,
                    {
                        "id": request.machine_id,
                        "status": "offline",
                        "created_at": now,
                        "room": row.room,
                        **fields,
                    },
                )
            else:
                revoked = await cred_store.revoke_credentials(
                    conn, request.machine_id, now=now, reason="reinstalled"
                )
                self._evict(revoked)
                await machine_store.update_fields(conn, request.machine_id, fields)
            issued = crypto.issue_token(crypto.AGENT_PREFIX)
            await cred_store.create_credential(
                conn,
                {
                    "id": issued.id,
                    "machine_id": request.machine_id,
                    "secret_hash": issued.secret_hash,
                    "created_at": now,
                },
            )
            action = "machine.enroll" if existing is None else "machine.reenroll"
            await record(
                conn,
                Actor(f"token:{token_id}", ip),
                action,
                target=request.machine_id,
                detail={"hostname": request.inventory.hostname},
            )
        return issued.token

    async def _refuse_if_other_machine(
        self, existing: Row[Any], inventory: Inventory, ip: str | None
    ) -> None:
        link = self._presence.registry.get(existing.id)
        old_macs = set((existing.inventory or {}).get("macs") or [])
        new_macs = set(inventory.macs)
        other_hardware = bool(old_macs and new_macs and not old_macs & new_macs)
        if (link is not None and not link.closed) or other_hardware:
            claimant = {"hostname": inventory.hostname, "ip": ip, "macs": sorted(new_macs)}
            await self._presence.flag_conflict(existing.id, claimant=claimant)
            why = "is connected right now" if link is not None else "has other network adapters"
            raise Conflict(
                f"machine id {existing.id!r} already belongs to an enrolled machine that "
                f"{why}; a cloned disk image shares its machine id: give this machine its "
                "own id (regenerate the OS machine id, or start the agent with --machine-id)",
                code="duplicate_machine",
            )

    async def authenticate(self, credential: str) -> tuple[str, str]:
        """The (machine id, credential id) a credential belongs to; raises Unauthorized."""
        parsed = crypto.parse_token(credential, crypto.AGENT_PREFIX)
        if parsed is None:
            raise Unauthorized("agent credential is malformed", code="unknown_credential")
        cred_id, secret = parsed
        cached = self._verified.get(cred_id)
        if cached and cached[1] == secret and time.monotonic() - cached[2] < _CACHE_TTL_S:
            return cached[0], cred_id
        row = await self._credentials.submit(cred_id)
        if row is None or not crypto.secret_matches(secret, row.secret_hash):
            raise Unauthorized("agent credential is not known", code="unknown_credential")
        if row.revoked_at is not None:
            raise Unauthorized(
                f"this machine's credential was revoked ({row.revoke_reason})",
                code="credential_revoked",
            )
        self._verified[cred_id] = (row.machine_id, secret, time.monotonic())
        return row.machine_id, cred_id

    async def update_inventory(self, machine_id: str, inventory: Inventory, ip: str | None) -> None:
        await self._inventories.submit((machine_id, inventory_fields(inventory, ip)))

    async def _load_credentials(self, credential_ids: list[str]) -> list[Row[Any] | None]:
        async with self._engine.connect() as conn:
            rows = await cred_store.get_credentials(conn, set(credential_ids))
        return [rows.get(cred_id) for cred_id in credential_ids]

    async def _write_inventories(self, items: list[tuple[str, dict[str, Any]]]) -> list[None]:
        async with self._engine.begin() as conn:
            await machine_store.update_many(conn, items)
        return [None] * len(items)

    async def revoke_machine(self, machine_id: str, *, actor: Actor) -> list[str]:
        """Revoke a machine's credentials, disconnect its agent and mark it offline."""
        async with self._engine.begin() as conn:
            if await machine_store.get(conn, machine_id) is None:
                raise NotFound(f"no machine {machine_id!r}")
            revoked = await cred_store.revoke_credentials(
                conn, machine_id, now=utcnow(), reason="revoked"
            )
            await record(conn, actor, "machine.revoke", target=machine_id)
        self._evict(revoked)
        await self._presence.disconnect(machine_id, code=CLOSE_REVOKED, reason="credential_revoked")
        await self._presence.mark_offline(machine_id, "revoked")
        return revoked

    def _evict(self, credential_ids: Sequence[str]) -> None:
        for cred_id in credential_ids:
            self._verified.pop(cred_id, None)


def _check_token_usable(row: Row[Any], *, now: Any) -> None:
    if row.revoked_at is not None:
        raise Unauthorized("enrolment token was revoked", code="token_revoked")
    if row.expires_at <= now:
        raise Unauthorized("enrolment token has expired", code="token_expired")
    if row.uses_count >= row.uses_allowed:
        raise Unauthorized(
            f"enrolment token is used up ({row.uses_allowed} of {row.uses_allowed} uses)",
            code="token_used_up",
        )


async def machine_has_credential(conn: AsyncConnection, machine_id: str) -> bool:
    return await cred_store.has_live_credential(conn, machine_id)
