"""The server's file store, as actions see it: fetch an uploaded document, store a
screenshot."""

from __future__ import annotations

from pathlib import Path

from wcms.agent.client import ServerClient
from wcms.agent.errors import ActionFailed, AgentError
from wcms.agent.fetch import Fetched, fetch
from wcms.agent.progress import Progress
from wcms.protocol import FileRef, RunEnvelope


class FileStore:
    """Files on the server. This base has no server: every call fails."""

    async def upload(
        self, data: bytes, *, name: str, content_type: str, run: RunEnvelope
    ) -> FileRef:
        """Store ``data`` on the server as a file of ``run``; returns its reference."""
        raise ActionFailed("this agent has no server to store files on")

    async def download(
        self, file_id: str, dest: Path, *, max_bytes: int, progress: Progress
    ) -> Fetched:
        """Fetch the server's file ``file_id`` into ``dest``."""
        raise ActionFailed("this agent has no server to fetch files from")


class ServerFileStore(FileStore):
    """Files through the agent API, with this agent's credential."""

    def __init__(self, client: ServerClient) -> None:
        self._client = client

    async def upload(
        self, data: bytes, *, name: str, content_type: str, run: RunEnvelope
    ) -> FileRef:
        try:
            return await self._client.upload_file(
                data, name=name, content_type=content_type, run_id=run.run_id, attempt=run.attempt
            )
        except AgentError as exc:
            raise ActionFailed(f"could not store {name} on the server: {exc}") from exc

    async def download(
        self, file_id: str, dest: Path, *, max_bytes: int, progress: Progress
    ) -> Fetched:
        try:
            headers = self._client.headers()
        except AgentError as exc:
            raise ActionFailed(str(exc)) from exc
        return await fetch(
            self._client.file_url(file_id),
            dest,
            max_bytes=max_bytes,
            headers=headers,
            progress=progress,
        )
