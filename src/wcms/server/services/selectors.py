"""Turning a selector ("lab-01", "room:A101", "tag:gpu", "online", "all") into machines."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from wcms.protocol import CommandCreate
from wcms.protocol.bulk import BulkCommandCreate
from wcms.server.errors import BadRequest, NotFound
from wcms.server.store import machines as machine_store


async def resolve(conn: AsyncConnection, selector: str) -> list[str]:
    """Machine ids matched by ``selector``; several terms may be joined with commas.

    Raises NotFound (``unknown_selector``) naming the first term that matches nothing.
    """
    terms = [term.strip() for term in selector.split(",")]
    if not all(terms):
        raise BadRequest("selector has an empty term", field="selector", code="invalid_selector")
    found: dict[str, None] = {}
    for term in terms:
        ids = await _resolve_term(conn, term)
        if not ids:
            raise NotFound(f"selector {term!r} matches no machine", code="unknown_selector")
        found.update(dict.fromkeys(ids))
    return list(found)


async def resolve_request(conn: AsyncConnection, request: CommandCreate) -> list[str]:
    """The machines a command goes to: its explicit targets, or what its selector matches."""
    if not isinstance(request, BulkCommandCreate):
        return await resolve(conn, request.selector)
    targets = list(dict.fromkeys(request.targets))
    known = set(await machine_store.ids_where(conn)) if len(targets) > 50 else None
    for machine_id in targets:
        exists = (
            machine_id in known
            if known is not None
            else await machine_store.exists(conn, machine_id)
        )
        if not exists:
            raise NotFound(f"no machine {machine_id!r}", field="targets", code="unknown_machine")
    return targets


async def _resolve_term(conn: AsyncConnection, term: str) -> list[str]:
    kind, _, name = term.partition(":")
    if term == "all":
        return await machine_store.ids_where(conn)
    if term == "online":
        return await machine_store.ids_where(conn, status="online")
    if kind in ("room", "tag") and _:
        if not name:
            raise BadRequest(
                f"selector {term!r} needs a name after '{kind}:'",
                field="selector",
                code="invalid_selector",
            )
        if kind == "room":
            return await machine_store.ids_where(conn, room=name)
        return await machine_store.ids_where(conn, tag=name)
    if await machine_store.exists(conn, term):
        return [term]
    return await machine_store.ids_by_hostname(conn, term)
