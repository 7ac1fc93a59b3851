"""Valve's A2S_INFO query over UDP: is the server listed, and how full is it.

python-a2s does the challenge step Valve added in 2020 (the server answers the first
request with a number to send back). A2S has no console.
"""

from __future__ import annotations

import asyncio

import a2s  # type: ignore[import-untyped]

from wcms.agent.plugins.base import GamePlugin, ProbeResult


class A2sPlugin(GamePlugin):
    scheme = "a2s"

    async def probe(self) -> ProbeResult:
        address = (self.target.host, self.target.port)
        try:
            # python-a2s times each packet; the challenge step makes two of them.
            async with asyncio.timeout(self.timeout_s):
                info = await a2s.ainfo(address, timeout=self.timeout_s)
        # python-a2s raises a bare Exception for some malformed answers.
        except Exception as exc:
            return ProbeResult(ok=False, detail=f"A2S at {self.where}: {self.reason(exc)}")
        return ProbeResult(
            ok=True,
            players=int(info.player_count),
            max_players=int(info.max_players),
            detail=str(info.server_name)[:200] or None,
        )
