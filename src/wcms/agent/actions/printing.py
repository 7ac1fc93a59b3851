"""``print``: a document given by URL or uploaded to the server, to a printer."""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from pathlib import Path, PurePath
from urllib.parse import urlsplit

from wcms.agent.actions.base import (
    Action,
    ActionContext,
    ActionOutcome,
    ActionSettings,
    payload_of,
)
from wcms.agent.fetch import Fetched, fetch
from wcms.agent.platform import Platform
from wcms.protocol import RunEnvelope
from wcms.protocol.actions import PrintPayload

MAX_DOCUMENT_BYTES = 512 * 1024**2
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


class PrintAction(Action):
    """Fetches the document into a private temporary directory, prints it through the
    platform (CUPS ``lp`` on Linux, the shell's print verb on Windows) and deletes it."""

    def __init__(self, platform: Platform, settings: ActionSettings) -> None:
        self._platform = platform
        self._settings = settings

    async def run(self, envelope: RunEnvelope, ctx: ActionContext) -> ActionOutcome:
        payload = payload_of(envelope, PrintPayload)
        limit = min(MAX_DOCUMENT_BYTES, self._settings.max_download_bytes)
        workdir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="wcms-print-"))
        try:
            ctx.progress.status(note="fetching the document")
            if payload.file is not None:
                fetched = await ctx.files.download(
                    payload.file, workdir / "document", max_bytes=limit, progress=ctx.progress
                )
            else:
                assert payload.url is not None
                fetched = await fetch(
                    payload.url, workdir / "document", max_bytes=limit, progress=ctx.progress
                )
            document = await asyncio.to_thread(_named, fetched, payload)
            ctx.progress.status(note="printing")
            summary, data = await self._platform.print_file(document, payload)
        finally:
            await asyncio.to_thread(shutil.rmtree, workdir, True)
        data |= {"document": document.name, "size": fetched.size, "sha256": fetched.sha256}
        return ActionOutcome.succeeded(f"{document.name}: {summary}", data=data)


def _named(fetched: Fetched, payload: PrintPayload) -> Path:
    """Give the document its real name: printing programs go by the extension."""
    name = fetched.filename or (PurePath(urlsplit(payload.url).path).name if payload.url else "")
    name = _UNSAFE.sub("_", PurePath(name).name).strip(" .") or "document"
    target = fetched.path.with_name(name)
    fetched.path.rename(target)
    return target
