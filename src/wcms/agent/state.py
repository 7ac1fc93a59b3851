"""The agent's state directory: credential, fallback machine id and the process lock.

Files that matter are written atomically (temporary file, fsync, rename) so that a power
cut leaves either the old or the new content, never half of one. The journal of runs
lives here too (see :mod:`wcms.agent.journal`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from pathlib import Path

from pydantic import BaseModel, ValidationError

from wcms.agent.errors import StateError
from wcms.agent.platform import Platform

log = logging.getLogger(__name__)

CREDENTIAL_FILE = "credential.json"
MACHINE_ID_FILE = "machine-id"
JOURNAL_FILE = "journal.db"
LOCK_FILE = "agent.lock"


class Credential(BaseModel):
    """What enrolment gave this machine: the secret it authenticates with."""

    server: str
    machine_id: str
    credential: str

    def __repr__(self) -> str:
        # Keeps the secret out of logs and tracebacks.
        return f"Credential(server={self.server!r}, machine_id={self.machine_id!r})"


class StateDir:
    """The agent's own directory, private to the user it runs as."""

    def __init__(self, path: Path, *, platform: Platform) -> None:
        self.path = path
        self._platform = platform
        self._lock_fd: int | None = None

    @property
    def credential_path(self) -> Path:
        return self.path / CREDENTIAL_FILE

    @property
    def journal_path(self) -> Path:
        return self.path / JOURNAL_FILE

    def prepare(self) -> None:
        """Create the directory (mode 0700) and take the lock that keeps a second agent
        from sharing it: two agents on one journal could run a command twice."""
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.path, 0o700)
            fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateError(f"cannot use state directory {self.path}: {exc}") from exc
        if not self._platform.try_lock(fd):
            os.close(fd)
            raise StateError(f"another agent is already running with state directory {self.path}")
        self._lock_fd = fd

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def load_credential(self) -> Credential | None:
        try:
            raw = self.credential_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read {self.credential_path}: {exc}") from exc
        try:
            return Credential.model_validate_json(raw)
        except ValidationError as exc:
            raise StateError(
                f"{self.credential_path} is damaged; delete it and enrol again with a new token"
            ) from exc

    def save_credential(self, credential: Credential) -> None:
        self._write_atomically(self.credential_path, credential.model_dump_json().encode())

    def delete_credential(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.credential_path.unlink()

    def machine_id(self, override: str | None = None) -> str:
        """This machine's id: the override, else the OS's (hashed), else one generated
        once and kept here."""
        if override:
            return override
        derived = self._platform.os_machine_id()
        if derived:
            return derived
        return self._fallback_machine_id()

    def _fallback_machine_id(self) -> str:
        path = self.path / MACHINE_ID_FILE
        with contextlib.suppress(FileNotFoundError):
            stored = path.read_text(encoding="ascii").strip()
            if stored:
                return stored
        generated = uuid.uuid4().hex
        log.info("the OS has no machine id; generated %s and stored it in %s", generated, path)
        self._write_atomically(path, generated.encode("ascii"))
        return generated

    def _write_atomically(self, path: Path, data: bytes) -> None:
        """Write ``data`` to ``path`` readable by the owner only, all or nothing."""
        temporary = path.with_name(f".{path.name}.tmp")
        try:
            # A leftover temporary file could carry wider permissions; start afresh.
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, path)
            self._sync_directory()
        except OSError as exc:
            raise StateError(f"cannot write {path}: {exc}") from exc

    def _sync_directory(self) -> None:
        # Makes the rename itself durable; directories cannot be opened on Windows.
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return
        try:
            with contextlib.suppress(OSError):
                os.fsync(fd)
        finally:
            os.close(fd)
