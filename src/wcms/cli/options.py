"""Options shared by the server-side commands, and turning them into Settings."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from wcms.cli.client import CliError

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Directory for the SQLite database and keys [env WCMS_DATA_DIR; default ./wcms-data]",
    ),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Database URL, e.g. postgresql+asyncpg://user@host/db [env WCMS_DATABASE_URL]",
    ),
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """'90', '90s', '15m', '8h', '7d', '2w' -> seconds."""
    match = _DURATION.match(text.lower())
    if not match:
        raise typer.BadParameter(f"{text!r} is not a duration like 90s, 15m, 8h or 7d")
    return float(match.group(1)) * _UNIT[match.group(2)]


def server_settings(**overrides: Any) -> Any:
    """Settings from the environment, with the given (non-None) flags on top."""
    settings_module = require_server("wcms.server.settings")
    values = {key: value for key, value in overrides.items() if value is not None}
    try:
        return settings_module.Settings(**values)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise CliError(f"invalid setting: {exc}") from None


def require_server(module: str) -> Any:
    """Import a server module; the agent-only install does not have the server extra."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise CliError(
            f"this needs the WCMS server (missing {exc.name}): pip install 'wcms[server]'"
        ) from None
