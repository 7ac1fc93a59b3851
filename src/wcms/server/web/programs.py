"""Dashboard pages and forms for programs (game servers): a machine's list, a program's
page, start / stop / restart / remove, and the form that adds one.

Actions answer with an ``HX-Trigger`` of ``wcms-program-one`` so that the list or the page
that sent them refreshes at once; the bus's ``program`` events refresh them for every
other viewer. The console and the chart are the browser's: it calls the API itself
(``program_logs`` and ``program_send`` commands, ``…/history``) with its session.
"""

from __future__ import annotations

import json
import shlex
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from pydantic import ValidationError
from starlette.responses import Response

from wcms.protocol.program_admin import PRESETS, ProgramCreate, ProgramOut
from wcms.protocol.programs import RestartPolicy
from wcms.server.api.deps import MachinesDep, ProgramsDep
from wcms.server.errors import Conflict, WcmsError
from wcms.server.services.programs import Programs
from wcms.server.web.deps import CheckedForm, WebActor, WebUser
from wcms.server.web.render import render

router = APIRouter(include_in_schema=False)

MachineId = Annotated[str, Path(max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")]
ProgramName = Annotated[str, Path(min_length=1, max_length=64)]
Action = Literal["start", "stop", "restart", "remove"]
# The add form's text fields, as ProgramCreate names them.
FORM_FIELDS = ("name", "preset", "command", "cwd", "restart", "stop_command", "probe", "schedule")
EVENTS_SHOWN = 50
# Messages of the form's own checks and of the model's most common refusals; others
# are shown as the model words them.
_MESSAGES = {
    "missing": "Required.",
    "string_pattern_mismatch": "Use letters, digits, '.', '_' or '-' (at most 64).",
    "string_too_long": "Too long.",
    "string_too_short": "Required.",
    "too_short": "Required.",
}


def form_context() -> dict[str, Any]:
    """What the add form needs besides its values and errors."""
    return {"presets": PRESETS, "policies": [policy.value for policy in RestartPolicy]}


async def machine_programs(programs: Programs, machine_id: str) -> list[ProgramOut]:
    return [p for p in await programs.list_programs(machine_id) if p.machine == machine_id]


@router.get("/pc/{machine_id}/programs")
async def programs_table(
    machine_id: MachineId,
    request: Request,
    machines: MachinesDep,
    programs: ProgramsDep,
    _: WebUser,
) -> Response:
    """The machine page's list of programs, as it refreshes."""
    machine = await machines.get(machine_id)
    found = await machine_programs(programs, machine_id)
    return render(request, "programs_table.html", m=machine, programs=found)


@router.post("/pc/{machine_id}/programs")
async def add_program(
    machine_id: MachineId,
    request: Request,
    machines: MachinesDep,
    programs: ProgramsDep,
    actor: WebActor,
    form: CheckedForm,
) -> Response:
    """The add form: answered with a fresh form, or the same one with its errors."""
    machine = await machines.get(machine_id)
    given = {name: str(form.get(name) or "").strip() for name in FORM_FIELDS}
    given["autostart"] = "on" if form.get("autostart") else ""
    errors: dict[str, str] = {}
    status = 422
    try:
        body = _create_body(machine_id, given)
        created = await programs.create(body, actor=actor)
    except _FormError as exc:
        errors = exc.errors
    except Conflict:
        errors = {"name": "This machine already has a program of that name."}
        status = 409
    except WcmsError as exc:
        errors = {exc.field if exc.field in given else "form": exc.message}
        status = exc.status_code
    response = render(
        request,
        "program_form.html",
        status=status if errors else 200,
        m=machine,
        values=given if errors else {},
        errors=errors,
        added=None if errors else created.name,
        **form_context(),
    )
    if not errors:
        response.headers["HX-Trigger"] = _trigger(machine_id, created.name)
    return response


@router.post("/pc/{machine_id}/programs/{name}/{action}")
async def program_action(
    machine_id: MachineId,
    name: ProgramName,
    action: Action,
    programs: ProgramsDep,
    actor: WebActor,
    form: CheckedForm,
) -> Response:
    """Start, stop, restart or remove; answers an empty message (or the error in its
    place) and tells the page to refresh."""
    if action == "start":
        await programs.start(machine_id, name, actor=actor)
    elif action == "stop":
        await programs.stop(machine_id, name, actor=actor)
    elif action == "restart":
        await programs.restart(machine_id, name, actor=actor)
    elif action == "remove":
        await programs.remove(machine_id, name, actor=actor)
        if form.get("back"):
            return Response(status_code=200, headers={"HX-Redirect": f"/pc/{machine_id}"})
    return Response(status_code=200, headers={"HX-Trigger": _trigger(machine_id, name)})


@router.get("/pc/{machine_id}/programs/{name}")
async def program_page(
    machine_id: MachineId,
    name: ProgramName,
    request: Request,
    machines: MachinesDep,
    programs: ProgramsDep,
    user: WebUser,
) -> Response:
    machine = await machines.get(machine_id)
    context = await _facts(programs, machine_id, name)
    return render(
        request, "program.html", title=name, user=user, m=machine, live_programs=True, **context
    )


@router.get("/pc/{machine_id}/programs/{name}/facts")
async def program_facts(
    machine_id: MachineId, name: ProgramName, request: Request, programs: ProgramsDep, _: WebUser
) -> Response:
    """The program page's state, definition and state changes, as they refresh."""
    return render(request, "program_facts.html", **await _facts(programs, machine_id, name))


async def _facts(programs: Programs, machine_id: str, name: str) -> dict[str, Any]:
    program = await programs.get(machine_id, name)
    events = await programs.events(machine_id, name, limit=EVENTS_SHOWN)
    return {"p": program, "events": list(reversed(events))}


class _FormError(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(errors)
        self.errors = errors


def _create_body(machine_id: str, given: dict[str, str]) -> ProgramCreate:
    """The ProgramCreate the form describes; every field in error named at once."""
    data: dict[str, Any] = {k: v for k, v in given.items() if v and k != "autostart"}
    data["autostart"] = bool(given["autostart"])
    errors: dict[str, str] = {}
    try:
        data["command"] = shlex.split(given["command"])
    except ValueError:
        errors["command"] = "The command line has an unclosed quote."
    if not data.get("command") and "command" not in errors:
        errors["command"] = "Required."
    try:
        body = ProgramCreate.model_validate({**data, "machine": machine_id})
    except ValidationError as exc:
        for error in exc.errors():
            where = str(error["loc"][0]) if error["loc"] else "form"
            errors.setdefault(where if where in given else "form", _message(error))
        raise _FormError(errors) from None
    if errors:
        raise _FormError(errors)
    return body


def _message(error: Any) -> str:
    known = _MESSAGES.get(str(error.get("type")))
    if known:
        return known
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


def _trigger(machine_id: str, name: str) -> str:
    return json.dumps({"wcms-program-one": {"machine": machine_id, "name": name}})
