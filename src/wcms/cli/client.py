"""A small blocking client for the admin API, used by the remote CLI commands."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import TypeAdapter

from wcms.protocol import CommandCreate, CommandOut, FileOut, MachineOut


class CliError(Exception):
    """A problem to show the user as one line, exiting non-zero."""

    def __init__(self, message: str, *, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ApiClient:
    """Talks to ``WCMS_URL`` with ``WCMS_API_KEY``."""

    def __init__(self, url: str, key: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.timeout = timeout

    @classmethod
    def from_env(cls) -> ApiClient:
        url = os.environ.get("WCMS_URL", "").strip()
        key = os.environ.get("WCMS_API_KEY", "").strip()
        if not url:
            raise CliError("set WCMS_URL to the server's address, e.g. http://127.0.0.1:8000")
        if not key:
            raise CliError("set WCMS_API_KEY to an API key (create one with `wcms api-key`)")
        return cls(url, key)

    def request(
        self, method: str, path: str, body: Any = None, *, timeout: float | None = None
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - the URL is the operator's server
            self.url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.key}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise CliError(_error_message(exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CliError(f"cannot reach the WCMS server at {self.url}: {reason}") from None
        return json.loads(raw) if raw else None

    def send_bytes(self, method: str, path: str, data: bytes | None = None) -> bytes:
        """A request with a raw body (or none) whose answer is raw bytes."""
        request = urllib.request.Request(  # noqa: S310 - the URL is the operator's server
            self.url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.key}",
                "Content-Type": "application/octet-stream",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=300) as response:  # noqa: S310
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            raise CliError(_error_message(exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CliError(f"cannot reach the WCMS server at {self.url}: {reason}") from None

    def upload(self, path: Path) -> FileOut:
        """Store a local file on the server (a document to print)."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CliError(f"cannot read {path}: {exc.strerror}") from None
        raw = self.send_bytes("POST", f"/api/files?name={quote(path.name)}", data)
        return FileOut.model_validate_json(raw)

    def machines(self) -> list[MachineOut]:
        return _machines.validate_python(self.request("GET", "/api/machines"))

    def create_command(self, command: CommandCreate) -> CommandOut:
        body = command.model_dump(mode="json", exclude_unset=True)
        return CommandOut.model_validate(self.request("POST", "/api/commands", body))

    def wait_command(self, command_id: int, *, wait_s: float) -> CommandOut:
        query = f"/api/commands/{command_id}?wait={min(wait_s, 300):.1f}"
        raw = self.request("GET", query, timeout=min(wait_s, 300) + 30)
        return CommandOut.model_validate(raw)


_machines: TypeAdapter[list[MachineOut]] = TypeAdapter(list[MachineOut])


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        error = json.loads(exc.read())["error"]
        return f"server refused ({exc.code} {error['code']}): {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"server answered {exc.code} {exc.reason}"
