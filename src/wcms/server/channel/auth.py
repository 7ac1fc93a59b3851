"""Who an agent request comes from: its credential and its session."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Request

from wcms.protocol import ErrorCode
from wcms.server.api.deps import CoreDep
from wcms.server.channel.links import HttpLink
from wcms.server.errors import Unauthorized

SESSION_HEADER = "x-wcms-session"


def bearer(headers: Mapping[str, str]) -> str:
    authorization = headers.get("authorization", "")
    if not authorization.lower().startswith("bearer "):
        raise Unauthorized(
            "agent requests need 'Authorization: Bearer CREDENTIAL'",
            code=ErrorCode.UNKNOWN_CREDENTIAL,
        )
    return authorization[7:].strip()


def session_of(headers: Mapping[str, str]) -> str:
    session = headers.get(SESSION_HEADER, "").strip()
    return session[:64] if session else f"anon-{secrets.token_hex(8)}"


async def agent_machine(request: Request, core: CoreDep) -> str:
    """The machine id behind the request's agent credential."""
    machine_id, _ = await core.enrollment.authenticate(bearer(request.headers))
    return machine_id


AgentMachine = Annotated[str, Depends(agent_machine)]


async def agent_link(request: Request, core: CoreDep, machine_id: AgentMachine) -> HttpLink:
    """The HTTP link of the calling agent session, attached (and so online) on first use."""
    session = session_of(request.headers)
    link = core.registry.get(machine_id)
    if not isinstance(link, HttpLink) or link.session_id != session or link.closed:
        link = HttpLink(machine_id, session)
        await core.presence.attach(link)
    link.touch()
    return link


AgentLinkDep = Annotated[HttpLink, Depends(agent_link)]
