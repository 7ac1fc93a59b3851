"""The plainest probe: does the port accept a TCP connection."""

from __future__ import annotations

import asyncio
import contextlib

from wcms.agent.plugins.base import GamePlugin, ProbeResult


class TcpPlugin(GamePlugin):
    scheme = "tcp"

    async def probe(self) -> ProbeResult:
        try:
            async with asyncio.timeout(self.timeout_s):
                _, writer = await asyncio.open_connection(self.target.host, self.target.port)
        except OSError as exc:
            return ProbeResult(ok=False, detail=f"TCP {self.where}: {self.reason(exc)}")
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(self.timeout_s):
                await writer.wait_closed()
        return ProbeResult(ok=True)
