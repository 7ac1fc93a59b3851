"""Dashboard pages and forms for commands: send, follow, cancel, retry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from wcms.protocol import COMMAND_TYPES, CommandCreate
from wcms.protocol.bounds import INT64_MAX
from wcms.protocol.bulk import BulkCommandCreate
from wcms.protocol.commands import COMMAND_STATES, CommandFilter
from wcms.server.api.deps import CommandsDep, MachinesDep
from wcms.server.errors import BadRequest
from wcms.server.services.commands import Commands
from wcms.server.services.machines import Machines
from wcms.server.web.deps import CheckedForm, WebActor, WebUser
from wcms.server.web.fleet import filtered_machines
from wcms.server.web.forms import HARMLESS_TYPES, payload_from
from wcms.server.web.render import address, render, whole_number

router = APIRouter(include_in_schema=False)

CommandId = Annotated[int, Path(ge=1, le=2**62)]
MachineId = Annotated[str, Path(max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")]


PAGE = 50


@router.get("/commands")
async def commands_page(request: Request, commands: CommandsDep, user: WebUser) -> Response:
    context = await _command_list(commands, request)
    return render(
        request,
        "commands.html",
        title="Commands",
        user=user,
        types=list(COMMAND_TYPES),
        states=COMMAND_STATES,
        **context,
    )


@router.get("/commands/table")
async def commands_table(request: Request, commands: CommandsDep, _: WebUser) -> Response:
    """The list as its filters or a live change refresh it; the address bar follows the
    filters, so a reload, a bookmark or Back shows the same list."""
    context = await _command_list(commands, request)
    response = render(request, "commands_table.html", **context)
    response.headers["HX-Replace-Url"] = address("/commands", context["q"])
    return response


async def _command_list(commands: Commands, request: Request) -> dict[str, Any]:
    params = request.query_params
    q = {k: params.get(k, "").strip()[:128] for k in ("type", "state", "selector", "user")}
    if q["state"] not in COMMAND_STATES:
        q["state"] = ""
    before_id = whole_number(params.get("before_id", ""), maximum=INT64_MAX)
    where = CommandFilter(
        type=q["type"] or None,
        state=q["state"] or None,
        selector=q["selector"] or None,
        created_by=q["user"] or None,
    )
    rows = await commands.list_commands(limit=PAGE + 1, before_id=before_id, where=where)
    return {
        "q": q,
        "commands": rows[:PAGE],
        "older": rows[PAGE - 1].id if len(rows) > PAGE else None,
        "paged": before_id is not None,
    }


@router.get("/commands/{command_id}")
async def command_page(
    command_id: CommandId, request: Request, commands: CommandsDep, user: WebUser
) -> Response:
    command = await commands.get(command_id)
    destructive = command.type not in HARMLESS_TYPES
    return render(
        request, "command.html", title="Command", user=user, c=command, destructive=destructive
    )


@router.get("/commands/{command_id}/runs")
async def command_runs(
    command_id: CommandId, request: Request, commands: CommandsDep, _: WebUser
) -> Response:
    command = await commands.get(command_id)
    return render(request, "command_runs.html", c=command)


@router.get("/commands/{command_id}/progress")
async def command_progress(
    command_id: CommandId,
    request: Request,
    commands: CommandsDep,
    _: WebUser,
    output: int = 0,
    sent: int = 0,
) -> Response:
    """The live progress block a sent command shows, with each machine's output when
    ``output`` is 1 and the "sent" notice when ``sent`` is 1."""
    command = await commands.get(command_id)
    return render(
        request,
        "command_progress.html",
        c=command,
        show_output=bool(output),
        sent=bool(sent),
        refreshed=True,
    )


@router.post("/commands/{command_id}/cancel")
async def cancel(
    command_id: CommandId, commands: CommandsDep, actor: WebActor, _: CheckedForm
) -> Response:
    await commands.cancel(command_id, actor=actor)
    return RedirectResponse(f"/commands/{command_id}", status_code=303)


@router.post("/commands/{command_id}/retry")
async def retry(
    command_id: CommandId, commands: CommandsDep, actor: WebActor, _: CheckedForm
) -> Response:
    await commands.retry(command_id, actor=actor)
    return RedirectResponse(f"/commands/{command_id}", status_code=303)


@router.post("/pc/{machine_id}/command")
async def send_to_machine(
    machine_id: MachineId,
    request: Request,
    commands: CommandsDep,
    machines: MachinesDep,
    actor: WebActor,
    form: CheckedForm,
) -> Response:
    """The machine page's command form; answers with the command's live progress."""
    await machines.get(machine_id)
    request_body = _command(CommandCreate, form, selector=machine_id)
    command_id = await commands.create(request_body, actor=actor)
    command = await commands.get(command_id)
    return render(request, "command_progress.html", c=command, show_output=True, sent=True)


@router.post("/machines/bulk")
async def send_to_many(
    request: Request,
    commands: CommandsDep,
    machines: MachinesDep,
    actor: WebActor,
    form: CheckedForm,
) -> Response:
    """A bulk action from the machines list or a room: the selection, every machine
    matching the list's filters, or a whole room."""
    room = str(form.get("room_all") or "")
    if room:
        body = _command(CommandCreate, form, selector=f"room:{room}")
    else:
        targets = await _selection(machines, form)
        label = f"{len(targets)} selected" if len(targets) > 1 else targets[0]
        body = _command(BulkCommandCreate, form, selector=label, targets=targets)
    command_id = await commands.create(body, actor=actor)
    command = await commands.get(command_id)
    return render(request, "command_progress.html", c=command, show_output=False, sent=True)


async def _selection(machines: Machines, form: FormData) -> list[str]:
    if form.get("all_matching"):
        query = {k: str(form.get("f_" + k) or "") for k in ("q", "room", "tag", "status", "sort")}
        targets = [m.id for m in await filtered_machines(machines, query)]
    else:
        targets = [str(v) for v in form.getlist("ids")]
    if not targets:
        raise BadRequest("select at least one machine", field="ids", code="empty_selection")
    return targets


def _command(model: Any, form: FormData, **fields: Any) -> Any:
    command_type = str(form.get("type") or "")
    try:
        return model.model_validate(
            {"type": command_type, "payload": payload_from(command_type, form), **fields}
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise BadRequest(f"{where}: {error['msg']}", field=where) from None
