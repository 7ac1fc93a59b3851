"""The agent API for files: documents to print (fetched), screenshots (stored).

Plain HTTP for both transports, authenticated by the agent's credential only, so a
WebSocket agent's presence is not touched.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from wcms.protocol import FileRef
from wcms.server.api.deps import FilesDep
from wcms.server.api.files import file_response
from wcms.server.channel.auth import AgentMachine

router = APIRouter(prefix="/api/client/files", tags=["agent"])


@router.post("", response_model=FileRef, status_code=201)
async def store_file(
    request: Request,
    files: FilesDep,
    machine_id: AgentMachine,
    name: Annotated[str, Query(min_length=1, max_length=255)],
    run_id: Annotated[int, Query(ge=1, le=2**62)],
    attempt: Annotated[int, Query(ge=1, le=1000)] = 1,
) -> FileRef:
    """A PNG screenshot taken by one of this machine's running runs."""
    data = await request.body()
    return await files.store_for_run(machine_id, data, name=name, run_id=run_id, attempt=attempt)


@router.get("/{file_id}", response_class=Response)
async def fetch_file(
    file_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")],
    files: FilesDep,
    _: AgentMachine,
) -> Response:
    """An uploaded document (never another machine's screenshot)."""
    meta, data = await files.content(file_id, kinds=("upload",))
    return file_response(meta, data)
