"""The `wcms` command."""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError

from wcms import __version__
from wcms.cli import (  # noqa: F401 - consoles adds `program logs` and `program send`
    agent,
    alerts,
    consoles,
    files,
    local,
    programs,
    remote,
    server,
)
from wcms.cli.client import CliError

app = typer.Typer(
    name="wcms",
    help="WCMS: control and monitor a fleet of computers from one server.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"wcms {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version"
    ),
) -> None:
    """WCMS: control and monitor a fleet of computers from one server."""


app.add_typer(agent.agent_app, name="agent")
app.command("server")(server.server)
app.command("demo")(server.demo)
app.command("migrate")(local.migrate)
app.command("enroll-token")(local.enroll_token)
app.command("api-key")(local.api_key)
app.add_typer(local.user_app, name="user")
app.command("pcs")(remote.pcs)
app.command("exec")(remote.exec_)
app.command("send")(remote.send)
app.command("revoke")(remote.revoke)
app.command("cancel")(remote.cancel)
app.command("retry")(remote.retry)
app.add_typer(files.file_app, name="file")
app.add_typer(programs.program_app, name="program")
app.add_typer(alerts.channel_app, name="channel")
app.add_typer(alerts.rule_app, name="rule")
app.command("alerts")(alerts.alerts)
app.add_typer(alerts.alert_app, name="alert")
app.add_typer(alerts.silence_app, name="silence")
app.add_typer(alerts.window_app, name="window")
app.command("deliveries")(alerts.deliveries)


def main() -> None:
    try:
        app()
    except CliError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except ValidationError as exc:
        # A request built from the command line that the API would refuse (a lone
        # surrogate from a non-UTF-8 argument, a value out of range): said in one line.
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        typer.echo(f"error: {where + ': ' if where else ''}{error['msg']}", err=True)
        sys.exit(2)
