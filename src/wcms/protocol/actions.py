"""Payloads of the command types that act on a machine beyond ``execute`` and power:
software, files, user accounts, printing, the screen and session, Wake-on-LAN and
processes. Each is validated on the server when the command is created and again by
the agent before it acts."""

from __future__ import annotations

import ipaddress
import re
from typing import ClassVar, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from wcms.protocol.payload import Payload

# Local account names that every platform accepts (POSIX portable names, which also
# suit Windows).
USERNAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$"
# A package name for apt, dnf or a winget id ("Mozilla.Firefox").
PACKAGE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.+_:@~-]{0,199}$"
FILE_ID_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"
SHA256_PATTERN = r"^[0-9a-fA-F]{64}$"
_MAC = re.compile(r"^[0-9a-f]{2}([:-]?)[0-9a-f]{2}(\1[0-9a-f]{2}){4}$")


def check_url(value: str | None) -> str | None:
    """An http(s) URL with a host, or None."""
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if any(ch in value for ch in "\x00\r\n "):
        raise ValueError("must not contain spaces or control characters")
    return value


def normalise_mac(value: str) -> str:
    """``aa:bb:cc:dd:ee:ff`` from any common spelling; raises ValueError."""
    text = value.strip().lower()
    if not _MAC.match(text):
        raise ValueError(f"not a MAC address: {value!r}")
    digits = re.sub(r"[^0-9a-f]", "", text)
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def _one_of(model: Payload, *names: str) -> None:
    given = [name for name in names if getattr(model, name) is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of {', '.join(names)}")


class InstallPayload(Payload):
    """Install software: a package by name (apt/dnf, winget), or a package file by URL
    (.deb/.rpm, .msi/.exe)."""

    package: str | None = Field(default=None, pattern=PACKAGE_PATTERN)
    url: str | None = Field(default=None, max_length=4096)
    sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)
    kind: Literal["auto", "deb", "rpm", "msi", "exe"] = Field(
        default="auto", description="Package file kind; auto: from the URL's extension"
    )
    args: list[str] | None = Field(
        default=None, max_length=32, description="Installer arguments for .exe (default /S)"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return check_url(value)

    @model_validator(mode="after")
    def _package_or_url(self) -> Self:
        _one_of(self, "package", "url")
        return self


class DownloadPayload(Payload):
    """Fetch a URL into a file on the machine, atomically."""

    url: str = Field(max_length=4096)
    path: str = Field(min_length=1, max_length=4096, description="Absolute destination path")
    sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)
    max_bytes: int | None = Field(default=None, ge=1, description="Refuse larger files")
    overwrite: bool = Field(default=False, description="Replace an existing file")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return check_url(value)


class CreateUserPayload(Payload):
    """Create a local user account."""

    username: str = Field(pattern=USERNAME_PATTERN)
    password: SecretStr | None = Field(default=None, min_length=1, max_length=256)
    full_name: str | None = Field(default=None, max_length=200, pattern=r"^[^:,\n\r\x00]*$")
    admin: bool = Field(default=False, description="Member of the administrators' group")

    secret_fields: ClassVar[tuple[str, ...]] = ("password",)


class DeleteUserPayload(Payload):
    """Delete a local user account."""

    username: str = Field(pattern=USERNAME_PATTERN)
    remove_home: bool = Field(default=False, description="Also delete the home directory")


class ChangePasswordPayload(Payload):
    """Set a local user's password."""

    username: str = Field(pattern=USERNAME_PATTERN)
    password: SecretStr = Field(min_length=1, max_length=256)

    secret_fields: ClassVar[tuple[str, ...]] = ("password",)


class PrintPayload(Payload):
    """Print a document given by URL or uploaded to the server (``file``: its id)."""

    file: str | None = Field(default=None, pattern=FILE_ID_PATTERN)
    url: str | None = Field(default=None, max_length=4096)
    printer: str | None = Field(default=None, max_length=127, pattern=r"^[^\x00-\x1f/#]+$")
    copies: int = Field(default=1, ge=1, le=99)
    duplex: Literal["none", "long-edge", "short-edge"] = "none"
    title: str | None = Field(default=None, max_length=200, pattern=r"^[^\x00-\x1f]*$")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return check_url(value)

    @model_validator(mode="after")
    def _file_or_url(self) -> Self:
        _one_of(self, "file", "url")
        return self


class ScreenshotPayload(Payload):
    """Capture the screen as PNG; the image is stored on the server."""

    display: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9.:_/-]{1,64}$", description='X display, e.g. ":0"'
    )
    monitor: int = Field(default=0, ge=0, le=16, description="0: all monitors, n: the n-th")


class MessagePayload(Payload):
    """Show a message to the machine's logged-in users."""

    text: str = Field(min_length=1, max_length=2000)
    title: str | None = Field(default=None, max_length=200)


class LockPayload(Payload):
    """Lock every interactive session."""


class LogoffPayload(Payload):
    """Log users off: one user, or everyone logged in."""

    user: str | None = Field(default=None, pattern=USERNAME_PATTERN)


class WakePayload(Payload):
    """Wake-on-LAN. Sent to the machines to wake; the server hands each run to an
    online machine in the same room or subnet, which sends the magic packet."""

    macs: list[str] = Field(
        default_factory=list, max_length=16, description="Filled in by the server"
    )
    broadcast: str | None = Field(default=None, description="IPv4 address to send to")
    port: int = Field(default=9, ge=1, le=65535)
    via: str | None = Field(default=None, max_length=128, description="Relay machine id")
    target: str | None = Field(default=None, max_length=128, description="Set by the server")

    @field_validator("macs")
    @classmethod
    def _macs(cls, value: list[str]) -> list[str]:
        return [normalise_mac(mac) for mac in value]

    @field_validator("broadcast")
    @classmethod
    def _broadcast(cls, value: str | None) -> str | None:
        if value is not None:
            ipaddress.IPv4Address(value)
        return value


class ProcessesPayload(Payload):
    """List processes."""

    name: str | None = Field(default=None, max_length=255, description="Name contains this")
    sort: Literal["cpu", "rss", "pid", "name"] = "cpu"
    limit: int = Field(default=200, ge=1, le=5000)


class KillPayload(Payload):
    """Kill processes by pid or by exact name."""

    pid: int | None = Field(default=None, ge=1, le=2**31)
    name: str | None = Field(default=None, min_length=1, max_length=255)
    force: bool = Field(default=False, description="SIGKILL / TerminateProcess at once")

    @model_validator(mode="after")
    def _pid_or_name(self) -> Self:
        _one_of(self, "pid", "name")
        return self


class ProgramLogsPayload(Payload):
    """The last lines of a supervised program's console; with ``follow_s``, keep
    streaming new lines (as the run's live output) for that long or until cancelled."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    lines: int = Field(default=100, ge=0, le=10000)
    follow_s: float | None = Field(default=None, gt=0, le=86400)
    offset: int | None = Field(
        default=None,
        ge=0,
        description="Follow from here (the ``offset`` a previous follow's result gave), "
        "so that a follower going on with a new run misses no line",
    )


class ProgramSendPayload(Payload):
    """Type a line into a supervised program's console (its stdin, or RCON / REST when
    its probe has a console); the result's output is the game's answer."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    text: str = Field(min_length=1, max_length=4000)

    @field_validator("text")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\n" in value or "\r" in value:
            raise ValueError("one line only")
        return value


ACTION_PAYLOADS: dict[str, type[Payload]] = {
    "install": InstallPayload,
    "download_file": DownloadPayload,
    "create_user": CreateUserPayload,
    "delete_user": DeleteUserPayload,
    "change_password": ChangePasswordPayload,
    "print": PrintPayload,
    "screenshot": ScreenshotPayload,
    "message": MessagePayload,
    "lock": LockPayload,
    "logoff": LogoffPayload,
    "wake": WakePayload,
    "processes": ProcessesPayload,
    "kill": KillPayload,
    "program_logs": ProgramLogsPayload,
    "program_send": ProgramSendPayload,
}
