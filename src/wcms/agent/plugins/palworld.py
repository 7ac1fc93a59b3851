"""Palworld's REST API (``/v1/api/…``, HTTP Basic auth with the admin password).

It offers a fixed set of calls, not a console: ``command`` understands the few words
that map onto them (``save``, ``announce TEXT``, ``shutdown [SECONDS] [MESSAGE]``).
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import aiohttp
from yarl import URL

from wcms.agent.plugins.base import GamePlugin, PluginError, ProbeResult, Unsupported
from wcms.protocol.programs import ProbeUrl

DEFAULT_SHUTDOWN_WAIT_S = 10
_WORDS = "save, announce TEXT, shutdown [SECONDS] [MESSAGE]"


class PalworldPlugin(GamePlugin):
    scheme = "palworld"
    has_console = True

    def __init__(self, probe: ProbeUrl, *, timeout_s: float = 5.0) -> None:
        super().__init__(probe, timeout_s=timeout_s)
        self._base = URL.build(scheme="http", host=probe.host, port=probe.port, path="/v1/api/")
        credentials = f"{probe.user or 'admin'}:{probe.password or ''}".encode()
        self._headers = {"Authorization": "Basic " + base64.b64encode(credentials).decode()}
        self._session: aiohttp.ClientSession | None = None

    async def probe(self) -> ProbeResult:
        """Info, then the players and the maximum: all within ``timeout_s``."""
        try:
            async with asyncio.timeout(self.timeout_s):
                info = await self._call("GET", "info")
                players = await self.players()
                max_players = await self._max_players()
        except TimeoutError as exc:
            return ProbeResult(
                ok=False, detail=f"Palworld REST at {self.where}: {self.reason(exc)}"
            )
        except PluginError as exc:
            return ProbeResult(ok=False, detail=str(exc))
        name = info.get("servername") if isinstance(info, dict) else None
        return ProbeResult(
            ok=True,
            players=len(players),
            max_players=max_players,
            detail=str(name)[:200] if name else None,
        )

    async def players(self) -> list[str]:
        """The names of the players online."""
        answer = await self._call("GET", "players")
        found = answer.get("players") if isinstance(answer, dict) else None
        if not isinstance(found, list):
            raise PluginError("Palworld REST players: no player list in the answer")
        return [str(p.get("name", "")) if isinstance(p, dict) else "" for p in found]

    async def metrics(self) -> dict[str, float]:
        """The server's numbers: ``serverfps``, ``currentplayernum``, ``maxplayernum``,
        ``uptime``, ``days``…"""
        answer = await self._call("GET", "metrics")
        if not isinstance(answer, dict):
            raise PluginError("Palworld REST metrics: not an object")
        return {
            key: float(value)
            for key, value in answer.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        }

    async def command(self, text: str) -> str:
        word, _, rest = text.strip().partition(" ")
        rest = rest.strip()
        match word.lower():
            case "save":
                await self.save()
                return "Saved the world"
            case "announce" | "broadcast" if rest:
                await self.announce(rest)
                return f"Announced: {rest}"
            case "shutdown":
                wait, _, message = rest.partition(" ")
                if wait.isdigit():
                    wait_s = int(wait)
                else:
                    wait_s, message = DEFAULT_SHUTDOWN_WAIT_S, rest
                await self.shutdown(wait_s=wait_s, message=message.strip())
                return f"Shutting down in {wait_s}s"
        raise Unsupported(f"Palworld REST has no console; it understands: {_WORDS}")

    async def save(self) -> None:
        await self._call("POST", "save")

    async def announce(self, text: str) -> None:
        await self._call("POST", "announce", {"message": text})

    async def shutdown(self, *, wait_s: int, message: str) -> None:
        body = {"waittime": max(0, wait_s), "message": message or "The server is shutting down"}
        await self._call("POST", "shutdown", body)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _max_players(self) -> int | None:
        """From the live metrics; servers older than ``/metrics`` have it in the
        settings."""
        try:
            found = (await self.metrics()).get("maxplayernum")
        except PluginError:
            found = None
        if found is None:
            settings = await self._call("GET", "settings")
            value = settings.get("ServerPlayerMaxNum") if isinstance(settings, dict) else None
            found = value if isinstance(value, int | float) else None
        return int(found) if found is not None else None

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One request; its JSON answer (``None`` for an empty one). Free-form: each
        caller checks the shape it needs. Raises PluginError, saying why."""
        try:
            async with (
                asyncio.timeout(self.timeout_s),
                self._open().request(method, self._base / path, json=body) as response,
            ):
                if response.status == 401:
                    raise PluginError("Palworld REST refused the admin password")
                if response.status >= 300:
                    raise PluginError(f"Palworld REST {path}: HTTP {response.status}")
                text = await response.text(errors="replace")
        except (aiohttp.ClientError, OSError) as exc:
            raise PluginError(f"Palworld REST at {self.where}: {self.reason(exc)}") from None
        if not text.strip() or method != "GET":
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise PluginError(f"Palworld REST {path}: the answer is not JSON") from None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                # A fresh connection per call: a kept one could be stale after a restart.
                connector=aiohttp.TCPConnector(force_close=True),
            )
        return self._session
