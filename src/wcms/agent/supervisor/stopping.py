"""An intended stop, step by step, and the console the steps go through.

A game server stopped by a signal may lose what was played since its last save, so the
polite way comes first: announce, save, the game's own stop command; the signal only
if it does not exit in time, and the kill only if the signal is ignored. The stop is
over only once no process of the program's tree is left: a restart must never find the
old server still holding its port or its world.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field

from wcms.agent.platform.base import ConsoleUnavailable, ProgramProcess
from wcms.agent.plugins.base import GamePlugin, PluginError, Unsupported
from wcms.protocol.programs import StopSequence

log = logging.getLogger(__name__)

# How long the tree may take to go once killed; and how often it is looked at.
KILL_WAIT_S = 5.0
_GONE_POLL_S = 0.05
# While it stops, an adopted program's exit is looked for this often.
_STOPPING_POLL_S = 0.1
# Beyond a plugin's own timeout, how long one of its calls may take.
_PLUGIN_SLACK_S = 1.0


class ProgramConsole:
    """Commands to a program: through its plugin's console (RCON, Palworld's REST API)
    when its probe has one, else written to its standard input."""

    def __init__(self, process: ProgramProcess | None, plugin: GamePlugin | None) -> None:
        self._process = process
        self._plugin = plugin if plugin is not None and plugin.has_console else None

    async def command(self, text: str) -> str:
        """Send ``text``; the game's answer (nothing through stdin)."""
        if self._plugin is not None:
            async with asyncio.timeout(self._plugin.timeout_s + _PLUGIN_SLACK_S):
                return await self._plugin.command(text)
        self._write(text)
        return ""

    async def announce(self, text: str) -> None:
        if self._plugin is not None:
            async with asyncio.timeout(self._plugin.timeout_s + _PLUGIN_SLACK_S):
                await self._plugin.announce(text)
            return
        self._write(text)

    async def save(self, command: str) -> None:
        """The plugin's own save where it has one; else ``command`` on stdin."""
        if self._plugin is not None:
            async with asyncio.timeout(self._plugin.timeout_s + _PLUGIN_SLACK_S):
                await self._plugin.save()
            return
        self._write(command)

    async def stop(self, command: str) -> None:
        if self._plugin is not None:
            async with asyncio.timeout(self._plugin.timeout_s + _PLUGIN_SLACK_S):
                try:
                    await self._plugin.command(command)
                except Unsupported:
                    await self._plugin.shutdown(wait_s=0, message=command)
            return
        self._write(command)

    def _write(self, text: str) -> None:
        if self._process is None:
            raise ConsoleUnavailable("the program is not running")
        self._process.write_input(text + "\n")


@dataclass(frozen=True)
class StopPlan:
    stop: StopSequence
    # Minutes said in the announcement; None for none (a countdown already said it).
    announce_minutes: int | None = 0
    # False for a hung program: it cannot answer, so the signal comes at once.
    polite: bool = True


@dataclass
class StopResult:
    steps: list[str] = field(default_factory=list)
    # No process of the tree is left (False: some could not be killed).
    gone: bool = True

    @property
    def detail(self) -> str:
        return "; ".join(self.steps)


async def stop_program(
    process: ProgramProcess,
    exited: asyncio.Task[int | None],
    console: ProgramConsole,
    plan: StopPlan,
    *,
    kill_wait_s: float = KILL_WAIT_S,
) -> StopResult:
    """Stop ``process`` (``exited`` is the task waiting for it) as ``plan`` says.

    1. Announce, save, and send the stop command, each logged; a step that fails is
       noted and the next one follows.
    2. Wait ``timeout_s`` for the exit the stop command asked for.
    3. The polite signal to the group; wait ``signal_timeout_s``.
    4. Kill the whole tree, and wait until psutil finds none of it left.
    """
    result = StopResult()
    process.poll_s = min(process.poll_s, _STOPPING_POLL_S)
    stop = plan.stop
    begun = time.monotonic()
    if plan.polite:
        if stop.announce and plan.announce_minutes is not None:
            text = stop.announce.replace("{minutes}", str(plan.announce_minutes))
            await _step(result, "announcement", console.announce(text))
        if stop.save:
            await _step(result, "save", console.save(stop.save))
        if stop.command and not exited.done():
            sent = await _step(result, "stop command", console.stop(stop.command))
            if sent and await _exits(exited, stop.timeout_s):
                result.steps.append(f"exited {time.monotonic() - begun:.1f} s after it")
    if not exited.done():
        process.terminate()
        _note(result, "asked to terminate (SIGTERM / Ctrl+Break)")
        if await _exits(exited, stop.signal_timeout_s):
            result.steps.append("exited on the signal")
    if not exited.done():
        process.kill_tree()
        _note(result, "killed")
        await _exits(exited, kill_wait_s)
    result.gone = await tree_gone(process, wait_s=kill_wait_s)
    if not result.gone:
        result.steps.append("some of its processes could not be killed")
    return result


async def tree_gone(process: ProgramProcess, *, wait_s: float = KILL_WAIT_S) -> bool:
    """Kill what is left of the program's tree (its leader has exited, or was
    killed); True once psutil finds none of it, False if some stays ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        left = await asyncio.to_thread(process.remaining)
        if not left:
            return True
        if time.monotonic() >= deadline:
            log.error("pid %s: processes %s of its tree survive the kill", process.pid, left)
            return False
        process.kill_tree()
        await asyncio.sleep(_GONE_POLL_S)


async def _step(result: StopResult, what: str, action: Awaitable[None]) -> bool:
    """Run one console step; a failure is noted, not raised."""
    try:
        await action
    except (ConsoleUnavailable, PluginError, TimeoutError, OSError) as exc:
        _note(result, f"{what} failed: {exc or type(exc).__name__}")
        return False
    _note(result, f"{what} sent")
    return True


def _note(result: StopResult, step: str) -> None:
    log.info("stopping a program: %s", step)
    result.steps.append(step)


async def _exits(exited: asyncio.Task[int | None], timeout_s: float) -> bool:
    """Whether the program exits within ``timeout_s``."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await asyncio.shield(exited)
    return exited.done()
