"""Remote commands: talk to a running server with WCMS_URL and WCMS_API_KEY."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from wcms.cli.client import ApiClient, CliError
from wcms.protocol import TERMINAL_STATES, CommandCreate, CommandOut, RunOut, RunState

# Piped output keeps whole lines instead of wrapping to 80 columns.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text")]
TimeoutOpt = Annotated[
    float, typer.Option("--timeout", min=0.1, help="Seconds each machine may run the command")
]
WaitOpt = Annotated[
    float | None,
    typer.Option(
        "--wait",
        min=0,
        help="Seconds to wait for results (default: timeout + 15, per attempt with --retries)",
    ),
]
RetriesOpt = Annotated[
    int,
    typer.Option(
        "--retries", min=0, max=10, help="Run again on a machine where it failed or timed out"
    ),
]
IdempotentFlag = Annotated[
    bool,
    typer.Option(
        "--idempotent",
        help="Safe to run twice: a run its agent was interrupted in (killed, power loss) "
        "is retried too (with --retries); otherwise it is reported failed, not repeated",
    ),
]


def pcs(as_json: JsonFlag = False) -> None:
    """List machines with their status."""
    machines = ApiClient.from_env().machines()
    if as_json:
        typer.echo(json.dumps([m.model_dump(mode="json") for m in machines], ensure_ascii=False))
        return
    table = Table("ID", "HOSTNAME", "STATUS", "ROOM", "SEAT", "TAGS", "IP", "CPU%", "RAM%", "USER")
    for m in machines:
        report = m.last_status
        status = f"[green]{m.status}[/]" if m.status == "online" else f"[dim]{m.status}[/]"
        if m.conflict:
            status += " [red](duplicate!)[/]"
        table.add_row(
            m.id,
            m.hostname,
            status,
            m.room or "",
            m.seat or "",
            ",".join(m.tags),
            m.ip or "",
            f"{report.cpu_percent:.0f}" if report else "",
            f"{report.ram_percent:.0f}" if report else "",
            ",".join(report.users) if report else "",
        )
    console.print(table)
    online = sum(1 for m in machines if m.status == "online")
    console.print(f"{online} online / {len(machines)} machines")
    for m in machines:
        if m.conflict:
            console.print(
                f"[red]![/] {m.id}: two agents claim this machine id (duplicate since "
                f"{m.conflict.get('detected_at', '?')}); give the clone its own id"
            )


def exec_(
    selector: Annotated[
        str, typer.Argument(help="Machine id or hostname, room:NAME, tag:NAME, online, all")
    ],
    command: Annotated[list[str], typer.Argument(help="The command line, after --")],
    as_json: JsonFlag = False,
    timeout: TimeoutOpt = 300.0,
    wait: WaitOpt = None,
    retries: RetriesOpt = 0,
    idempotent: IdempotentFlag = False,
) -> None:
    """Run a shell command on machines and print each one's exit code and output.

    Exits non-zero if any machine failed, timed out, or did not answer in time.
    """
    payload = {"command": " ".join(command)}
    request = _request(selector, "execute", payload, timeout, retries, idempotent=idempotent)
    _run_and_report(request, as_json=as_json, wait=wait)


def send(
    selector: Annotated[
        str, typer.Argument(help="Machine id or hostname, room:NAME, tag:NAME, online, all")
    ],
    command_type: Annotated[str, typer.Argument(metavar="TYPE", help="Command type, e.g. reboot")],
    params: Annotated[list[str] | None, typer.Argument(help="Payload fields as key=value")] = None,
    as_json: JsonFlag = False,
    timeout: TimeoutOpt = 300.0,
    wait: WaitOpt = None,
    retries: RetriesOpt = 0,
    idempotent: IdempotentFlag = False,
) -> None:
    """Send any command type with key=value payload fields, then wait like `exec`.

    JSON lists and objects are sent as such, other values as text that the command type
    turns into numbers or true/false where it expects them; key=@PATH uploads the local
    file PATH and sends its id (print file=@handout.pdf).
    """
    payload = upload_files(parse_params(params or []))
    request = _request(selector, command_type, payload, timeout, retries, idempotent=idempotent)
    _run_and_report(request, as_json=as_json, wait=wait)


def revoke(machine: Annotated[str, typer.Argument(help="Machine id")]) -> None:
    """Revoke a machine's agent credential: the agent is disconnected and refused."""
    ApiClient.from_env().request("POST", f"/api/machines/{machine}/revoke")
    console.print(f"revoked the credential of {machine}")


def cancel(command_id: Annotated[int, typer.Argument(help="Command id")]) -> None:
    """Cancel every unfinished run of a command."""
    out = CommandOut.model_validate(
        ApiClient.from_env().request("POST", f"/api/commands/{command_id}/cancel")
    )
    console.print(f"command {out.id}: {_summary(out)}")


def retry(command_id: Annotated[int, typer.Argument(help="Command id")]) -> None:
    """Run again every run of a command that failed, timed out, expired or was cancelled."""
    out = CommandOut.model_validate(
        ApiClient.from_env().request("POST", f"/api/commands/{command_id}/retry")
    )
    console.print(f"command {out.id}: {_summary(out)}")


def parse_params(params: list[str]) -> dict[str, Any]:
    """key=value pairs as a payload. JSON lists and objects are parsed; other values stay
    text, which the command type's schema turns into numbers or booleans where it expects
    them (so ``password=1234`` stays the text "1234")."""
    payload: dict[str, Any] = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"payload fields are key=value; got {item!r}")
        payload[key] = value
        if value[:1] in ("[", "{"):
            with contextlib.suppress(ValueError):
                payload[key] = json.loads(value)
    return payload


def upload_files(payload: dict[str, Any]) -> dict[str, Any]:
    """Replace each "@PATH" value by the id of PATH, uploaded to the server."""
    uploads = {k: v for k, v in payload.items() if isinstance(v, str) and v.startswith("@")}
    if not uploads:
        return payload
    client = ApiClient.from_env()
    for key, value in uploads.items():
        stored = client.upload(Path(value[1:]).expanduser())
        err.print(f"uploaded {stored.name} ({stored.size} bytes) as file {stored.id}")
        payload[key] = stored.id
    return payload


def _request(
    selector: str,
    command_type: str,
    payload: dict[str, Any],
    timeout: float,
    retries: int,
    *,
    idempotent: bool,
) -> CommandCreate:
    return CommandCreate(
        selector=selector,
        type=command_type,
        payload=payload,
        timeout_s=timeout,
        max_retries=retries,
        idempotent=idempotent,
    )


def _run_and_report(request: CommandCreate, *, as_json: bool, wait: float | None) -> None:
    client = ApiClient.from_env()
    created = client.create_command(request)
    attempts = request.max_retries + 1
    default_wait = (request.timeout_s + 15) * attempts
    deadline = time.monotonic() + (wait if wait is not None else default_wait)
    out = created
    while not out.done:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        out = client.wait_command(created.id, wait_s=remaining)
    if as_json:
        typer.echo(json.dumps([_run_json(run) for run in out.runs], ensure_ascii=False))
    else:
        _print_runs(out)
    if not all(run.state == RunState.SUCCEEDED for run in out.runs):
        raise typer.Exit(1)


def _run_json(run: RunOut) -> dict[str, Any]:
    result = run.result
    return {
        "pc": run.hostname or run.machine_id,
        "id": run.machine_id,
        "status": run.state.value,
        "exit_code": result.exit_code if result else None,
        "stdout": result.stdout if result else "",
        "stderr": result.stderr if result else "",
        "stdout_truncated": result.stdout_truncated if result else False,
        "stderr_truncated": result.stderr_truncated if result else False,
        "duration_ms": result.duration_ms if result else None,
        "error": result.error if result else _pending_note(run),
        "data": result.data if result else None,
    }


def _print_runs(out: CommandOut) -> None:
    for run in out.runs:
        result = run.result
        name = run.hostname or run.machine_id
        colour = "green" if run.state == RunState.SUCCEEDED else "red"
        facts = [f"[{colour}]{run.state.value}[/]"]
        if result and result.exit_code is not None:
            facts.append(f"exit {result.exit_code}")
        if result and result.duration_ms is not None:
            facts.append(f"{result.duration_ms} ms")
        console.print(f"[bold]== {name}[/] ({run.machine_id}): " + ", ".join(facts))
        if result is None:
            console.print(f"   {_pending_note(run)}")
            continue
        if result.error:
            console.print(f"   [red]{result.error}[/]")
        if result.stdout:
            console.out(result.stdout.rstrip("\n"))
        if result.stderr:
            err.out(result.stderr.rstrip("\n"))
        if result.stdout_truncated or result.stderr_truncated:
            console.print("   [yellow](output truncated)[/]")
    console.print(f"command {out.id}: {_summary(out)}")


def _pending_note(run: RunOut) -> str | None:
    if run.state in TERMINAL_STATES:
        return None
    if run.state == RunState.QUEUED:
        return "not delivered yet (machine offline?); it stays queued until it expires"
    return f"still {run.state.value}; see `wcms` API /api/commands for the result later"


def _summary(out: CommandOut) -> str:
    return ", ".join(f"{count} {state}" for state, count in sorted(out.summary.items()))
