"""A program whose probe has a console (RCON, Palworld REST): commands and the stop
go through it, and its player count drives the memory rule. The plugin is a stand-in
that answers like a game (``plugin_for`` is swapped for it); the program is real."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar

import pytest

from wcms.agent.plugins.base import GamePlugin, ProbeResult
from wcms.agent.supervisor import watch
from wcms.protocol.programs import Probe, ProbeUrl, ProgramSet, ProgramState, Reason, StopSequence

from .supervision import Supervisors, console_text, event_seen, game, moves, state_is, status

pytestmark = pytest.mark.anyio

PROBE = Probe(url="rcon://:secret@127.0.0.1:27015", interval_s=1, start_grace_s=0)


class ConsolePlugin(GamePlugin):
    """Answers every probe with ``players`` online; records what is sent."""

    scheme = "rcon"
    has_console: ClassVar[bool] = True
    players = 0
    sent: ClassVar[list[str]] = []

    async def probe(self) -> ProbeResult:
        return ProbeResult(ok=True, players=self.players, max_players=16)

    async def command(self, text: str) -> str:
        self.sent.append(text)
        return f"done: {text}"

    async def announce(self, text: str) -> None:
        self.sent.append(f"announce {text}")

    async def save(self) -> None:
        self.sent.append("save")


@pytest.fixture
async def supervisors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Supervisors]:
    ConsolePlugin.sent = []
    ConsolePlugin.players = 0

    def plugin_for(url: ProbeUrl, *, timeout_s: float, preset: str | None = None) -> GamePlugin:
        return ConsolePlugin(url, timeout_s=timeout_s)

    monkeypatch.setattr(watch, "plugin_for", plugin_for)
    made = Supervisors(tmp_path / "state")
    yield made
    await made.cleanup()


async def test_commands_and_the_stop_go_through_the_plugin_console(
    supervisors: Supervisors,
) -> None:
    stop = StopSequence(
        announce="bye in {minutes}", save="ignored", command="DoExit", timeout_s=0.3
    )
    supervisor = await supervisors.started(game(ready_line=None, probe=PROBE, stop=stop))
    running = await state_is(supervisor, ProgramState.RUNNING)
    assert running.probe_ok is True and running.players == 0 and running.max_players == 16
    assert await supervisor.send("game", "ShowPlayers") == "done: ShowPlayers"

    supervisor.apply(ProgramSet(revision=2, programs=[game(desired="stopped", stop=stop)]))
    done = await event_seen(supervisor, Reason.USER_STOP, ProgramState.STOPPED)
    assert ConsolePlugin.sent == ["ShowPlayers", "announce bye in 0", "save", "DoExit"]
    # The stand-in game does not stop on its console: the signal ends it.
    assert done.detail is not None and "stop command sent; asked to terminate" in done.detail
    assert "got:" not in console_text(supervisor)  # nothing went to its stdin


async def test_the_memory_rule_restarts_it_when_nobody_is_online(
    supervisors: Supervisors,
) -> None:
    spec = game(ready_line=None, probe=PROBE, memory_limit_bytes=1)
    supervisor = await supervisors.started(spec)
    stopping = await event_seen(supervisor, Reason.MEMORY, ProgramState.STOPPING)
    assert stopping.detail is not None and "nobody online" in stopping.detail
    await event_seen(supervisor, Reason.MEMORY, ProgramState.STARTING)
    assert ("stopping", "stopped", "memory") in moves(supervisor)


async def test_the_memory_rule_waits_while_players_are_online(supervisors: Supervisors) -> None:
    ConsolePlugin.players = 2
    supervisor = await supervisors.started(game(ready_line=None, probe=PROBE, memory_limit_bytes=1))
    await state_is(supervisor, ProgramState.RUNNING)
    await asyncio.sleep(1.5)  # past a second probe and several measures
    assert status(supervisor).state is ProgramState.RUNNING
    assert status(supervisor).players == 2
    assert [m[2] for m in moves(supervisor)] == ["user_start", "ready"]
