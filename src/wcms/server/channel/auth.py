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
# The session of every plain HTTP request that names none (see agent_link).
IMPLICIT_HTTP_SESSION = "http-default"


def bearer(headers: Mapping[str, str]) -> str:
    authorization = headers.get("authorization", "")
    if not authorization.lower().startswith("bearer "):
        raise Unauthorized(
            "agent requests need 'Authorization: Bearer CREDENTIAL'",
            code=ErrorCode.UNKNOWN_CREDENTIAL,
        )
    return authorization[7:].strip()


def session_of(headers: Mapping[str, str], *, implicit: str | None = None) -> str:
    """The agent session named by the ``X-WCMS-Session`` header; without one,
    ``implicit``, or else a new random session (a WebSocket is a session of its own)."""
    session = headers.get(SESSION_HEADER, "").strip()
    if session:
        return session[:64]
    return implicit or f"anon-{secrets.token_hex(8)}"


async def agent_machine(request: Request, core: CoreDep) -> str:
    """The machine id behind the request's agent credential."""
    machine_id, _ = await core.enrollment.authenticate(bearer(request.headers))
    return machine_id


AgentMachine = Annotated[str, Depends(agent_machine)]


async def agent_link(request: Request, core: CoreDep, machine_id: AgentMachine) -> HttpLink:
    """The HTTP link of the calling agent session, attached (and so online) on first use.

    The real agent names its session in ``X-WCMS-Session`` (one per process). Requests
    that name none share one implicit session per machine, ``http-default``: a simple
    poller's heartbeats and polls, from one thread or several, are one session, so its
    heartbeat does not end its own pending poll and it is never taken for a clone of
    itself. (Two such pollers on one machine id are not told apart either.)
    """
    session = session_of(request.headers, implicit=IMPLICIT_HTTP_SESSION)
    link = core.registry.get(machine_id)
    if not isinstance(link, HttpLink) or link.session_id != session or link.closed:
        link = HttpLink(machine_id, session)
        await core.presence.attach(link)
    link.touch()
    return link


AgentLinkDep = Annotated[HttpLink, Depends(agent_link)]
