"""An HTTP(S) probe: a GET that answers 2xx or 3xx (redirects are not followed).

Credentials in the URL (``https://user:pass@host/``) are sent as Basic auth.
"""

from __future__ import annotations

import asyncio

import aiohttp

from wcms.agent.plugins.base import GamePlugin, ProbeResult
from wcms.protocol.programs import ProbeUrl


class HttpPlugin(GamePlugin):
    scheme = "http"

    def __init__(self, probe: ProbeUrl, *, timeout_s: float = 5.0) -> None:
        super().__init__(probe, timeout_s=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def probe(self) -> ProbeResult:
        where = self.target.redacted()
        try:
            async with (
                asyncio.timeout(self.timeout_s),
                self._open().get(self.target.url, allow_redirects=False) as response,
            ):
                status = response.status
        except (aiohttp.ClientError, OSError) as exc:
            return ProbeResult(ok=False, detail=f"{where}: {self.reason(exc)}")
        if status >= 400:
            return ProbeResult(ok=False, detail=f"{where}: HTTP {status}")
        return ProbeResult(ok=True, detail=f"HTTP {status}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                # A fresh connection per probe: a kept one could be stale after a restart.
                connector=aiohttp.TCPConnector(force_close=True),
            )
        return self._session
