"""Minecraft's Server List Ping (what the multiplayer screen shows), via mcstatus.

It needs no password and gives players online and the maximum; it has no console: for
commands, probe with ``rcon://`` instead.
"""

from __future__ import annotations

import asyncio

from mcstatus import JavaServer

from wcms.agent.plugins.base import GamePlugin, ProbeResult


class MinecraftPlugin(GamePlugin):
    scheme = "minecraft"

    async def probe(self) -> ProbeResult:
        server = JavaServer(self.target.host, self.target.port, timeout=self.timeout_s)
        try:
            async with asyncio.timeout(self.timeout_s):
                status = await server.async_status(tries=1)
        # mcstatus raises OSError, ValueError, KeyError... for what is not a server.
        except Exception as exc:
            return ProbeResult(ok=False, detail=f"Minecraft at {self.where}: {self.reason(exc)}")
        return ProbeResult(
            ok=True,
            players=status.players.online,
            max_players=status.players.max,
            detail=status.version.name[:200] or None,
        )
