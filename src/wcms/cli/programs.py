"""`wcms program`: programs (game servers) that agents supervise, over the admin API."""

from __future__ import annotations

import json
import sys
from typing import Annotated
from urllib.parse import quote

import typer
from pydantic import SecretStr, TypeAdapter
from rich.console import Console
from rich.table import Table

from wcms.cli.client import ApiClient, CliError
from wcms.protocol.program_admin import (
    PRESETS,
    ProgramCreate,
    ProgramEventOut,
    ProgramOut,
)
from wcms.protocol.programs import ProgramState, RestartPolicy

program_app = typer.Typer(
    help="Programs (game servers) that agents keep running.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text")]
Target = Annotated[str, typer.Argument(metavar="MACHINE/NAME", help="The program")]
WaitOpt = Annotated[
    float,
    typer.Option("--wait", min=0, max=300, help="Seconds to wait for the state (0: do not wait)"),
]
_programs: TypeAdapter[list[ProgramOut]] = TypeAdapter(list[ProgramOut])
_events: TypeAdapter[list[ProgramEventOut]] = TypeAdapter(list[ProgramEventOut])


@program_app.command("add")
def add(
    machine: Annotated[str, typer.Argument(help="Machine id")],
    name: Annotated[str, typer.Argument(help="Program name, unique on the machine")],
    command: Annotated[list[str], typer.Argument(help="The command line, after --")],
    preset: Annotated[
        str, typer.Option("--preset", help="palworld, minecraft, ark or generic")
    ] = "generic",
    cwd: Annotated[str | None, typer.Option("--cwd", help="Working directory")] = None,
    restart: Annotated[
        str | None, typer.Option("--restart", help="never, on-crash (default) or always")
    ] = None,
    stop_command: Annotated[
        str | None, typer.Option("--stop-command", help="Console or RCON stop command")
    ] = None,
    stop_timeout: Annotated[
        float | None, typer.Option("--stop-timeout", min=0, help="Seconds to stop cleanly")
    ] = None,
    probe: Annotated[
        str | None, typer.Option("--probe", help="Liveness probe URL, e.g. tcp://127.0.0.1:8211")
    ] = None,
    schedule: Annotated[
        str | None, typer.Option("--schedule", help="Restart on this cron, e.g. '0 4 * * *'")
    ] = None,
    autostart: Annotated[
        bool, typer.Option("--autostart", help="Start it now and whenever its agent starts")
    ] = False,
    env: Annotated[
        list[str] | None, typer.Option("--env", help="An environment variable, K=V")
    ] = None,
    secret_env: Annotated[
        list[str] | None,
        typer.Option("--secret-env", help="A secret variable, K=V: sealed, never shown"),
    ] = None,
) -> None:
    """Define a program on a machine; prints MACHINE/NAME on its last line."""
    if preset not in PRESETS:
        raise CliError(f"--preset must be one of {', '.join(PRESETS)}; got {preset!r}")
    request = ProgramCreate(
        machine=machine,
        name=name,
        preset=preset,
        command=command,
        cwd=cwd,
        restart=_restart(restart),
        stop_command=stop_command,
        stop_timeout_s=stop_timeout,
        probe=probe,
        schedule=schedule,
        autostart=autostart,
        env=_pairs("--env", env),
        secret_env={k: SecretStr(v) for k, v in _pairs("--secret-env", secret_env).items()},
    )
    body = request.model_dump(mode="json", exclude_unset=True)
    body["secret_env"] = {k: v.get_secret_value() for k, v in request.secret_env.items()}
    out = ProgramOut.model_validate(ApiClient.from_env().request("POST", "/api/programs", body))
    err.print(f"added {out.preset} program, {out.desired}; probe {out.probe or 'none'}")
    typer.echo(f"{out.machine}/{out.name}")


@program_app.command("list")
def list_(
    selector: Annotated[
        str | None,
        typer.Argument(help="Machine id or hostname, room:NAME, tag:NAME, online, all"),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List programs with their state."""
    path = "/api/programs" + (f"?selector={quote(selector, safe='')}" if selector else "")
    programs = _programs.validate_python(ApiClient.from_env().request("GET", path))
    if as_json:
        typer.echo(json.dumps([p.model_dump(mode="json") for p in programs], ensure_ascii=False))
        return
    table = Table("PROGRAM", "STATE", "WANTED", "PID", "UPTIME", "RESTARTS", "PLAYERS", "LAST EXIT")
    for p in programs:
        state = p.state.value + (" (sync pending)" if p.pending_sync else "")
        table.add_row(
            f"{p.machine}/{p.name}",
            state,
            p.desired,
            str(p.pid or ""),
            _duration(p.uptime_s),
            str(p.restarts),
            "" if p.players is None else str(p.players),
            _exit(p),
        )
    console.print(table)


def _act(action: str, target: str, wait: float, as_json: bool) -> None:
    machine, name = _split(target)
    path = f"/api/programs/{machine}/{name}/{action}" + (f"?wait={wait:g}" if wait else "")
    raw = ApiClient.from_env().request("POST", path, timeout=wait + 30)
    out = ProgramOut.model_validate(raw)
    if as_json:
        typer.echo(json.dumps(out.model_dump(mode="json"), ensure_ascii=False))
    if not wait:
        if not as_json:
            console.print(f"{target}: asked to {action}; now {out.state.value}")
        return
    if reached(action, out):
        if not as_json:
            console.print(f"{target}: {out.state.value}")
        return
    raise CliError(f"{target}: {why_not(action, out, wait)}", exit_code=1)


@program_app.command("start")
def start(target: Target, as_json: JsonFlag = False, wait: WaitOpt = 60) -> None:
    """Start a program and wait until its agent reports it running."""
    _act("start", target, wait, as_json)


@program_app.command("stop")
def stop(target: Target, as_json: JsonFlag = False, wait: WaitOpt = 60) -> None:
    """Stop a program and wait until its agent reports it stopped."""
    _act("stop", target, wait, as_json)


@program_app.command("restart")
def restart(target: Target, as_json: JsonFlag = False, wait: WaitOpt = 60) -> None:
    """Restart a program and wait until it runs again."""
    _act("restart", target, wait, as_json)


@program_app.command("remove")
def remove(target: Target, as_json: JsonFlag = False, wait: WaitOpt = 0) -> None:
    """Remove a program; its agent stops it. With --wait, stop it first and wait."""
    machine, name = _split(target)
    client = ApiClient.from_env()
    stopped: ProgramOut | None = None
    if wait:
        path = f"/api/programs/{machine}/{name}/stop?wait={wait:g}"
        stopped = ProgramOut.model_validate(client.request("POST", path, timeout=wait + 30))
    client.request("DELETE", f"/api/programs/{machine}/{name}")
    if as_json:
        typer.echo(json.dumps({"machine": machine, "name": name, "removed": True}))
    else:
        console.print(f"removed {target}")
    if stopped is not None and not reached("stop", stopped):
        raise CliError(f"{target}: {why_not('stop', stopped, wait)}", exit_code=1)


@program_app.command("events")
def events(target: Target, as_json: JsonFlag = False) -> None:
    """A program's state changes, oldest first."""
    machine, name = _split(target)
    raw = ApiClient.from_env().request("GET", f"/api/programs/{machine}/{name}/events")
    found = _events.validate_python(raw)
    if as_json:
        dumped = [event.model_dump(mode="json", by_alias=True) for event in found]
        typer.echo(json.dumps(dumped, ensure_ascii=False))
        return
    table = Table("AT", "FROM", "TO", "REASON", "DETAIL")
    for event in found:
        table.add_row(
            event.at.isoformat(timespec="seconds"),
            event.from_state.value,
            event.to_state.value,
            event.reason.value,
            event.detail or (event.exit.error or "" if event.exit else ""),
        )
    console.print(table)


def reached(action: str, out: ProgramOut) -> bool:
    """Whether the program is in the state ``action`` asked for."""
    if action == "stop":
        return out.state == ProgramState.STOPPED
    if out.state != ProgramState.RUNNING:
        return False
    return action != "restart" or (out.restart_seq_applied or 0) >= out.restart_seq


def why_not(action: str, out: ProgramOut, wait: float) -> str:
    """Why the state was not reached, in one line."""
    goal = "stopped" if action == "stop" else "running"
    words = [f"not {goal} after {wait:g} s: {out.state.value}"]
    if out.last_exit is not None and action != "stop":
        ended = out.last_exit
        words.append(f"last exit {ended.reason}" + (f" ({ended.error})" if ended.error else ""))
    if out.error:
        words.append(out.error)
    if out.pending_sync:
        words.append("its agent has not taken the change yet (is the machine online?)")
    return "; ".join(words)


def _split(target: str) -> tuple[str, str]:
    machine, sep, name = target.partition("/")
    if not sep or not machine or not name or "/" in name:
        raise CliError(f"name a program as MACHINE/NAME; got {target!r}")
    return machine, name


def _pairs(option: str, items: list[str] | None) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"{option} takes K=V; got {item!r}")
        pairs[key] = value
    return pairs


def _restart(value: str | None) -> RestartPolicy | None:
    if value is None:
        return None
    try:
        return RestartPolicy(value)
    except ValueError:
        allowed = ", ".join(policy.value for policy in RestartPolicy)
        raise CliError(f"--restart must be one of {allowed}; got {value!r}") from None


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _exit(out: ProgramOut) -> str:
    ended = out.last_exit
    if ended is None:
        return ""
    code = f" {ended.code}" if ended.code is not None else ""
    signal = f" sig {ended.signal}" if ended.signal is not None else ""
    return f"{ended.reason}{code}{signal}"
