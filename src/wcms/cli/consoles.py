"""`wcms program logs` and `wcms program send`: a program's console, through commands
(`program_logs`, `program_send`) that its agent answers."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from wcms.cli.client import ApiClient, CliError
from wcms.cli.programs import Target, _split, program_app
from wcms.protocol import CommandCreate, CommandOut, RunOut, RunState

# A followed console is read in runs of this long; each run's output is kept whole.
FOLLOW_RUN_S = 600.0
POLL_S = 0.5


@program_app.command("logs")
def logs(
    target: Target,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, max=10000)] = 100,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines (Ctrl+C ends)")
    ] = False,
) -> None:
    """The last lines of a program's console; with --follow, new lines as they come."""
    machine, name = _split(target)
    client = ApiClient.from_env()
    if not follow:
        run = _finished(client, _console(client, machine, {"name": name, "lines": lines}))
        sys.stdout.write(_output(run))
        return
    offset: int | None = None
    try:
        while True:  # one run after another, each going on where the last one ended
            payload = {"name": name, "lines": lines, "follow_s": FOLLOW_RUN_S}
            if offset is not None:
                payload["offset"] = offset
            offset = _stream(client, _console(client, machine, payload))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


@program_app.command("send")
def send(
    target: Target,
    text: Annotated[list[str], typer.Argument(help="The line to type, after --")],
) -> None:
    """Type a line into a program's console (its stdin, or RCON / REST); prints the
    game's answer."""
    machine, name = _split(target)
    client = ApiClient.from_env()
    created = client.create_command(
        CommandCreate(
            selector=machine,
            type="program_send",
            payload={"name": name, "text": " ".join(text)},
            timeout_s=60,
            expires_in_s=60,
        )
    )
    run = _finished(client, created)
    sys.stdout.write(_output(run))


def _console(client: ApiClient, machine: str, payload: dict[str, object]) -> CommandOut:
    follow_s = payload.get("follow_s")
    timeout = float(follow_s) + 30 if isinstance(follow_s, float) else 60
    return client.create_command(
        CommandCreate(
            selector=machine,
            type="program_logs",
            payload=payload,
            timeout_s=timeout,
            expires_in_s=60,
        )
    )


def _finished(client: ApiClient, created: CommandOut, wait: float = 75) -> RunOut:
    """The command's one run once it ended; a run that failed is a CLI error."""
    deadline = time.monotonic() + wait
    out = created
    while not out.done and time.monotonic() < deadline:
        out = client.wait_command(created.id, wait_s=deadline - time.monotonic())
    run = _one_run(out)
    if run.state != RunState.SUCCEEDED:
        raise CliError(_failure(run), exit_code=1)
    return run


def _stream(client: ApiClient, created: CommandOut) -> int | None:
    """Print the run's output as it streams in, until it ends; where in the console
    the next run goes on."""
    shown = 0
    while True:
        out = client.wait_command(created.id, wait_s=0)
        run = _one_run(out)
        text = run.result.stdout if run.result else (run.live.stdout if run.live else "")
        if len(text) > shown:
            sys.stdout.write(text[shown:])
            sys.stdout.flush()
            shown = len(text)
        if out.done:
            if run.state not in (RunState.SUCCEEDED, RunState.CANCELLED):
                raise CliError(_failure(run), exit_code=1)
            data = run.result.data if run.result else None
            offset = data.get("offset") if data else None
            return offset if isinstance(offset, int) else None
        time.sleep(POLL_S)


def _one_run(out: CommandOut) -> RunOut:
    if len(out.runs) != 1:
        raise CliError("name one machine")
    return out.runs[0]


def _failure(run: RunOut) -> str:
    error = run.result.error if run.result and run.result.error else None
    if run.state == RunState.QUEUED or run.state == RunState.DELIVERED:
        return f"{run.machine_id} did not answer (offline?)"
    return f"{run.machine_id}: {run.state.value}" + (f": {error}" if error else "")


def _output(run: RunOut) -> str:
    text = run.result.stdout if run.result else ""
    return text if not text or text.endswith("\n") else text + "\n"
