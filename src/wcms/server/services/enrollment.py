"""Enrolment tokens, agent registration and agent credentials."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.protocol import CloseCode, EnrollTokenOut, ErrorCode, Inventory, RegisterRequest
from wcms.protocol.rooms import ROOM_PATTERN
from wcms.server import crypto
from wcms.server.errors import BadRequest, Conflict, NotFound, Unauthorized
from wcms.server.services.audit import Actor, record
from wcms.server.services.batching import Batcher
from wcms.server.services.clock import utcnow
from wcms.server.services.presence import Presence
from wcms.server.store import credentials as cred_store
from wcms.server.store import machines as machine_store
from wcms.server.store.credentials import (
    CredentialRecord,
    EnrollTokenRecord,
    NewCredential,
    NewEnrollToken,
)
from wcms.server.store.engine import Database
from wcms.server.store.machines import InventoryFields, MachineRecord, NewMachine

# Verified credentials are remembered briefly so HTTP-polling agents cost one hash, not
# one query, per request. Revocation evicts at once.
_CACHE_TTL_S = 30.0


class Enrollment:
    """Issues enrolment tokens, registers agents, checks and revokes their credentials."""

    def __init__(self, db: Database, presence: Presence) -> None:
        self._db = db
        self._presence = presence
        self._verified: dict[str, tuple[str, str, float]] = {}
        self._credentials: Batcher[str, CredentialRecord | None] = Batcher(
            self._load_credentials, name="credentials"
        )
        self._inventories: Batcher[tuple[str, InventoryFields], None] = Batcher(
            self._write_inventories, name="inventories"
        )

    async def create_token(
        self, *, uses: int, ttl_s: float, note: str | None, actor: Actor, room: str | None = None
    ) -> tuple[EnrollTokenOut, str]:
        """A token for ``uses`` enrolments within ``ttl_s``, and its secret (also in the
        answer's ``token``; shown once). Machines it enrols start in ``room`` (on the
        room's unplaced tray) when one is given."""
        if room is not None and not re.match(ROOM_PATTERN, room):
            raise BadRequest("room has characters that are not allowed", field="room")
        issued = crypto.issue_token(crypto.ENROLL_PREFIX)
        now = utcnow()
        new = NewEnrollToken(
            id=issued.id,
            secret_hash=issued.secret_hash,
            uses_allowed=uses,
            expires_at=now + timedelta(seconds=ttl_s),
            created_at=now,
            created_by=actor.name,
            note=note,
            room=room,
        )
        async with self._db.begin() as conn:
            await cred_store.create_token(conn, new)
            await record(
                conn, actor, "token.create", target=issued.id, detail={"uses": uses, "ttl_s": ttl_s}
            )
            created = await cred_store.get_token(conn, issued.id)
        assert created is not None
        return token_out(created, issued.token), issued.token

    async def list_tokens(self) -> list[EnrollTokenOut]:
        async with self._db.connect() as conn:
            return [token_out(token) for token in await cred_store.list_tokens(conn)]

    async def revoke_token(self, token_id: str, *, actor: Actor) -> None:
        async with self._db.begin() as conn:
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
            raise Unauthorized("enrolment token is malformed", code=ErrorCode.INVALID_TOKEN)
        token_id, secret = parsed
        now = utcnow()
        async with self._db.begin() as conn:
            found = await cred_store.get_token(conn, token_id)
            if found is None or not crypto.secret_matches(secret, found.secret_hash):
                raise Unauthorized("enrolment token is not valid", code=ErrorCode.INVALID_TOKEN)
            _check_token_usable(found, now=now)
            existing = await machine_store.get(conn, request.machine_id)
            if existing is not None:
                await self._refuse_if_other_machine(existing, request.inventory, ip)
            if not await cred_store.consume_token(conn, token_id, now=now):
                raise Unauthorized(
                    "enrolment token was used up just now", code=ErrorCode.TOKEN_USED_UP
                )
            credential = await self._admit(conn, request, found, existing=existing, ip=ip)
            action = "machine.enroll" if existing is None else "machine.reenroll"
            await record(
                conn,
                Actor(f"token:{token_id}", ip),
                action,
                target=request.machine_id,
                detail={"hostname": request.inventory.hostname},
            )
        return credential

    async def _admit(
        self,
        conn: AsyncConnection,
        request: RegisterRequest,
        token: EnrollTokenRecord,
        *,
        existing: MachineRecord | None,
        ip: str | None,
    ) -> str:
        """Create (or take over) the machine's record and issue its credential."""
        now = utcnow()
        fields = inventory_fields(request.inventory, ip)
        if existing is None:
            machine = NewMachine(
                id=request.machine_id, room=token.room, created_at=now, fields=fields
            )
            await machine_store.create(conn, machine)
        else:
            revoked = await cred_store.revoke_credentials(
                conn, request.machine_id, now=now, reason="reinstalled"
            )
            self._evict(revoked)
            await machine_store.set_inventory(conn, request.machine_id, fields)
        issued = crypto.issue_token(crypto.AGENT_PREFIX)
        credential = NewCredential(
            id=issued.id,
            machine_id=request.machine_id,
            secret_hash=issued.secret_hash,
            created_at=now,
        )
        await cred_store.create_credential(conn, credential)
        return issued.token

    async def _refuse_if_other_machine(
        self, existing: MachineRecord, inventory: Inventory, ip: str | None
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
                code=ErrorCode.DUPLICATE_MACHINE,
            )

    async def authenticate(self, credential: str) -> tuple[str, str]:
        """The (machine id, credential id) a credential belongs to; raises Unauthorized."""
        parsed = crypto.parse_token(credential, crypto.AGENT_PREFIX)
        if parsed is None:
            raise Unauthorized("agent credential is malformed", code=ErrorCode.UNKNOWN_CREDENTIAL)
        cred_id, secret = parsed
        cached = self._verified.get(cred_id)
        if cached and cached[1] == secret and time.monotonic() - cached[2] < _CACHE_TTL_S:
            return cached[0], cred_id
        found = await self._credentials.submit(cred_id)
        if found is None or not crypto.secret_matches(secret, found.secret_hash):
            raise Unauthorized("agent credential is not known", code=ErrorCode.UNKNOWN_CREDENTIAL)
        if found.revoked_at is not None:
            raise Unauthorized(
                f"this machine's credential was revoked ({found.revoke_reason})",
                code=ErrorCode.CREDENTIAL_REVOKED,
            )
        self._verified[cred_id] = (found.machine_id, secret, time.monotonic())
        return found.machine_id, cred_id

    async def update_inventory(self, machine_id: str, inventory: Inventory, ip: str | None) -> None:
        await self._inventories.submit((machine_id, inventory_fields(inventory, ip)))

    async def _load_credentials(self, credential_ids: list[str]) -> list[CredentialRecord | None]:
        async with self._db.connect() as conn:
            found = await cred_store.get_credentials(conn, set(credential_ids))
        return [found.get(cred_id) for cred_id in credential_ids]

    async def _write_inventories(self, items: list[tuple[str, InventoryFields]]) -> list[None]:
        async with self._db.begin() as conn:
            await machine_store.set_inventories(conn, items)
        return [None] * len(items)

    async def revoke_machine(self, machine_id: str, *, actor: Actor) -> list[str]:
        """Revoke a machine's credentials, disconnect its agent and mark it offline."""
        async with self._db.begin() as conn:
            if not await machine_store.exists(conn, machine_id):
                raise NotFound(f"no machine {machine_id!r}")
            revoked = await cred_store.revoke_credentials(
                conn, machine_id, now=utcnow(), reason="revoked"
            )
            await record(conn, actor, "machine.revoke", target=machine_id)
        self._evict(revoked)
        await self._presence.disconnect(
            machine_id, code=CloseCode.REVOKED, reason="credential_revoked"
        )
        await self._presence.mark_offline(machine_id, "revoked")
        return revoked

    def _evict(self, credential_ids: Sequence[str]) -> None:
        for cred_id in credential_ids:
            self._verified.pop(cred_id, None)


def token_out(token: EnrollTokenRecord, secret: str | None = None) -> EnrollTokenOut:
    """An enrolment token as the API and the dashboard show it; the secret only at
    creation."""
    return EnrollTokenOut(
        id=token.id,
        uses=token.uses_allowed,
        used=token.uses_count,
        expires_at=token.expires_at,
        created_at=token.created_at,
        revoked=token.revoked_at is not None,
        note=token.note,
        room=token.room,
        token=secret,
    )


def inventory_fields(inventory: Inventory, ip: str | None) -> InventoryFields:
    """The machine columns an agent's inventory report sets."""
    os_label = inventory.os_pretty or " ".join(
        part for part in (inventory.os_name, inventory.os_version) if part
    )
    return InventoryFields(
        hostname=inventory.hostname,
        os=os_label[:255],
        agent_version=inventory.agent_version,
        ip=ip or (inventory.ips[0] if inventory.ips else None),
        inventory=inventory.model_dump(mode="json"),
        updated_at=utcnow(),
    )


def _check_token_usable(token: EnrollTokenRecord, *, now: datetime) -> None:
    if token.revoked_at is not None:
        raise Unauthorized("enrolment token was revoked", code=ErrorCode.TOKEN_REVOKED)
    if token.expires_at <= now:
        raise Unauthorized("enrolment token has expired", code=ErrorCode.TOKEN_EXPIRED)
    if token.uses_count >= token.uses_allowed:
        raise Unauthorized(
            f"enrolment token is used up ({token.uses_allowed} of {token.uses_allowed} uses)",
            code=ErrorCode.TOKEN_USED_UP,
        )


async def machine_has_credential(conn: AsyncConnection, machine_id: str) -> bool:
    return await cred_store.has_live_credential(conn, machine_id)
