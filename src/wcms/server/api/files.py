"""Admin API: files (documents to print, screenshots)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request, Response

from wcms.protocol import FileOut
from wcms.server.api.deps import Admin, AdminActor, FilesDep

router = APIRouter(prefix="/api/files", tags=["files"])

FileId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="File id")]


@router.post("", response_model=FileOut, status_code=201)
async def upload_file(
    request: Request,
    files: FilesDep,
    actor: AdminActor,
    name: Annotated[str, Query(min_length=1, max_length=255, description="File name")],
) -> FileOut:
    """Store the request body as a file (e.g. a document for a ``print`` command, which
    names it as ``file``)."""
    data = await request.body()
    content_type = request.headers.get("content-type")
    if content_type in ("application/octet-stream", "application/x-www-form-urlencoded"):
        content_type = None
    return await files.upload(data, name=name, content_type=content_type, actor=actor)


@router.get("", response_model=list[FileOut])
async def list_files(
    files: FilesDep,
    _: Admin,
    kind: str | None = None,
    machine_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[FileOut]:
    """Newest first; ``kind=screenshot`` and ``machine_id`` narrow the list."""
    return await files.list(kind=kind, machine_id=machine_id, limit=limit)


@router.get("/{file_id}", response_model=FileOut)
async def get_file(file_id: FileId, files: FilesDep, _: Admin) -> FileOut:
    return await files.meta(file_id)


@router.get("/{file_id}/content", response_class=Response)
async def file_content(file_id: FileId, files: FilesDep, _: Admin) -> Response:
    """The file's bytes (a screenshot is ``image/png``)."""
    meta, data = await files.content(file_id)
    return file_response(meta, data)


@router.delete("/{file_id}", status_code=204)
async def delete_file(file_id: FileId, files: FilesDep, actor: AdminActor) -> Response:
    await files.delete(file_id, actor=actor)
    return Response(status_code=204)


def file_response(meta: FileOut, data: bytes) -> Response:
    disposition = f"attachment; filename*=UTF-8''{quote(meta.name)}"
    return Response(
        data,
        media_type=meta.content_type,
        headers={"Content-Disposition": disposition, "X-Content-Type-Options": "nosniff"},
    )
