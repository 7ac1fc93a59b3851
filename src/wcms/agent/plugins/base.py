"""What every game plugin offers: a probe, and where the game allows it, a console.

A plugin is built from a parsed probe URL (``protocol.programs.ProbeUrl``); its scheme
picks the module (``rcon``, ``a2s``, ``minecraft``, ``palworld``, ``tcp``/``http``).
Every network call is bounded by ``timeout_s``; a plugin keeps what it can (an RCON
connection) between calls and gives it back in ``close``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from wcms.protocol.programs import ProbeUrl


class PluginError(Exception):
    """The game did not answer, or refused (wrong password): the message says which."""


class Unsupported(PluginError):
    """This plugin cannot do that (an A2S query has no console)."""


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    players: int | None = None
    max_players: int | None = None
    detail: str | None = None  # why it failed, or what answered (a server name)


class GamePlugin(ABC):
    scheme: ClassVar[str]
    # Whether command/save/announce/shutdown work (RCON, Palworld REST) or raise Unsupported.
    has_console: ClassVar[bool] = False

    def __init__(self, probe: ProbeUrl, *, timeout_s: float = 5.0) -> None:
        self.target = probe
        self.timeout_s = timeout_s

    @abstractmethod
    async def probe(self) -> ProbeResult:
        """Is the game answering? Never raises for a game that is down: ``ok=False``."""

    async def command(self, text: str) -> str:
        """Run a console command; returns the game's answer."""
        raise Unsupported(f"a {self.scheme}:// probe has no console")

    async def save(self) -> None:
        raise Unsupported(f"a {self.scheme}:// probe cannot save the game")

    async def announce(self, text: str) -> None:
        raise Unsupported(f"a {self.scheme}:// probe cannot announce")

    async def shutdown(self, *, wait_s: int, message: str) -> None:
        raise Unsupported(f"a {self.scheme}:// probe cannot stop the game")

    async def close(self) -> None:
        """Give back connections and sessions."""
