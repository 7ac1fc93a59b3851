"""Server-local admin commands: they act on the database directly, no server needed."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from wcms.cli.client import CliError
from wcms.cli.options import DatabaseUrl, DataDir, parse_duration, require_server, server_settings

T = TypeVar("T")

user_app = typer.Typer(help="Manage admin users.", no_args_is_help=True)


def enroll_token(
    uses: Annotated[int, typer.Option("--uses", min=1, help="How many machines it may enrol")] = 1,
    ttl: Annotated[str, typer.Option("--ttl", help="Lifetime: 90s, 15m, 8h, 7d")] = "24h",
    note: Annotated[str | None, typer.Option("--note", help="What it is for")] = None,
    room: Annotated[
        str | None, typer.Option("--room", help="Room the machines it enrols start in")
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create an enrolment token; one token can enrol a whole room (--uses 40 --room A101).

    The token is printed alone on the last line.
    """
    ttl_s = parse_duration(ttl)
    if ttl_s <= 0:
        raise CliError("--ttl must be longer than 0")

    async def make(core: Any) -> tuple[Any, str]:
        result: tuple[Any, str] = await core.enrollment.create_token(
            uses=uses, ttl_s=ttl_s, note=note, actor=_local_actor(), room=room
        )
        return result

    row, token = _with_core(make, data_dir=data_dir, database_url=database_url)
    typer.echo(
        f"enrolment token {row.id}: {uses} use(s), expires {row.expires_at:%Y-%m-%d %H:%M} UTC",
        err=True,
    )
    typer.echo(token)


def api_key(
    name: Annotated[str, typer.Option("--name", help="What the key is for")] = "cli",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create an API key for the CLI and automation; printed alone on the last line."""

    async def make(core: Any) -> tuple[Any, str]:
        result: tuple[Any, str] = await core.accounts.create_api_key(name, actor=_local_actor())
        return result

    row, key = _with_core(make, data_dir=data_dir, database_url=database_url)
    typer.echo(f"API key {row.id} ({name}); use it as WCMS_API_KEY", err=True)
    typer.echo(key)


NewPassword = Annotated[
    str | None,
    typer.Option("--password", envvar="WCMS_NEW_PASSWORD", help="Prompted when omitted"),
]


@user_app.command("create")
def user_create(
    username: Annotated[str, typer.Argument(help="Login name")],
    password: NewPassword = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create an admin user (password hashed with argon2)."""
    secret = password or _prompt_password()

    async def make(core: Any) -> int:
        user_id: int = await core.accounts.create_user(username, secret, actor=_local_actor())
        return user_id

    _with_core(make, data_dir=data_dir, database_url=database_url)
    typer.echo(f"created user {username}")


@user_app.command("passwd")
def user_passwd(
    username: Annotated[str, typer.Argument(help="Login name")],
    password: NewPassword = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Set a user's password."""
    secret = password or _prompt_password()

    async def change(core: Any) -> None:
        await core.accounts.set_password(username, secret, actor=_local_actor())

    _with_core(change, data_dir=data_dir, database_url=database_url)
    typer.echo(f"password of {username} changed")


def migrate(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Bring the database schema up to date (the server also does this on start)."""

    async def nothing(core: Any) -> None:
        return None

    _with_core(nothing, data_dir=data_dir, database_url=database_url)
    typer.echo("database is up to date")


def _with_core(
    action: Callable[[Any], Awaitable[T]], *, data_dir: Any, database_url: str | None
) -> T:
    """Open the database (migrating it), run ``action`` with the server core, close."""
    settings = server_settings(data_dir=data_dir, database_url=database_url)
    core_module = require_server("wcms.server.core")
    errors = require_server("wcms.server.errors")
    migrate_module = require_server("wcms.server.store.migrate")

    async def run() -> T:
        core = core_module.Core(settings)
        try:
            await migrate_module.upgrade(core.db.engine)
            return await action(core)
        finally:
            await core.db.dispose()

    try:
        return asyncio.run(run())
    except errors.WcmsError as exc:
        raise CliError(exc.message) from None
    except OSError as exc:
        raise CliError(f"cannot open the database: {exc}") from None


def _local_actor() -> Any:
    audit = require_server("wcms.server.services.audit")
    return audit.Actor(f"local:{getpass.getuser()}")


def _prompt_password() -> str:
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Again: "):
        raise CliError("the passwords differ")
    return first
