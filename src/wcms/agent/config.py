"""The agent's settings."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from wcms.agent.errors import ConfigError
from wcms.agent.platform import current_platform
from wcms.protocol import COMMAND_TYPES

Transport = Literal["auto", "ws", "http"]
TRANSPORTS: tuple[Transport, ...] = ("auto", "ws", "http")
ENV_PREFIX = "WCMS_AGENT_"
CONFIG_ENV = f"{ENV_PREFIX}CONFIG"
_LIST_FIELDS = ("allowed_actions", "blocked_commands", "download_dirs")
_FLOAT_FIELDS = ("heartbeat_interval", "backoff_initial", "backoff_max", "shutdown_timeout")
_INT_FIELDS = ("max_output_bytes", "max_download_bytes")
_PATH_FIELDS = ("state_dir", "system_root")
MACHINE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")


def _default_state_dir() -> Path:
    return current_platform().default_state_dir()


@dataclass(frozen=True)
class AgentConfig:
    """Every agent setting, with its default.

    Each can also come from the environment as ``WCMS_AGENT_<FIELD NAME IN CAPITALS>``
    (``WCMS_AGENT_SERVER_URL``, ``WCMS_AGENT_STATE_DIR``, ``WCMS_AGENT_TRANSPORT``...),
    read by :meth:`from_env`; the enrolment token also as
    ``WCMS_AGENT_ENROLLMENT_TOKEN_FILE``, naming a file that holds it.

    - ``server_url``: base URL of the WCMS server, ``http://`` or ``https://``.
    - ``enrollment_token``: used only when the state directory holds no credential.
    - ``state_dir``: credential, journal and lock. Default: ``/var/lib/wcms-agent`` as
      root on Linux, else ``~/.local/state/wcms-agent``; ``%ProgramData%\\WCMS\\agent``
      on Windows.
    - ``machine_id``: overrides the id derived from the OS machine id.
    - ``heartbeat_interval``: seconds; None takes the server's value.
    - ``transport``: ``auto`` (WebSocket, falling back to HTTP long-poll), ``ws`` or
      ``http``.
    - ``power_backend``: ``os`` really shuts down; ``record:/path/file.jsonl`` only
      appends what it would have done to that file (tests, demos).
    - ``max_output_bytes``: kept of each of a command's stdout and stderr.
    - ``backoff_initial`` / ``backoff_max``: reconnect delays, seconds.
    - ``shutdown_timeout``: upper bound of a graceful stop, seconds.
    - ``log_level``: a :mod:`logging` level name.
    - ``allowed_actions``: command types this machine carries out; None: all.
    - ``blocked_commands``: regular expressions that ``execute`` command lines must
      not match, on top of the built-in dangerous-command policy.
    - ``download_dirs``: the only directories ``download_file`` may write into; empty:
      anywhere outside the operating system's own directories.
    - ``max_download_bytes``: largest file ``download_file``, ``install`` and
      ``print`` fetch.
    - ``system_root``: user accounts and package files are managed under this root;
      ``/`` for real, a throwaway directory to test or prepare an image.
    - ``display``: the X display screenshots capture by default (``$DISPLAY``, ``:0``).

    :meth:`from_env` also reads a TOML file (``--config``, ``WCMS_AGENT_CONFIG``) with
    the same names as keys; the environment overrides it, the command line both.
    """

    server_url: str
    enrollment_token: str | None = None
    state_dir: Path = field(default_factory=_default_state_dir)
    machine_id: str | None = None
    heartbeat_interval: float | None = None
    transport: Transport = "auto"
    power_backend: str = "os"
    max_output_bytes: int = 64 * 1024
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    shutdown_timeout: float = 2.0
    log_level: str = "INFO"
    allowed_actions: tuple[str, ...] | None = None
    blocked_commands: tuple[str, ...] = ()
    download_dirs: tuple[Path, ...] = ()
    max_download_bytes: int = 2 * 1024**3
    system_root: Path = Path("/")
    display: str | None = None

    def __post_init__(self) -> None:
        self._validate()

    def _validate(self) -> None:
        if not re.match(r"^https?://[^/\s]+", self.server_url):
            raise ConfigError(
                f"server URL must start with http:// or https://: {self.server_url!r}"
            )
        if self.machine_id is not None and not MACHINE_ID.match(self.machine_id):
            raise ConfigError(
                f"machine id {self.machine_id!r} is invalid: up to 128 letters, digits "
                "and . _ : @ -, starting with a letter or digit"
            )
        if self.transport not in TRANSPORTS:
            raise ConfigError(f"transport must be one of {', '.join(TRANSPORTS)}")
        if self.power_backend != "os" and not self.power_backend.startswith("record:"):
            raise ConfigError("power backend must be 'os' or 'record:/path/to/file.jsonl'")
        if self.heartbeat_interval is not None and self.heartbeat_interval <= 0:
            raise ConfigError("heartbeat interval must be positive")
        if self.max_output_bytes < 1024:
            raise ConfigError("max output bytes must be at least 1024")
        if not 0 < self.backoff_initial <= self.backoff_max:
            raise ConfigError("backoff delays must satisfy 0 < initial <= max")
        if self.shutdown_timeout <= 0:
            raise ConfigError("shutdown timeout must be positive")
        if not isinstance(logging.getLevelName(self.log_level.upper()), int):
            raise ConfigError(f"unknown log level {self.log_level!r}")
        self._validate_actions()

    def _validate_actions(self) -> None:
        unknown = set(self.allowed_actions or ()) - set(COMMAND_TYPES)
        if unknown:
            raise ConfigError(
                f"allowed_actions names unknown command types: {', '.join(sorted(unknown))} "
                f"(known: {', '.join(sorted(COMMAND_TYPES))})"
            )
        for pattern in self.blocked_commands:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"blocked_commands: bad pattern {pattern!r}: {exc}") from exc
        for directory in (*self.download_dirs, self.system_root):
            if not directory.is_absolute():
                raise ConfigError(f"{str(directory)!r} must be an absolute path")
        if self.max_download_bytes < 1:
            raise ConfigError("max download bytes must be positive")

    @property
    def log_level_number(self) -> int:
        return cast(int, logging.getLevelName(self.log_level.upper()))

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        config_file: Path | None = None,
        **overrides: Any,
    ) -> AgentConfig:
        """Settings from the TOML ``config_file`` (or ``WCMS_AGENT_CONFIG``), then
        ``WCMS_AGENT_*`` variables, then ``overrides`` (those not None) on top: the
        command line wins over the environment, which wins over the file."""
        environ = os.environ if environ is None else environ
        path = config_file or (Path(environ[CONFIG_ENV]) if environ.get(CONFIG_ENV) else None)
        values = read_config_file(path) if path is not None else {}
        values.update(_values_from_env(environ))
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "server_url" not in values:
            raise ConfigError(f"no server URL: pass --server or set {ENV_PREFIX}SERVER_URL")
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(str(exc)) from exc


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings in a TOML file, keys named as :class:`AgentConfig`'s fields."""
    try:
        with path.open("rb") as file:
            raw = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"cannot read the agent configuration {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    names = {item.name for item in dataclasses.fields(AgentConfig)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"{path}: unknown settings {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        values[name] = _from_toml(path, name, value)
    return values


def _from_toml(path: Path, name: str, value: Any) -> Any:
    """One TOML value in the field's type."""
    if name in _LIST_FIELDS:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{path}: {name} must be a list of strings")
        return tuple(Path(v) for v in value) if name == "download_dirs" else tuple(value)
    if name in _PATH_FIELDS:
        return Path(str(value)).expanduser()
    if name in _FLOAT_FIELDS + _INT_FIELDS and not isinstance(value, int | float):
        raise ConfigError(f"{path}: {name} must be a number")
    if name in _INT_FIELDS:
        return int(value)
    return value


def _values_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in dataclasses.fields(AgentConfig):
        raw = environ.get(ENV_PREFIX + item.name.upper())
        if raw is None or raw == "":
            continue
        values[item.name] = _convert(item.name, raw)
    token_file = environ.get(f"{ENV_PREFIX}ENROLLMENT_TOKEN_FILE")
    if token_file and "enrollment_token" not in values:
        try:
            values["enrollment_token"] = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the enrolment token file: {exc}") from exc
    return values


def _convert(name: str, raw: str) -> Any:
    """Parse one environment value into the field's type."""
    try:
        if name in _PATH_FIELDS:
            return Path(raw).expanduser()
        if name in _FLOAT_FIELDS:
            return float(raw)
        if name in _INT_FIELDS:
            return int(raw)
        if name in _LIST_FIELDS:
            # Comma-separated, except patterns, which may contain commas: one a line.
            separator = "\n" if name == "blocked_commands" else ","
            items = tuple(item.strip() for item in raw.split(separator) if item.strip())
            return tuple(Path(item) for item in items) if name == "download_dirs" else items
    except ValueError as exc:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}: not a number: {raw!r}") from exc
    return raw
