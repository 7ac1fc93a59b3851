"""`wcms agent`: run the agent on this machine, or install it as a system service."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from wcms.agent.errors import ConfigError
from wcms.agent.service import ServiceSpec, write_config
from wcms.cli.client import CliError

if TYPE_CHECKING:
    from wcms.agent.platform import Platform

agent_app = typer.Typer(
    help="Run the agent on this machine, or install it as a system service.",
    invoke_without_command=True,
)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="Agent configuration file (TOML) [env WCMS_AGENT_CONFIG]"),
]


@agent_app.callback()
def agent(
    ctx: typer.Context,
    server: Annotated[
        str | None,
        typer.Option(
            "--server", help="Server URL, e.g. http://wcms.lab:8000 [env WCMS_AGENT_SERVER_URL]"
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="Enrolment token, used on the first run only [env WCMS_AGENT_ENROLLMENT_TOKEN]",
        ),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            "--state-dir", help="Where the credential and journal live [env WCMS_AGENT_STATE_DIR]"
        ),
    ] = None,
    machine_id: Annotated[
        str | None,
        typer.Option(
            "--machine-id", help="Override the machine id the OS gives [env WCMS_AGENT_MACHINE_ID]"
        ),
    ] = None,
    heartbeat_interval: Annotated[
        float | None,
        typer.Option(
            "--heartbeat-interval", min=1, help="Seconds between heartbeats [the server's choice]"
        ),
    ] = None,
    transport: Annotated[
        str | None,
        typer.Option("--transport", help="auto (WebSocket, HTTP fallback), ws or http [auto]"),
    ] = None,
    power_backend: Annotated[
        str | None,
        typer.Option(
            "--power-backend", help="os, or record:FILE to only record power actions [os]"
        ),
    ] = None,
    log_level: Annotated[
        str | None, typer.Option("--log-level", help="debug, info, warning, error [info]")
    ] = None,
    config: ConfigOpt = None,
    system_root: Annotated[
        Path | None,
        typer.Option(
            "--system-root",
            help="Manage user accounts and package files under this root instead of / [/]",
        ),
    ] = None,
) -> None:
    """Run the agent: enrol on the first run with --token, then reuse the stored credential.

    Exit codes: 0 stopped, 2 configuration or enrolment refused, 3 credential revoked.
    """
    if ctx.invoked_subcommand is not None:
        return
    # Imported here, not at the top: every other `wcms` command would pay for aiohttp
    # and the agent's modules at start-up.
    from wcms.agent.config import AgentConfig
    from wcms.agent.main import run_agent

    try:
        settings = AgentConfig.from_env(
            config_file=config,
            system_root=system_root,
            server_url=server,
            enrollment_token=token,
            state_dir=state_dir,
            machine_id=machine_id,
            heartbeat_interval=heartbeat_interval,
            transport=transport,
            power_backend=power_backend,
            log_level=log_level,
        )
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    raise typer.Exit(run_agent(settings))


@agent_app.command("install-service")
def install_service(
    server: Annotated[
        str | None, typer.Option("--server", help="Server URL, written to the config file")
    ] = None,
    token: Annotated[
        str | None, typer.Option("--token", help="Enrolment token, written to the config file")
    ] = None,
    config: ConfigOpt = None,
    unit_dir: Annotated[
        Path | None, typer.Option("--unit-dir", help="Where the systemd unit goes (Linux)")
    ] = None,
    no_start: Annotated[
        bool, typer.Option("--no-start", help="Only install; do not enable or start it")
    ] = False,
) -> None:
    """Install the agent as a service: a systemd unit on Linux (restarted on failure),
    a Windows service that tells the server at once when Windows shuts down."""
    spec, platform = _service_spec(config, unit_dir=unit_dir, start=not no_start)
    if server or token:
        settings = {"server_url": server or "", "enrollment_token": token or ""}
        write_config(spec.config_file, {k: v for k, v in settings.items() if v})
        typer.echo(f"wrote {spec.config_file}")
    elif not spec.config_file.exists():
        raise CliError(f"no {spec.config_file}: pass --server (and --token) to create it")
    typer.echo(_service_call(platform.install_service, spec))


@agent_app.command("uninstall-service")
def uninstall_service(
    config: ConfigOpt = None,
    unit_dir: Annotated[
        Path | None, typer.Option("--unit-dir", help="Where the systemd unit is (Linux)")
    ] = None,
    no_stop: Annotated[
        bool, typer.Option("--no-stop", help="Only remove the unit; do not stop the service")
    ] = False,
) -> None:
    """Stop and remove the agent's service (its configuration and state stay)."""
    spec, platform = _service_spec(config, unit_dir=unit_dir, start=not no_stop)
    typer.echo(_service_call(platform.uninstall_service, spec))


def _service_spec(
    config: Path | None, *, unit_dir: Path | None, start: bool
) -> tuple[ServiceSpec, Platform]:
    # Imported here for the same reason as in agent(): start-up time of other commands.
    from wcms.agent.platform import current_platform

    platform = current_platform()
    try:
        config_file = config or platform.default_config_file()
    except NotImplementedError:
        raise CliError("installing the agent as a service is not supported here") from None
    spec = ServiceSpec(config_file=config_file.absolute(), unit_dir=unit_dir, start=start)
    return spec, platform


def _service_call(call: Callable[[ServiceSpec], str], spec: ServiceSpec) -> str:
    try:
        return call(spec)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    except NotImplementedError:
        raise CliError("installing the agent as a service is not supported here") from None
