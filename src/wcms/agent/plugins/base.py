"""What every game plugin offers: a probe, and where the game allows it, a console.

A plugin is built from a parsed probe URL (``protocol.programs.ProbeUrl``); its scheme
picks the module (``rcon``, ``a2s``, ``minecraft``, ``palworld``, ``tcp``/``http``).
Every network call is bounded by ``timeout_s``; a plugin keeps what it can (an RCON
connection) between calls and gives it back in ``close``.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Self

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

    async def close(self) -> None:  # noqa: B027 - optional: most plugins hold nothing
        """Give back connections and sessions."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def where(self) -> str:
        """The game's address, safe to show: never the password."""
        host = f"[{self.target.host}]" if ":" in self.target.host else self.target.host
        return f"{host}:{self.target.port}"

    def scrub(self, text: str) -> str:
        """``text`` with the probe's password masked: library messages may quote a URL."""
        secret = self.target.password
        return text.replace(secret, "***") if secret else text

    def reason(self, exc: BaseException) -> str:
        """Why a call failed, in a few words and without the password."""
        inner = getattr(exc, "os_error", None)  # aiohttp wraps the socket's error
        if isinstance(inner, OSError):
            exc = inner
        if isinstance(exc, TimeoutError):
            return f"no answer within {self.timeout_s:g}s"
        if isinstance(exc, asyncio.IncompleteReadError):
            return "the connection was closed"
        if isinstance(exc, ConnectionRefusedError):
            return "connection refused"
        if isinstance(exc, OSError) and exc.strerror:
            return self.scrub(exc.strerror.lower())
        return self.scrub(str(exc) or type(exc).__name__)
