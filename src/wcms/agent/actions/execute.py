"""``execute``: run a shell command line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import Sequence
from enum import Enum

from wcms.agent.actions.base import Action, ActionContext, ActionOutcome, payload_of
from wcms.agent.actions.capture import CommandProtocol, OutputCapture, mask
from wcms.agent.platform import Platform, ShellProcess
from wcms.agent.progress import Stream
from wcms.policy import check_command
from wcms.protocol import ExecutePayload, RunEnvelope, RunResult, RunState

# After the command exits, how long to wait for its output pipes to close. A process it
# left in the background may hold them open for ever; its later output is not captured
# (and, the pipe being closed, it may die of SIGPIPE when it writes): background
# servers should redirect their output, e.g. ``nohup server > server.log 2>&1 &``.
OUTPUT_GRACE_S = 2.0
# How long a killed command may take to be reaped.
REAP_TIMEOUT_S = 5.0


class Ending(Enum):
    EXITED = "exited"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


class ExecuteAction(Action):
    """Runs ``payload.command`` through the platform's shell (``/bin/sh -c`` or
    ``cmd.exe /c``) in its own process group, which is killed whole on timeout or
    cancel. Refused up front by :func:`wcms.policy.check_command`."""

    def __init__(
        self, platform: Platform, *, max_output_bytes: int, blocked: Sequence[str] = ()
    ) -> None:
        self._platform = platform
        self._max_output_bytes = max_output_bytes
        # The agent configuration's own refusals, on top of the shared policy.
        self._blocked = [re.compile(pattern, re.IGNORECASE) for pattern in blocked]

    async def run(self, envelope: RunEnvelope, ctx: ActionContext) -> ActionOutcome:
        payload = payload_of(envelope, ExecutePayload)
        refusal = check_command(payload.command) or self._local_refusal(payload.command)
        if refusal is not None:
            return ActionOutcome.failed(refusal)
        if payload.cwd is not None and not await asyncio.to_thread(os.path.isdir, payload.cwd):
            return ActionOutcome.failed(
                f"working directory {payload.cwd!r} does not exist or is not a directory"
            )
        secrets = {name: value.get_secret_value() for name, value in payload.secrets.items()}
        env = {**os.environ, **payload.env, **secrets}
        started = time.monotonic()
        hidden = [value for value in secrets.values() if value]

        def stream(name: Stream, text: str) -> None:
            ctx.progress.output(mask(text, hidden), stream=name)

        protocol = CommandProtocol(self._max_output_bytes, on_output=stream)
        try:
            child = await self._spawn(payload, env=env, protocol=protocol)
        except OSError as exc:
            return ActionOutcome.failed(f"could not start the command: {exc}")
        ctx.on_process(child.pid, child.started)
        ending = await _supervise(
            child, protocol, cancelled=ctx.cancelled, timeout_s=envelope.timeout_s
        )
        result = RunResult(
            exit_code=child.returncode,
            stdout=mask(self._text(protocol.stdout), hidden),
            stderr=mask(self._text(protocol.stderr), hidden),
            stdout_truncated=protocol.stdout.truncated,
            stderr_truncated=protocol.stderr.truncated,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        return _outcome(ending, result, timeout_s=envelope.timeout_s)

    def _local_refusal(self, command: str) -> str | None:
        for pattern in self._blocked:
            if pattern.search(command):
                return (
                    f"refused: the command matches {pattern.pattern!r}, blocked by this "
                    "machine's agent configuration"
                )
        return None

    async def _spawn(
        self, payload: ExecutePayload, *, env: dict[str, str], protocol: CommandProtocol
    ) -> ShellProcess:
        spawn = asyncio.ensure_future(
            self._platform.spawn_shell(
                payload.command, cwd=payload.cwd, env=env, protocol=lambda: protocol
            )
        )
        try:
            return await asyncio.shield(spawn)
        except asyncio.CancelledError:
            # A spawn cut short would leave the command running out of reach: let it
            # finish, then kill all it started.
            with contextlib.suppress(OSError):
                child = await spawn
                child.kill_tree()
                child.close()
            raise

    def _text(self, capture: OutputCapture) -> str:
        return self._platform.decode_output(bytes(capture.data), complete=not capture.truncated)


async def _supervise(
    child: ShellProcess, protocol: CommandProtocol, *, cancelled: asyncio.Event, timeout_s: float
) -> Ending:
    """Wait for the command to exit, time out or be cancelled; kill its process group
    unless it exited by itself; then give its output a moment to drain."""
    try:
        ending = await _wait_for_end(protocol.exited, cancelled, timeout_s=timeout_s)
        if ending is not Ending.EXITED:
            child.kill_tree()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(protocol.exited.wait(), REAP_TIMEOUT_S)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(protocol.closed.wait(), OUTPUT_GRACE_S)
        return ending
    finally:
        # Also reached when the agent stops mid-run: the command must not outlive it.
        if child.returncode is None:
            child.kill_tree()
        child.close()


async def _wait_for_end(
    exited: asyncio.Event, cancelled: asyncio.Event, *, timeout_s: float
) -> Ending:
    exit_wait = asyncio.create_task(exited.wait())
    cancel_wait = asyncio.create_task(cancelled.wait())
    try:
        done, _ = await asyncio.wait(
            {exit_wait, cancel_wait}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        exit_wait.cancel()
        cancel_wait.cancel()
    if exit_wait in done:
        return Ending.EXITED
    return Ending.CANCELLED if cancel_wait in done else Ending.TIMED_OUT


def _outcome(ending: Ending, result: RunResult, *, timeout_s: float) -> ActionOutcome:
    if ending is Ending.TIMED_OUT:
        error = f"timed out after {timeout_s:g} s"
        return ActionOutcome(RunState.TIMED_OUT, result.model_copy(update={"error": error}))
    if ending is Ending.CANCELLED:
        error = "cancelled while running"
        return ActionOutcome(RunState.CANCELLED, result.model_copy(update={"error": error}))
    if result.exit_code == 0:
        return ActionOutcome(RunState.SUCCEEDED, result)
    error = f"exited with code {result.exit_code}"
    return ActionOutcome(RunState.FAILED, result.model_copy(update={"error": error}))
