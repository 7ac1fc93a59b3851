"""The agent API over plain HTTP: for agents behind proxies that break WebSockets.

The seed's endpoints, unchanged in path: register, heartbeat, command (long-poll),
command/result, shutdown.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from wcms.protocol import (
    CommandPoll,
    ErrorCode,
    HeartbeatRequest,
    RegisterRequest,
    RegisterResponse,
    RunProgress,
    RunUpdate,
    ShutdownNotice,
)
from wcms.protocol.bounds import INT64_MAX
from wcms.protocol.programs import ProgramReport, ProgramReportAck
from wcms.server.api.deps import CoreDep, client_ip
from wcms.server.channel.auth import AgentLinkDep, AgentMachine, bearer
from wcms.server.channel.links import HttpLink
from wcms.server.core import Core
from wcms.server.errors import BadRequest, Forbidden
from wcms.server.services.clock import utcnow

router = APIRouter(prefix="/api/client", tags=["agent"])

# The longest ``wait`` a poll may name: the largest poll_timeout a server accepts
# (Settings.poll_timeout). Each server waits at most its own poll_timeout.
MAX_POLL_WAIT_S = 300.0
REVISION_HELP = (
    "The program set revision the agent holds (protocol 3): the answer carries the "
    "machine's programs when it is not the server's"
)
WAIT_HELP = (
    "Seconds to wait for work when there is none; default and maximum: the server's "
    "poll_timeout (WCMS_POLL_TIMEOUT, 25 s unless set; at most 300), a longer wait is "
    "cut to it; 0 answers at once"
)


@router.post("/register", response_model=RegisterResponse)
async def register(body: RegisterRequest, request: Request, core: CoreDep) -> RegisterResponse:
    """Enrol with an enrolment token (a credential is returned once), or, with the
    agent's credential, refresh the machine's inventory."""
    _check_version(body.protocol_version)
    ip = client_ip(request)
    credential = None
    if body.enrollment_token:
        credential = await core.enrollment.register(body, ip=ip)
    else:
        machine_id, _ = await core.enrollment.authenticate(bearer(request.headers))
        if machine_id != body.machine_id:
            raise Forbidden(
                f"this credential belongs to machine {machine_id!r}, not {body.machine_id!r}",
                code=ErrorCode.MACHINE_MISMATCH,
            )
        await core.enrollment.update_inventory(machine_id, body.inventory, ip)
    return RegisterResponse(
        machine_id=body.machine_id,
        credential=credential,
        heartbeat_interval=core.settings.heartbeat_interval,
        poll_timeout=core.settings.poll_timeout,
    )


@router.post("/heartbeat")
async def heartbeat(body: HeartbeatRequest, core: CoreDep, link: AgentLinkDep) -> dict[str, object]:
    core.heartbeats.submit(link.machine_id, body.status)
    return {"ok": True, "server_time": utcnow().isoformat()}


@router.get("/command", response_model=CommandPoll)
async def poll_commands(
    request: Request,
    core: CoreDep,
    link: AgentLinkDep,
    wait: Annotated[float | None, Query(ge=0, le=MAX_POLL_WAIT_S, description=WAIT_HELP)] = None,
    programs_revision: Annotated[
        int | None,
        Query(ge=0, le=INT64_MAX, description=REVISION_HELP),
    ] = None,
) -> Response:
    """Runs to start and runs to cancel. When there are none the poll waits for some:
    ``wait`` seconds, by default (and at most) the server's ``poll_timeout``, which the
    register answer gives; ``wait=0`` answers at once.

    A client that hangs up while its poll waits has gone: its link is dropped as a
    closed WebSocket is, and the machine goes offline after ``offline_grace`` unless
    the session comes back first.

    An agent that supervises programs (protocol 3) names the ``programs_revision`` it
    holds; the answer carries the machine's programs when that is not the server's, and
    a change to them wakes the waiting poll.
    """
    poll = await _poll(core, link, programs_revision)
    limit = core.settings.poll_timeout
    seconds = limit if wait is None else min(wait, limit)
    if poll.runs or poll.cancels or poll.programs or seconds <= 0 or link.closed:
        return _answer(poll, programs_revision)
    if await link.wait(seconds, hangup=_hangup(request)):
        if not link.polling:  # another poll of the session still waits: not gone
            await core.presence.detach(link)
        return _answer(CommandPoll(), programs_revision)  # nobody is left to read it
    if link.closed:
        return _answer(CommandPoll(), programs_revision)  # replaced or revoked meanwhile
    return _answer(await _poll(core, link, programs_revision), programs_revision)


async def _poll(core: Core, link: HttpLink, programs_revision: int | None) -> CommandPoll:
    poll = await core.commands.poll(link.machine_id, cancels=link.take_cancels())
    if programs_revision is not None:
        poll.programs = await core.programs.stale_set(link.machine_id, programs_revision)
    return poll


def _answer(poll: CommandPoll, programs_revision: int | None) -> Response:
    """The poll's answer; an agent that named no program revision (before protocol 3)
    gets the answer it always got, without ``programs``."""
    leave_out = {"programs"} if programs_revision is None else set()
    return Response(poll.model_dump_json(exclude=leave_out), media_type="application/json")


@router.post("/command/result")
async def command_result(body: RunUpdate, core: CoreDep, link: AgentLinkDep) -> dict[str, bool]:
    """A run started or finished; 200 means it is stored."""
    await core.commands.apply_update(link.machine_id, body)
    return {"ok": True}


@router.post("/programs", response_model=ProgramReportAck)
async def program_report(
    body: ProgramReport, core: CoreDep, link: AgentLinkDep
) -> ProgramReportAck:
    """Statuses and state changes of the machine's programs (protocol 3); the answer
    acknowledges the changes stored, and carries the programs when the agent's
    revision is stale."""
    return await core.programs.apply_report(link.machine_id, body)


@router.post("/command/progress")
async def command_progress(body: RunProgress, core: CoreDep, link: AgentLinkDep) -> dict[str, bool]:
    """Live output and progress of a running run (protocol 2); best effort."""
    return {"ok": await core.progress.apply(link.machine_id, body)}


@router.post("/shutdown")
async def shutdown(
    body: ShutdownNotice, core: CoreDep, machine_id: AgentMachine
) -> dict[str, bool]:
    """The machine is shutting down (or its agent is stopping): offline at once."""
    link = core.registry.get(machine_id)
    if link is not None:
        await core.presence.detach(link, reason=body.reason)
    else:
        await core.presence.mark_offline(machine_id, body.reason)
    return {"ok": True}


async def _hangup(request: Request) -> None:
    """Return once the client has hung up: the ASGI server says ``http.disconnect``."""
    while (await request.receive())["type"] != "http.disconnect":
        pass  # the request body (empty for a poll): the next message is the hang-up


def _check_version(version: int) -> None:
    if version < 1:
        raise BadRequest(f"protocol version {version} is not supported", field="protocol_version")
