"""``shutdown``, ``reboot`` and the session actions ``lock``, ``logoff`` and ``message``,
carried out through a :class:`PowerBackend`: the operating system, or a recording that
leaves the machine and its users alone (tests, demos)."""

from __future__ import annotations

import asyncio
import json
import shlex
from datetime import UTC, datetime
from pathlib import Path

from wcms.agent.actions.base import Action, ActionContext, ActionOutcome, payload_of
from wcms.agent.errors import ActionFailed, ConfigError, PowerError
from wcms.agent.platform import Platform
from wcms.protocol import COMMAND_TYPES, PowerPayload, RunEnvelope, RunResult, RunState
from wcms.protocol.actions import LogoffPayload, MessagePayload
from wcms.protocol.payload import Payload

POWER_ACTIONS = ("shutdown", "reboot")
SESSION_ACTIONS = ("lock", "logoff", "message")
RECORD_PREFIX = "record:"
# A power command only schedules the shutdown; it should return at once.
POWER_COMMAND_TIMEOUT_S = 60.0


class PowerBackend:
    """Turns the machine off or restarts it, and acts on its users' sessions."""

    async def act(self, action: str, payload: Payload) -> str:
        """Carry out ``action`` (shutdown, reboot, lock, logoff, message) as ``payload``
        says; returns a one-line human summary of what was done. Raises PowerError or
        ActionFailed on failure."""
        raise NotImplementedError


class OSPowerBackend(PowerBackend):
    """Asks the operating system, through the platform's power command."""

    def __init__(self, platform: Platform) -> None:
        self._platform = platform

    async def act(self, action: str, payload: Payload) -> str:
        if isinstance(payload, MessagePayload):
            return await self._platform.notify_users(payload.text, payload.title)
        if isinstance(payload, LogoffPayload):
            return await self._platform.logoff(payload.user)
        if action == "lock":
            return await self._platform.lock_sessions()
        assert isinstance(payload, PowerPayload)
        argv = self._platform.power_command(action, payload)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            output, _ = await asyncio.wait_for(process.communicate(), POWER_COMMAND_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            raise PowerError(f"could not run {shlex.join(argv)}: {exc!r}") from exc
        text = output.decode("utf-8", errors="replace").strip()
        if process.returncode != 0:
            raise PowerError(f"{shlex.join(argv)} exited with {process.returncode}: {text}")
        summary = f"{action} scheduled with: {shlex.join(argv)}"
        return f"{summary}\n{text}" if text else summary


class RecordingPowerBackend(PowerBackend):
    """Appends what it would do to a JSON-lines file, and does nothing else: for tests
    and demos, where the host must never power off."""

    def __init__(self, path: Path, *, machine_id: str) -> None:
        self.path = path
        self._machine_id = machine_id

    async def act(self, action: str, payload: Payload) -> str:
        line = json.dumps(
            {
                "action": action,
                **payload.model_dump(mode="json"),
                "at": datetime.now(UTC).isoformat(),
                "machine_id": self._machine_id,
            }
        )
        try:
            await asyncio.to_thread(self._append, line)
        except OSError as exc:
            raise PowerError(f"could not record the {action} in {self.path}: {exc}") from exc
        delay = f" (delay {payload.delay_s} s)" if isinstance(payload, PowerPayload) else ""
        return f"recorded {action}{delay} in {self.path}; nothing was done"

    def _append(self, line: str) -> None:
        with self.path.open("a", encoding="utf-8") as file:
            file.write(line + "\n")


def power_backend_from_spec(spec: str, *, platform: Platform, machine_id: str) -> PowerBackend:
    """The backend named by the ``power_backend`` setting: ``os`` or ``record:PATH``."""
    if spec == "os":
        return OSPowerBackend(platform)
    if spec.startswith(RECORD_PREFIX) and spec[len(RECORD_PREFIX) :]:
        return RecordingPowerBackend(Path(spec[len(RECORD_PREFIX) :]), machine_id=machine_id)
    raise ConfigError(f"unknown power backend {spec!r}: use 'os' or 'record:/path/file.jsonl'")


class PowerAction(Action):
    """A power or session action; succeeds once the backend has done or scheduled it."""

    def __init__(self, action: str, backend: PowerBackend) -> None:
        if action not in POWER_ACTIONS + SESSION_ACTIONS:
            raise ValueError(f"not a power or session action: {action!r}")
        self.action = action
        self._backend = backend

    async def run(self, envelope: RunEnvelope, ctx: ActionContext) -> ActionOutcome:
        payload = payload_of(envelope, COMMAND_TYPES[self.action])
        try:
            summary = await self._backend.act(self.action, payload)
        except (PowerError, ActionFailed) as exc:
            return ActionOutcome.failed(str(exc))
        return ActionOutcome(RunState.SUCCEEDED, RunResult(exit_code=0, stdout=summary))
